"""Top-1, top-5 and cross-entropy of a classifier over a whole split, data parallel over all devices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nestgen.data.pipeline import HostSlice, eval_batches
from nestgen.data.sources import SplitData, load_split
from nestgen.sharding import global_batch_array, make_mesh, replicate, replicated


def make_eval_step(model):
    """Sums over one batch (padding rows masked out): examples, top-1 hits, top-5 hits, loss."""

    def step(params, batch):
        logits, _ = model.apply({"params": params}, batch["images"])
        labels, mask = batch["labels"], batch["mask"].astype(jnp.float32)
        k = min(5, logits.shape[-1])
        top_k = jax.lax.top_k(logits, k)[1]  # (B, k)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return {"count": mask.sum(), "top1": ((top_k[:, 0] == labels) * mask).sum(),
                "top5": ((top_k == labels[:, None]).any(axis=-1) * mask).sum(), "loss": (loss * mask).sum()}

    return step


def evaluate_batches(eval_step, params: Any, batches: Iterable[dict[str, np.ndarray]], mesh) -> dict[str, float]:
    """{"top1", "top5", "loss", "count"} summed over host-local `batches` (with masks) and normalised."""
    params = replicate(params, mesh)
    totals = {"count": 0.0, "top1": 0.0, "top5": 0.0, "loss": 0.0}
    for batch in batches:
        sums = jax.device_get(eval_step(params, global_batch_array(batch, mesh)))
        for key in totals:
            totals[key] += float(np.asarray(sums[key]))
    count = max(totals["count"], 1.0)
    return {"top1": totals["top1"] / count, "top5": totals["top5"] / count, "loss": totals["loss"] / count,
            "count": totals["count"]}


def evaluate_classifier(model, params: Any, data: SplitData, *, batch_size: int, image_size: int,
                        mean: tuple[float, ...], std: tuple[float, ...], mesh=None, eval_step=None) -> dict[str, float]:
    """Accuracy of `model` on every example of an in-memory split (accuracies in [0, 1]); the images' centre
    image_size view, normalised with mean/std (`pipeline.eval_batches`)."""
    mesh = mesh or make_mesh()
    eval_step = eval_step or jax.jit(make_eval_step(model), out_shardings=replicated(mesh))
    host = HostSlice(jax.process_index(), jax.process_count())
    batches = eval_batches(data, batch_size=batch_size, image_size=image_size, mean=mean, std=std, host=host)
    return evaluate_batches(eval_step, params, batches, mesh)


def evaluate_checkpoint(checkpoint, spec: str, split: str, *, batch_size: int = 250, data_dir=None, cache_dir=None,
                        limit: int | None = None) -> dict[str, Any]:
    """Accuracy of a loaded nestgen checkpoint (trained or converted) on a data split, with its own preprocessing:
    every image is decoded as inference decodes it, resized (shorter side) to image_size / crop_pct and its
    centre image_size×image_size view taken."""
    pre = checkpoint.preprocess
    size = int(pre["image_size"])
    data = load_split(spec, split, data_dir=data_dir, cache_dir=cache_dir, limit=limit,
                      image_size=max(size, int(round(size / float(pre.get("crop_pct", 1.0))))))
    data = data.with_classes(checkpoint.class_names)  # labels matched to the model's classes by name
    devices = jax.device_count()
    batch_size = max(devices, batch_size // devices * devices)
    result = evaluate_classifier(checkpoint.build(), checkpoint.params, data, batch_size=batch_size, image_size=size,
                                 mean=tuple(pre["mean"]), std=tuple(pre["std"]))
    return {**result, "data": data.description}
