"""The Gradio app's layout: Generate, Class grid, Interpolate, Level mixing, Project, Classify & explain, Explain the
discriminator (when a NesT discriminator is loaded), Models. Every public event is named with `api_name`; every
tab has a status line that shows progress, the result and failures (its outputs keep their labels and last
values when a request fails). `launch` adds the queue, the bounds and the style sheet. A tab whose model is
missing shows the command that produces one instead of its controls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from nestgen.serving import require_gradio
from nestgen.serving.cards import card_files, model_cards
from nestgen.serving.explaining import PATH_HEADERS, legend_html
from nestgen.serving.handlers import Handlers
from nestgen.serving.inputs import MAX_SEED
from nestgen.serving.predictor import ANY_CLASS, PREDICTED, Predictor

gr = require_gradio()

ENDPOINTS = ("generate", "new_seeds", "class_grid", "interpolate", "mix_levels", "project", "classify",
             "explain_sample", "discriminator_sample", "explain_discriminator")
CSS = (Path(__file__).with_name("app.css")).read_text()
# Enter in a slider's number box ends the edit as a release would (Gradio's slider only reacts to blur there)
JS = """() => document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && event.target.matches("#seed input[type=number]")) event.target.blur();
})"""
PSI_INFO = ("ψ = 1 samples w as trained (full variety); lower values pull every w toward its class's average w: "
            "cleaner, more typical images, less variety")
SEED_INFO = "the same seed, class and ψ always give the same image; Enter or releasing the slider generates"


def _classes(choices: list[str], value: str, label: str, visible: bool = True, info: str | None = None):
    """A class dropdown; typed names are allowed (handy with 1000 classes) and checked by the handler."""
    return gr.Dropdown(choices, value=value, label=label, visible=visible, filterable=True, allow_custom_value=True,
                       info=info)


def _status(name: str, value: str = "", render: bool = True):
    return gr.Markdown(value, elem_id=f"{name}-status", elem_classes=["status"], render=render)


def _psi(limits):
    return gr.Slider(limits.min_truncation, 1.0, 1.0, step=0.05, label="truncation ψ", info=PSI_INFO)


def _on(h: Handlers, trigger, fn, inputs, outputs, status, clear=(), **kwargs):
    """One event: progress and failures on the tab's status line (the outputs keep their labels and values);
    a failure empties the `clear` outputs, results that belong to an earlier input (e.g. another upload's)."""
    def failed(request: gr.Request):
        return (h.last_error(request), *[None] * len(clear)) if clear else h.last_error(request)

    event = trigger(fn, inputs, outputs, show_progress_on=[status], **kwargs)
    event.failure(failed, None, [status, *clear], api_visibility="private", queue=False)
    return event


def _missing(predictor: Predictor, role: str) -> None:
    gr.Markdown(f"**No {role} is loaded.** {predictor.missing.get(role, '')}", elem_classes=["missing"])


def _generate_tab(h: Handlers, g, limits):
    with gr.Row():
        klass = _classes(g.class_choices(), ANY_CLASS, "class", g.conditional, "“any”: each seed draws its class")
        count = gr.Slider(1, limits.max_samples, 16, step=1, label="count")
        psi = _psi(limits)
    with gr.Row(equal_height=True):
        seed = gr.Slider(0, MAX_SEED, 0, step=1, label="first seed", info=SEED_INFO, scale=3, elem_id="seed")
        with gr.Column(scale=1, min_width=160):
            run = gr.Button("Generate", variant="primary")
            new = gr.Button("Random seed")
            reuse = gr.Button("↶ Reuse last seed")
    status = _status("generate", "Generating the first samples…")
    gallery = gr.Gallery(label="samples (click one to select it)", elem_id="samples", columns=8, format="png",
                         object_fit="contain", allow_preview=False)
    with gr.Row():
        explain = gr.Button("Explain this sample with the classifier", elem_id="explain-sample")
        download = gr.DownloadButton("Download grid (PNG, captioned)", value=None, elem_id="download-grid")
    history, shown, picked = gr.State([]), gr.State(None), gr.State(None)  # seeds generated; ψ shown; caption

    def remember(first, seeds, truncation, samples):  # after each generation: the seed history, the gallery's ψ,
        first = int(first)  # and its first sample as the one "Explain this sample" explains until another is clicked
        caption = samples[0][1] if samples else None
        return (seeds if seeds and seeds[-1] == first else [*seeds, first])[-50:], truncation, caption

    def previous(seeds, first):
        if len(seeds) < 2:  # nothing to go back to: say so, keep the seed (the images stay the same)
            gr.Warning("no earlier seed yet: generate with another seed first", duration=6)
            return first, seeds
        return seeds[-2], seeds[:-1]

    def pick(event: gr.SelectData):
        return (event.value or {}).get("caption")

    args, outs = [klass, seed, count, psi], [gallery, download, status]
    after = dict(fn=remember, inputs=[seed, history, psi, gallery], outputs=[history, shown, picked], queue=False,
                 api_visibility="private")
    for trigger, name in ((run.click, "generate"), (seed.release, None)):  # Enter blurs the box: a release (JS)
        _on(h, trigger, h.generate, args, outs, status, api_name=name or False,
            api_visibility="public" if name else "private").success(**after)
    _on(h, new.click, h.new_seeds, [klass, count, psi], [seed, *outs], status, api_name="new_seeds").success(**after)
    back = reuse.click(previous, [history, seed], [seed, history], api_visibility="private")
    _on(h, back.success, h.generate, args, outs, status, api_visibility="private")
    gallery.select(pick, None, picked, api_visibility="private", queue=False)

    return SimpleNamespace(explain=explain, picked=picked, shown=shown, load=(h.generate, args, outs, after),
                           status=status)


def _explain_samples(h: Handlers, generate, classify, tabs) -> None:
    """Generate's "Explain this sample": the selected sample (the first by default) → the Classify tab, explained."""
    explain, picked, shown = generate.explain, generate.picked, generate.shown
    image, target, outputs, status = classify

    def chosen(caption, truncation):  # the selected sample's seed and class ("seed 42 · cat"), and its ψ
        match = re.match(r"seed (\d+)(?: · (.+))?$", caption or "")
        if not match:
            raise gr.Error("no sample to explain yet: generate some first", print_exception=False)
        return int(match[1]), match[2] or ANY_CLASS, truncation

    # the chosen sample's seed, class and ψ: hidden components (not State), so the API takes them as arguments
    sample = (gr.Number(0, precision=0, visible=False, label="seed"), gr.Textbox(ANY_CLASS, visible=False,
              label="class"), gr.Number(1.0, visible=False, label="truncation ψ"))
    go = explain.click(chosen, [picked, shown], list(sample), api_visibility="private")
    go.failure(h.last_error, None, generate.status, api_visibility="private", queue=False)
    go = go.success
    go = go(lambda: (gr.Tabs(selected="classify"), PREDICTED), None, [tabs, target], queue=False,
            api_visibility="private")
    _on(h, go.then, h.explain_sample, list(sample), [image, status, *outputs], status, outputs,
        api_name="explain_sample")


def _class_grid_tab(h: Handlers, g, limits) -> None:
    gr.Markdown("Every class in a row, the same seeds in every column: what the model card shows, live.")
    with gr.Row():
        seed = gr.Number(0, label="first seed", precision=0, minimum=0, maximum=MAX_SEED)
        count = gr.Slider(1, limits.max_grid_seeds, 8, step=1, label="seeds per class")
        psi = _psi(limits)
    run = gr.Button("Draw the class × seed grid", variant="primary")
    status = _status("grid")
    picture = gr.Image(label="classes × seeds", elem_id="class-grid", format="png", buttons=["fullscreen"],
                       show_label=False)  # the picture labels its rows and columns
    download = gr.DownloadButton("Download grid (PNG)", value=None)
    for trigger, name in ((run.click, "class_grid"), (seed.submit, None)):
        _on(h, trigger, h.class_grid, [seed, count, psi], [picture, download, status], status,
            api_name=name or False, api_visibility="public" if name else "private")


def _interpolate_tab(h: Handlers, g, limits):
    ends = []
    with gr.Row():
        for end in ("A", "B"):
            with gr.Column(min_width=180):
                seed = gr.Number(0 if end == "A" else 1, label=f"seed {end}", precision=0, minimum=0,
                                 maximum=MAX_SEED)
                klass = _classes(g.class_choices(), ANY_CLASS, f"class {end}", g.conditional)
                note = gr.Markdown(elem_id=f"end-{end.lower()}-note")
                clear = gr.Button(f"Use seed {end} again", visible=False, size="sm")
                w = gr.JSON(None, visible=False, label=f"w {end} (projected)")
                ends.append((seed, klass, note, clear, w))
    with gr.Row():
        frames = gr.Slider(2, limits.max_frames, min(12, limits.max_frames), step=1, label="frames")
        psi = _psi(limits)
    run = gr.Button("Interpolate", variant="primary")
    status = _status("interpolate")
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
    _on(h, run.click, h.interpolate, inputs, [frames_out, gif, gif_file, mp4_file, status], status,
        api_name="interpolate")
    return ends


def _mixing_tab(h: Handlers, g, limits) -> None:
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
        klass = _classes(g.class_choices(), ANY_CLASS, "class", g.conditional)
        psi = _psi(limits)
    run = gr.Button("Mix levels", variant="primary")
    status = _status("mixing")
    picture = gr.Image(label="rows: coarse seed · columns: fine seed", elem_id="mixing", format="png",
                       buttons=["fullscreen"], show_label=False)  # the picture labels its rows and columns
    download = gr.DownloadButton("Download grid (PNG)", value=None)
    for trigger, name in ((run.click, "mix_levels"), (coarse.submit, None), (fine.submit, None)):
        _on(h, trigger, h.mix_levels, [coarse, fine, crossover, klass, psi], [picture, download, status], status,
            api_name=name or False, api_visibility="public" if name else "private")


def _project_tab(h: Handlers, g, limits, tabs, ends) -> None:
    gr.Markdown("Find the generator's latent w that reconstructs an uploaded image (the generator sees it at "
                f"{g.sampler.config.image_size}×{g.sampler.config.image_size}); then use it as an end of an "
                "interpolation.")
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="image to project", elem_id="project-upload", type="filepath",
                             sources=["upload", "clipboard"], format="png", height=260)
            klass = _classes(g.class_choices(), ANY_CLASS, "class", g.conditional,
                             "“any”: try every class's average w and keep the best start")
            steps = gr.Slider(g.projector.chunk, limits.max_projection_steps, g.projector.steps, step=g.projector.chunk,
                              label="optimisation steps", info="more steps: closer, slower")
            run = gr.Button("Project", variant="primary")
        with gr.Column():
            status = _status("project")
            result = gr.Image(label="target | reconstruction", elem_id="projection", format="png")
            w = gr.JSON(None, visible=False, label="projected w")
            with gr.Row():
                use = [gr.Button(f"Use as interpolation end {end}", interactive=False) for end in ("A", "B")]
    event = _on(h, run.click, h.project, [image, klass, steps], [result, w, status], status, [result, w],
                api_name="project",
                preprocess=False)
    event.success(lambda: [gr.Button(interactive=True)] * 2, None, use, queue=False, api_visibility="private")
    for button, (seed, klass, note, clear, w_end), end in zip(use, ends, ("A", "B"), strict=True):
        button.click(lambda value, end=end: (value, f"**End {end}: the projected image** (its w replaces seed "
                                             f"{end} and class {end})", gr.Button(visible=True),
                                             gr.Number(interactive=False), gr.Dropdown(interactive=False),
                                             gr.Tabs(selected="interpolate")),
                     w, [w_end, note, clear, seed, klass, tabs], queue=False, api_visibility="private")


