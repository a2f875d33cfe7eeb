"""Validation of everything a visitor sends: uploads (size on disk, pixels, format), seeds, counts, frames, ψ.

Every rejection is an `InputError` whose one-line message is shown to the visitor as is; the server keeps serving.
The app's bounds are tighter than the library's (`nestgen.data.images.MAX_PIXELS`): a public page should not
decode a 50-megapixel image per click.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import tempfile
import time
import uuid
import weakref
from pathlib import Path

from PIL import Image

from nestgen.data.images import ImageError, load_image
from nestgen.evaluation.sampling import MAX_SEED as MAX_SEED  # seeds are 0 … 2**32 - 1 here as in every entry point


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


def check_int(value, name: str, low: int, high: int) -> int:
    """A whole number in [low, high] (Gradio numbers arrive as floats), or InputError."""
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be a whole number, got {value!r}") from error
    if not number.is_integer():
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if not low <= number <= high:
        raise InputError(f"{name} must be between {low:,} and {high:,}, got {int(number):,}")
    return int(number)


def parse_seeds(text, name: str, max_count: int) -> list[int]:
    """'3, 5, 9' or '10-13' (or a mix, or one number) → the seeds in order, each in [0, MAX_SEED]; InputError if
    a part is not a whole number, a range runs backwards, or there are none or more than `max_count`."""
    seeds = []
    for part in str(text if text is not None else "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError as error:
            raise InputError(f"{name}: {part!r} is not a seed; write whole numbers like 0, 4, 7 or a range 10-13"
                             ) from error
        if last < first:
            raise InputError(f"{name}: the range {part} runs backwards; write {last}-{first}")
        if last - first >= max_count:
            raise InputError(f"{name}: at most {max_count} seeds, got {part} ({last - first + 1})")
        seeds += [check_int(seed, f"{name}: a seed", 0, MAX_SEED) for seed in range(first, last + 1)]
    if not 1 <= len(seeds) <= max_count:
        raise InputError(f"{name}: give 1 to {max_count} seeds, like 0, 4, 7 or 10-13; got {len(seeds)}")
    return seeds


def check_truncation(value, limits: Limits) -> float:
    try:
        psi = float(value)
    except (TypeError, ValueError) as error:
        raise InputError(f"truncation ψ must be a number, got {value!r}") from error
    if not limits.min_truncation <= psi <= 1.0:
        raise InputError(f"truncation ψ must be between {limits.min_truncation} and 1, got {psi}")
    return psi


class Scratch:
    """The app's own temporary folder for the files it hands to Gradio (grids, GIFs): files older than `max_age_s`
    go at the next request, the folder when the app exits."""

    def __init__(self, max_age_s: float = 3600.0):
        self.directory = Path(tempfile.mkdtemp(prefix="nestgen-app-"))
        self.max_age_s = max_age_s
        weakref.finalize(self, shutil.rmtree, self.directory, ignore_errors=True)

    def path(self, stem: str, suffix: str) -> Path:
        cutoff = time.time() - self.max_age_s
        for old in self.directory.iterdir():
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass  # another request removed it
        return self.directory / f"{stem}-{uuid.uuid4().hex[:12]}{suffix}"
