"""Input pipeline throughput: augmented training images per second from the in-memory and streaming pipelines.

  python scripts/benchmark_data.py --data zip:../shared/data/cifar10-train.zip --batch 192 --steps 60
  python scripts/benchmark_data.py --batch 256 --against nest_tiny_s16_32 --dtype bfloat16   # on a GPU

The pipeline must feed faster than the train step consumes (target ≥ 3×). `--against VARIANT` measures that
classifier's train step (scripts/benchmark_classifier.py's, at the same batch, in `--dtype`, on the default
device) in this run and prints each pipeline's images/s over the train step's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from nestgen.runtime import keep_freed_memory


def _rate(batches, steps: int, batch: int) -> float:
    next(batches)  # build and warm up the pipeline
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return steps * batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="zip:../shared/data/cifar10-train.zip")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch", type=int, default=192)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--recipe", default="cifar", choices=["cifar", "imagenet", "none"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--against", metavar="VARIANT", help="a classifier variant whose train step to compare with")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--min-seconds", type=float, default=10.0, help="--against: seconds of train steps")
    args = parser.parse_args(argv)

    from nestgen.data.pipeline import stream_train_batches, train_batches
    from nestgen.data.sources import DataError, load_split, tf_dataset

    kwargs = dict(recipe=args.recipe, image_size=args.image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
    start = time.perf_counter()
    try:
        data = load_split(args.data, args.split)
    except (DataError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    load_seconds = time.perf_counter() - start
    common = dict(global_batch=args.batch, seed=0, start_step=0, num_steps=args.steps + 1, transform_kwargs=kwargs)
    in_memory = _rate(train_batches(data, **common), args.steps, args.batch)
    stream, n, _ = tf_dataset(args.data, args.split)
    streamed = _rate(stream_train_batches(stream, n, **common), args.steps, args.batch)
    result = {"data": data.description, "examples": len(data), "cpus": os.cpu_count(), "recipe": args.recipe,
              "batch": args.batch, "load_split_seconds": round(load_seconds, 2),
              "in_memory_images_per_second": round(in_memory, 1), "streaming_images_per_second": round(streamed, 1)}
    if args.against:
        import jax
        from benchmark_classifier import nestgen_steps

        from nestgen.evaluation.timing import throughput
        from nestgen.models.registry import get_config

        steps = nestgen_steps(get_config(args.against), args.batch, args.dtype)
        train = throughput(steps.train_step, args.batch, min_seconds=args.min_seconds)
        result |= {"train_step": {"variant": args.against, "dtype": args.dtype, "device": jax.devices()[0].device_kind,
                                  "images_per_second": round(train, 1)},
                   "in_memory_over_train_step": round(in_memory / train, 2),
                   "streaming_over_train_step": round(streamed / train, 2)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    raise SystemExit(main())
