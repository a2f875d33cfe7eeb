"""What every event handler of the app shares: the app's state (`AppState`: the models, a scratch folder for output
files, what each browser session last saw), reading image inputs (`upload`), pictures sized for the browser, and
`as_event`, the one place where a handler's typed error becomes the visitor's message. The handlers themselves
are in `generation_handlers.py` and `explain_handlers.py`. Imports Gradio (`pip install -e ".[app]"`).
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import functools
import inspect
import shutil
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydantic
from gradio_client.utils import is_file_obj_with_meta
from PIL import Image

from nestgen.drawing.pictures import save_png
from nestgen.serving import require_gradio
from nestgen.serving.inputs import InputError, shown
from nestgen.serving.predictor import ModelMissing, Predictor

gr = require_gradio()

SHOWN = 128  # pixels of a sample in a gallery (enlarged with nearest-neighbour)


class Scratch:
    """The app's own temporary folder for the files it hands to Gradio (grids, GIFs): files older than `max_age_s`
    go at the next request, the folder when the app exits."""

    def __init__(self, max_age_s: float = 3600.0):
        self.directory = Path(tempfile.mkdtemp(prefix="nestgen-app-"))
        self.max_age_s = max_age_s
        weakref.finalize(self, shutil.rmtree, self.directory, ignore_errors=True)

    def path(self, stem: str, suffix: str) -> Path:
        """A new `<stem><suffix>` in a folder of its own, so the name a visitor downloads is the plain one
        ("nestgen-samples-seeds40-55.png"), not one with a random tail."""
        cutoff = time.time() - self.max_age_s
        for old in self.directory.iterdir():
            try:
                if old.stat().st_mtime < cutoff and old.is_dir():
                    shutil.rmtree(old)
                elif old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass  # another request removed it
        folder = self.directory / uuid.uuid4().hex[:12]
        folder.mkdir()
        return folder / f"{stem}{suffix}"


def session(request) -> str | None:
    """The browser session of an event (None for direct calls, which share one)."""
    return getattr(request, "session_hash", None)


@dataclasses.dataclass
class AppState:
    """What the handlers share: the models, a scratch folder for output files, and per browser session the message
    of its last failed event (`errors`, for the tab's status line) and its last explanation (`explained`, redrawn
    by `explain_handlers.on_upload`). Each handler takes it as its first argument."""

    predictor: Predictor
    scratch: Scratch = dataclasses.field(default_factory=Scratch)
    errors: collections.OrderedDict[str, str] = dataclasses.field(default_factory=collections.OrderedDict)
    explained: collections.OrderedDict[str | None, tuple] = dataclasses.field(default_factory=collections.OrderedDict)

    def save(self, image: np.ndarray | Image.Image, stem: str) -> str:
        """Every output image goes to Gradio as a PNG file of its own: Gradio copies files into its cache
        atomically, while the PIL images it saves itself are rewritten in place, and a visitor can download a
        half-written one when two requests produce the same picture (found by the load test)."""
        return str(save_png(np.asarray(image), self.scratch.path(stem, ".png")))

    def save_all(self, captioned: Sequence[tuple[np.ndarray | Image.Image, str]], stem: str) -> list[tuple[str, str]]:
        """(image, caption) pairs → (PNG file, caption) pairs, for a gallery."""
        return [(self.save(image, f"{stem}{i}"), caption) for i, (image, caption) in enumerate(captioned)]


def remember(memory: collections.OrderedDict, key, value, keep: int) -> None:
    """memory[key] = value as the newest entry, keeping the newest `keep` entries only."""
    memory.pop(key, None)
    memory[key] = value
    while len(memory) > keep:
        memory.popitem(last=False)


def as_event(app: AppState, handler: Callable) -> Callable:
    """handler(app, *widget values) → the function an event calls with the widget values, and the one place where
    a typed error (`InputError` for bad input, `ModelMissing`) becomes the visitor's one-line message: gr.Error,
    which reaches the client and the toast, and is remembered for the session's status line (`last_error`).

    The event function's parameters are the handler's without `app`, plus `request: gr.Request` when the handler
    has none (Gradio fills it in; direct calls may leave it out); a handler that takes `request` itself gets it."""
    signature = inspect.signature(handler)
    parameters = list(signature.parameters.values())[1:]  # without app
    passes_request = "request" in signature.parameters
    if not passes_request:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        if any(p.kind in (p.VAR_POSITIONAL, p.KEYWORD_ONLY) for p in parameters):
            kind = inspect.Parameter.KEYWORD_ONLY
        parameters.append(inspect.Parameter("request", kind, default=None, annotation=gr.Request))
    event_signature = signature.replace(parameters=parameters)

    @functools.wraps(handler)
    def event(*args, **kwargs):
        bound = event_signature.bind(*args, **kwargs)
        request = bound.arguments.get("request") if passes_request else bound.arguments.pop("request", None)
        try:
            return handler(app, *bound.args, **bound.kwargs)
        except (InputError, ModelMissing) as error:
            if session(request):
                remember(app.errors, session(request), str(error), keep=1000)
            raise gr.Error(str(error), print_exception=False) from error

    event.__signature__ = event_signature
    event.__annotations__ = {"request": gr.Request}  # how Gradio knows to pass the request
    return event


def last_error(app: AppState, request: gr.Request = None) -> str:
    """The status line after a failed event: its message (a toast shows it too)."""
    message = app.errors.get(session(request))  # kept per session: several events may fail at once
    return f"⚠ {message}" if message else "⚠ The request failed; see the message in the corner."


@dataclasses.dataclass(frozen=True)
class Refused:
    """What an image input hands its handler when a client sent no record of an uploaded file (`UploadRecord`)."""

    reason: str


class UploadRecord(gr.data_classes.ImageData):
    """The data model of the app's image inputs: Gradio's ImageData, except that a value which is no record of a
    file uploaded to this app reaches the handler as `Refused` instead of failing Gradio's validation (whose message
    the client never sees), so `upload` names what is wrong on the tab's status line. A path without Gradio's file
    marker is refused too: Gradio checks only marked paths, so an unmarked one could name any file on the server."""

    @classmethod
    def model_validate(cls, obj, *args, **kwargs):
        if isinstance(obj, dict) and isinstance(obj.get("path"), str) and not is_file_obj_with_meta(obj):
            return Refused(f"{shown(obj['path'])} is not a file uploaded to this app: upload it (POST "
                           '/gradio_api/upload) and send the path it returns with "meta": {"_type": "gradio.FileData"}')
        try:
            return super().model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError:
            return Refused(f"expected an uploaded image file, got {shown(obj)}")


def upload(value, max_bytes: int):
    """An image input as the handler receives it (every event runs with Gradio's preprocessing off, so Gradio
    never decodes an upload itself: every file reaches `read_image` and its messages) → a path or bytes; InputError
    for a refused record or a pasted image that is too large or no base64."""
    if isinstance(value, Refused):
        raise InputError(f"image: {value.reason}")
    if not isinstance(value, dict):
        return value  # None, a path or bytes (direct calls)
    url = value.get("url") or ""
    if not value.get("path") and url.startswith("data:"):
        if len(url) > max_bytes * 4 // 3 + 1024:  # base64 is 4/3 of the bytes
            raise InputError(f"the pasted image is over the {max_bytes / 2**20:g} MiB limit")
        try:
            return base64.b64decode(url.partition(",")[2], validate=True)
        except (binascii.Error, ValueError) as error:
            raise InputError("the pasted data is not a base64 image") from error
    return value.get("path")


def big(image: np.ndarray | Image.Image, size: int = SHOWN) -> Image.Image:
    """Small samples enlarged with nearest-neighbour, so the browser shows pixels instead of blur."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    scale = max(1, size // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
