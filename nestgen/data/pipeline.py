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


def stream_train_batches(dataset, num_examples: int, *, global_batch: int, seed: int, start_step: int,
                         num_steps: int, transform_kwargs: dict[str, Any], host: HostSlice = HostSlice(),
                         shuffle_buffer: int = 10_000, prefetch: int = 2) -> Iterator[dict[str, np.ndarray]]:
    """Training batches streamed from a split too large for memory (`sources.tf_dataset`), e.g. ImageNet.

    Each host reads its shard of the stream; every epoch is shuffled through a buffer seeded by (seed, epoch),
    and example i of an epoch is augmented with the seed (seed, epoch * num_examples + i). Deterministic for a
    seed and a number of hosts. Resuming in the middle of an epoch re-reads (but does not augment) that epoch up
    to the resume point: exact, though slower than the in-memory pipeline.
    """
    from nestgen.data.augment import train_transform

    tf = _tf()
    if global_batch % host.process_count:
        raise ValueError(f"global batch {global_batch} is not divisible by {host.process_count} processes")
    local = global_batch // host.process_count
    steps_per_epoch = num_examples // global_batch
    if steps_per_epoch < 1:
        raise ValueError(f"the training split has {num_examples} examples, fewer than one global batch")
    start_epoch, skip_batches = divmod(start_step, steps_per_epoch)
    shard = dataset.shard(host.process_count, host.process_index)

    def epoch_batches(epoch):
        examples = shard.shuffle(shuffle_buffer, seed=seed * 1_000_003 + epoch, reshuffle_each_iteration=False)
        skipped = tf.where(epoch == start_epoch, tf.constant(skip_batches, tf.int64), tf.constant(0, tf.int64))
        examples = examples.enumerate().skip(skipped * local)

        def load(i, example):
            counter = epoch * num_examples + i * host.process_count + host.process_index
            image = train_transform(example["image"], tf.stack([tf.constant(seed, tf.int64), counter]),
                                    **transform_kwargs)
            return image, example["label"]

        examples = examples.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return examples.batch(local, drop_remainder=True).take(steps_per_epoch - skipped)

    total_epochs = -(-num_steps // steps_per_epoch)
    ds = tf.data.Dataset.range(start_epoch, total_epochs).flat_map(epoch_batches)
    ds = ds.take(num_steps - start_step).prefetch(prefetch)
    for batch_images, batch_labels in ds.as_numpy_iterator():
        yield {"images": batch_images, "labels": batch_labels}


def stream_eval_batches(dataset, num_examples: int, *, batch_size: int, transform_kwargs: dict[str, Any],
                        host: HostSlice = HostSlice()) -> Iterator[dict[str, np.ndarray]]:
    """Every example of a streamed split once; each host yields the same number of padded, masked batches."""
    from nestgen.data.augment import eval_transform

    tf = _tf()
    local = batch_size // host.process_count
    per_host = -(-num_examples // host.process_count)
    total = -(-per_host // local) * local
    real = dataset.shard(host.process_count, host.process_index).map(
        lambda example: (eval_transform(example["image"], **transform_kwargs), example["label"], True),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    size = int(transform_kwargs["image_size"])
    padding = tf.data.Dataset.from_tensors((tf.zeros((size, size, 3), tf.float32), tf.constant(0, tf.int32),
                                            False)).repeat()
    ds = real.concatenate(padding).take(total).batch(local).prefetch(2)
    for images, labels, mask in ds.as_numpy_iterator():
        yield {"images": images, "labels": labels, "mask": mask}
