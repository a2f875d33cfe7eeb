"""The app's event handlers, one method per event (`generating.py`: Generate, Class grid, Interpolate, Level
mixing, Project; `explaining.py`: Classify & explain, Explain the discriminator). The tests call them directly;
`ui.py` wires them to the components. Imports Gradio (`pip install -e ".[app]"`).
"""

from __future__ import annotations

from nestgen.serving.events import upload
from nestgen.serving.explaining import PATH_HEADERS, ExplainHandlers
from nestgen.serving.generating import GenerationHandlers


class Handlers(GenerationHandlers, ExplainHandlers):
    """Every event of the app. Invalid input raises gr.Error with the reason; the server keeps serving."""


__all__ = ["PATH_HEADERS", "Handlers", "upload"]
