"""The Gradio app's layout: Generate, Interpolate, Classify & explain, Explain the discriminator (when a NesT
discriminator is loaded), Models. Every event is named with `api_name`; `launch` adds the queue and the bounds.
A tab whose model is missing shows the command that produces one instead of its controls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nestgen.serving import require_gradio
from nestgen.serving.cards import model_cards
from nestgen.serving.handlers import PATH_HEADERS, Handlers
from nestgen.serving.inputs import MAX_SEED
from nestgen.serving.predictor import ANY_CLASS, PREDICTED, Predictor

gr = require_gradio()

ENDPOINTS = ("generate", "new_seeds", "interpolate", "classify", "discriminator_sample", "explain_discriminator")


def _classes(choices: list[str], value: str, label: str, visible: bool = True):
    """A class dropdown; typed names are allowed (handy with 1000 classes) and checked by the handler."""
    return gr.Dropdown(choices, value=value, label=label, visible=visible, filterable=True, allow_custom_value=True)


def _missing(predictor: Predictor, role: str) -> None:
    gr.Markdown(f"**No {role} is loaded.** {predictor.missing.get(role, '')}", elem_classes=["missing"])


def _generate_tab(h: Handlers, g, limits) -> None:
    with gr.Row():
        klass = _classes(g.class_choices(), ANY_CLASS, "class", g.conditional)
        seed = gr.Number(0, label="first seed", precision=0, minimum=0, maximum=MAX_SEED)
        count = gr.Slider(1, limits.max_samples, 16, step=1, label="count")
        psi = gr.Slider(limits.min_truncation, 1.0, 1.0, step=0.05, label="truncation ψ")
    with gr.Row():
        run = gr.Button("Generate", variant="primary")
        new = gr.Button("New seeds")
        download = gr.DownloadButton("Download grid (PNG)", value=None)
    gallery = gr.Gallery(label="samples", elem_id="samples", columns=8, format="png")
    info = gr.Markdown()
    run.click(h.generate, [klass, seed, count, psi], [gallery, download, info], api_name="generate")
    new.click(h.new_seeds, [klass, count, psi], [seed, gallery, download, info], api_name="new_seeds")


def _interpolate_tab(h: Handlers, g, limits) -> None:
    with gr.Row():
        seed_a = gr.Number(0, label="seed A", precision=0, minimum=0, maximum=MAX_SEED)
        class_a = _classes(g.class_choices(), ANY_CLASS, "class A", g.conditional)
        seed_b = gr.Number(1, label="seed B", precision=0, minimum=0, maximum=MAX_SEED)
        class_b = _classes(g.class_choices(), ANY_CLASS, "class B", g.conditional)
    with gr.Row():
        frames = gr.Slider(2, limits.max_frames, 12, step=1, label="frames")
        psi = gr.Slider(limits.min_truncation, 1.0, 1.0, step=0.05, label="truncation ψ")
        run = gr.Button("Interpolate", variant="primary")
    with gr.Row():
        gif = gr.Image(label="animation (GIF)", type="filepath", buttons=["download"])
        gallery = gr.Gallery(label="frames", columns=6, format="png")
    run.click(h.interpolate, [seed_a, class_a, seed_b, class_b, frames, psi], [gallery, gif], api_name="interpolate")


def _classify_tab(h: Handlers, c, examples: Sequence[str | Path]) -> None:
    with gr.Row():
        with gr.Column():
            image = gr.Image(label="image", elem_id="upload", type="filepath", sources=["upload", "clipboard"],
                             format="png", height=280)
            target = _classes([PREDICTED, *c.class_names], PREDICTED, "explain class")
            run = gr.Button("Classify & explain", variant="primary")
            if examples:
                gr.Examples([[str(p)] for p in examples], [image], label="examples", examples_per_page=12,
                            api_visibility="private")
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="top-5", elem_id="top5")
            summary = gr.Markdown(elem_id="summary")
    with gr.Row():
        overlay = gr.Image(label="GradCAT path (root red → leaf)", format="png", elem_id="overlay")
        cam = gr.Image(label="Grad-CAM (level 0)", format="png")
    maps = gr.Gallery(label=f"GradCAT block scores per level ({c.score})", columns=4, format="png")
    path = gr.Dataframe(headers=PATH_HEADERS, label="path (pixel boxes; bottom/right exclusive)", interactive=False)
    run.click(h.classify, [image, target], [label, overlay, cam, maps, path, summary], api_name="classify",
              preprocess=False)  # the handler validates and decodes the upload itself


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
    summary = gr.Markdown()
    with gr.Row():
        fake = gr.Image(label="most fake-looking path", format="png")
        real = gr.Image(label="most real-looking path", format="png")
    maps = gr.Gallery(label="per level: bright = pushes toward fake", columns=4, format="png")
    path = gr.Dataframe(headers=PATH_HEADERS, label="fake path", interactive=False)
    if can_sample:
        sample.click(h.discriminator_sample, [seed, klass], [image, klass], api_name="discriminator_sample")
    run.click(h.explain_discriminator, [image, klass], [summary, fake, real, maps, path],
              api_name="explain_discriminator", preprocess=False)


def build_app(predictor: Predictor, examples: Sequence[str | Path] = (), handlers: Handlers | None = None):
    """The Blocks of the app for the loaded models; examples are image files offered on the Classify tab."""
    h = handlers or Handlers(predictor)
    g, c, d = predictor.generator, predictor.classifier, predictor.discriminator
    with gr.Blocks(title="nestgen", delete_cache=(1800, 3600)) as demo:  # Gradio's cache: files older than 1 h go
        gr.Markdown("# nestgen: NesT image models\nSample the NesT generator, classify images and explain the "
                    "decision with GradCAT (the nested blocks of the hierarchy that support the class).")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                if g is None:
                    _missing(predictor, "generator")
                else:
                    _generate_tab(h, g, predictor.limits)
            with gr.Tab("Interpolate", id="interpolate"):
                if g is None:
                    _missing(predictor, "generator")
                else:
                    _interpolate_tab(h, g, predictor.limits)
            with gr.Tab("Classify & explain", id="classify"):
                if c is None:
                    _missing(predictor, "classifier")
                else:
                    _classify_tab(h, c, examples)
            if d is not None:
                with gr.Tab("Explain the discriminator", id="discriminator"):
                    _discriminator_tab(h, d, g is not None)
            with gr.Tab("Models", id="models"):
                gr.Markdown(model_cards(predictor))
    return demo


def launch(demo, predictor: Predictor, *, host: str = "127.0.0.1", port: int | None = 7860, concurrency: int = 2,
           queue_size: int = 64, **kwargs):
    """Queue (`concurrency` requests run at once, `queue_size` wait) and serve; only Gradio's cache is served."""
    demo.queue(default_concurrency_limit=concurrency, max_size=queue_size)
    return demo.launch(server_name=host, server_port=port, max_file_size=predictor.limits.max_upload_bytes,
                       footer_links=["api"], ssr_mode=False, show_error=False, **kwargs)


__all__ = ["ENDPOINTS", "build_app", "launch"]
