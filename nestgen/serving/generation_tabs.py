"""The generation tabs of the app: Generate, Class grid, Interpolate, Level mixing, Project: their layout and the
wiring of their events to the handlers of `generation_handlers.py`.
"""

from __future__ import annotations

from types import SimpleNamespace

from nestgen.serving import generation_handlers
from nestgen.serving.events import AppState
from nestgen.serving.generator_service import ANY_CLASS
from nestgen.serving.inputs import MAX_SEED
from nestgen.serving.widgets import SEED_INFO, classes, gr, image_input, on, psi_slider, status_line


def first_view(app: AppState, page, tab: str, handler, inputs, outputs, status, shown, downloads=()):
    """No tab opens empty: when tab `tab` is opened (by a click, or by a link: `page.opened` changes to its id)
    while its picture (`shown`) is still empty, handler(app, *inputs, progress) runs on the tab's current inputs;
    `downloads` become clickable after each success of the tab's events (`enable`)."""
    def fill(app, opened, current, *args, progress=gr.Progress()):  # noqa: B008
        if opened != tab or current:  # another tab, or already drawn: it shows what it showed when last seen
            return (gr.skip(),) * len(outputs)
        return handler(app, *args, progress)

    event = on(app, page.opened.change, fill, [page.opened, shown, *inputs], outputs, status,
               api_visibility="private")
    enable(event, downloads)
    return event


def enable(event, downloads) -> None:
    """Download buttons stay greyed out until the event that fills them has succeeded once."""
    if downloads:
        def clickable():  # updates made when the event runs (made here they would be new buttons on the page)
            updates = [gr.DownloadButton(interactive=True) for _ in downloads]
            return updates if len(updates) > 1 else updates[0]  # one output takes a value, not a list

        event.success(clickable, None, list(downloads), queue=False, api_visibility="private")


