"""Throughput and FLOPs measurement shared by the benchmark scripts (ratios are taken within one run)."""

from __future__ import annotations

import os
import platform
import resource
import statistics
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


# Dense peak FLOP/s of the matrix units by the vendors' datasheets, for MFU: (device kind contains, dtype, peak).
# First match wins, so the PCIe H100 comes before the SXM one. Unknown devices (CPUs included) have no peak.
PEAK_FLOPS = (("H100 PCIe", "bfloat16", 756e12), ("H100", "bfloat16", 989e12), ("H200", "bfloat16", 989e12),
              ("A100", "bfloat16", 312e12), ("H100 PCIe", "float32", 51e12), ("H100", "float32", 67e12),
              ("H200", "float32", 67e12), ("A100", "float32", 19.5e12), ("TPU v4", "bfloat16", 275e12),
              ("TPU v5p", "bfloat16", 459e12), ("TPU v5 lite", "bfloat16", 197e12))


def peak_flops(device_kind: str, dtype: str) -> float | None:
    """The datasheet peak for this device and compute dtype, or None when not known."""
    return next((peak for kind, kind_dtype, peak in PEAK_FLOPS if kind in device_kind and kind_dtype == dtype), None)


def compiled_memory_bytes(jitted, *args) -> int:
    """Bytes one call of a jitted function needs at its peak by XLA's memory analysis: arguments, outputs (less
    what they alias, i.e. donated buffers) and temporaries. Per program, so options can be compared in one run."""
    m = jitted.lower(*args).compile().memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def device_peak_memory_bytes() -> int | None:
    """The accelerator allocator's high-water mark for this process (None on CPUs, which do not report one)."""
    stats = jax.devices()[0].memory_stats()
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def machine() -> dict[str, object]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "jax": jax.__version__, "jax_backend": jax.default_backend(),
            "device": str(jax.devices()[0].device_kind)}


def median_ms(call: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Milliseconds of the median of `repeats` calls of `call()` (which must block until done), after `warmup`."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def peak_memory_mib() -> float:
    """The process's maximum resident set so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
