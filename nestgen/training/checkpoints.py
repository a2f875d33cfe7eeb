"""Orbax training checkpoints: asynchronous saves, keep the last k and the best, exact resume.

A checkpoint holds the whole train state (step, params, optimizer state); the data order and rngs are functions
of the step, so restoring the state is enough to continue exactly. Saves are atomic (orbax writes a temporary
directory and renames it), so a failed or interrupted save never destroys the previous checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp


class TrainCheckpoints:
    def __init__(self, directory: str | Path, *, keep: int = 3, best_metric: str | None = None,
                 best_mode: str = "max", asynchronous: bool = True):
        policies = [pp.LatestN(keep)]
        if best_metric:
            policies.append(pp.BestN(get_metric_fn=lambda m: m[best_metric], reverse=best_mode == "min", n=1,
                                     keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(preservation_policy=pp.AnyPreservationPolicy(policies),
                                               enable_async_checkpointing=asynchronous, create=True)
        self.directory = Path(directory).absolute()
        self.best_metric = best_metric
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, metrics: dict[str, float] | None = None) -> None:
        """Start an asynchronous save of `state` at `step` (with metrics for choosing the best)."""
        self._manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)

    def restore(self, step: int, target: Any) -> Any:
        """Restore into the structure, shapes and shardings of `target` (a state or its abstract version)."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
