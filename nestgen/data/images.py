"""Image files in, pixels out: the one decoder of nestgen. Any image Pillow reads becomes 8-bit RGB the same way for
inference (`load_image` → `preprocess`) and for training data, evaluation data and FID references
(`decode_image`, which is `np.asarray(load_image(...))`), so a file gives the same pixels on every path.

EXIF orientation is applied; grayscale, palette, CMYK, RGBA (composited on white), 16-bit and animated (first
frame) images are converted; images larger than `MAX_PIXELS` are refused before they are decoded.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nestgen.data.listing import DataError

MAX_PIXELS = 50_000_000  # about 7000×7000: far beyond any classifier input, far below a decompression bomb
_FAST_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}  # the bulk of datasets; any format still opens
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
             "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
RESIZE_FILTERS = tuple(_RESAMPLE)  # the names config.json's preprocess.resize may use


class ImageError(ValueError):
    """An input could not be used as an image; the message says why in one line."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (16-bit scaled down, transparency composited on white)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        if image.mode.startswith("I;16") or values.max(initial=0) > 255:
            values = values / 257.0  # 16-bit range → 8-bit
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _checked_rgb(image: Image.Image, name: str, target_size: int | None) -> Image.Image:
    """An opened image → a new RGB image: size checks, first frame, JPEG draft, EXIF orientation, to_rgb."""
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image is empty ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} is too large (at most {MAX_PIXELS:,} pixels); downscale it")
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # animated: the first frame
    if target_size and image.format == "JPEG":
        image.draft("RGB", (target_size * 2, target_size * 2))  # decode huge JPEGs at reduced scale
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image.load()
    image = ImageOps.exif_transpose(image) or image  # a copy: the file behind `image` may be closed now
    return to_rgb(image)


def _open(source: str | Path | bytes) -> Image.Image:
    """Image.open, trying first the plugin a .jpg/.jpeg/.png name points to (a third faster on small files)."""
    if isinstance(source, bytes):
        return Image.open(io.BytesIO(source))
    hint = _FAST_FORMATS.get(os.path.splitext(str(source))[1].lower())
    if hint:
        try:
            return Image.open(source, formats=[hint])
        except UnidentifiedImageError:
            pass  # another format behind the name: let Pillow find it
    return Image.open(source)


def load_image(source: str | Path | bytes | Image.Image, *, target_size: int | None = None) -> Image.Image:
    """Open `source` (path, bytes or Pillow image) as an RGB image. Raises ImageError with a one-line reason.

    `target_size` lets a large JPEG decode at a reduced scale (still at least 2 × target_size on each side).
    A file opened here is closed before returning.
    """
    name = str(source) if isinstance(source, (str, Path)) else "image"
    try:
        if isinstance(source, Image.Image):
            return _checked_rgb(source, name, target_size)
        with _open(source) as image:
            return _checked_rgb(image, name, target_size)
    except ImageError:
        raise
    except FileNotFoundError as error:
        raise ImageError(f"{name}: no such file") from error
    except IsADirectoryError as error:
        raise ImageError(f"{name}: is a directory, not an image") from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{name}: not an image file (PNG, JPEG, GIF, BMP, WebP, TIFF … expected)") from error
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageError(f"{name}: too large to decode safely ({error}); downscale it") from error
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{name}: corrupt or unreadable image ({error})") from error


def decode_image(source: str | Path | bytes, *, image_size: int | None = None, name: str | None = None
                 ) -> np.ndarray:
    """A file (path or encoded bytes) → uint8 (H, W, 3) pixels, exactly `np.asarray(load_image(source))`.

    With `image_size` S, an image that is not S×S becomes uint8 (S, S, 3) by the rule of `preprocess` (shorter
    side to S, bicubic, centre crop), a large JPEG decoding at reduced scale as `load_image(target_size=S)` does.
    Raises DataError naming the file (`name`, else the path) if Pillow cannot decode it.
    """
    try:
        image = load_image(source, target_size=image_size)
    except ImageError as error:
        own = str(source) if isinstance(source, (str, Path)) else "image"
        reason = str(error).removeprefix(f"{own}: ")  # ImageError says "<name>: <reason>"
        raise DataError(f"{name or own} cannot be decoded ({reason}); delete or replace it") from error
    if image_size and image.size != (image_size, image_size):
        image = resize_and_crop(image, image_size)
    return np.asarray(image, dtype=np.uint8)  # (H, W, 3)


