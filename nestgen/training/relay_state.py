"""A whole training state as one small safetensors file, so that a long run can go on on another machine.

A CPU relay (scripts/relay.py) trains a model leg after leg, each leg on whatever machine a session has; between
legs the state travels inside the repository, so it must be one file of a few MB that a commit replaces. Orbax
checkpoints (nestgen/training/checkpoints.py) stay the in-run format: exact, asynchronous, many files. This file
is the between-machines format:

- every leaf of the train state (a flax struct of parameters, optimizer state, counters) under a "/"-joined path
  name (`params/level_0/...`, `opt_state/1/0/nu/...`, `step`), so any state pytree round-trips without a schema;
- when `compact`, parameters (and the EMA generator) in float16 (a one-time rounding per leg, 2⁻¹¹ relative) and
  Adam's moments in bfloat16 (float16's range would flush small moments, ν ≈ g² < 6e-8, to zero and turn the next
  update into m / ε; bfloat16 keeps float32's range at 2⁻⁸ relative), stored as their raw 16 bits under a
  `bf16:` name so that any safetensors reads them; a leaf that float16 cannot hold stays float32; integer leaves
  (step, counts) exactly;
- a JSON metadata string (the relay's record: legs, images seen, machines, metrics);
- written atomically (a temporary file, then `os.replace`): a failed save never destroys the previous file.

`load_state` fills a template state (the trainer's freshly initialised one) by name, checks every name and shape,
and casts back to the template's dtypes; a file that does not fit raises `RelayStateError` naming what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

BF16_PREFIX = "bf16:"  # a stored name whose uint16 array holds the leaf's bfloat16 bits (Adam's moments)


class RelayStateError(ValueError):
    """A relay state file is missing, unreadable, or does not fit the model and optimizer of this run."""


def _key_name(key) -> str:
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def leaves_by_name(state: Any) -> dict[str, Any]:
    """{"params/level_0/…": leaf, "opt_state/0/count": leaf, "step": leaf} for every leaf of a state pytree."""
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    return {"/".join(_key_name(k) for k in path): leaf for path, leaf in flat}


def _is_moment(name: str) -> bool:
    return any(part in f"/{name}/" for part in ("/mu/", "/nu/"))


def _adam_state(moment: str) -> str:
    """'opt_state/0/mu/dense/kernel' → 'opt_state/0': the Adam state holding a moment (and its own `count`)."""
    path = f"/{moment}/"
    for part in ("/mu/", "/nu/"):
        if part in path:
            return path.split(part)[0].strip("/")
    return ""


def encode(state: Any, *, compact: bool = True, moments: bool = True) -> dict[str, np.ndarray]:
    """{name: array} of a state pytree, as `save_state` stores it (without `moments`: no Adam moments at all)."""
    arrays: dict[str, np.ndarray] = {}
    for name, leaf in leaves_by_name(jax.device_get(state)).items():
        value = np.asarray(leaf)
        if not moments and _is_moment(name):
            continue
        if compact and np.issubdtype(value.dtype, np.floating):
            if _is_moment(name):
                name, value = BF16_PREFIX + name, value.astype(jnp.bfloat16).view(np.uint16)
            elif np.all(np.isfinite(value.astype(np.float16)) == np.isfinite(value)):
                value = value.astype(np.float16)
        arrays[name] = np.ascontiguousarray(value)
    return arrays


def save_state(path: str | Path, state: Any, metadata: dict[str, Any], *, compact: bool = True,
               moments: bool = True) -> int:
    """Write `state` (any pytree of arrays) and `metadata` (JSON-able) to `path`; returns the file's bytes."""
    from nestgen.files import save_safetensors

    path = save_safetensors(path, encode(state, compact=compact, moments=moments), {"relay": json.dumps(metadata)})
    return path.stat().st_size


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata a state file was saved with (RelayStateError if the file is missing or not a state file)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "numpy") as handle:
            return json.loads((handle.metadata() or {})["relay"])
    except FileNotFoundError as error:
        raise RelayStateError(f"{path}: no relay state file") from error
    except (KeyError, OSError, ValueError, SafetensorError) as error:
        raise RelayStateError(f"{path} is not a relay state file ({error})") from error


def load_state(path: str | Path, template: Any) -> tuple[Any, dict[str, Any]]:
    """(the state saved in `path`, in the structure and dtypes of `template`; its metadata)."""
    from safetensors.numpy import load_file

    metadata = read_metadata(path)
    return decode(load_file(str(path)), template, str(path)), metadata


def decode(stored: dict[str, np.ndarray], template: Any, source: str = "the state") -> Any:
    """The state `encode` gave `stored`, in the structure and dtypes of `template`. A state saved without Adam's
    moments takes the template's (fresh) ones. Raises RelayStateError naming what does not fit."""
    values = {k.removeprefix(BF16_PREFIX): v.view(jnp.bfloat16) if k.startswith(BF16_PREFIX) else v
              for k, v in stored.items()}
    expected = leaves_by_name(template)
    if not any(_is_moment(name) for name in values):  # saved without moments: Adam starts afresh, its own step
        fresh = {name for name in expected if _is_moment(name)}  # count too (bias correction), not the schedule's
        fresh |= {f"{_adam_state(name)}/count".lstrip("/") for name in fresh}
        values |= {name: np.asarray(expected[name]) for name in fresh if name in expected}
    for name, leaf in expected.items():  # safetensors stores a scalar (a step count) with shape (1,)
        if name in values and np.shape(leaf) == () and values[name].shape == (1,):
            values[name] = values[name].reshape(())
    problems = [f"missing {name}" for name in sorted(expected.keys() - values.keys())]
    problems += [f"unexpected {name}" for name in sorted(values.keys() - expected.keys())]
    problems += [f"{name} has shape {values[name].shape}, the run needs {np.shape(leaf)}"
                 for name, leaf in expected.items() if name in values and values[name].shape != np.shape(leaf)]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")
        raise RelayStateError(f"{source} holds another model or optimizer: {shown}")
    treedef = jax.tree_util.tree_structure(template)
    leaves = [np.asarray(values[name], dtype=np.asarray(leaf).dtype if hasattr(leaf, "dtype") else None)
              for name, leaf in expected.items()]
    return jax.tree_util.tree_unflatten(treedef, leaves)