def generate_tab(app: AppState, g, limits, page):
    """Generate: class, count, ψ, the first-seed slider, Random / Reuse last seed, the captioned gallery, the grid
    download; returns the handles "Explain this sample" and the page-load generation need."""
    with gr.Row():
        klass = classes(g.class_choices(), ANY_CLASS, "class", g.conditional, "“any”: each seed draws its class")
        count = gr.Slider(1, limits.max_samples, 16, step=1, label="count")
        psi = psi_slider(limits)
    with gr.Row(equal_height=True):
        seed = gr.Slider(0, MAX_SEED, 0, step=1, label="first seed", info=SEED_INFO, scale=3, elem_id="seed")
        with gr.Column(scale=1, min_width=160):
            run = gr.Button("Generate", variant="primary")
            new = gr.Button("Random seed")
            reuse = gr.Button("↶ Reuse last seed")
    status = status_line("generate", "Generating the first samples…")
    gallery = gr.Gallery(label="samples (click one to select it)", elem_id="samples", columns=8, format="png",
                         object_fit="contain", allow_preview=False, interactive=False)  # output only
    with gr.Row():
        explain = gr.Button("Explain this sample with the classifier", elem_id="explain-sample")
        alone = gr.DownloadButton("Download this sample", value=None, interactive=False, elem_id="download-sample")
        download = gr.DownloadButton("Download grid (PNG, captioned)", value=None, interactive=False,
                                     elem_id="download-grid")
    # seeds generated; ψ shown; the selected sample's caption; the gallery's (file, caption) pairs (server-side)
    history, shown, picked, files = gr.State([]), gr.State(None), gr.State(None), gr.State([])
    kept = [alone, history, shown, picked, files]

    def keep(first, seeds, truncation, samples):  # after each generation: the first sample alone (the one selected
        first = int(first)  # until another is clicked), the seed history, the gallery's ψ, caption and files
        seeds = (seeds if seeds and seeds[-1] == first else [*seeds, first])[-50:]
        return generation_handlers.sample_alone(app, *samples[0]), seeds, float(truncation), samples[0][1], samples

    def ready(caption):  # after a generation: both downloads clickable, the single one named after its sample
        if not caption:  # nothing generated yet ("Reuse last seed" before any samples)
            return gr.skip(), gr.skip()
        return gr.DownloadButton(f"Download {caption} alone", interactive=True), gr.DownloadButton(interactive=True)

    # Each generation keeps the tab's state (`kept`) in its own event, written before its samples reach the page:
    # in a separate event after it, a click right after the samples show ("Reuse last seed", "Explain this sample")
    # would read the state of the generation before (the two events run at once). The history is a hidden State
    # input: the API and its clients leave it out. A failed generation raises before anything is kept.
    def generate(app, class_value, seed, count, truncation, seeds, progress=gr.Progress()):  # noqa: B008
        samples, grid, status = generation_handlers.generate(app, class_value, seed, count, truncation, progress)
        return samples, grid, status, *keep(seed, seeds, truncation, samples)

    def new_seeds(app, class_value, count, truncation, seeds, progress=gr.Progress()):  # noqa: B008
        first, samples, grid, status = generation_handlers.new_seeds(app, class_value, count, truncation, progress)
        return first, samples, grid, status, *keep(first, seeds, truncation, samples)

    # the API's descriptions
    generate.__doc__, new_seeds.__doc__ = generation_handlers.generate.__doc__, generation_handlers.new_seeds.__doc__

    def previous(app, class_value, count, truncation, seeds, progress=gr.Progress()):  # noqa: B008
        """The seed before the last, generated, in one event (no second event that could overtake a later one);
        with nothing to go back to, a warning and no change."""
        if len(seeds) < 2:
            gr.Warning("no earlier seed yet: generate with another seed first", duration=6)
            return (gr.skip(),) * (1 + len(outs))
        return seeds[-2], *generate(app, class_value, seeds[-2], count, truncation, seeds[:-1], progress)

    def pick(samples, event: gr.SelectData):  # the index into the server's own list, never a client's path
        if not samples or not 0 <= event.index < len(samples):
            return gr.skip(), gr.skip()
        path, caption = samples[event.index]
        return caption, gr.DownloadButton(f"Download {caption} alone",
                                          value=generation_handlers.sample_alone(app, path, caption))

    page.links.add("generate", seed=seed, **{"class": klass}, count=count, psi=psi)
    # the API's outputs: the gallery, the grid file, the status line, the first sample alone (States are not sent)
    args, outs = [klass, seed, count, psi, history], [gallery, download, status, *kept]
    # the button and the seed box (a release of the slider, or Enter / Tab in its number box: JS) are one event
    # that runs once at a time: typing a seed and clicking Generate blurs the box first, which would be a 2nd request
    # (API clients get plain files; the buttons' labels and clickability follow in a step of the page's own)
    for event in (on(app, [run.click, seed.release], generate, args, outs, status, api_name="generate",
                     trigger_mode="once"),
                  on(app, new.click, new_seeds, [klass, count, psi, history], [seed, *outs], status,
                     api_name="new_seeds"),
                  on(app, reuse.click, previous, [klass, count, psi, history], [seed, *outs], status,
                     api_visibility="private")):
        event.success(ready, picked, [alone, download], queue=False, api_visibility="private")
    gallery.select(pick, files, [picked, alone], api_visibility="private", queue=False)

    return SimpleNamespace(explain=explain, picked=picked, shown=shown, load=(generate, args, outs),
                           status=status, ready=(ready, picked, [alone, download]))


