"""Image files in, model inputs out: any image Pillow reads becomes an RGB array normalised per checkpoint.

Grayscale, palette, RGBA (composited on white), 16-bit and animated (first frame) images are converted; images
larger than `MAX_PIXELS` are refused before they are decoded.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000  # about 7000×7000: far beyond any classifier input, far below a decompression bomb
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
             "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


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


def load_image(source: str | Path | bytes | Image.Image, *, target_size: int | None = None) -> Image.Image:
    """Open `source` (path, bytes or Pillow image) as an RGB image. Raises ImageError with a one-line reason."""
    name = str(source) if isinstance(source, (str, Path)) else "image"
    try:
        if isinstance(source, Image.Image):
            image = source
        else:
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
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
        image = ImageOps.exif_transpose(image) or image
        return to_rgb(image)
    except ImageError:
        raise
    except FileNotFoundError as error:
        raise ImageError(f"{name}: no such file") from error
    except IsADirectoryError as error:
        raise ImageError(f"{name}: is a directory, not an image") from error
    except UnidentifiedImageError as error:
        raise ImageError(f"{name}: not an image file Pillow can read") from error
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageError(f"{name}: too large to decode safely ({error}); downscale it") from error
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{name}: corrupt or unreadable image ({error})") from error


def preprocess(image: Image.Image, spec: dict[str, Any]) -> np.ndarray:
    """RGB image → normalised float32 (S, S, 3): resize the shorter side to S / crop_pct, centre-crop S×S."""
    size = int(spec["image_size"])
    scale = max(size, int(round(size / float(spec.get("crop_pct", 1.0)))))
    width, height = image.size
    ratio = scale / min(width, height)
    new_w, new_h = max(scale, round(width * ratio)), max(scale, round(height * ratio))
    image = image.resize((new_w, new_h), _RESAMPLE[spec.get("resize", "bicubic")])
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32) / 255.0  # (S, S, 3)
    return (pixels - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
