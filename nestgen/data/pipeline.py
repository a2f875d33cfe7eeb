"""Training and evaluation batches as a pure function of (seed, step): exact resume, any number of hosts.

In-memory splits (`SplitData`, decoded once with Pillow) are batched with numpy alone: the order of step s is a
permutation of the split seeded by (seed, epoch), and a host takes only its slice of every global batch. Batches
carry uint8 images; the augmentation runs on the device inside the jitted train step (`nestgen.data.augment`),
seeded by the step, so 1 device, 8 devices or 2 hosts see the same global batches with the same augmentations,
and a run resumed at step k produces exactly the batches a run that never stopped would have. No TensorFlow.

Splits too large for memory (ImageNet via tfds) are streamed with tf.data, which reads, decodes and crops them
(`nestgen.data.streaming_crops`) and hands uint8 crops to the same device augmentation.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence

import numpy as np

from nestgen.data.sources import SplitData


@dataclasses.dataclass(frozen=True)
class HostSlice:
    """Which part of every global batch this process loads."""

    process_index: int = 0
    process_count: int = 1


def _local_batch(global_batch: int, host: HostSlice, what: str = "global batch") -> int:
    if global_batch % host.process_count:
        raise ValueError(f"{what} {global_batch} is not divisible by {host.process_count} processes")
    return global_batch // host.process_count


@functools.lru_cache(maxsize=2)
def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The example order of one epoch: a permutation of range(num_examples) seeded by (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def batch_indices(num_examples: int, *, global_batch: int, seed: int, step: int,
                  host: HostSlice = HostSlice()) -> np.ndarray:
    """The split indices of this host's rows of global batch `step` (int64 (B_host,)); the last partial batch of
    an epoch is dropped, so every step of an epoch holds `global_batch` distinct examples."""
    local = _local_batch(global_batch, host)
    steps_per_epoch = num_examples // global_batch
    if steps_per_epoch < 1:
        raise ValueError(f"the training split has {num_examples} examples, fewer than one global batch of "
                         f"{global_batch}")
    epoch, position = divmod(step, steps_per_epoch)
    first = position * global_batch + host.process_index * local
    return epoch_order(num_examples, seed, epoch)[first:first + local]


def train_batches(data: SplitData, *, global_batch: int, seed: int, start_step: int, num_steps: int,
                  host: HostSlice = HostSlice()) -> Iterator[dict[str, np.ndarray]]:
    """Yield this host's part of global batches `start_step … num_steps-1`.

    Each batch: {"images": uint8 (B_host, H, W, 3) as stored, "labels": int32 (B_host,)}; augment on the device.
    """
    _local_batch(global_batch, host)
    for step in range(start_step, num_steps):
        index = batch_indices(len(data), global_batch=global_batch, seed=seed, step=step, host=host)
        yield {"images": data.images[index], "labels": data.labels[index]}


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 (..., 3) → float32 (x/255 - mean) / std, in numpy (the evaluation view on the host)."""
    x = images.astype(np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def center(images: np.ndarray, image_size: int) -> np.ndarray:
    """The central image_size×image_size window of (B, H, W, 3) images that are at least that large."""
    h, w = images.shape[1:3]
    if h < image_size or w < image_size:
        raise ValueError(f"images of {w}x{h} are smaller than the model's {image_size}x{image_size}")
    top, left = (h - image_size) // 2, (w - image_size) // 2
    return images[:, top:top + image_size, left:left + image_size]  # (B, S, S, 3)


def eval_batches(data: SplitData, *, batch_size: int, image_size: int, mean: Sequence[float], std: Sequence[float],
                 host: HostSlice = HostSlice()) -> Iterator[dict[str, np.ndarray]]:
    """Every example of the split once, in order, in fixed-size batches; `mask` marks real (not padding) rows.

    Images (already resized so that the evaluation view is their centre, see `sources.load_split(image_size=)`)
    are centre-cropped to image_size and normalised: {"images": float32 (B_host, S, S, 3), "labels", "mask"}.
    The split is cut into global batches of `batch_size`; this host yields its slice of each (same count on
    every host, so collective steps line up).
    """
    local = _local_batch(batch_size, host, "eval batch")
    n = len(data.labels)
    num_batches = -(-n // batch_size)
    index = np.arange(num_batches * batch_size).reshape(num_batches, host.process_count, local)
    index = index[:, host.process_index]  # (batches, local)
    mask = index < n
    index = np.where(mask, index, 0)
    for rows, real in zip(index, mask, strict=True):
        images = normalize(center(data.images[rows], image_size), mean, std)  # (local, S, S, 3)
        yield {"images": images, "labels": data.labels[rows], "mask": real}


def _tf():
    from nestgen.data.sources import _tensorflow

    return _tensorflow()[0]


def stream_train_batches(dataset, num_examples: int, *, global_batch: int, seed: int, start_step: int,
                         num_steps: int, image_size: int, recipe: str, crop_scale=(0.08, 1.0),
                         crop_ratio=(3 / 4, 4 / 3), host: HostSlice = HostSlice(), shuffle_buffer: int = 10_000,
                         prefetch: int = 2) -> Iterator[dict[str, np.ndarray]]:
    """Training batches streamed from a split too large for memory (`sources.tf_dataset`), e.g. ImageNet.

    tf.data reads, decodes and crops (recipe "imagenet": the random-resized crop + flip, seeded per example;
    otherwise the centre view at image_size); the rest of the augmentation runs on the device. Yields
    {"images": uint8 (B_host, S, S, 3), "labels": int32 (B_host,)}. Each host reads its shard of the stream;
    every epoch is shuffled through a buffer seeded by (seed, epoch), and example i of an epoch is cropped with the
    seed (seed, epoch * num_examples + i). Deterministic for a seed and a number of hosts. Resuming in the middle
    of an epoch re-reads (but does not crop) that epoch up to the resume point: exact, though slower.
    """
    from nestgen.data.streaming_crops import center_crop, inception_crop

    tf = _tf()
    local = _local_batch(global_batch, host)
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
            if recipe == "imagenet":
                image = inception_crop(example["image"], tf.stack([tf.constant(seed, tf.int64), counter]),
                                       image_size, crop_scale, crop_ratio)
            else:
                image = center_crop(example["image"], image_size, 1.0)
            return image, example["label"]

        examples = examples.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return examples.batch(local, drop_remainder=True).take(steps_per_epoch - skipped)

    total_epochs = -(-num_steps // steps_per_epoch)
    ds = tf.data.Dataset.range(start_epoch, total_epochs).flat_map(epoch_batches)
    ds = ds.take(num_steps - start_step).prefetch(prefetch)
    for batch_images, batch_labels in ds.as_numpy_iterator():
        yield {"images": batch_images, "labels": batch_labels}


def stream_eval_batches(dataset, num_examples: int, *, batch_size: int, image_size: int, crop_pct: float,
                        mean: Sequence[float], std: Sequence[float], host: HostSlice = HostSlice()
                        ) -> Iterator[dict[str, np.ndarray]]:
    """Every example of a streamed split once (centre view, normalised on the host); each host yields the same
    number of padded, masked batches."""
    from nestgen.data.streaming_crops import center_crop

    tf = _tf()
    local = _local_batch(batch_size, host, "eval batch")
    per_host = -(-num_examples // host.process_count)
    total = -(-per_host // local) * local
    real = dataset.shard(host.process_count, host.process_index).map(
        lambda example: (center_crop(example["image"], image_size, crop_pct), example["label"], True),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    padding = tf.data.Dataset.from_tensors((tf.zeros((image_size, image_size, 3), tf.uint8),
                                            tf.constant(0, tf.int32), False)).repeat()
    ds = real.concatenate(padding).take(total).batch(local).prefetch(2)
    for images, labels, mask in ds.as_numpy_iterator():
        yield {"images": normalize(images, mean, std), "labels": labels, "mask": mask}
