"""Serving: the predictor behind the Gradio app (checkpoints loaded once, jitted once, warmed up at start) and the
UI builder. Only `ui.py` imports Gradio, lazily, so the predictor works (and is tested) without the app extra.
"""

from __future__ import annotations

import os

from nestgen.serving.inputs import InputError, Limits
from nestgen.serving.predictor import Predictor


def require_gradio():
    """Import Gradio (analytics off unless asked for: the app runs offline), or fail naming the extra."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as error:
        raise ImportError('the app needs Gradio: pip install -e ".[app]"') from error
    return gradio


__all__ = ["InputError", "Limits", "Predictor", "require_gradio"]
