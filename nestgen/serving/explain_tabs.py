"""The explaining tabs of the app: Classify & explain (with Generate's "Explain this sample") and Explain the
discriminator: their layout, the colour key of the explanation, and the wiring of their events to the handlers of
`explain_handlers.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nestgen.explain.overlay import LEVEL_COLOURS, RAMP
from nestgen.serving import explain_handlers
from nestgen.serving.classifier_service import PREDICTED
from nestgen.serving.events import AppState, as_event, last_error
from nestgen.serving.generation_handlers import parse_caption
from nestgen.serving.generator_service import ANY_CLASS
from nestgen.serving.inputs import MAX_SEED
from nestgen.serving.widgets import classes, gr, image_input, on, status_line

PATH_HEADERS = ["level", "block", "pixels (top, left, bottom, right)", "score"]
SCORE_WORDS = {
    "magnitude": "Σ |A ⊙ G| over the block's tokens and channels: how strongly the block's features (A) drive "
                 "the class score, through its gradient (G), whatever the sign",
    "signed": "Σ A ⊙ G over the block's tokens and channels (spec.md §4): positive blocks raise the class score, "
              "negative ones lower it",
}


def _css(colour) -> str:
    return "rgb({}, {}, {})".format(*(int(c) for c in colour))


def legend_html(score: str, num_levels: int) -> str:
    """The colour key of the explanation panels: box colour per level, the heat-map ramp, and what a score is."""
    top = num_levels - 1
    swatches = "".join(
        f'<span class="swatch" style="border-color:{_css(LEVEL_COLOURS[depth % len(LEVEL_COLOURS)])}"></span>'
        f"level {top - depth}{' (root)' if depth == 0 else ' (leaf)' if depth == top else ''} "
        for depth in range(num_levels))
    ramp = ", ".join(_css(c) for c in RAMP)
    return (f'<div class="legend"><p><b>Boxes</b> (path panel): {swatches}— GradCAT starts at the root block and at '
            "each level steps into the child block with the highest score; the smallest box is where it ends.</p>"
            f'<p><b>Heat maps</b>: block score, low <span class="ramp" style="background:linear-gradient(to right, '
            f'{ramp})"></span> high, scaled per panel (compare blocks within a panel, not across panels). The root '
            "level is one block, so it has no map.</p>"
            f"<p><b>Score</b> ({score}): {SCORE_WORDS.get(score, score)}. The numbers in the table are these sums; "
            "they compare blocks of one image and level, not different images.</p></div>")


def explain_samples(app: AppState, generate, classify, tabs) -> None:
    """Generate's "Explain this sample": the selected sample (the first by default) → the Classify tab, explained."""
    explain, picked, shown = generate.explain, generate.picked, generate.shown
    image, target, outputs, status, explained = classify

    def chosen(app, caption, truncation):  # the selected sample's seed and class ("seed 42 · cat"), and its ψ
        return *parse_caption(caption), truncation

    # the chosen sample's seed, class and ψ: hidden components (not State), so the API takes them as arguments
    sample = (gr.Number(0, precision=0, visible=False, label="seed"), gr.Textbox(ANY_CLASS, visible=False,
              label="class"), gr.Number(1.0, visible=False, label="truncation ψ"))
    def failed(request: gr.Request):
        return last_error(app, request)

    go = explain.click(as_event(app, chosen), [picked, shown], list(sample), api_visibility="private")
    go.failure(failed, None, generate.status, api_visibility="private", queue=False)
    go = go.success
    go = go(lambda: (gr.Tabs(selected="classify"), PREDICTED), None, [tabs, target], queue=False,
            api_visibility="private")
    explained(on(app, go.then, explain_handlers.explain_sample, list(sample), [image, status, *outputs], status,
                 outputs, api_name="explain_sample"))


