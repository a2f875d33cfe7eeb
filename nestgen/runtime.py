"""Process settings that make XLA:CPU faster (the app and scripts apply them at start), and the library versions a
run reports and checks.

XLA:CPU allocates every temporary buffer of a step afresh (NesT-T's train step at batch 64: about 6 GB) and glibc
serves allocations over 32 MB with mmap and returns them with munmap, so every step page-faults its whole working
set back in: measured on 2 cores, a quarter of the train step's CPU time was the kernel zeroing pages.
`keep_freed_memory` makes malloc serve everything from one heap that it never shrinks, so buffers are reused.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import re
import sys

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of returning it to the kernel; True if applied.

    One arena (XLA's threads allocate large buffers, which only the main heap can hold), no mmap, no trimming:
    the process keeps its peak memory until it exits. Call it before the first JAX computation (after that, JAX's
    threads have arenas of their own and it does not help). Skipped outside Linux/glibc, when the environment sets
    NESTGEN_MALLOC=system, and where JAX will compute on an accelerator: there the host only feeds the input
    pipeline, whose threads contend for the single arena (measured: 6,100 → 3,600 augmented images/s).
    """
    if (os.environ.get("NESTGEN_MALLOC", "keep") == "system" or not sys.platform.startswith("linux")
            or _accelerator_expected()):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, …)
        return False
    # -1 as the trim threshold disables trimming (mallopt(3)).
    return all(libc.mallopt(param, value) == 1
               for param, value in ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))


def _accelerator_expected() -> bool:
    """Whether JAX's default device will be a GPU or TPU, decided without starting JAX: the first platform in
    JAX_PLATFORMS if set, else whether an accelerator plugin (jax-cuda*, jax-rocm*, libtpu) is installed."""
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if platforms:
        return platforms.split(",")[0].strip() != "cpu"
    names = {(dist.metadata["Name"] or "").lower().replace("_", "-") for dist in importlib.metadata.distributions()}
    return any(name.startswith(("jax-cuda", "jax-rocm", "libtpu")) for name in names)


# The oldest versions the training code works with (optax.contrib / tree utilities, orbax's CheckpointManager API);
# pyproject.toml pins the same floors, and scripts/campaign.py checks them on machines where pip did not install us.
MINIMUM_VERSIONS = {"jax": "0.4.35", "flax": "0.10", "optax": "0.2.5", "orbax-checkpoint": "0.11.13", "numpy": "1.26"}
REPORTED = (*MINIMUM_VERSIONS, "jaxlib", "scipy", "safetensors", "pillow", "torch", "clean-fid", "ml-collections")


def _release_tuple(version: str) -> tuple[int, ...]:
    """'0.11.13rc1' → (0, 11, 13): the numeric release, pre- and post-release tags ignored."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(x) for x in match.group(0).split(".")) if match else (0,)


def library_versions() -> dict[str, str | None]:
    """{"python": "3.12.3", "jax": "0.11.2", …, "torch": None (not installed)} for the packages a run depends on."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in REPORTED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def version_problems(versions: dict[str, str | None]) -> list[str]:
    """'optax 0.2.3 is older than the 0.2.5 nestgen needs', … for every package below MINIMUM_VERSIONS."""
    return [f"{name} is missing (nestgen needs {minimum} or newer)" if versions.get(name) is None
            else f"{name} {versions[name]} is older than the {minimum} nestgen needs"
            for name, minimum in MINIMUM_VERSIONS.items()
            if versions.get(name) is None or _release_tuple(versions[name]) < _release_tuple(minimum)]
