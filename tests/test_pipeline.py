"""Batches are a function of (seed, step): resumable, split across hosts without changing the global batch.
In-memory batches are uint8 straight from the split (augmented later, on the device); no TensorFlow."""

import itertools

import numpy as np
import pytest

from nestgen.data.pipeline import HostSlice, eval_batches, stream_eval_batches, stream_train_batches, train_batches
from nestgen.data.sources import SplitData

STREAM = dict(image_size=8, recipe="cifar")
EVAL = dict(image_size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def split() -> SplitData:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    return SplitData(images, np.arange(40, dtype=np.int32) % 4, ["a", "b", "c", "d"], "synthetic")


def _take(iterator, n):
    return list(itertools.islice(iterator, n))


def test_resuming_at_step_k_gives_the_same_batches(split):
    full = _take(train_batches(split, global_batch=8, seed=3, start_step=0, num_steps=12), 12)
    resumed = _take(train_batches(split, global_batch=8, seed=3, start_step=7, num_steps=12,
                                  ), 5)
    for a, b in zip(full[7:], resumed, strict=True):
        np.testing.assert_array_equal(a["images"], b["images"])
        np.testing.assert_array_equal(a["labels"], b["labels"])
    assert full[0]["images"].dtype == np.uint8  # the stored pixels: augmentation happens on the device
    # an epoch (5 steps of 8) visits every example once; the next epoch is a different order
    epoch = np.concatenate([b["labels"] for b in full[:5]])
    assert sorted(epoch.tolist()) == sorted(split.labels.tolist())
    assert not np.array_equal(full[0]["labels"], full[5]["labels"]) or not np.array_equal(full[0]["images"],
                                                                                          full[5]["images"])


def test_two_hosts_load_the_two_halves_of_the_same_global_batch(split):
    one = _take(train_batches(split, global_batch=8, seed=1, start_step=2, num_steps=4), 2)
    halves = [_take(train_batches(split, global_batch=8, seed=1, start_step=2, num_steps=4,
                                  host=HostSlice(i, 2)), 2) for i in range(2)]
    for step in range(2):
        np.testing.assert_array_equal(np.concatenate([h[step]["images"] for h in halves]), one[step]["images"])


def test_eval_batches_cover_every_example_once(split):
    batches = list(eval_batches(split, batch_size=16, **EVAL))
    assert len(batches) == 3 and all(b["images"].shape == (16, 8, 8, 3) for b in batches)
    np.testing.assert_allclose(batches[0]["images"][0], (split.images[0] / 255.0 - 0.5) / 0.25, atol=1e-5)
    centre = list(eval_batches(split, batch_size=16, image_size=4, mean=(0.0,) * 3, std=(1.0,) * 3))
    np.testing.assert_allclose(centre[0]["images"][1], split.images[1, 2:6, 2:6] / 255.0, atol=1e-6)
    labels = np.concatenate([b["labels"][b["mask"]] for b in batches])
    np.testing.assert_array_equal(labels, split.labels)


def _stream(split):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices({"image": split.images, "label": split.labels})
    return ds, len(split.labels)


def test_streamed_batches_resume_exactly_and_evaluate_everything(split):
    ds, n = _stream(split)
    common = dict(global_batch=8, seed=5, num_steps=12, shuffle_buffer=16, **STREAM)
    full = list(stream_train_batches(ds, n, start_step=0, **common))
    resumed = list(stream_train_batches(ds, n, start_step=7, **common))
    assert len(full) == 12 and len(resumed) == 5
    for a, b in zip(full[7:], resumed, strict=True):
        np.testing.assert_array_equal(a["images"], b["images"])
    assert full[0]["images"].dtype == np.uint8 and full[0]["images"].shape == (8, 8, 8, 3)
    hosts = [list(stream_eval_batches(ds, n, batch_size=16, crop_pct=1.0, **EVAL, host=HostSlice(i, 2)))
             for i in range(2)]
    assert len(hosts[0]) == len(hosts[1])  # collective eval steps line up
    seen = np.concatenate([b["labels"][b["mask"]] for h in hosts for b in h])
    assert sorted(seen.tolist()) == sorted(split.labels.tolist())
