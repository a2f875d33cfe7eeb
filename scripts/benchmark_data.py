"""Input pipeline throughput: augmented training images per second from the in-memory and streaming pipelines.

  python scripts/benchmark_data.py --data zip:../shared/data/cifar10-train.zip --batch 192 --steps 60

Compare with the train step's images/s (scripts/benchmark_classifier.py): the pipeline must feed faster.
"""

from __future__ import annotations

import argparse
import json
import os
import time


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
    args = parser.parse_args(argv)

    from nestgen.data.pipeline import stream_train_batches, train_batches
    from nestgen.data.sources import load_split, tf_dataset

    kwargs = dict(recipe=args.recipe, image_size=args.image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
    start = time.perf_counter()
    data = load_split(args.data, args.split)
    load_seconds = time.perf_counter() - start
    common = dict(global_batch=args.batch, seed=0, start_step=0, num_steps=args.steps + 1, transform_kwargs=kwargs)
    in_memory = _rate(train_batches(data, **common), args.steps, args.batch)
    stream, n, _ = tf_dataset(args.data, args.split)
    streamed = _rate(stream_train_batches(stream, n, **common), args.steps, args.batch)
    print(json.dumps({"data": data.description, "examples": len(data), "cpus": os.cpu_count(),
                      "recipe": args.recipe, "batch": args.batch, "load_split_seconds": round(load_seconds, 2),
                      "in_memory_images_per_second": round(in_memory, 1),
                      "streaming_images_per_second": round(streamed, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
