"""Distances between two sets of features, computed as clean-fid computes them: the Fréchet distance between the
Gaussians fitted to each set (FID, FD_NesT) and the kernel distance (KID).

Imports neither torch nor clean-fid: clean-fid's functions are reached through `fid.backends()` on first use, so
that the numbers are clean-fid's own.
"""

from __future__ import annotations

import contextlib
import sys
import warnings

import numpy as np


def _cleanfid():
    from nestgen.evaluation.fid import backends  # lazily: fid imports this module

    return backends().fid


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features → mean (D,) and covariance (D, D), as clean-fid computes them."""
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """clean-fid's Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The `disp` argument is deprecated", DeprecationWarning)  # scipy 1.17
        return float(_cleanfid().frechet_distance(mu1, sigma1, mu2, sigma2))


def kernel_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """clean-fid's KID (100 subsets of ≤ 1000), with its subsets drawn from `seed` (the global RNG is restored)."""
    kernel = _cleanfid().kernel_distance
    state = np.random.get_state()  # noqa: NPY002 (clean-fid draws its subsets from the global RNG)
    try:
        np.random.seed(seed)  # noqa: NPY002
        return float(kernel(real, fake))
    finally:
        np.random.set_state(state)  # noqa: NPY002
