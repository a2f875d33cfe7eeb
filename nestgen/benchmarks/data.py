"""Input pipeline throughput: augmented training images per second, in memory and streamed, vs the train step.

  python scripts/benchmark.py data --data zip:../shared/data/cifar10-train.zip --batch 192 --steps 60
  python scripts/benchmark.py data --batch 256 --against nest_tiny_s16_32 --dtype bfloat16   # on a GPU

In memory (folders, zips: the TensorFlow-free path): numpy batches of the uint8 split (host) followed by the whole
augmentation recipe in JAX on the default device (`nestgen.data.augment.augment_batch`, jitted), timed together
until the augmented batch is ready. Streamed (`--streamed`, needs TensorFlow): tf.data reads, decodes and crops, the
device augments. The pipeline must feed faster than the train step consumes (target ≥ 3×). `--against VARIANT`
measures that classifier's train step (scripts/benchmark.py classifier's, at the same batch, in `--dtype`, on the
default device) in this run and prints each pipeline's images/s over the train step's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _rate(batches, augment, steps: int, batch: int) -> float:
    """Images/s of host batches augmented on the device, after one warm-up batch (which compiles)."""
    import jax

    def one(step):
        images = next(batches)["images"]
        return augment(jax.random.key(step), images).block_until_ready()

    one(0)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        one(step)
    return steps * batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="zip:../shared/data/cifar10-train.zip")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch", type=int, default=192)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--recipe", default="cifar", choices=["cifar", "imagenet", "none"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--streamed", action="store_true", help="also the tf.data stream (needs TensorFlow)")
    parser.add_argument("--against", metavar="VARIANT", help="a classifier variant whose train step to compare with")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--min-seconds", type=float, default=10.0, help="--against: seconds of train steps")
    args = parser.parse_args(argv)

    import jax

    from nestgen.data.augment import AugmentConfig, augment_batch
    from nestgen.data.pipeline import stream_train_batches, train_batches
    from nestgen.data.sources import DataError, load_split, tf_dataset

    start = time.perf_counter()
    try:
        data = load_split(args.data, args.split, image_size=args.image_size)
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    load_seconds = time.perf_counter() - start
    recipe = AugmentConfig(recipe=args.recipe)
    view = dict(recipe=recipe, image_size=args.image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
    common = dict(global_batch=args.batch, seed=0, start_step=0, num_steps=args.steps + 1)
    in_memory = _rate(train_batches(data, **common), jax.jit(lambda k, x: augment_batch(k, x, **view)), args.steps,
                      args.batch)
    result = {"data": data.description, "examples": len(data), "cpus": os.cpu_count(), "recipe": args.recipe,
              "batch": args.batch, "device": jax.devices()[0].device_kind, "load_split_seconds": round(load_seconds, 2),
              "in_memory_images_per_second": round(in_memory, 1)}
    if args.streamed:
        stream, n, _ = tf_dataset(args.data, args.split)
        streamed = _rate(stream_train_batches(stream, n, **common, image_size=args.image_size, recipe=args.recipe),
                         jax.jit(lambda k, x: augment_batch(k, x, **view, crop=False)), args.steps, args.batch)
        result["streaming_images_per_second"] = round(streamed, 1)
    if args.against:
        from nestgen.benchmarks.classifier import nestgen_steps
        from nestgen.benchmarks.timing import throughput
        from nestgen.models.registry import get_config

        steps = nestgen_steps(get_config(args.against), args.batch, args.dtype)
        train = throughput(steps.train_step, args.batch, min_seconds=args.min_seconds)
        result |= {"train_step": {"variant": args.against, "dtype": args.dtype, "device": jax.devices()[0].device_kind,
                                  "images_per_second": round(train, 1)},
                   "in_memory_over_train_step": round(in_memory / train, 2)}
        if args.streamed:
            result["streaming_over_train_step"] = round(result["streaming_images_per_second"] / train, 2)
    print(json.dumps(result))
    return 0