def _classify_tab(h: Handlers, c, examples: Sequence[str | Path]):
    status = _status("classify", "Upload an image or click an example: it is classified at once.", render=False)
    label = gr.Label(num_top_classes=5, label="top-5", elem_id="top5", render=False)
    summary = gr.Markdown(elem_id="summary", render=False)
    panels = gr.Gallery(label="GradCAT: the path, each level's block scores, and Grad-CAM", elem_id="gradcat",
                        columns=4, format="png", object_fit="contain", render=False)
    path = gr.Dataframe(headers=PATH_HEADERS, label="the path, root → leaf (boxes in your image's pixels; "
                        "bottom/right exclusive)", interactive=False, elem_id="path-table", wrap=True, render=False)
    outputs = [label, summary, panels, path]
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            image = gr.Image(label="image (upload, paste or pick an example)", elem_id="upload", type="filepath",
                             sources=["upload", "clipboard"], format="png", height=260)
            target = _classes([PREDICTED, *c.class_names], PREDICTED, "explain class",
                              info="explain another class than the predicted one")
            run = gr.Button("Classify & explain", variant="primary")
            # named before the examples' event, which would otherwise take the name "classify"
            _on(h, run.click, h.classify, [image, target], [status, *outputs], status, outputs, api_name="classify",
                preprocess=False)  # the handler validates and decodes the upload itself
            if examples:  # a click loads the example, then classifies it like an upload (status line included)
                shown = gr.Examples([[str(p)] for p in examples], [image], label="examples (click one)",
                                    examples_per_page=12, api_visibility="private", api_name="load_example",
                                    example_labels=[Path(p).stem.replace("_", " ") for p in examples])
                _on(h, shown.load_input_event.then, h.classify, [image, target], [status, *outputs], status, outputs,
                    api_visibility="private", preprocess=False)
        with gr.Column(scale=1, min_width=260):
            status.render()
            label.render()
            summary.render()
    panels.render()
    gr.HTML(legend_html(c.score, c.checkpoint.config.num_levels), elem_id="legend")
    path.render()
    _on(h, image.upload, h.classify, [image, target], [status, *outputs], status, outputs, api_visibility="private",
        preprocess=False)
    return image, target, outputs, status


