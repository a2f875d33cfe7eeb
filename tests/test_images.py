"""Any image Pillow reads becomes a model input (and the same uint8 pixels for data, `decode_image`); everything else
is refused with a one-line reason."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from nestgen.data.images import ImageError, decode_image, decode_images, load_image, preprocess
from nestgen.data.listing import DataError

SPEC = {"image_size": 8, "resize": "bicubic", "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3}


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but carries no pixels: it must be refused before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("image,fmt", [
    (Image.new("L", (20, 10), 128), "PNG"),
    (Image.new("RGBA", (9, 9), (255, 0, 0, 0)), "PNG"),
    (Image.new("P", (12, 12), 3), "GIF"),
    (Image.new("CMYK", (10, 10), (0, 0, 0, 0)), "JPEG"),
    (Image.new("RGB", (300, 100), (1, 2, 3)), "WEBP"),
])
def test_modes_and_formats_become_rgb(image, fmt):
    rgb = load_image(_save(image, fmt))
    assert rgb.mode == "RGB"
    assert preprocess(rgb, SPEC).shape == (8, 8, 3)


def test_transparent_pixels_are_composited_on_white():
    rgb = load_image(_save(Image.new("RGBA", (4, 4), (255, 0, 0, 0)), "PNG"))
    assert rgb.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    pixels = np.full((6, 6), 32896, np.uint16)  # mid-grey in 16 bits
    rgb = load_image(_save(Image.fromarray(pixels), "PNG"))
    assert rgb.getpixel((0, 0)) == (128, 128, 128)


def test_animated_image_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    r, g, b = load_image(data).getpixel((0, 0))
    assert r > 200 and b < 50


def test_resize_and_centre_crop_with_normalisation():
    left_black_right_white = np.zeros((16, 32, 3), np.uint8)
    left_black_right_white[:, 16:] = 255
    out = preprocess(Image.fromarray(left_black_right_white), SPEC)  # → 8x16 resize, centre 8x8 crop
    assert out.shape == (8, 8, 3)
    np.testing.assert_allclose(out[:, 0], -1.0, atol=0.05)
    np.testing.assert_allclose(out[:, -1], 1.0, atol=0.05)


@pytest.mark.parametrize("data,message", [
    (b"", "not an image file"),
    (b"hello, I am text", "not an image file"),
    (_png_header(20000, 20000), "too large"),
])
def test_bad_inputs_are_refused_with_reason(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_image_is_refused(tmp_path):
    data = _save(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cut.jpg: corrupt or unreadable"):
        load_image(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ImageError, match="nope.png: no such file"):
        load_image(tmp_path / "nope.png")


def test_decode_image_is_load_image_as_uint8_and_names_what_it_cannot_decode(tmp_path):
    rng = np.random.default_rng(0)
    cmyk = Image.fromarray(rng.integers(0, 256, (6, 8, 4), np.uint8), "CMYK")
    sources = {"cmyk.jpg": _save(cmyk, "JPEG"),
               "alpha.png": _save(Image.fromarray(rng.integers(0, 256, (6, 8, 4), np.uint8), "RGBA"), "PNG"),
               "gif-behind.png": _save(Image.new("P", (5, 7), 3), "GIF")}  # a GIF under a .png name still opens
    paths = []
    for name, data in sources.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
        pixels = decode_image(paths[-1])
        assert pixels.dtype == np.uint8 and pixels.shape[-1] == 3
        np.testing.assert_array_equal(pixels, np.asarray(load_image(paths[-1])))
        np.testing.assert_array_equal(decode_image(data), pixels)
    assert decode_image(paths[2]).shape == (7, 5, 3)
    many = decode_images([*paths, *paths], workers=2)  # in order, on threads
    for got, path in zip(many, [*paths, *paths], strict=True):
        np.testing.assert_array_equal(got, decode_image(path))
    broken = tmp_path / "broken.webp"
    broken.write_bytes(b"RIFF....WEBP")
    with pytest.raises(DataError, match=r"broken\.webp cannot be decoded \(.*\); delete or replace it$"):
        decode_image(broken)
    with pytest.raises(DataError, match=r"^train/x\.webp cannot be decoded"):
        decode_images([paths[0], broken], names=["a", "train/x.webp"], workers=2)
