"""Validation of everything a visitor sends: uploads (size on disk, pixels, format), seeds, counts, frames, ψ, w.

Every rejection is an `InputError` whose one-line message is shown to the visitor as is; the server keeps serving.
The checks are type-strict and see what a client sent as it was sent (the app's events run with Gradio's
preprocessing off, `widgets.on`): None, text for a number, a bool, a dict, NaN are refused with a reason, never
converted or left to fail later.
The app's bounds are tighter than the library's (`nestgen.data.images.MAX_PIXELS`): a public page should not
decode a 50-megapixel image per click.
"""

from __future__ import annotations

import dataclasses
import io
import math
import numbers
import os

import numpy as np
from PIL import Image

from nestgen.data.classes import ClassError, resolve_class
from nestgen.data.images import ImageError, load_image
from nestgen.inference.sampling import MAX_SEED as MAX_SEED  # seeds are 0 … 2**32 - 1 here as in every entry point


class InputError(ValueError):
    """A visitor's input cannot be used; the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for."""

    max_samples: int = 64  # images per Generate click
    max_frames: int = 48  # interpolation frames
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 25_000_000  # width × height of an upload, checked before decoding
    min_truncation: float = 0.05
    max_grid_seeds: int = 10  # seeds per class in the class × seed grid
    max_mix_seeds: int = 8  # seeds on each side of the level-mixing grid
    max_projection_steps: int = 500  # optimisation steps of one projection


