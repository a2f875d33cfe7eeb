"""What a training run is (`WORKDIR/run.json`), and what resuming it may change.

A new run writes run.json before its first step: the trainer, the model config(s), the training data (spec,
split, limit, number of examples, class names), the global batch, the seed, the image size and nestgen's recipe
(augmentation, mixing, loss). A resumed run (a checkpoint exists) compares itself with that record before any
checkpoint is restored: a change to a field the trainer does not allow is refused with one `RunMismatch` line
that names every changed field, old → new; allowed changes are logged in one line and recorded. A workdir from
before run.json existed resumes unchecked and gets its run.json then. Only process 0 writes or logs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

RUN_FILE = "run.json"


class RunMismatch(ValueError):
    """The workdir holds a run that differs from this one in something a resume may not change."""


def data_record(spec: str, split: str, limit: int | None, num_examples: int, class_names: Sequence[str]):
    """The training data as run.json records it (the spec with its path made absolute: the same data from
    another working directory is the same data)."""
    from nestgen.data.sources import parse_data_spec

    parsed = parse_data_spec(spec)
    return {"spec": f"{parsed.kind}:{parsed.target}", "split": split, "limit": limit,
            "num_examples": int(num_examples), "class_names": list(class_names)}


def changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """{dotted field: (old, new)} for every field whose value differs (dicts are compared field by field)."""
    out: dict[str, tuple[Any, Any]] = {}
    for key in [*old, *(k for k in new if k not in old)]:
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(changes(a, b, f"{name}."))
        elif a != b:
            out[name] = (a, b)
    return out


def _show(value: Any, limit: int = 60) -> str:
    text = "(none)" if value is None else json.dumps(value, ensure_ascii=False)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…" + (f" ({len(value)} items)" if isinstance(value, list) else "")


def describe(diff: dict[str, tuple[Any, Any]]) -> str:
    """'model.dims [32, 64] → [16, 64]; seed 0 → 1': one line."""
    return "; ".join(f"{name} {_show(a)} → {_show(b)}" for name, (a, b) in diff.items())


def _normal(record: dict[str, Any]) -> dict[str, Any]:
    """The record as it reads back from JSON (tuples become lists), so that old and new compare alike."""
    return json.loads(json.dumps(record, default=str))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def settle(workdir: str | Path, record: dict[str, Any], *, resuming: bool, may_change: Sequence[str] = (),
           log: Callable[[str], None] = _log) -> dict[str, tuple[Any, Any]]:
    """Check `record` against WORKDIR/run.json when resuming (RunMismatch for a change outside the top-level
    fields `may_change`), then write it; returns the allowed changes (logged in one line)."""
    path = Path(workdir) / RUN_FILE
    record = _normal(record)
    allowed: dict[str, tuple[Any, Any]] = {}
    if resuming and path.exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise RunMismatch(f"{path} cannot be read ({error}): restore it, or delete it to resume this workdir "
                              "unchecked") from error
        diff = changes(previous, record)
        refused = {k: v for k, v in diff.items() if k.split(".")[0] not in may_change}
        if refused:
            may = " and ".join("the recipe" if name == "recipe" else name for name in may_change) or "nothing"
            raise RunMismatch(f"{workdir} holds another run: {describe(refused)}; a resume may change only {may}: "
                              f"use a new --workdir, or put the old values back (they are in {path})")
        allowed = {k: v for k, v in diff.items() if k not in refused}
        if allowed and jax.process_index() == 0:
            log(f"resuming {workdir} with {describe(allowed)}")
    elif resuming and jax.process_index() == 0:
        log(f"{workdir} has checkpoints but no {RUN_FILE} (a run from an older nestgen): resuming unchecked, "
            f"recording this run's settings in {path}")
    if jax.process_index() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{RUN_FILE}.tmp")
        lines = (f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in record.items())
        temporary.write_text("{\n" + ",\n".join(lines) + "\n}\n")  # a field a line
        os.replace(temporary, path)  # atomic: a crash never leaves half a record
    return allowed