def class_grid_tab(app: AppState, g, limits, page) -> None:
    """Class grid: every class × the same seeds, labelled; drawn when the tab is first opened."""
    gr.Markdown("Every class in a row, the same seeds in every column: what the model card shows, live.")
    with gr.Row():
        seed = gr.Number(0, label="first seed", precision=0, minimum=0, maximum=MAX_SEED)
        count = gr.Slider(1, limits.max_grid_seeds, 8, step=1, label="seeds per class")
        psi = psi_slider(limits)
    run = gr.Button("Draw the class × seed grid", variant="primary")
    status = status_line("grid")
    # the picture labels its rows and columns
    picture = gr.Image(label="classes × seeds", elem_id="class-grid", format="png", buttons=["fullscreen"],
                       show_label=False, interactive=False)
    download = gr.DownloadButton("Download grid (PNG)", value=None, interactive=False, elem_id="download-class-grid")
    inputs, outputs = [seed, count, psi], [picture, download, status]
    for trigger, name in ((run.click, "class_grid"), (seed.submit, None)):
        enable(on(app, trigger, generation_handlers.class_grid, inputs, outputs, status, api_name=name or False,
                  api_visibility="public" if name else "private"), [download])
    page.links.add("class-grid", seed=seed, count=count, psi=psi)
    first_view(app, page, "class-grid", generation_handlers.class_grid, inputs, outputs, status, picture, [download])


def interpolate_tab(app: AppState, g, limits, page):
    """Interpolate: two ends (seed, class, or a projected w) → frames, GIF, MP4 (drawn when the tab is first
    opened); returns the ends' widgets."""
    ends = []
    with gr.Row():
        for end in ("A", "B"):
            with gr.Column(min_width=180):
                seed = gr.Number(0 if end == "A" else 1, label=f"seed {end}", precision=0, minimum=0,
                                 maximum=MAX_SEED)
                klass = classes(g.class_choices(), ANY_CLASS, f"class {end}", g.conditional)
                note = gr.Markdown(elem_id=f"end-{end.lower()}-note")
                clear = gr.Button(f"Use seed {end} again", visible=False, size="sm")
                w = gr.JSON(None, visible=False, label=f"w {end} (projected)")
                ends.append((seed, klass, note, clear, w))
    with gr.Row():
        frames = gr.Slider(2, limits.max_frames, min(12, limits.max_frames), step=1, label="frames")
        psi = psi_slider(limits)
    run = gr.Button("Interpolate", variant="primary")
    status = status_line("interpolate")
    with gr.Row():
        gif = gr.Image(label="animation (GIF, plays forward and back)", type="filepath", elem_id="animation",
                       height=300, buttons=["fullscreen"], scale=1, min_width=260, interactive=False)
        with gr.Column(scale=2, min_width=260):
            frames_out = gr.Gallery(label="frames", elem_id="frames", columns=6, format="png", allow_preview=False,
                                    interactive=False)
            with gr.Row():
                gif_file = gr.DownloadButton("Download GIF", value=None, interactive=False, elem_id="download-gif")
                mp4_file = gr.DownloadButton("Download MP4", value=None, interactive=False)
    (seed_a, class_a, _, _, w_a), (seed_b, class_b, _, _, w_b) = ends
    for seed, klass, note, clear, w in ends:  # back from a projected end to its seed and class
        clear.click(lambda: (None, "", gr.Button(visible=False), gr.Number(interactive=True),
                             gr.Dropdown(interactive=True)), None, [w, note, clear, seed, klass], queue=False,
                    api_visibility="private")
    inputs = [seed_a, class_a, seed_b, class_b, frames, psi, w_a, w_b]
    outputs = [frames_out, gif, gif_file, mp4_file, status]
    interpolate = generation_handlers.interpolate
    enable(on(app, run.click, interpolate, inputs, outputs, status, api_name="interpolate"), [gif_file, mp4_file])
    page.links.add("interpolate", seed_a=seed_a, class_a=class_a, seed_b=seed_b, class_b=class_b, frames=frames,
                   psi=psi)  # a projected end is no link's
    first_view(app, page, "interpolate", interpolate, inputs, outputs, status, gif, [gif_file, mp4_file])
    return ends


