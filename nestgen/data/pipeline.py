"""Training and evaluation batches as a pure function of (seed, step): exact resume, any number of hosts.

The order of step s is a stateless shuffle of the split seeded by (seed, epoch); example j of the global batch
is augmented with the seed (seed, s * global_batch + j). A host computes only its slice of the global batch,
so 1 device, 8 devices or 2 hosts see the same global batches with the same augmentations, and a run resumed
at step k produces exactly the batches a run that never stopped would have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from nestgen.data.sources import SplitData


@dataclasses.dataclass(frozen=True)
class HostSlice:
    """Which part of every global batch this process loads."""

    process_index: int = 0
    process_count: int = 1


def _tf():
    import tensorflow as tf

    from nestgen.data import augment  # noqa: F401  (hides GPUs from TensorFlow before first use)

    return tf


def train_batches(data: SplitData, *, global_batch: int, seed: int, start_step: int, num_steps: int,
                  transform_kwargs: dict[str, Any], host: HostSlice = HostSlice(),
                  prefetch: int = 2) -> Iterator[dict[str, np.ndarray]]:
    """Yield this host's part of global batches `start_step … num_steps-1` as numpy arrays.

    Each batch: {"images": float32 (B_host, S, S, 3) augmented and normalised, "labels": int32 (B_host,)}.
    """
    from nestgen.data.augment import train_transform

    tf = _tf()
    n = len(data.labels)
    if global_batch % host.process_count:
        raise ValueError(f"global batch {global_batch} is not divisible by {host.process_count} processes")
    if n < global_batch:
        raise ValueError(f"the training split has {n} examples, fewer than one global batch of {global_batch}")
    local = global_batch // host.process_count
    steps_per_epoch = n // global_batch
    images, labels = tf.constant(data.images), tf.constant(data.labels)

    def examples_of_step(step):
        epoch, position = step // steps_per_epoch, step % steps_per_epoch
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=epoch_seed)
        first = position * global_batch + host.process_index * local
        counters = step * global_batch + host.process_index * local + tf.range(local, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices((order[first:first + local], counters))

    def load(index, counter):
        image = train_transform(tf.gather(images, index), tf.stack([tf.constant(seed, tf.int64), counter]),
                                **transform_kwargs)
        return image, tf.gather(labels, index)

    ds = tf.data.Dataset.range(start_step, num_steps).flat_map(examples_of_step)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(local, drop_remainder=True).prefetch(prefetch)
    for batch_images, batch_labels in ds.as_numpy_iterator():
        yield {"images": batch_images, "labels": batch_labels}


def eval_batches(data: SplitData, *, batch_size: int, transform_kwargs: dict[str, Any],
                 host: HostSlice = HostSlice()) -> Iterator[dict[str, np.ndarray]]:
    """Every example of the split once, in order, in fixed-size batches; `mask` marks real (not padding) rows.

    The split is cut into global batches of `batch_size`; this host yields its slice of each (same count on
    every host, so collective steps line up).
    """
    from nestgen.data.augment import eval_transform

    tf = _tf()
    if batch_size % host.process_count:
        raise ValueError(f"eval batch {batch_size} is not divisible by {host.process_count} processes")
    local = batch_size // host.process_count
    n = len(data.labels)
    num_batches = -(-n // batch_size)
    padded = num_batches * batch_size
    index = np.arange(padded).reshape(num_batches, host.process_count, local)[:, host.process_index]  # (batches, local)
    mask = index < n
    index = np.where(mask, index, 0).reshape(-1)
    ds = tf.data.Dataset.from_tensor_slices(data.images[index]).map(
        lambda image: eval_transform(image, **transform_kwargs), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).batch(local).prefetch(2)
    labels, mask = data.labels[index].reshape(num_batches, local), mask.reshape(num_batches, local)
    for i, images in enumerate(ds.as_numpy_iterator()):
        yield {"images": images, "labels": labels[i], "mask": mask[i]}
