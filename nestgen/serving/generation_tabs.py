"""The generation tabs of the app: Generate, Class grid, Interpolate, Level mixing, Project (layout and events;
the handlers are in `generating.py`).
"""

from __future__ import annotations

from types import SimpleNamespace

from nestgen.serving.handlers import Handlers
from nestgen.serving.inputs import MAX_SEED
from nestgen.serving.predictor import ANY_CLASS
from nestgen.serving.widgets import SEED_INFO, classes, gr, image_input, on, psi_slider, status_line


def generate_tab(h: Handlers, g, limits):
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
                         object_fit="contain", allow_preview=False)
    with gr.Row():
        explain = gr.Button("Explain this sample with the classifier", elem_id="explain-sample")
        download = gr.DownloadButton("Download grid (PNG, captioned)", value=None, elem_id="download-grid")
    history, shown, picked = gr.State([]), gr.State(None), gr.State(None)  # seeds generated; ψ shown; caption
    kept = [history, shown, picked]

    def remember(first, seeds, truncation, samples):  # after each generation: the seed history, the gallery's ψ,
        first = int(first)  # and its first sample as the one "Explain this sample" explains until another is clicked
        caption = samples[0][1] if samples else None
        return (seeds if seeds and seeds[-1] == first else [*seeds, first])[-50:], float(truncation), caption

    # Each generation keeps the tab's state (`kept`) in its own event, written before its samples reach the page:
    # in a separate event after it, a click right after the samples show ("Reuse last seed", "Explain this sample")
    # would read the state of the generation before (the two events run at once). The history is a hidden State
    # input: the API and its clients leave it out. A failed generation raises before anything is kept.
    def generate(class_value, seed, count, truncation, seeds, progress=gr.Progress(),  # noqa: B008
                 request: gr.Request = None):
        samples, grid, status = h.generate(class_value, seed, count, truncation, progress, request)
        return samples, grid, status, *remember(seed, seeds, truncation, samples)

    def new_seeds(class_value, count, truncation, seeds, progress=gr.Progress(),  # noqa: B008
                  request: gr.Request = None):
        first, samples, grid, status = h.new_seeds(class_value, count, truncation, progress, request)
        return first, samples, grid, status, *remember(first, seeds, truncation, samples)

    generate.__doc__, new_seeds.__doc__ = h.generate.__doc__, h.new_seeds.__doc__  # the API's descriptions

    def previous(seeds, first):
        if len(seeds) < 2:  # nothing to go back to: say so, keep the seed (the images stay the same)
            gr.Warning("no earlier seed yet: generate with another seed first", duration=6)
            return first, seeds
        return seeds[-2], seeds[:-1]

    def pick(event: gr.SelectData):
        return (event.value or {}).get("caption")

    args, outs = [klass, seed, count, psi, history], [gallery, download, status, *kept]
    for trigger, name in ((run.click, "generate"), (seed.release, None)):  # Enter blurs the box: a release (JS)
        on(h, trigger, generate, args, outs, status, api_name=name or False,
           api_visibility="public" if name else "private")
    on(h, new.click, new_seeds, [klass, count, psi, history], [seed, *outs], status, api_name="new_seeds")
    back = reuse.click(previous, [history, seed], [seed, history], api_visibility="private")
    on(h, back.success, generate, args, outs, status, api_visibility="private")
    gallery.select(pick, None, picked, api_visibility="private", queue=False)

    return SimpleNamespace(explain=explain, picked=picked, shown=shown, load=(generate, args, outs),
                           status=status)


def class_grid_tab(h: Handlers, g, limits) -> None:
    """Class grid: every class × the same seeds, labelled."""
    gr.Markdown("Every class in a row, the same seeds in every column: what the model card shows, live.")
    with gr.Row():
        seed = gr.Number(0, label="first seed", precision=0, minimum=0, maximum=MAX_SEED)
        count = gr.Slider(1, limits.max_grid_seeds, 8, step=1, label="seeds per class")
        psi = psi_slider(limits)
    run = gr.Button("Draw the class × seed grid", variant="primary")
    status = status_line("grid")
    picture = gr.Image(label="classes × seeds", elem_id="class-grid", format="png", buttons=["fullscreen"],
                       show_label=False)  # the picture labels its rows and columns
    download = gr.DownloadButton("Download grid (PNG)", value=None)
    for trigger, name in ((run.click, "class_grid"), (seed.submit, None)):
        on(h, trigger, h.class_grid, [seed, count, psi], [picture, download, status], status,
            api_name=name or False, api_visibility="public" if name else "private")


