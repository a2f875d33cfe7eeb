"""Small synthetic image sets with known content, for tests and sanity benchmarks (nothing downloaded).

`coloured_shapes`: 16×16 (or larger) images of one filled shape (square, disc or triangle; the class) in one of a
few saturated colours, at a random place on a dark background. A generator that learns them must learn the
background, the colours and the shapes; `colour_histogram_distance` measures the first two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SHAPES = ("square", "disc", "triangle")
COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230], [240, 220, 40]], np.uint8)
BACKGROUND = np.array([20, 20, 30], np.uint8)


def coloured_shapes(n: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, size, size, 3), labels int32 (n,)): one shape per image, class = shape index."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.broadcast_to(BACKGROUND, (n, size, size, 3)).copy()
    labels = rng.integers(0, len(SHAPES), n).astype(np.int32)
    for k in range(n):
        r = rng.integers(size // 5, size // 3 + 1)  # half-width of the shape
        cy, cx = rng.integers(r, size - r, 2)
        if labels[k] == 0:
            mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        elif labels[k] == 1:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            mask = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
        images[k][mask] = COLOURS[rng.integers(len(COLOURS))]
    return images, labels


def write_image_folder(root: str | Path, images: np.ndarray, labels: np.ndarray, class_names, split: str = "train"):
    """Write `root/<split>/<class>/<i>.png` (the layout of `folder:` data specs); returns root."""
    from PIL import Image

    root = Path(root)
    for name in class_names:
        (root / split / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image).save(root / split / class_names[label] / f"{i:05d}.png")
    return root


def colour_histogram_distance(a: np.ndarray, b: np.ndarray, bins: int = 8) -> float:
    """Mean over RGB channels of the L1 distance between normalised per-channel histograms (0 = same, 2 = disjoint).

    a, b: uint8 image batches (n, H, W, 3)."""
    total = 0.0
    for c in range(3):
        ha = np.histogram(a[..., c], bins=bins, range=(0, 256))[0] / a[..., c].size
        hb = np.histogram(b[..., c], bins=bins, range=(0, 256))[0] / b[..., c].size
        total += np.abs(ha - hb).sum()
    return total / 3
