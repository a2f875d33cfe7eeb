"""The GPU window's benchmark rows in one short call (README "The GPU window"): one JSON file, rewritten after
every row (most important rows first), so that a call cut short keeps every finished row.

  python3 scripts/benchmark.py window --out $OUT/benchmark.json --max-seconds 90      # on the H200
  python scripts/benchmark.py window --out b.json --dtype float32 --small             # the CPU check (tiny models)

Rows: classifier train step img/s and MFU for NesT-T 32×32 (plain and fused attention) and NesT-B 224; the GAN
(configs/gan_cifar10.py:h200 networks) train step img/s; generator sampling img/s at 32/64/128 px; the on-device
augmentation (full CIFAR recipe) img/s against NesT-T's train step; XLA's memory estimate per program and the
device's peak memory. MFU = 3 × forward FLOPs (XLA's count) × img/s over the datasheet peak of the device
(nestgen.benchmarks.timing.PEAK_FLOPS); no peak is known for CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from nestgen.release.rehearsal import ENV_VARIABLE

ROWS = ("classifier", "augmentation", "gan", "generator")


def classifier_row(name: str, batch: int, dtype: str, execution: str, min_seconds: float) -> dict:
    import jax

    from nestgen.benchmarks.classifier import EXECUTIONS, nestgen_steps
    from nestgen.benchmarks.timing import peak_flops, throughput
    from nestgen.models.registry import get_config

    steps = nestgen_steps(get_config(name), batch, dtype, EXECUTIONS[execution])
    rate = throughput(steps.train_step, batch, min_seconds=min_seconds)
    peak = peak_flops(jax.devices()[0].device_kind, dtype)
    achieved = 3 * steps.gflops_per_image * 1e9 * rate
    return {"row": "classifier train", "variant": name, "batch": batch, "dtype": dtype, "execution": execution,
            "images_per_second": round(rate, 1), "train_tflops_per_second": round(achieved / 1e12, 2),
            "mfu": round(achieved / peak, 4) if peak else None, "xla_memory_bytes": steps.train_memory_bytes}


def augment_row(batch: int, image_size: int, min_seconds: float) -> dict:
    import jax
    import numpy as np

    from nestgen.benchmarks.timing import throughput
    from nestgen.data.augment import AugmentConfig, augment_batch

    images = np.random.default_rng(0).integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8)
    images = jax.device_put(images)
    run = jax.jit(lambda key, x: augment_batch(key, x, recipe=AugmentConfig(), image_size=image_size,
                                               mean=(0.5,) * 3, std=(0.25,) * 3))
    counter = [0]

    def step():
        counter[0] += 1
        run(jax.random.key(counter[0]), images).block_until_ready()

    return {"row": "augmentation (full CIFAR recipe)", "batch": batch,
            "images_per_second": round(throughput(step, batch, min_seconds=min_seconds), 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py window", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=256, help="NesT-T, the GAN and the augmentation")
    parser.add_argument("--big-batch", type=int, default=128, help="NesT-B 224")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per row")
    parser.add_argument("--small", action="store_true", help="micro models and small batches: a CPU check")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS), help="which rows (default: all)")
    parser.add_argument("--max-seconds", type=float, default=0.0,
                        help="start no row after this many seconds (0: no limit); the JSON is complete anyway")
    args = parser.parse_args(argv)
    if ENV_VARIABLE in os.environ:  # scripts/rehearse_window.py: the window's rows at CPU size
        args.small, args.dtype = True, "float32"
        args.batch, args.big_batch = min(args.batch, 32), min(args.big_batch, 8)
        print(f"rehearsal ({ENV_VARIABLE}): the micro rows in float32 at batch {args.batch} and {args.big_batch}",
              file=sys.stderr)

    import jax

    from nestgen.benchmarks.generator import measure_sampling, measure_train_step
    from nestgen.benchmarks.timing import device_peak_memory_bytes, machine

    small = args.small
    tiny, big = ("nest_micro_32", "nest_micro_32") if small else ("nest_tiny_s16_32", "nest_base_s196_224")
    generators = ("nest_gen_micro_32",) if small else ("nest_gen_32", "nest_gen_64", "nest_gen_128")
    gan = ("nest_gen_micro_32_cond", "conv_disc_micro_32") if small else ("nest_gen_32_cond", "conv_disc_32")
    timing = {"min_seconds": args.min_seconds}
    started, rows, errors, skipped = time.perf_counter(), [], [], []

    def write() -> dict:  # after every row, atomically: a call cut short keeps every finished row
        train = next((r for r in rows if r.get("variant") == tiny and r.get("execution") == "plain"), None)
        augment = next((r for r in rows if r["row"].startswith("augmentation")), None)
        result = {"machine": machine(), "device_kind": jax.devices()[0].device_kind, "dtype": args.dtype,
                  "rows": rows, "augmentation_over_train_step":
                      round(augment["images_per_second"] / train["images_per_second"], 2) if train and augment
                      else None,
                  "device_peak_memory_bytes": device_peak_memory_bytes(), "errors": errors, "skipped": skipped,
                  "seconds": round(time.perf_counter() - started, 1)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.out.with_name(f".{args.out.name}.tmp")
        temporary.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(temporary, args.out)
        return result

    # the most important rows first: the GAN (the application's job), NesT-T's train step, the augmentation
    # against it, then the options and the larger models
    tasks = []
    if "gan" in args.rows:
        tasks.append(("gan", lambda: {"row": "GAN train step (D + G + EMA, lazy R1)",
                                      **measure_train_step(*gan, args.batch, timing, args.dtype)}))
    if "classifier" in args.rows:
        tasks.append((f"{tiny} plain", lambda: classifier_row(tiny, args.batch, args.dtype, "plain",
                                                              args.min_seconds)))
    if "augmentation" in args.rows:
        tasks.append(("augmentation", lambda: augment_row(args.batch, 32, args.min_seconds)))
    if "classifier" in args.rows:
        tasks.append((f"{tiny} fused", lambda: classifier_row(tiny, args.batch, args.dtype, "fused",
                                                              args.min_seconds)))
    for name in generators if "generator" in args.rows else ():
        tasks.append((name, lambda n=name: {"row": "generator sampling",
                                            **measure_sampling(n, args.batch, timing, args.dtype)}))
    if "classifier" in args.rows:
        tasks.append((big, lambda: classifier_row(big, args.big_batch, args.dtype, "plain", args.min_seconds)))
    for label, make in tasks:
        if args.max_seconds and time.perf_counter() - started > args.max_seconds:
            skipped.append(label)  # past the time box: leave the call time to return its files
            continue
        began = time.perf_counter()
        try:
            row = make()
            row["seconds"] = round(time.perf_counter() - began, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
        except Exception as error:  # one failing row (e.g. out of memory) must not lose the others
            errors.append(f"{label}: {type(error).__name__}: {str(error).splitlines()[0][:300]}")
            print(errors[-1], file=sys.stderr, flush=True)
        result = write()
    result = write()
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    return 1 if errors else 0
