"""What every event handler of the app shares: reading uploads, output files, pictures sized for the browser, and
failure reports for the tabs' status lines. The handlers themselves are in `generating.py` and `explaining.py`,
joined in `handlers.Handlers`. Imports Gradio (`pip install -e ".[app]"`).
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextvars
import dataclasses
import functools
import inspect
from collections.abc import Sequence

import numpy as np
import pydantic
from gradio_client.utils import is_file_obj_with_meta
from PIL import Image

from nestgen.drawing.pictures import save_png
from nestgen.serving import require_gradio
from nestgen.serving.inputs import InputError, Scratch, shown
from nestgen.serving.predictor import Predictor

gr = require_gradio()

SHOWN = 128  # pixels of a sample in a gallery (enlarged with nearest-neighbour)
SESSION = contextvars.ContextVar("session", default=None)  # the browser session of the event being handled


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
    never decodes an upload itself: every file reaches `read_image` and its messages) → a path or bytes."""
    if isinstance(value, Refused):
        raise gr.Error(f"image: {value.reason}", print_exception=False)
    if not isinstance(value, dict):
        return value  # None, a path or bytes (direct calls)
    url = value.get("url") or ""
    if not value.get("path") and url.startswith("data:"):
        if len(url) > max_bytes * 4 // 3 + 1024:  # base64 is 4/3 of the bytes
            raise gr.Error(f"the pasted image is over the {max_bytes / 2**20:g} MiB limit", print_exception=False)
        try:
            return base64.b64decode(url.partition(",")[2], validate=True)
        except (binascii.Error, ValueError) as error:
            raise gr.Error("the pasted data is not a base64 image", print_exception=False) from error
    return value.get("path")


def big(image: np.ndarray | Image.Image, size: int = SHOWN) -> Image.Image:
    """Small samples enlarged with nearest-neighbour, so the browser shows pixels instead of blur."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    scale = max(1, size // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def reports_failures(method):
    """Remember a failed event's message per browser session, so the tab's status line can show it
    (`BaseHandlers.last_error`, wired to the event's `.failure`); gr.Error still reaches the client and the toast.
    Adds a last positional parameter `request: gr.Request` (Gradio fills it in; direct calls may leave it out)."""
    signature = inspect.signature(method)
    positional = len(signature.parameters) - 1  # without self

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        request = kwargs.pop("request", None)
        if len(args) > positional:  # Gradio passes every argument in order, the request last
            *args, request = args
        token = SESSION.set(getattr(request, "session_hash", None))  # per thread: requests run in a pool
        try:
            return method(self, *args, **kwargs)
        except gr.Error as error:
            session = getattr(request, "session_hash", None)
            if session:
                self.errors[session] = error.message
                while len(self.errors) > 1000:  # bounded: the oldest sessions go first
                    self.errors.popitem(last=False)
            raise
        finally:
            SESSION.reset(token)

    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=gr.Request)
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), request])
    wrapper.__annotations__ = {**method.__annotations__, "request": gr.Request}
    return wrapper


class BaseHandlers:
    """What every handler needs: the predictor, a scratch folder for output files, and error reporting."""

    def __init__(self, predictor: Predictor, scratch: Scratch | None = None):
        self.predictor, self.scratch = predictor, scratch or Scratch()
        self.errors: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.explained: collections.OrderedDict[str | None, tuple] = collections.OrderedDict()  # `keep_for_session`

    def keep_for_session(self, value, keep: int = 64) -> None:
        """Remember `value` (the last explanation) for this event's session (None: direct calls), the latest
        `keep` sessions only."""
        session = SESSION.get()
        self.explained.pop(session, None)
        self.explained[session] = value
        while len(self.explained) > keep:
            self.explained.popitem(last=False)

    def last_error(self, request: gr.Request = None) -> str:
        """The status line after a failed event: its message (a toast shows it too)."""
        message = self.errors.get(getattr(request, "session_hash", None))  # kept: several events may fail at once
        return f"⚠ {message}" if message else "⚠ The request failed; see the message in the corner."

    def _need(self, role: str, progress=None, step: str | None = None):
        """The loaded service of `role` (gr.Error naming the command that trains one when it is missing), once its
        warm-up step (`step`, default: the role's name) has compiled; progress hears what the request waits for."""
        service = getattr(self.predictor, role)
        if service is None:
            raise gr.Error(self.predictor.missing.get(role, f"no {role} is loaded"), print_exception=False)
        self.predictor.warmth.wait(step or role, progress)
        return service

    def _file(self, image: np.ndarray | Image.Image, stem: str) -> str:
        """Every output image goes to Gradio as a PNG file of its own: Gradio copies files into its cache
        atomically, while the PIL images it saves itself are rewritten in place, and a visitor can download a
        half-written one when two requests produce the same picture (found by the load test)."""
        return str(save_png(np.asarray(image), self.scratch.path(stem, ".png")))

    def _files(self, captioned: Sequence[tuple[np.ndarray | Image.Image, str]], stem: str) -> list[tuple[str, str]]:
        return [(self._file(image, f"{stem}{i}"), caption) for i, (image, caption) in enumerate(captioned)]

    @staticmethod
    def _call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as error:
            raise gr.Error(str(error), print_exception=False) from error


