"""Data parallelism with jax.sharding: one 'data' mesh axis over every device of every host.

Parameters and optimizer state are replicated; batches are split along the batch axis. Each host loads only its
slice of the global batch and `global_batch_array` assembles the global jax.Array from the hosts' slices.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Join a multi-host run when a coordinator is given (arguments or NESTGEN_COORDINATOR / _NUM_PROCESSES /
    _PROCESS_ID); on a single host this does nothing. CPU-only runs use gloo collectives."""
    coordinator = coordinator or os.environ.get("NESTGEN_COORDINATOR")
    if not coordinator:
        return
    num_processes = num_processes or int(os.environ["NESTGEN_NUM_PROCESSES"])
    process_id = process_id if process_id is not None else int(os.environ["NESTGEN_PROCESS_ID"])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only affects CPU devices
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)


def make_mesh() -> Mesh:
    """A 1-D mesh over all devices; Auto axes let XLA propagate the batch sharding through the model."""
    return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def global_batch_array(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This host's rows of a global batch → global arrays sharded over the data axis."""
    sharding = batch_sharded(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def check_batch_divisible(global_batch: int, what: str = "global batch") -> None:
    devices = jax.device_count()
    if global_batch % devices:
        raise ValueError(f"{what} {global_batch} is not divisible by the {devices} devices; choose a multiple of "
                         f"{devices} (config: global_batch)")
