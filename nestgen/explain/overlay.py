"""Render GradCAT explanations: nested boxes coloured by level, per-level heat maps, Grad-CAM beside them.

Every panel is `size`×`size` pixels (default 256), the input upscaled with nearest-neighbour so that 32×32 images
stay legible. `render_explanation` lays the panels out in one row: boxes, one heat map per level (root first,
which is uniform), and Grad-CAM when given, so the picture is size × (1 + levels [+ 1]) wide.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from nestgen.explain.gradcat import Explanation

LEVEL_COLOURS = [(255, 64, 64), (255, 170, 0), (64, 200, 64), (64, 160, 255), (200, 90, 255), (255, 255, 255)]
RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32)  # viridis


def colourise(values: np.ndarray) -> np.ndarray:
    """Map an array scaled to [0, 1] onto a viridis-like ramp: (...,) → (..., 3) uint8."""
    x = np.clip(values, 0.0, 1.0) * (len(RAMP) - 1)
    low = np.floor(x).astype(int).clip(0, len(RAMP) - 2)
    frac = (x - low)[..., None]
    return (RAMP[low] * (1 - frac) + RAMP[low + 1] * frac).astype(np.uint8)


def upscale(image: Image.Image, size: int = 256) -> Image.Image:
    return image.convert("RGB").resize((size, size), Image.Resampling.NEAREST)


def draw_path(image: Image.Image, explanation: Explanation, size: int = 256) -> Image.Image:
    """The input with the traversal's nested boxes, one colour per depth (root red … leaf)."""
    canvas = upscale(image, size)
    draw = ImageDraw.Draw(canvas)
    scale = size / explanation.image_size
    width = max(2, size // 96)
    for depth, node in enumerate(explanation.path):
        top, left, bottom, right = (round(v * scale) for v in node.box)
        inset = depth * width // 2  # keep nested outlines visible where they share an edge
        draw.rectangle([left + inset, top + inset, right - 1 - inset, bottom - 1 - inset],
                       outline=LEVEL_COLOURS[depth % len(LEVEL_COLOURS)], width=width)
    return canvas


def heat_map(image: Image.Image, scores: np.ndarray, size: int = 256, alpha: float = 0.6) -> Image.Image:
    """A (g, g) score map, normalised to [0, 1] and upscaled blockwise, blended over the input."""
    scores = np.asarray(scores, np.float32)
    span = float(scores.max() - scores.min())
    normalised = (scores - scores.min()) / span if span > 0 else np.full_like(scores, 0.5)
    colours = Image.fromarray(colourise(normalised)).resize((size, size), Image.Resampling.NEAREST)
    return Image.blend(upscale(image, size), colours, alpha)


def render_explanation(image: Image.Image, explanation: Explanation, gradcam: np.ndarray | None = None,
                       size: int = 256) -> Image.Image:
    """One row: boxes, the heat map of every level (root → leaf), and Grad-CAM if given."""
    panels = [draw_path(image, explanation, size)]
    panels += [heat_map(image, explanation.level_scores[node.level], size) for node in explanation.path]
    if gradcam is not None:
        panels.append(heat_map(image, gradcam, size))
    row = Image.new("RGB", (size * len(panels), size), (0, 0, 0))
    for i, panel in enumerate(panels):
        row.paste(panel, (i * size, 0))
    return row


def on_source(source: Image.Image, explanation: Explanation, to_source, opacity: float = 0.5,
              max_side: int = 1024, min_side: int = 256) -> Image.Image:
    """The explanation drawn over the image as it was uploaded, at its own resolution (an upload whose longer side
    exceeds `max_side` pixels is shown scaled down to it; one under `min_side` is enlarged by a whole factor with
    nearest-neighbour, so its pixels stay squares): the leaf level's block scores as a heat map blended at
    `opacity` (0: the photo alone, 1: the map alone) over the region the model saw, and the path's nested boxes,
    one colour per depth (root red … leaf), in the upload's pixels. Lines are about 1/200 of the longer side.

    `to_source` maps a box (top, left, bottom, right) of the model's S×S input to the upload's pixels
    (`Classification.source_box`, which undoes the resize and the centre crop). Returns an RGB image.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"on_source: opacity must be in [0, 1], got {opacity}")
    longest = max(source.size)
    scale = max_side / longest if longest > max_side else float(-(-min_side // longest)) if longest < min_side else 1.0
    shown = source.convert("RGB")
    if scale != 1.0:
        shown = shown.resize((max(1, round(source.width * scale)), max(1, round(source.height * scale))),
                             Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST)

    def box(b):  # a box of the model's input → (left, top, right, bottom) in the shown image's pixels
        top, left, bottom, right = to_source(b)
        return round(left * scale), round(top * scale), round(right * scale), round(bottom * scale)

    side = explanation.image_size
    left, top, right, bottom = box((0, 0, side, side))
    if opacity > 0 and right > left and bottom > top:
        scores = np.asarray(explanation.level_scores[0], np.float32)  # (g, g): the leaf level's blocks
        span = float(scores.max() - scores.min())
        normalised = (scores - scores.min()) / span if span > 0 else np.full_like(scores, 0.5)
        colours = Image.fromarray(colourise(normalised)).resize((right - left, bottom - top),
                                                               Image.Resampling.NEAREST)
        region = shown.crop((left, top, right, bottom))
        shown.paste(Image.blend(region, colours, opacity), (left, top))
    draw = ImageDraw.Draw(shown)
    width = max(2, max(shown.size) // 200)
    for depth, node in enumerate(explanation.path):
        left, top, right, bottom = box(node.box)
        inset = depth * width // 2  # nested outlines stay visible where they share an edge
        draw.rectangle([left + inset, top + inset, max(left + inset, right - 1 - inset),
                        max(top + inset, bottom - 1 - inset)], outline=LEVEL_COLOURS[depth % len(LEVEL_COLOURS)],
                       width=width)
    return shown
