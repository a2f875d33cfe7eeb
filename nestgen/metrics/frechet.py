"""Distances between two sets of features, computed as clean-fid computes them: the Fréchet distance between the
Gaussians fitted to each set (FID, FD_NesT) and the kernel distance (KID).

Imports neither torch nor clean-fid. The kernel distance is clean-fid's own function, reached through
`fid_base.backends()` on first use; the Fréchet distance is clean-fid's formula written out here (tested equal to
clean-fid's), because clean-fid's calls SciPy's `sqrtm` with an argument SciPy 1.18 no longer has.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


def _cleanfid():
    from nestgen.metrics.fid_base import backends  # lazily: torch and clean-fid load slowly

    return backends().fid


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features → mean (D,) and covariance (D, D), as clean-fid computes them."""
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2): ‖mu1 − mu2‖² + tr(sigma1 + sigma2 −
    2 (sigma1 sigma2)^½), computed step for step as clean-fid 0.1.35's `frechet_distance` (same square root, same
    eps fallback for a singular product, same tolerance for an imaginary part) but without its `sqrtm(...,
    disp=False)`, which SciPy 1.18 removed (clean-fid then raises TypeError). Raises ValueError on mismatched
    shapes or a square root with a large imaginary part."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature statistics of different sizes: {mu1.shape} / {sigma1.shape} against "
                         f"{mu2.shape} / {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product is handled below, as clean-fid does
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        print(f"fid calculation produces singular product; adding {eps} to diagonal of cov estimates",
              file=sys.stderr)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kernel_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """clean-fid's KID (100 subsets of ≤ 1000), with its subsets drawn from `seed` (the global RNG is restored)."""
    kernel = _cleanfid().kernel_distance
    state = np.random.get_state()  # noqa: NPY002 (clean-fid draws its subsets from the global RNG)
    try:
        np.random.seed(seed)  # noqa: NPY002
        return float(kernel(real, fake))
    finally:
        np.random.set_state(state)  # noqa: NPY002
