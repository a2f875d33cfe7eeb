"""The app's event handlers, one function per event (`generation_handlers.py`: Generate, Class grid, Interpolate,
Level mixing, Project; `explain_handlers.py`: Classify & explain, Explain the discriminator). Each takes the app's
state and the widgets' values; `bind` gives them as the events call them, for direct calls (the tests). Imports
Gradio (`pip install -e ".[app]"`).
"""

from __future__ import annotations

from types import SimpleNamespace

from nestgen.serving import explain_handlers, generation_handlers
from nestgen.serving.events import AppState, as_event

HANDLERS = {
    "generate": generation_handlers.generate,
    "new_seeds": generation_handlers.new_seeds,
    "class_grid": generation_handlers.class_grid,
    "interpolate": generation_handlers.interpolate,
    "mix_levels": generation_handlers.mix_levels,
    "project": generation_handlers.project,
    "classify": explain_handlers.classify,
    "on_upload": explain_handlers.on_upload,
    "explain_sample": explain_handlers.explain_sample,
    "discriminator_sample": explain_handlers.discriminator_sample,
    "explain_discriminator": explain_handlers.explain_discriminator,
}


def bind(app: AppState) -> SimpleNamespace:
    """Every handler of `HANDLERS` bound to `app` as its event runs it: called with the widgets' values, bad input
    raises gr.Error with the reason (`events.as_event`). Also `app`, and its `errors` and `scratch`."""
    return SimpleNamespace(app=app, errors=app.errors, scratch=app.scratch,
                           **{name: as_event(app, handler) for name, handler in HANDLERS.items()})


__all__ = ["HANDLERS", "bind"]
