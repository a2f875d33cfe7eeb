"""The loop both trainers share, as helpers under each trainer's own flat loop (no Trainer class).

A trainer's loop body is one train step followed by one question per periodic action, in the manner of
big_vision's `itstime`: is it time to log, evaluate, sample or save? Logging takes the mean of the metrics
gathered since the last log (`mean_metrics`), checks them and the weights for NaN/inf (`finite`; the trainer then
raises `TrainingDiverged`), and reports images per second of training alone (`Throughput`). `progress_bar` is
the console's view of the same loop. The time budget's questions live in budget.py.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm


class TrainingDiverged(FloatingPointError):  # an ArithmeticError: the scripts report it as a user-facing failure
    """The loss or the parameters became NaN/inf; the last good checkpoint is kept."""


def itstime(count: int, every: int, total: int, *, previous: int | None = None) -> bool:
    """Whether a periodic action is due now that the run has reached `count` (steps, or images for the GAN).

    Due when `every` is set (non-zero) and a multiple of it was passed since `previous` (the count one step ago:
    `count - 1` by default, so a multiple of `every` must be `count` itself), or when `count` has reached `total`
    (the last step always logs, evaluates and saves). Counts are non-negative ints."""
    if not every:
        return False
    previous = count - 1 if previous is None else previous
    return count // every > previous // every or count >= total


def mean_metrics(pending: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean of each metric over the steps since the last log (device scalars, fetched here) as Python floats,
    in name order (as a jitted step returns its dict); a metric that only some steps compute (lazy R1) is
    averaged over those. `pending` must not be empty."""
    fetched = jax.device_get(list(pending))
    return {name: float(np.mean([m[name] for m in fetched if name in m])) for name in sorted(set().union(*fetched))}


@jax.jit
def _all_finite(tree) -> jax.Array:
    """bool (): every element of every leaf of `tree` is finite."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def finite(metrics: dict[str, float], *trees: Any) -> bool:
    """The NaN guard: True when every value of `metrics` and every parameter of `trees` is finite (the trees are
    checked on their devices, and only once the metrics have passed)."""
    return all(math.isfinite(v) for v in metrics.values()) and all(bool(_all_finite(tree)) for tree in trees)


class Throughput:
    """Images per second of training alone: the seconds spent evaluating are taken off with `exclude`."""

    def __init__(self) -> None:
        self._since = time.perf_counter()

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` (an evaluation, an FID) out of the time the next `images_per_second` divides by."""
        self._since += seconds

    def images_per_second(self, images: int) -> float:
        """`images` trained since the last call (or the start) per second of that time; starts the next count."""
        elapsed, self._since = time.perf_counter() - self._since, time.perf_counter()
        return images / max(elapsed, 1e-9)


def progress_bar(total: int, initial: int, *, desc: str, unit: str, unit_scale: bool = False) -> tqdm:
    """The console's progress bar, on process 0 only; a log file (stderr not a terminal) gets a line per 30 s."""
    return tqdm(total=total, initial=initial, unit=unit, unit_scale=unit_scale, disable=jax.process_index() != 0,
                dynamic_ncols=True, desc=desc, mininterval=0.1 if sys.stderr.isatty() else 30.0)
