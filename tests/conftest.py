"""Shared fixtures: tiny configs and checkpoints the tests create themselves (nothing is downloaded)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent XLA compilation cache for the test session and the scripts it runs: the trainers, samplers and
# benchmarks compile the same small programs many times, and compiling dominates their run time on 2 cores.
_XLA_CACHE = None if "JAX_COMPILATION_CACHE_DIR" in os.environ else tempfile.mkdtemp(prefix="nestgen-xla-cache-")
if _XLA_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _XLA_CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# XLA's CPU backend at optimisation level 0, and its older kernel emitters, for the tests and the scripts they
# start: most tests run a few steps of many small programs, so compiling is most of their time (measured on the
# smoke GAN: its steps compile in 3-3.5 s instead of 5-12 s at the defaults; its 20 steps run in 0.4-0.6 s instead
# of 0.2-0.3 s; the kernel emitters alone take 35-45% off compiling at level 0). What runs long (the shipped
# generator's FD_NesT, packaging) runs in scripts without these flags, or jits with compiler_options that restore
# XLA's defaults (GradCAT's planted-pattern training). Set NESTGEN_TEST_XLA_OPT=1 to test at XLA's defaults.
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")


def _known_to_xla(flag: str) -> bool:
    """An XLA flag this jaxlib knows (an unknown one aborts every process that starts XLA): tried once, in a
    subprocess; the workers and scripts inherit the result in XLA_FLAGS."""
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": flag, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env, capture_output=True,
                          timeout=120).returncode == 0


if os.environ.get("NESTGEN_TEST_XLA_OPT") != "1":
    _flags = os.environ.get("XLA_FLAGS", "").split()
    _added = [f for f in TEST_XLA_FLAGS if f.split("=")[0] not in {g.split("=")[0] for g in _flags}]
    _flags += [f for f in _added if f == TEST_XLA_FLAGS[0] or _known_to_xla(f)]
    os.environ["XLA_FLAGS"] = " ".join(_flags)
    # the tests' own flags, for the tests that build a script's XLA_FLAGS
    os.environ["NESTGEN_TEST_XLA_FLAGS"] = " ".join(f for f in _flags if f.split("=")[0] in
                                                    {t.split("=")[0] for t in TEST_XLA_FLAGS})

# One data and FID-reference cache for the test session too (every worker and every script it starts): the shared
# CIFAR-10 zips are decoded, and their FD_NesT statistics computed, once per run instead of once per test module,
# as on a fresh CI machine; the user's ~/.cache/nestgen is neither read nor written. Tests of the cache itself
# pass their own cache_dir.
_DATA_CACHE = None if "NESTGEN_CACHE" in os.environ else tempfile.mkdtemp(prefix="nestgen-test-cache-")
if _DATA_CACHE:
    os.environ["NESTGEN_CACHE"] = _DATA_CACHE

# torchvision (timm's dependency, the parity reference) aborts the process with an LLVM "option registered more
# than once" error when it is imported after TensorFlow; imported first, both work. Tests of both live in one run.
import pytest  # noqa: E402
import torch  # noqa: E402, F401
import torchvision  # noqa: E402, F401

from nestgen.convert.checkpoint import save_checkpoint  # noqa: E402
from nestgen.models.classifier import NestConfig  # noqa: E402
from nestgen.models.registry import init_params  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
OFFICIAL_TREES = SHARED / "reference" / "official_nest_param_trees.json"

# 3 levels, 16x16 input, 2x2-token blocks after 2x2 patches: small enough to run in milliseconds.
TINY = NestConfig(image_size=16, patch_size=2, num_levels=3, dims=(16, 32, 32), heads=(2, 4, 4), depths=(1, 1, 2),
                  attention="multi_head", num_classes=5, drop_path_rate=0.1)


@pytest.fixture(scope="session")
def official_trees() -> dict:
    if not OFFICIAL_TREES.is_file():
        pytest.fail(f"{OFFICIAL_TREES} is missing: the shared reference folder must sit beside the project")
    return json.loads(OFFICIAL_TREES.read_text())


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A saved checkpoint of the TINY config with random weights and made-up class names."""
    directory = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(directory, TINY, init_params(TINY, 0), class_names=["ant", "bee", "cat", "dog", "eel"])
    return directory


def pytest_sessionfinish(session, exitstatus):
    for made in (_XLA_CACHE, _DATA_CACHE):
        if made:
            shutil.rmtree(made, ignore_errors=True)
