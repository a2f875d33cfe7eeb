"""How well and how fast the generator's projection reconstructs images: its own samples and real CIFAR-10 images.

  python scripts/benchmark.py projection [--checkpoint DIR] [--num 16] [--steps N] [--real zip-or-folder]

Samples: seeds 1000 … 1000 + num - 1 of the generator at ψ = 1, class i mod num_classes, projected with their true
class (their true w is known, so a low error is reachable). Real: the first num test images of the CIFAR-10 archive
taken round-robin over its classes (`test/<class>/<NNNN>.jpg` inside the zip or folder), projected with their true
class and also with no class (the projector picks one). Errors are per image on [0, 255] pixels, then averaged.
Compile time is the Projector's warm_up; seconds per projection are measured after it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

import numpy as np

from nestgen.shipped import REPOSITORY  # benchmarks run in a checkout

REAL = REPOSITORY.parent / "shared" / "data" / "cifar10-test.zip"


def real_images(source: Path, num: int, class_names: list[str], size: int) -> tuple[np.ndarray, list[int]]:
    """The first `num` images round-robin over classes: uint8 (num, size, size, 3) and their class indices."""
    from nestgen.data.images import decode_image

    names = (zipfile.ZipFile(source).namelist() if source.suffix == ".zip"
             else [str(p.relative_to(source)) for p in source.rglob("*.jpg")])
    by_class = {c: sorted(n for n in names if n.split("/")[-2:-1] == [c]) for c in class_names}
    picks = [(i % len(class_names), by_class[class_names[i % len(class_names)]][i // len(class_names)])
             for i in range(num)]
    if source.suffix == ".zip":
        with zipfile.ZipFile(source) as archive:
            images = [decode_image(archive.read(n), image_size=size, name=n) for _, n in picks]
    else:
        images = [decode_image(source / n, image_size=size) for _, n in picks]
    return np.stack(images), [c for c, _ in picks]  # (num, size, size, 3)


def summary(projections) -> dict:
    return {key: float(np.mean([getattr(p, key) for p in projections])) for key in ("mse", "psnr", "mae", "seconds")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py projection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="generator checkpoint directory (default: the shipped generator)")
    parser.add_argument("--num", type=int, default=16, help="images of each kind (default 16)")
    parser.add_argument("--steps", type=int, help="optimisation steps (default: the projector's DEFAULT_STEPS)")
    parser.add_argument("--real", default=str(REAL), help=f"CIFAR-10 test zip or folder (default {REAL})")
    args = parser.parse_args(argv)

    from nestgen.benchmarks.timing import machine
    from nestgen.inference.projection import DEFAULT_STEPS, Projector
    from nestgen.inference.sampling import GeneratorSampler
    from nestgen.shipped import default_generator

    checkpoint = args.checkpoint or default_generator()
    sampler = GeneratorSampler.from_directory(checkpoint)
    projector = Projector(sampler, steps=args.steps or DEFAULT_STEPS)
    compile_seconds = projector.warm_up()
    size, conditional = sampler.config.image_size, sampler.config.conditional

    seeds = list(range(1000, 1000 + args.num))
    labels = [i % sampler.config.num_classes if conditional else None for i in range(args.num)]
    samples = np.concatenate([sampler.sample([s], c) for s, c in zip(seeds, labels, strict=True)])  # (N, H, W, 3)
    result = {"checkpoint": str(checkpoint), "steps": projector.steps, "chunk": projector.chunk, "num": args.num,
              "compile_seconds": compile_seconds}
    result["samples"] = summary([projector.project(x, c) for x, c in zip(samples, labels, strict=True)])
    if Path(args.real).exists():
        real, classes = real_images(Path(args.real), args.num, sampler.class_names, size)
        result["real_true_class"] = summary([projector.project(x, c if conditional else None)
                                             for x, c in zip(real, classes, strict=True)])
        if conditional:
            chosen = [projector.project(x) for x in real]
            result["real_any_class"] = summary(chosen)
            result["real_any_class"]["chosen_is_true"] = float(np.mean(
                [p.class_index == c for p, c in zip(chosen, classes, strict=True)]))
    result["machine"] = machine()
    result["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(result))
    return 0
