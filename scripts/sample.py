"""Sample a trained NesT generator: image grids, single images, and latent interpolations as GIFs.

  python scripts/sample.py --checkpoint DIR --num 64 --seed 0 --out grid.png               # one grid
  python scripts/sample.py --checkpoint DIR --num 16 --class horse --truncation 0.7 --out samples/
  python scripts/sample.py --checkpoint DIR --interpolate 3 7 --frames 16 --out walk.gif

Image k uses seed `--seed + k`; seeds are whole numbers from 0 to 2**32 - 1. The same seed, class and truncation
give the same image, bit for bit, on a machine. --out ending in .png writes one grid; a directory gets one PNG per
seed plus grid.png. Without --class a class-conditional generator draws each image's class from its seed. Without
--checkpoint the shipped CIFAR-10 generator is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="generator checkpoint directory (default: the shipped generator)")
    parser.add_argument("--num", type=int, default=64, help="number of images (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first image")
    parser.add_argument("--class", dest="class_name", help="class name or index (class-conditional generators)")
    parser.add_argument("--truncation", type=float, default=1.0, help="ψ in (0, 1]: pull w toward its mean")
    parser.add_argument("--columns", type=int, help="grid columns (default: about square)")
    parser.add_argument("--interpolate", type=int, nargs=2, metavar=("SEED_A", "SEED_B"),
                        help="write an animated GIF walking in w space from SEED_A to SEED_B")
    parser.add_argument("--frames", type=int, default=16, help="interpolation frames (default 16)")
    parser.add_argument("--scale", type=int, default=4, help="GIF enlargement factor (default 4)")
    parser.add_argument("--out", required=True, help="grid.png, a directory, or walk.gif with --interpolate")
    args = parser.parse_args(argv)
    if args.num <= 0:
        parser.error(f"--num must be a positive number of images, got {args.num}")
    if not 0.0 < args.truncation <= 1.0:
        parser.error(f"--truncation must be in (0, 1] (1 = no truncation), got {args.truncation}")
    if args.interpolate and args.frames < 2:
        parser.error(f"--frames must be at least 2, got {args.frames}")
    if args.interpolate and Path(args.out).suffix.lower() != ".gif":
        parser.error("with --interpolate, --out must name a .gif file")

    from nestgen.convert.checkpoint import CheckpointError
    from nestgen.evaluation.sampling import GeneratorSampler, check_seeds, grid, save_gif, save_png
    from nestgen.shipped import default_generator

    try:
        for seed in args.interpolate or ():
            check_seeds(seed, flag="--interpolate seed")
        if not args.interpolate:
            check_seeds(args.seed, args.num, flag="--seed")
        sampler = GeneratorSampler.from_directory(args.checkpoint or default_generator())
        class_index = sampler.class_index(args.class_name)
        out = Path(args.out)
        if args.interpolate:
            frames = sampler.interpolate(*args.interpolate, args.frames, class_index, class_index, args.truncation)
            print(save_gif(frames, out, scale=args.scale))
            return 0
        seeds = list(range(args.seed, args.seed + args.num))
        images = sampler.sample(seeds, class_index, args.truncation)
        if out.suffix.lower() == ".png":
            print(save_png(grid(images, args.columns), out))
            return 0
        labels = sampler.labels_for(seeds, class_index)
        for seed, label, image in zip(seeds, labels, images, strict=True):
            suffix = f"_{sampler.class_names[label]}" if sampler.config.conditional else ""
            save_png(image, out / f"seed{seed:06d}{suffix}.png")
        print(save_png(grid(images, args.columns), out / "grid.png"))
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    sys.exit(main())
