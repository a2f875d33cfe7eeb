"""Improved precision and recall of a generator (Kynkäänniemi et al., NeurIPS 2019), on feature vectors.

Each set's manifold is the union of balls around its points, the radius of a point being the distance to its k-th
nearest other point of the same set (k = 3 in the paper). Precision: the share of generated points inside the real
manifold (are samples realistic?); recall: the share of real points inside the generated manifold (is every mode
covered? mode dropping lowers it). Distances run in row batches through one jitted function (GPU when JAX has one).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _squared_distances(rows: jax.Array, points: jax.Array) -> jax.Array:
    """(R, D), (N, D) → (R, N) squared Euclidean distances, clipped at 0 against rounding."""
    cross = rows @ points.T  # (R, N)
    return jnp.maximum((rows * rows).sum(-1)[:, None] - 2.0 * cross + (points * points).sum(-1)[None, :], 0.0)


@functools.partial(jax.jit, static_argnames="k")
def _kth_distance(rows: jax.Array, points: jax.Array, k: int) -> jax.Array:
    """(R,) squared distance of each row to its k-th nearest point, the row itself (distance 0) not counted."""
    nearest = -jax.lax.top_k(-_squared_distances(rows, points), k + 1)[0]  # (R, k + 1), ascending
    return nearest[:, k]


@jax.jit
def _inside(rows: jax.Array, points: jax.Array, radii: jax.Array) -> jax.Array:
    """(R,) whether each row lies in at least one ball (point, squared radius)."""
    return (_squared_distances(rows, points) <= radii[None, :]).any(axis=-1)


def _by_rows(fn, rows: np.ndarray, *args, batch_size: int) -> np.ndarray:
    """Apply `fn(row_batch, *args)` over fixed-size row batches (the last one padded: one compile)."""
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:], chunk.dtype)])
        out.append(np.asarray(fn(jnp.asarray(padded), *args))[:len(chunk)])
    return np.concatenate(out)


def manifold_radii(features: np.ndarray, k: int = 3, *, batch_size: int = 1000) -> np.ndarray:
    """(N,) squared k-NN radius of every point of (N, D) features."""
    if len(features) <= k:
        raise ValueError(f"k-NN radii need more than k = {k} points, got {len(features)}")
    points = jnp.asarray(features, jnp.float32)
    return _by_rows(functools.partial(_kth_distance, k=k), np.asarray(features, np.float32), points,
                    batch_size=min(batch_size, len(features)))


def coverage(queries: np.ndarray, manifold: np.ndarray, radii: np.ndarray, *, batch_size: int = 1000) -> float:
    """Share of (M, D) queries inside the manifold of (N, D) points with squared radii (N,)."""
    inside = _by_rows(_inside, np.asarray(queries, np.float32), jnp.asarray(manifold, jnp.float32),
                      jnp.asarray(radii, jnp.float32), batch_size=min(batch_size, len(queries)))
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, *, max_samples: int | None = None,
                     seed: int = 0, batch_size: int = 1000) -> tuple[float, float]:
    """(precision, recall) of fake (M, D) against real (N, D) features.

    Both sets are cut to the same size (the smaller one, or `max_samples`) by a seeded random subset, as the
    k-NN radii depend on how densely a set is sampled. Cost: three (n × n × D) distance products.
    """
    n = min(len(real), len(fake), max_samples or len(real))
    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float32)[np.sort(rng.permutation(len(real))[:n])] if len(real) > n else real
    fake = np.asarray(fake, np.float32)[np.sort(rng.permutation(len(fake))[:n])] if len(fake) > n else fake
    precision = coverage(fake, real, manifold_radii(real, k, batch_size=batch_size), batch_size=batch_size)
    recall = coverage(real, fake, manifold_radii(fake, k, batch_size=batch_size), batch_size=batch_size)
    return precision, recall
