"""Pictures of samples: plain grids, captioned grids and labelled tables (PNG), and animations (GIF, MP4).

Every function takes uint8 images (B, H, W, 3) and returns uint8 pictures or writes files. Text is drawn black on
white in the label font: Noto Sans CJK (Chinese, Japanese, Korean, Latin with accents, Greek, Cyrillic) when the
`manimgx-fonts-cjk` package is installed, else Pillow's built-in Aileron, which has ASCII and a few signs
("seed 3 · horse") but no accented letters, Greek or CJK. Characters the label font lacks are never drawn as its
box glyph: `undrawable` finds them, the grids draw their code points instead ("U+9E1F") and warn
(UndrawableTextWarning), and `drawable_labels` gives callers that know class indices "#3" labels and a note to
show. MP4s are encoded with PyAV (the `app` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nestgen.drawing.fonts import UndrawableTextWarning as UndrawableTextWarning
from nestgen.drawing.fonts import drawable_labels as drawable_labels
from nestgen.drawing.fonts import font_name as font_name
from nestgen.drawing.fonts import label_font, legible
from nestgen.drawing.fonts import undrawable as undrawable
from nestgen.files import replacing

PAD = 4  # white pixels around every cell of a captioned grid or labelled table
MIN_CELL = 16  # the smallest cell that still fits a readable line of text
def grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 images (B, H, W, 3) → one uint8 grid image, row-major, `padding` black pixels between cells."""
    b, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(b)))
    rows = int(np.ceil(b / columns))
    canvas = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        canvas[top:top + h, left:left + w] = image
    return canvas


