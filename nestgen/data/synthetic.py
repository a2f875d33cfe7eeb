"""Small synthetic image sets with known content, for tests and sanity benchmarks (nothing downloaded).

`coloured_shapes`: 16×16 (or larger) images of one filled shape (square, disc or triangle; the class) in one of a
few saturated colours, at a random place on a dark background. A generator that learns them must learn the
background, the colours and the shapes; `colour_histogram_distance` measures the first two.

`planted_patterns`: noise images whose class is a small motif planted in one cell of a grid, a ground truth for
explanation methods (GradCAT's leaf block should be the motif's cell).
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


PLANTED_MOTIFS = ("plus", "x", "square outline")


def planted_motifs() -> np.ndarray:
    """(3, 4, 4) float32 binary motifs, one per class of `planted_patterns`: plus, X and square outline."""
    m = np.zeros((3, 4, 4), np.float32)
    m[0, 1:3, :] = m[0, :, 1:3] = 1  # plus
    m[1] = np.eye(4) + np.eye(4)[::-1]  # X
    m[2, [0, 3], :] = m[2, :, [0, 3]] = 1  # square outline
    return m


def planted_patterns(n: int, rng: np.random.Generator, size: int = 16, grid: int = 4, noise: float = 0.5,
                     amplitude: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images whose class is a motif planted in one random cell: a ground truth for explanation methods.

    Gaussian noise (std `noise`) on all 3 channels; the class's 4×4 motif, scaled up to fill one cell of a
    grid×grid raster (cell side size // grid), is added with `amplitude`. With grid = 2**(levels - 1) the cells
    are a NesT's leaf blocks, so "the explanation found the pattern" means "its leaf block is the cell".
    Returns (images float32 (n, size, size, 3), labels int32 (n,), the motif's cell in raster order (n,)).
    """
    side = size // grid
    if side * grid != size or side % 4:
        raise ValueError(f"a {grid}x{grid} grid of cells on {size} pixels must have cells of a multiple of 4 pixels")
    images = rng.normal(0, noise, (n, size, size, 3)).astype(np.float32)
    labels, cells = rng.integers(0, 3, n), rng.integers(0, grid * grid, n)
    scaled = np.kron(planted_motifs(), np.ones((side // 4, side // 4), np.float32))  # (3, side, side)
    for k in range(n):
        i, j = divmod(int(cells[k]), grid)
        images[k, side * i:side * (i + 1), side * j:side * (j + 1)] += amplitude * scaled[labels[k]][..., None]
    return images, labels.astype(np.int32), cells