def decode_images(sources: Sequence[str | Path | bytes], *, image_size: int | None = None,
                  names: Sequence[str] | None = None, workers: int | None = None) -> list[np.ndarray]:
    """`decode_image` of every source, in order, on `workers` threads (default: one per CPU this process may use).

    Pillow releases the GIL while it decodes, so threads scale on the decoding itself. Returns uint8 (H, W, 3)
    arrays (sizes may differ unless `image_size` is given). A source that fails raises its DataError (the
    earliest of those found before the threads stopped).
    """
    count = len(sources)
    workers = max(1, min(workers or _cpu_count(), count))
    bounds = [count * k // workers for k in range(workers + 1)]  # contiguous slices, one per thread
    out: list[np.ndarray] = [None] * count  # type: ignore[list-item]
    failed = threading.Event()

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            if failed.is_set():
                return  # another slice failed: stop early
            try:
                out[i] = decode_image(sources[i], image_size=image_size,
                                      name=names[i] if names is not None else None)
            except BaseException:
                failed.set()
                raise

    if workers == 1:
        work(0, count)
        return out
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        futures = [pool.submit(work, start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
        errors = [future.exception() for future in futures]  # waits for every slice
    for error in errors:
        if error is not None:
            raise error
    return out


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def crop_geometry(width: int, height: int, size: int, crop_pct: float = 1.0) -> tuple[int, int, int, int]:
    """Where `resize_and_crop` puts a width×height image: (resized width, resized height, left, top) of the S×S
    crop (S = `size`) inside the resized image, in resized pixels."""
    scale = max(size, int(round(size / float(crop_pct))))
    ratio = scale / min(width, height)
    new_w, new_h = max(scale, round(width * ratio)), max(scale, round(height * ratio))
    return new_w, new_h, (new_w - size) // 2, (new_h - size) // 2


def resize_and_crop(image: Image.Image, size: int, *, crop_pct: float = 1.0, resize: str = "bicubic"
                    ) -> Image.Image:
    """Resize the shorter side to max(S, round(S / crop_pct)) with `resize`, then centre-crop S×S (S = `size`)."""
    new_w, new_h, left, top = crop_geometry(*image.size, size, crop_pct)
    image = image.resize((new_w, new_h), _RESAMPLE[resize])
    return image.crop((left, top, left + size, top + size))


def source_box(box: Sequence[int], source_size: tuple[int, int], size: int, crop_pct: float = 1.0
               ) -> tuple[int, int, int, int]:
    """A pixel box (top, left, bottom, right; bottom/right exclusive) of the S×S model input → the same region in
    the width×height image it was cut from by `resize_and_crop`, rounded outward to whole pixels."""
    width, height = source_size
    new_w, new_h, left, top = crop_geometry(width, height, size, crop_pct)
    sy, sx = height / new_h, width / new_w  # source pixels per resized pixel
    t, lft, b, r = box
    return (max(0, int(np.floor((t + top) * sy))), max(0, int(np.floor((lft + left) * sx))),
            min(height, int(np.ceil((b + top) * sy))), min(width, int(np.ceil((r + left) * sx))))


def preprocess(image: Image.Image, spec: dict[str, Any]) -> np.ndarray:
    """RGB image → normalised float32 (S, S, 3): resize the shorter side to S / crop_pct, centre-crop S×S."""
    image = resize_and_crop(image, int(spec["image_size"]), crop_pct=float(spec.get("crop_pct", 1.0)),
                            resize=spec.get("resize", "bicubic"))
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # (S, S, 3)
    return (pixels - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
