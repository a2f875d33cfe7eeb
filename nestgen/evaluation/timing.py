"""Throughput and FLOPs measurement shared by the benchmark scripts (ratios are taken within one run)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import jax


def throughput(step: Callable[[], None], batch: int, *, warmup: int = 2, min_iters: int = 3,
               min_seconds: float = 10.0) -> float:
    """Images per second of `step()` (which must block until done), after `warmup` calls."""
    for _ in range(warmup):
        step()
    iters, start = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - start < min_seconds:
        step()
        iters += 1
    return iters * batch / (time.perf_counter() - start)


def flops(jitted, *args) -> float:
    """FLOPs of one call of a jitted function on `args`, from XLA's cost analysis (nan when unavailable)."""
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float((cost or {}).get("flops", float("nan")))


def machine() -> dict[str, object]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "jax": jax.__version__, "jax_backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind)}
