"""The networks of a training run, as both trainers handle them: how they compute (the config's dtype, fused
attention and rematerialisation), the weights a run may start from (checked against the model's), and the
fingerprint of the weights it ends with.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import ml_collections
import numpy as np

from nestgen.convert.tree import check_tree, flatten, shapes, unflatten
from nestgen.models.nest import COMPUTE_DTYPES, Execution


def compute_dtype(config: ml_collections.ConfigDict):
    """The activations' dtype named by config.dtype ("float32" or "bfloat16"; the parameters stay float32).
    Raises ValueError for any other name."""
    if config.dtype not in COMPUTE_DTYPES:
        raise ValueError(f"config.dtype must be one of {sorted(COMPUTE_DTYPES)}, got {config.dtype!r}")
    return COMPUTE_DTYPES[config.dtype]


def execution(config: ml_collections.ConfigDict) -> Execution:
    """config.fused_attention and config.remat: how the network computes (never what). Raises ValueError unless
    both are bools."""
    for key in ("fused_attention", "remat"):
        if not isinstance(config[key], bool):
            raise ValueError(f"config.{key} must be True or False, got {config[key]!r}")
    return Execution(fused_attention=config.fused_attention, remat=config.remat)


def matching_params(given: Any, reference: Any, what: str = "initial parameters") -> Any:
    """`given` (a parameter tree) as float32 numpy arrays, checked against `reference`'s names and shapes
    (ParameterTreeError naming every missing, unexpected or misshapen parameter, and `what` they were)."""
    given_flat = flatten(given)
    check_tree(shapes(given_flat), shapes(flatten(jax.device_get(reference))), what)
    return unflatten({name: np.asarray(value, np.float32) for name, value in given_flat.items()})


def params_fingerprint(params) -> str:
    """sha256 (hex) of every parameter's float32 bytes in path order: equal fingerprints mean bitwise-equal
    models. `params` is a host parameter tree."""
    digest = hashlib.sha256()
    for path, value in sorted(flatten(params).items()):
        digest.update(path.encode())
        digest.update(np.ascontiguousarray(np.asarray(value, np.float32)).tobytes())
    return digest.hexdigest()
