"""Flat parameter trees ("a/b/c" → array) and the one check every loader runs before it maps weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from flax import traverse_util

SEP = "/"


class ParameterTreeError(ValueError):
    """A weight file does not hold the tree the model needs. The message names every offending key."""


def flatten(tree: Mapping[str, Any], sep: str = SEP) -> dict[str, Any]:
    return {k: v for k, v in traverse_util.flatten_dict(dict(tree), sep=sep).items()}


def unflatten(flat: Mapping[str, Any], sep: str = SEP) -> dict[str, Any]:
    return traverse_util.unflatten_dict(dict(flat), sep=sep)


def shapes(flat: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(int(d) for d in np.shape(v)) for k, v in flat.items()}


def expected_shapes(mapping: Callable[[dict[str, Any]], dict[str, Any]], abstract_flat: dict[str, Any]):
    """Shapes a mapping produces from a model's abstract parameters, computed without allocating them."""
    return shapes(jax.eval_shape(mapping, abstract_flat))


def check_tree(found: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    """Raise ParameterTreeError listing missing keys, unexpected keys and wrong shapes (with both shapes)."""
    problems = []
    for key in sorted(expected.keys() - found.keys()):
        problems.append(f"missing key {key!r} (expected shape {tuple(expected[key])})")
    for key in sorted(found.keys() - expected.keys()):
        problems.append(f"unexpected key {key!r} with shape {tuple(found[key])}")
    for key in sorted(found.keys() & expected.keys()):
        if tuple(found[key]) != tuple(expected[key]):
            problems.append(f"key {key!r} has shape {tuple(found[key])}, expected {tuple(expected[key])}")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise ParameterTreeError(f"{what} does not match the model ({len(problems)} problems):\n  "
                                 + "\n  ".join(shown))