def classify_tab(app: AppState, c, examples: Sequence[str | Path]):
    """Classify & explain: an upload, a pasted image or an example → top-5, GradCAT panels, the path table and the
    explanation over the image; returns what "Explain this sample" needs (`explain_samples`)."""
    status = status_line("classify", "Upload an image or click an example: it is classified at once.", render=False)
    label = gr.Label(num_top_classes=5, label="top-5", elem_id="top5", render=False)
    summary = gr.Markdown(elem_id="summary", render=False)
    panels = gr.Gallery(label="GradCAT: the path, each level's block scores, and Grad-CAM", elem_id="gradcat",
                        columns=4, format="png", object_fit="contain", render=False, interactive=False)
    path = gr.Dataframe(headers=PATH_HEADERS, label="the path, root → leaf (boxes in your image's pixels; "
                        "bottom/right exclusive)", interactive=False, elem_id="path-table", wrap=True, render=False)
    outputs = [label, summary, panels, path]
    # the explanation over the upload at its own resolution; the opacity slider redraws it (no new classification)
    drawn = gr.Image(label="GradCAT on your image, in its own pixels: the leaf level's block scores and the path",
                     elem_id="on-upload", format="png", interactive=False, render=False)
    opacity = gr.Slider(0, 1, 0.5, step=0.05, label="heat-map opacity", info="0: your image alone, 1: the map alone",
                        elem_id="opacity", render=False)
    on_upload = as_event(app, explain_handlers.on_upload)

    def explained(event) -> None:  # after an event that explained an image: draw it over the image; or clear it
        event.success(on_upload, opacity, drawn, api_visibility="private", show_progress="hidden", preprocess=False)
        event.failure(lambda: None, None, drawn, queue=False, api_visibility="private")

    classify = explain_handlers.classify
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            image = image_input("image (upload, paste or pick an example)", 260, "upload")
            target = classes([PREDICTED, *c.class_names], PREDICTED, "explain class",
                             info="explain another class than the predicted one")
            run = gr.Button("Classify & explain", variant="primary")
            # named before the examples' event, which would otherwise take the name "classify"
            explained(on(app, run.click, classify, [image, target], [status, *outputs], status, outputs,
                         api_name="classify"))
            if examples:  # a click loads the example, then classifies it like an upload (status line included)
                shown = gr.Examples([[str(p)] for p in examples], [image], label="examples (click one)",
                                    examples_per_page=12, api_visibility="private", api_name="load_example",
                                    elem_id="examples")  # thumbnails
                explained(on(app, shown.load_input_event.then, classify, [image, target], [status, *outputs],
                             status, outputs, api_visibility="private"))
        with gr.Column(scale=1, min_width=260):
            status.render()
            label.render()
            summary.render()
    drawn.render()
    opacity.render()
    opacity.change(on_upload, opacity, drawn, api_visibility="private", show_progress="hidden",
                   trigger_mode="always_last", preprocess=False)
    panels.render()
    gr.HTML(legend_html(c.score, c.checkpoint.config.num_levels), elem_id="legend")
    path.render()
    explained(on(app, image.upload, classify, [image, target], [status, *outputs], status, outputs,
                 api_visibility="private"))
    return image, target, outputs, status, explained


def discriminator_tab(app: AppState, d, can_sample: bool, page) -> None:
    """Explain the discriminator: an upload (or a generated image) judged as a class → D's verdict, its fake-most
    and real-most paths, per-level maps and the path table."""
    gr.Markdown("GradCAT on the NesT discriminator: which blocks make the image look fake (bright in the maps) "
                "and which look real.")
    with gr.Row():
        image = image_input("image", 240, "discriminator-upload")
        with gr.Column():
            klass = classes(d.class_names, d.class_names[0], "judge as class", d.conditional)
            seed = gr.Number(0, label="seed", precision=0, minimum=0, maximum=MAX_SEED, visible=can_sample)
            sample = gr.Button("Generate an image", visible=can_sample)
            run = gr.Button("Explain", variant="primary")
    status = status_line("discriminator")
    summary = gr.Markdown(elem_id="discriminator-summary")
    with gr.Row():
        fake = gr.Image(label="most fake-looking path", format="png", height=256, interactive=False)
        real = gr.Image(label="most real-looking path", format="png", height=256, interactive=False)
    maps = gr.Gallery(label="per level: bright = pushes toward fake", columns=4, format="png", interactive=False)
    path = gr.Dataframe(headers=PATH_HEADERS, label="fake path (boxes in your image's pixels)", interactive=False,
                        wrap=True)
    page.links.add("discriminator", **{"class": klass}, seed=seed)
    if can_sample:
        on(app, sample.click, explain_handlers.discriminator_sample, [seed, klass], [image, klass], status,
           api_name="discriminator_sample")
    on(app, run.click, explain_handlers.explain_discriminator, [image, klass], [summary, fake, real, maps, path],
       status, [summary, fake, real, maps, path], api_name="explain_discriminator")