def interpolate_tab(h: Handlers, g, limits):
    """Interpolate: two ends (seed, class, or a projected w) → frames, GIF, MP4; returns the ends' widgets."""
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
                       height=300, buttons=["fullscreen"], scale=1, min_width=260)
        with gr.Column(scale=2, min_width=260):
            frames_out = gr.Gallery(label="frames", elem_id="frames", columns=6, format="png", allow_preview=False)
            with gr.Row():
                gif_file = gr.DownloadButton("Download GIF", value=None)
                mp4_file = gr.DownloadButton("Download MP4", value=None)
    (seed_a, class_a, _, _, w_a), (seed_b, class_b, _, _, w_b) = ends
    for seed, klass, note, clear, w in ends:  # back from a projected end to its seed and class
        clear.click(lambda: (None, "", gr.Button(visible=False), gr.Number(interactive=True),
                             gr.Dropdown(interactive=True)), None, [w, note, clear, seed, klass], queue=False,
                    api_visibility="private")
    inputs = [seed_a, class_a, seed_b, class_b, frames, psi, w_a, w_b]
    on(h, run.click, h.interpolate, inputs, [frames_out, gif, gif_file, mp4_file, status], status,
        api_name="interpolate")
    return ends


def mixing_tab(h: Handlers, g, limits) -> None:
    """Level mixing: row seeds for the coarse levels × column seeds for the fine levels, at a crossover level."""
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
    picture = gr.Image(label="rows: coarse seed · columns: fine seed", elem_id="mixing", format="png",
                       buttons=["fullscreen"], show_label=False)  # the picture labels its rows and columns
    download = gr.DownloadButton("Download grid (PNG)", value=None)
    for trigger, name in ((run.click, "mix_levels"), (coarse.submit, None), (fine.submit, None)):
        on(h, trigger, h.mix_levels, [coarse, fine, crossover, klass, psi], [picture, download, status], status,
            api_name=name or False, api_visibility="public" if name else "private")


def project_tab(h: Handlers, g, limits, tabs, ends) -> None:
    """Project: an upload → the closest w, usable as an end of the interpolation (`ends`)."""
    gr.Markdown("Find the generator's latent w that reconstructs an uploaded image (the generator sees it at "
                f"{g.sampler.config.image_size}×{g.sampler.config.image_size}); then use it as an end of an "
                "interpolation.")
    with gr.Row():
        with gr.Column():
            image = image_input("image to project", 260, "project-upload")
            klass = classes(g.class_choices(), ANY_CLASS, "class", g.conditional,
                             "“any”: try every class's average w and keep the best start")
            steps = gr.Slider(g.projector.chunk, limits.max_projection_steps, g.projector.steps, step=g.projector.chunk,
                              label="optimisation steps", info="more steps: closer, slower")
            run = gr.Button("Project", variant="primary")
        with gr.Column():
            status = status_line("project")
            result = gr.Image(label="target | reconstruction", elem_id="projection", format="png")
            w = gr.JSON(None, visible=False, label="projected w")
            with gr.Row():
                use = [gr.Button(f"Use as interpolation end {end}", interactive=False) for end in ("A", "B")]
    event = on(h, run.click, h.project, [image, klass, steps], [result, w, status], status, [result, w],
               api_name="project")
    event.success(lambda: [gr.Button(interactive=True)] * 2, None, use, queue=False, api_visibility="private")
    for button, (seed, klass, note, clear, w_end), end in zip(use, ends, ("A", "B"), strict=True):
        button.click(lambda value, end=end: (value, f"**End {end}: the projected image** (its w replaces seed "
                                             f"{end} and class {end})", gr.Button(visible=True),
                                             gr.Number(interactive=False), gr.Dropdown(interactive=False),
                                             gr.Tabs(selected="interpolate")),
                     w, [w_end, note, clear, seed, klass, tabs], queue=False, api_visibility="private")