def mixing_tab(app: AppState, g, limits, page) -> None:
    """Level mixing: row seeds for the coarse levels × column seeds for the fine levels, at a crossover level;
    drawn when the tab is first opened."""
    top = g.num_levels - 1
    gr.Markdown(f"Level mixing, the block tree's style mixing: the generator expands one root block (level {top}) "
                "into finer and finer blocks (level 0: pixels). Each image takes the coarse levels (≥ crossover: "
                "layout, colours) from its row's seed and the fine levels (< crossover: texture, detail) from its "
                "column's seed.")
    with gr.Row():
        coarse = gr.Textbox("0, 1, 2, 3", label="row seeds (coarse levels)", info="e.g. 0, 4, 7 or 10-13")
        fine = gr.Textbox("10, 11, 12, 13", label="column seeds (fine levels)", info="e.g. 0, 4, 7 or 10-13")
    with gr.Row():
        crossover = gr.Slider(1, top, 1, step=1, label="crossover level",
                              info=f"levels {top}…crossover from the row, crossover−1…0 from the column")
        klass = classes(g.class_choices(), ANY_CLASS, "class", g.conditional)
        psi = psi_slider(limits)
    run = gr.Button("Mix levels", variant="primary")
    status = status_line("mixing")
    # the picture labels its rows and columns
    picture = gr.Image(label="rows: coarse seed · columns: fine seed", elem_id="mixing", format="png",
                       buttons=["fullscreen"], show_label=False, interactive=False)
    download = gr.DownloadButton("Download grid (PNG)", value=None, interactive=False, elem_id="download-mixing")
    inputs, outputs = [coarse, fine, crossover, klass, psi], [picture, download, status]
    for trigger, name in ((run.click, "mix_levels"), (coarse.submit, None), (fine.submit, None)):
        enable(on(app, trigger, generation_handlers.mix_levels, inputs, outputs, status, api_name=name or False,
                  api_visibility="public" if name else "private"), [download])
    page.links.add("mixing", coarse=coarse, fine=fine, crossover=crossover, **{"class": klass}, psi=psi)
    first_view(app, page, "mixing", generation_handlers.mix_levels, inputs, outputs, status, picture, [download])


def project_tab(app: AppState, g, limits, tabs, ends, page, example=None) -> None:
    """Project: an upload → the closest w, usable as an end of the interpolation (`ends`); opens on `example`
    (an image file), projected when the tab is first opened."""
    gr.Markdown("Find the generator's latent w that reconstructs an uploaded image (the generator sees it at "
                f"{g.sampler.config.image_size}×{g.sampler.config.image_size}); then use it as an end of an "
                "interpolation.")
    with gr.Row():
        with gr.Column():
            image = image_input("image to project", 260, "project-upload", example)
            klass = classes(g.class_choices(), ANY_CLASS, "class", g.conditional,
                             "“any”: try every class's average w and keep the best start")
            steps = gr.Slider(g.projector.chunk, limits.max_projection_steps, g.projector.steps, step=g.projector.chunk,
                              label="optimisation steps", info="more steps: closer, slower")
            run = gr.Button("Project", variant="primary")
        with gr.Column():
            status = status_line("project")
            result = gr.Image(label="target | reconstruction", elem_id="projection", format="png", interactive=False)
            w = gr.JSON(None, visible=False, label="projected w")
            with gr.Row():
                use = [gr.Button(f"Use as interpolation end {end}", interactive=False) for end in ("A", "B")]
    inputs, outputs = [image, klass, steps], [result, w, status]
    page.links.add("project", **{"class": klass}, steps=steps)  # the upload is no link's
    project = generation_handlers.project
    for event in (on(app, run.click, project, inputs, outputs, status, [result, w], api_name="project"),
                  first_view(app, page, "project", project, inputs, outputs, status, result)):
        event.success(lambda: [gr.Button(interactive=True)] * 2, None, use, queue=False, api_visibility="private")
    for button, (seed, klass, note, clear, w_end), end in zip(use, ends, ("A", "B"), strict=True):
        button.click(lambda value, end=end: (value, f"**End {end}: the projected image** (its w replaces seed "
                                             f"{end} and class {end})", gr.Button(visible=True),
                                             gr.Number(interactive=False), gr.Dropdown(interactive=False),
                                             gr.Tabs(selected="interpolate")),
                     w, [w_end, note, clear, seed, klass, tabs], queue=False, api_visibility="private")