def _discriminator_tab(h: Handlers, d, can_sample: bool) -> None:
    gr.Markdown("GradCAT on the NesT discriminator: which blocks make the image look fake (bright in the maps) "
                "and which look real.")
    with gr.Row():
        image = gr.Image(label="image", type="filepath", sources=["upload", "clipboard"], format="png", height=240)
        with gr.Column():
            klass = _classes(d.class_names, d.class_names[0], "judge as class", d.conditional)
            seed = gr.Number(0, label="seed", precision=0, minimum=0, maximum=MAX_SEED, visible=can_sample)
            sample = gr.Button("Generate an image", visible=can_sample)
            run = gr.Button("Explain", variant="primary")
    status = _status("discriminator")
    summary = gr.Markdown()
    with gr.Row():
        fake = gr.Image(label="most fake-looking path", format="png", height=256)
        real = gr.Image(label="most real-looking path", format="png", height=256)
    maps = gr.Gallery(label="per level: bright = pushes toward fake", columns=4, format="png")
    path = gr.Dataframe(headers=PATH_HEADERS, label="fake path (boxes in your image's pixels)", interactive=False,
                        wrap=True)
    if can_sample:
        _on(h, sample.click, h.discriminator_sample, [seed, klass], [image, klass], status,
            api_name="discriminator_sample")
    _on(h, run.click, h.explain_discriminator, [image, klass], [summary, fake, real, maps, path], status,
        [summary, fake, real, maps, path],
        api_name="explain_discriminator", preprocess=False)


