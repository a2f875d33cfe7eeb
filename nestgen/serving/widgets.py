"""The app's shared widgets: class dropdowns, image inputs, status lines, the ψ slider, and `on`, which wires a
handler to an event so that it checks every raw client value itself and its progress and failures show on the
tab's status line. Imports Gradio (`pip install -e ".[app]"`).
"""

from __future__ import annotations

from nestgen.serving import require_gradio
from nestgen.serving.events import AppState, UploadRecord, as_event, last_error
from nestgen.serving.predictor import Predictor

gr = require_gradio()

PSI_INFO = ("ψ = 1 samples w as trained (full variety); lower values pull every w toward its class's average w: "
            "cleaner, more typical images, less variety")
SEED_INFO = "the same seed, class and ψ always give the same image; Enter, Tab or releasing the slider generates"


def classes(choices: list[str], value: str, label: str, visible: bool = True, info: str | None = None):
    """A class dropdown; typed names are allowed (handy with 1000 classes) and checked by the handler."""
    return gr.Dropdown(choices, value=value, label=label, visible=visible, filterable=True, allow_custom_value=True,
                       info=info)


def image_input(label: str, height: int, elem_id: str | None = None, value=None):
    """An image to upload or paste (`value`: a file it opens with); whatever a client sends for it reaches the
    handler (`events.UploadRecord`)."""
    image = gr.Image(value and str(value), label=label, elem_id=elem_id, type="filepath",
                     sources=["upload", "clipboard"], format="png", height=height)
    image.data_model = UploadRecord  # Gradio validates input values with the component's data model
    return image


def status_line(name: str, value: str = "", render: bool = True):
    return gr.Markdown(value, elem_id=f"{name}-status", elem_classes=["status"], render=render)


def psi_slider(limits):
    return gr.Slider(limits.min_truncation, 1.0, 1.0, step=0.05, label="truncation ψ", info=PSI_INFO)


def on(app: AppState, trigger, handler, inputs, outputs, status, clear=(), **kwargs):
    """One event (`trigger`: a listener such as `button.click`, or a list of them for one shared event) running
    handler(app, *values) (`events.as_event`): it receives the values as the client sent them (Gradio's
    preprocessing off, so no value fails inside Gradio with its generic message: nestgen's checks in `inputs.py`
    name every argument and what it allows); progress and failures on the tab's status line (the outputs keep
    their labels and values); a failure empties the `clear` outputs, results that belong to an earlier input (e.g.
    another upload's)."""
    def failed(request: gr.Request):
        return (last_error(app, request), *[None] * len(clear)) if clear else last_error(app, request)

    listen = (lambda *a, **k: gr.on(trigger, *a, **k)) if isinstance(trigger, list) else trigger  # one or several
    event = listen(as_event(app, handler), inputs, outputs, show_progress_on=[status], preprocess=False, **kwargs)
    event.failure(failed, None, [status, *clear], api_visibility="private", queue=False)
    return event


def missing(predictor: Predictor, role: str) -> None:
    gr.Markdown(f"**No {role} is loaded.** {predictor.missing.get(role, '')}", elem_classes=["missing"])