def read_image(source, limits: Limits, target_size: int | None = None) -> Image.Image:
    """An uploaded file (path or bytes) → an 8-bit RGB Pillow image, or InputError saying what is wrong with it."""
    if source is None or (isinstance(source, (str, bytes)) and not source):
        raise InputError("no image: upload, paste or pick one first")
    if isinstance(source, Image.Image):
        size = 0
    elif isinstance(source, bytes):
        size = len(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            size = os.path.getsize(source)
        except OSError as error:
            raise InputError("the uploaded file is gone; upload it again") from error
    else:
        raise InputError(f"expected an image file, got {type(source).__name__}")
    if isinstance(source, (bytes, str, os.PathLike)) and size == 0:
        raise InputError("the uploaded file is empty (0 bytes)")
    if size > limits.max_upload_bytes:
        raise InputError(f"the file is {size / 2**20:.1f} MiB, over the {limits.max_upload_bytes / 2**20:g} MiB limit")
    header = _check_pixels(source, limits)
    try:
        picture = load_image(source, target_size=target_size)
    except ImageError as error:
        raise InputError(_visitor_message(str(error))) from error
    if header is not None:  # a large JPEG decodes at a reduced scale, an EXIF-rotated one turned: keep its own size
        width, height = header
        turned = (width > height) != (picture.width > picture.height) and width != height
        picture.info["source_size"] = (height, width) if turned else (width, height)
    return picture


def _check_pixels(source, limits: Limits) -> tuple[int, int] | None:
    """Refuse images with too many pixels from their header alone (load_image reports unreadable files); the
    (width, height) the header gives, None when it cannot be read."""
    over = f"over the limit of {limits.max_pixels:,} pixels; downscale it first"
    try:
        if isinstance(source, Image.Image):
            width, height = source.size
        else:
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
                width, height = image.size
    except Image.DecompressionBombError as error:  # Pillow refuses to even open it
        raise InputError(f"the image is too large to decode safely, {over}") from error
    except Exception:  # noqa: BLE001 - unreadable: load_image names the reason
        return None
    if width * height > limits.max_pixels:
        raise InputError(f"the image is {width}×{height} pixels, {over}")
    return width, height


def _visitor_message(message: str) -> str:
    """Drop the server-side file name load_image puts first (a temporary upload path means nothing to a visitor)."""
    head, sep, tail = message.partition(": ")
    return tail if sep and ("/" in head or head == "image") else message


def shown(value) -> str:
    """A client's value as a short phrase for a one-line message: 'abc', 4,294,967,296, 1e+30, nothing, a dict."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37]) + "…"  # repr keeps a newline on one line
    if isinstance(value, bool | np.bool_):
        return f"the boolean {bool(value)}"
    if isinstance(value, numbers.Integral):
        if abs(value) < 10**15:
            return f"{int(value):,}"
        number = _float(value)
        return f"{number:.6g}" if number is not None else "a number of over 300 digits"
    if isinstance(value, numbers.Real):
        number = float(value)
        return f"{int(number):,}" if number.is_integer() and abs(number) < 1e15 else f"{number:.6g}"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def _real(value) -> bool:
    """A number as JSON sends one: int or float (numpy's too), not a bool, a text or None."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _float(value) -> float | None:
    """A number as a finite float; None for anything else: no number, NaN, ±inf, an int beyond float range."""
    try:
        number = float(value) if _real(value) else math.nan
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def check_int(value, name: str, low: int, high: int) -> int:
    """A whole number in [low, high] (an int, or a float without a fraction: JSON may send 3.0), or InputError.
    Text, booleans, None, lists, dicts, NaN and ±inf are refused, not converted."""
    number = value
    if _real(value) and not isinstance(value, numbers.Integral):
        number = float(value)
        number = int(number) if number.is_integer() else None  # NaN and ±inf are not whole either
    if not _real(number) or not low <= int(number) <= high:
        raise InputError(f"{name} must be a whole number from {low:,} to {high:,}, got {shown(value)}")
    return int(number)


def parse_seeds(text, name: str, max_count: int) -> list[int]:
    """'3, 5, 9' or '10-13' (or a mix, or one number) → the seeds in order, each in [0, MAX_SEED]; InputError if
    the value is no text, a part is not a whole number, a range runs backwards, or there are none or more than
    `max_count`."""
    example = "like 0, 4, 7 or a range 10-13"
    if not isinstance(text, str):
        raise InputError(f"{name} must be text {example}, got {shown(text)}")
    seeds = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError as error:
            raise InputError(f"{name}: {shown(part)} is not a seed; write whole numbers {example}") from error
        if last < first:
            raise InputError(f"{name}: the range {shown(part)} runs backwards; write the smaller seed first")
        if last - first >= max_count:
            raise InputError(f"{name}: at most {max_count} seeds, got {shown(part)} ({shown(last - first + 1)})")
        seeds += [check_int(seed, f"{name}: a seed", 0, MAX_SEED) for seed in range(first, last + 1)]
    if not 1 <= len(seeds) <= max_count:
        raise InputError(f"{name}: give 1 to {max_count} seeds, {example}; got {len(seeds)}")
    return seeds


def check_truncation(value, limits: Limits) -> float:
    """ψ, a number in [limits.min_truncation, 1], or InputError (text, booleans, None, NaN are refused)."""
    psi = _float(value)
    if psi is None or not limits.min_truncation <= psi <= 1.0:
        raise InputError(f"truncation ψ must be a number from {limits.min_truncation:g} to 1, got {shown(value)}")
    return psi


def check_class(value, class_names) -> int:
    """A class name, `#index` or index → its index in `class_names` (`nestgen.data.classes.resolve_class`), or
    InputError naming the classes (or the index range)."""
    try:
        return resolve_class(value, class_names)
    except ClassError as error:
        raise InputError(str(error)) from error


def check_fraction(value, name: str) -> float:
    """A number in [0, 1] (an opacity), or InputError (text, booleans, None, NaN are refused)."""
    number = _float(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise InputError(f"{name} must be a number from 0 to 1, got {shown(value)}")
    return number


@dataclasses.dataclass(frozen=True)
class WRange:
    """Where a w sent back by a client (a projection's, `GeneratorService.project`) may lie: every number within
    `reach` σ of the mapping network's mean w (σ: the RMS spread of the w of `seeds` mapped seeds), plus `drift`,
    the most the app's projection moves a number (Adam's step, about its learning rate, × the most steps).
    Measured: the shipped CIFAR-10 generator's mapped w stay within 7.6 σ of their mean (σ = 1.23), its 500-step
    projections within 17 σ; a random-weight generator maps every seed to nearly one w (σ = 0.0065) while a
    500-step projection of noise moves 14.7 away. w = 1e30 renders black frames."""

    mean: np.ndarray  # (W,) float32
    sigma: float
    seeds: int
    drift: float
    reach: float = 64.0

    @property
    def radius(self) -> float:
        return self.reach * self.sigma + self.drift


def check_w(value, name: str, allowed: WRange) -> np.ndarray:
    """A projected w sent back by a client (a JSON list of W numbers) → (W,) float32, or InputError."""
    size = len(allowed.mean)
    rule = f"{name} must be a list of {size} numbers (a projected w)"
    if not isinstance(value, list | tuple) or len(value) != size:
        raise InputError(f"{rule}, got {shown(value)}")
    values = [_float(v) for v in value]
    if None in values:
        bad = values.index(None)
        raise InputError(f"{rule}, all finite; number {bad} is {shown(value[bad])}")
    w = np.asarray(values, np.float64)
    far = int(np.argmax(np.abs(w - allowed.mean)))
    if abs(w[far] - allowed.mean[far]) > allowed.radius:
        raise InputError(f"{name}: number {far} is {shown(value[far])}; a w lies within {allowed.radius:.3g} of the "
                         f"mapping network's mean w: {allowed.reach:g} σ (σ = {allowed.sigma:.3g}, the spread of the "
                         f"w of {allowed.seeds:,} mapped seeds) plus {allowed.drift:g}, the most a projection moves it")
    return w.astype(np.float32)