def font_size(cell: int) -> int:
    """Text size in pixels for cells of `cell` pixels: cell / 8, at least 10 (legible), at most 16."""
    return int(np.clip(cell // 8, 10, 16))


def text_height(cell: int, lines: int = 2) -> int:
    """Height of a text band of `lines` lines under (or above) cells of `cell` pixels, margins included."""
    return lines * (font_size(cell) + 3) + 2


def _fit_lines(text: str, font, width: int, lines: int) -> list[str]:
    """`text` wrapped at spaces into at most `lines` lines no wider than `width`; what does not fit ends in '…'."""

    def shorten(line: str) -> str:
        if font.getlength(line) <= width:
            return line
        while line and font.getlength(line + "…") > width:
            line = line[:-1]
        return line.rstrip() + "…"

    out, words = [], text.split()
    while words and len(out) < lines:
        line = words.pop(0)
        while words and font.getlength(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        out.append(line)
    if words:  # more text than lines: the last line says so
        out[-1] = shorten(f"{out[-1]} {' '.join(words)}")
    return [shorten(line) for line in out]


def _write(draw, text: str, box: tuple[int, int, int, int], size: int, lines: int) -> None:
    """Black `text` centred in box = (left, top, width, height), wrapped into at most `lines` lines."""
    left, top, width, height = box
    font = label_font(size)
    fitted = _fit_lines(text, font, width - 2, lines)
    line_height = size + 3
    y = top + (height - line_height * len(fitted)) // 2
    for line in fitted:
        x = left + (width - font.getlength(line)) / 2
        draw.text((x, y + size), line, fill=(0, 0, 0), font=font, anchor="ls")  # baseline one size down: any font
        y += line_height


def _enlarge(image: np.ndarray, cell: int) -> np.ndarray:
    """uint8 (H, W, 3) → (cell, cell, 3) by nearest neighbour (a whole-number factor repeats every pixel)."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((cell, cell), Image.Resampling.NEAREST))


def _check_images(images: np.ndarray, ndim: int, cell: int, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != ndim or images.shape[-1] != 3:
        layout = "(B, H, W, 3)" if ndim == 4 else "(R, C, H, W, 3)"
        raise ValueError(f"{name} takes uint8 images {layout}, got {images.dtype} {images.shape}")
    if cell < MIN_CELL:
        raise ValueError(f"{name}: cell must be at least {MIN_CELL} pixels to fit its text, got {cell}")
    return images


def captioned_grid(images: np.ndarray, captions: Sequence[str], columns: int, cell: int = 128) -> np.ndarray:
    """uint8 images (B, H, W, 3) → one uint8 picture: each image enlarged (nearest) to cell × cell with its caption
    under it (black on white, up to 2 lines, shortened with '…'), row-major on a white background. Characters the
    label font lacks are drawn as base letters or code points, with an UndrawableTextWarning naming them.

    Layout: rows = ceil(B / columns); picture (PAD + rows·(cell + text_height(cell) + PAD),
    PAD + columns·(cell + PAD), 3); image k at top = PAD + r·(cell + text_height(cell) + PAD), left = PAD +
    c·(cell + PAD) with (r, c) = divmod(k, columns), its caption in the text_height(cell) rows under it.
    """
    images = _check_images(images, 4, cell, "captioned_grid")
    if len(captions) != len(images):
        raise ValueError(f"captioned_grid needs one caption per image: {len(images)} images, {len(captions)} captions")
    if columns < 1:
        raise ValueError(f"captioned_grid needs at least 1 column, got {columns}")
    from PIL import Image, ImageDraw

    band = text_height(cell)
    rows = -(-len(images) // columns)
    canvas = np.full((PAD + rows * (cell + band + PAD), PAD + columns * (cell + PAD), 3), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        top, left = PAD + r * (cell + band + PAD), PAD + c * (cell + PAD)
        canvas[top:top + cell, left:left + cell] = _enlarge(image, cell)
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for k, caption in enumerate(legible(captions, "captioned_grid")):
        r, c = divmod(k, columns)
        top, left = PAD + r * (cell + band + PAD), PAD + c * (cell + PAD)
        _write(draw, str(caption), (left, top + cell, cell, band), font_size(cell), 2)
    return np.asarray(picture)


def labelled_grid(images: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str], cell: int = 96,
                  corner: str = "") -> np.ndarray:
    """uint8 images (R, C, H, W, 3) → one uint8 table picture: image [r, c] enlarged (nearest) to cell × cell, row
    labels in a column on the left, column labels in a band on top, `corner` in the top-left corner. Characters the
    label font lacks are drawn as base letters or code points, with an UndrawableTextWarning naming them (callers
    with class names can pass `drawable_labels(names)[0]` instead and show its note).

    Layout: the label column is `cell` wide, the top band text_height(cell) high; picture
    (text_height(cell) + PAD + R·(cell + PAD), cell + PAD + C·(cell + PAD), 3); image [r, c] at
    top = text_height(cell) + PAD + r·(cell + PAD), left = cell + PAD + c·(cell + PAD).
    """
    images = _check_images(images, 5, cell, "labelled_grid")
    rows, columns = images.shape[:2]
    if len(row_labels) != rows or len(column_labels) != columns:
        raise ValueError(f"labelled_grid needs one label per row and per column: images {rows} × {columns}, "
                         f"{len(row_labels)} row labels, {len(column_labels)} column labels")
    from PIL import Image, ImageDraw

    band, size = text_height(cell), font_size(cell)
    canvas = np.full((band + PAD + rows * (cell + PAD), cell + PAD + columns * (cell + PAD), 3), 255, np.uint8)
    for r in range(rows):
        for c in range(columns):
            top, left = band + PAD + r * (cell + PAD), cell + PAD + c * (cell + PAD)
            canvas[top:top + cell, left:left + cell] = _enlarge(images[r, c], cell)
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    corner, *texts = legible([corner, *row_labels, *column_labels], "labelled_grid")
    row_labels, column_labels = texts[:rows], texts[rows:]
    _write(draw, corner, (0, 0, cell, band), size, 2)
    for c, label in enumerate(column_labels):
        _write(draw, str(label), (cell + PAD + c * (cell + PAD), 0, cell, band), size, 2)
    for r, label in enumerate(row_labels):
        lines = max(1, (cell - 2) // (size + 3))
        _write(draw, str(label), (PAD, band + PAD + r * (cell + PAD), cell - PAD, cell), size, lines)
    return np.asarray(picture)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write one uint8 picture (H, W, 3) as a PNG, creating its folder; a failed write (full disk) leaves the
    previous file as it was (`nestgen.files.replacing`)."""
    from PIL import Image

    with replacing(path) as temporary:
        Image.fromarray(image).save(temporary, format="PNG")
    return Path(path)


def _loop(frames: np.ndarray) -> list[np.ndarray]:
    """frames (F, H, W, 3) → forward then back without repeating the ends: 2F - 2 frames (F for F ≤ 2)."""
    return list(frames) + list(frames[-2:0:-1])


def save_gif(frames: np.ndarray, path: str | Path, *, frame_ms: int = 80, scale: int = 1) -> Path:
    """An animated GIF that plays forward then back (a seamless loop), frames enlarged `scale`× (nearest)."""
    from PIL import Image

    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST)
              for f in _loop(frames)]
    with replacing(path) as temporary:
        images[0].save(temporary, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return Path(path)


def save_mp4(frames: np.ndarray, path: str | Path, *, fps: int = 12, scale: int = 1) -> Path:
    """An H.264 MP4 (yuv420p, faststart: plays in browsers) of uint8 frames (F, H, W, 3), forward then back like
    `save_gif` (2F - 2 frames), enlarged `scale`× (nearest); an odd height or width gets its last row or column
    repeated, as yuv420p needs even sizes. Encoded by PyAV (bundles FFmpeg with libx264)."""
    try:
        import av
    except ImportError as error:
        raise ImportError('save_mp4 needs PyAV (the "av" package): pip install -e ".[app]"') from error
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"save_mp4 takes uint8 frames (F, H, W, 3) with F ≥ 1, got {frames.dtype} {frames.shape}")
    if scale < 1 or fps < 1:
        raise ValueError(f"save_mp4 needs scale ≥ 1 and fps ≥ 1, got scale {scale}, fps {fps}")
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)  # (F, H·s, W·s, 3)
    height, width = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")  # even (F, H', W', 3)
    with replacing(path) as temporary, av.open(str(temporary), mode="w", format="mp4",
                                               options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}  # visually lossless for these small pictures
        for frame in _loop(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())  # flush the encoder
    return Path(path)
