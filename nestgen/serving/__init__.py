"""Serving: the Gradio app in three layers.

- model services, without Gradio: `predictor.Predictor` holds the loaded checkpoints (`classifier_service`,
  `generator_service`, `discriminator_service`; jitted once, warmed up at start by `warmup`) and raises typed
  errors: `inputs.InputError` for bad input, `predictor.ModelMissing` for a model that is not loaded;
- handlers: plain functions of the app's state (`events.AppState`) and the widgets' values that return what the
  widgets show (`generation_handlers`, `explain_handlers`); `events.as_event` is the one place where a typed error
  becomes the visitor's one-line message;
- tabs: the layout and the wiring of events to handlers (`generation_tabs`, `explain_tabs`, `widgets`, `links`,
  `cards`), put together by `ui.build_app`.

Only the handlers and the tabs import Gradio, lazily (`require_gradio`), so the services work (and are tested)
without the app extra.
"""

from __future__ import annotations

import os

from nestgen.serving.inputs import InputError, Limits
from nestgen.serving.predictor import ModelMissing, Predictor


def require_gradio():
    """Import Gradio (analytics off unless asked for: the app runs offline), or fail naming the extra."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as error:
        raise ImportError('the app needs Gradio: pip install -e ".[app]"') from error
    return gradio


__all__ = ["InputError", "Limits", "ModelMissing", "Predictor", "require_gradio"]