def build_app(predictor: Predictor, examples: Sequence[str | Path] = (), handlers: Handlers | None = None):
    """The Blocks of the app for the loaded models; examples are image files offered on the Classify tab."""
    h = handlers or Handlers(predictor)
    g, c, d = predictor.generator, predictor.classifier, predictor.discriminator
    with gr.Blocks(title="nestgen", delete_cache=(1800, 3600)) as demo:  # Gradio's cache: files older than 1 h go
        gr.Markdown("# nestgen: NesT image models\nSample the NesT generator, mix its levels, project images into "
                    "it, classify images and explain the decision with GradCAT (the nested blocks of the "
                    "hierarchy that support the class).")
        with gr.Tabs(overflow_behavior="wrap") as tabs:
            generate = classify = None
            if g is None:  # one tab says how to get a generator; its other tabs would say the same
                with gr.Tab("Generate", id="generate"):
                    _missing(predictor, "generator")
            else:
                with gr.Tab("Generate", id="generate"):
                    generate = _generate_tab(h, g, predictor.limits)
                with gr.Tab("Class grid", id="class-grid", visible=g.conditional):
                    _class_grid_tab(h, g, predictor.limits)
                with gr.Tab("Interpolate", id="interpolate"):
                    ends = _interpolate_tab(h, g, predictor.limits)
                with gr.Tab("Level mixing", id="mixing"):
                    _mixing_tab(h, g, predictor.limits)
                with gr.Tab("Project", id="project"):
                    _project_tab(h, g, predictor.limits, tabs, ends)
            with gr.Tab("Classify & explain", id="classify"):
                if c is None:
                    _missing(predictor, "classifier")
                else:
                    classify = _classify_tab(h, c, examples)
            if d is not None:
                with gr.Tab("Explain the discriminator", id="discriminator"):
                    _discriminator_tab(h, d, g is not None)
            with gr.Tab("Models", id="models"):
                gr.Markdown(model_cards(predictor), elem_id="cards")
        if generate and classify:
            _explain_samples(h, generate, classify, tabs)
        if generate:  # the first view shows samples, not an empty box
            fn, inputs, outputs, after = generate.load
            _on(h, demo.load, fn, inputs, outputs, generate.status, api_visibility="private").success(**after)
    return demo


def launch(demo, predictor: Predictor, *, host: str = "127.0.0.1", port: int | None = 7860, concurrency: int = 2,
           queue_size: int = 64, **kwargs):
    """Queue (`concurrency` requests run at once, `queue_size` wait) and serve; only Gradio's cache and the
    pictures the model cards show are served."""
    demo.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    return demo.launch(server_name=host, server_port=port, max_file_size=predictor.limits.max_upload_bytes,
                       footer_links=["api"], ssr_mode=False, show_error=False, css=CSS, js=JS,
                       allowed_paths=[str(p) for p in card_files(predictor)], **kwargs)


__all__ = ["ENDPOINTS", "build_app", "launch"]
