"""Sample a trained NesT generator: image grids (plain, captioned, one row per class), single images, level
mixing, and latent interpolations as GIFs or MP4s.

  python scripts/sample.py --checkpoint DIR --num 64 --seed 0 --out grid.png               # one grid
  python scripts/sample.py --checkpoint DIR --num 16 --labels --out grid.png               # "seed N · class" captions
  python scripts/sample.py --checkpoint DIR --num 16 --class horse --truncation 0.7 --out samples/
  python scripts/sample.py --checkpoint DIR --class-grid --num 8 --seed 0 --out classes.png   # rows = classes
  python scripts/sample.py --checkpoint DIR --mix 0,1,2 10,11,12,13 --crossover 2 --out mix.png
  python scripts/sample.py --checkpoint DIR --interpolate 3 7 --frames 16 --out walk.gif   # or walk.mp4

Image k uses seed `--seed + k`; seeds are whole numbers from 0 to 2**32 - 1. The same seed, class and truncation
give the same image, bit for bit, on a machine. --out ending in .png writes one grid; a directory gets one PNG per
seed plus grid.png. Without --class a class-conditional generator draws each image's class from its seed.
--class-grid writes a table with one row per class and --num seeds per row (the same seeds in every row).
--mix COARSE FINE takes two comma-separated seed lists and writes a table: row i, column j has the coarse levels
(levels ≥ --crossover, root included; level 0 is the finest) of coarse seed i and the finer levels of fine seed j.
--scale enlarges GIF/MP4 frames and the cells of labelled pictures (--labels, --class-grid, --mix). An MP4 is H.264
(needs PyAV: pip install -e ".[app]"). Without --checkpoint the shipped CIFAR-10 generator is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nestgen.cli import entry_point


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit status 2
        self.exit(2, f"error: {message} (see --help)\n")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        message = f"expected comma-separated whole-number seeds like 0,1,2, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    return seeds


@entry_point
def main(argv=None) -> int:
    parser = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="generator checkpoint directory (default: the shipped generator)")
    parser.add_argument("--num", type=int, default=64, help="number of images, or seeds per row with --class-grid")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first image")
    parser.add_argument("--class", dest="class_name", help="class name or index (class-conditional generators)")
    parser.add_argument("--truncation", type=float, default=1.0, help="ψ in (0, 1]: pull w toward its mean")
    parser.add_argument("--columns", type=int, help="grid columns (default: about square)")
    parser.add_argument("--labels", action="store_true", help="caption every image of the grid: seed · class")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--interpolate", type=int, nargs=2, metavar=("SEED_A", "SEED_B"),
                      help="write an animation (.gif or .mp4) walking in w space from SEED_A to SEED_B")
    mode.add_argument("--class-grid", action="store_true", help="one row per class, --num seeds per row")
    mode.add_argument("--mix", type=_seed_list, nargs=2, metavar=("COARSE_SEEDS", "FINE_SEEDS"),
                      help="level mixing table of two comma-separated seed lists (with --crossover)")
    parser.add_argument("--crossover", type=int, help="with --mix: levels ≥ K come from the coarse seeds (1 … L-1)")
    parser.add_argument("--frames", type=int, default=16, help="interpolation frames (default 16)")
    parser.add_argument("--scale", type=int, default=4, help="enlargement of animations and labelled cells (4)")
    parser.add_argument("--out", required=True, help="grid.png, a directory, or walk.gif / walk.mp4 with --interpolate")
    args = parser.parse_args(argv)
    suffix = Path(args.out).suffix.lower()
    if args.num <= 0:
        parser.error(f"--num must be a positive number of images, got {args.num}")
    if not 0.0 < args.truncation <= 1.0:
        parser.error(f"--truncation must be in (0, 1] (1 = no truncation), got {args.truncation}")
    if args.scale < 1:
        parser.error(f"--scale must be a positive whole number, got {args.scale}")
    if args.columns is not None and args.columns < 1:
        parser.error(f"--columns must be a positive number, got {args.columns}")
    if args.interpolate and args.frames < 2:
        parser.error(f"--frames must be at least 2, got {args.frames}")
    if args.interpolate and suffix not in (".gif", ".mp4"):
        parser.error("with --interpolate, --out must name a .gif or .mp4 file")
    if args.labels and (args.interpolate or args.class_grid or args.mix):
        parser.error("--labels captions the plain grid; --class-grid and --mix pictures are always labelled")
    if args.class_grid and args.class_name is not None:
        parser.error("--class-grid draws every class in its own row: leave out --class")
    if (args.mix is None) != (args.crossover is None):
        parser.error("--mix and --crossover go together: --mix COARSE_SEEDS FINE_SEEDS --crossover K")
    for flag, wanted in (("--class-grid", args.class_grid), ("--mix", args.mix)):
        if wanted and suffix != ".png":
            parser.error(f"with {flag}, --out must name a .png file")

    import numpy as np

    from nestgen.data.classes import file_safe
    from nestgen.drawing.pictures import captioned_grid, drawable_labels, labelled_grid, save_gif, save_mp4, save_png
    from nestgen.inference.sampling import GeneratorSampler, check_seeds, grid
    from nestgen.shipped import default_generator

    for seed in args.interpolate or ():
        check_seeds(seed, flag="--interpolate seed")
    for seed in [seed for seeds in args.mix or () for seed in seeds]:
        check_seeds(seed, flag="--mix seed")
    if not args.interpolate and not args.mix:
        check_seeds(args.seed, args.num, flag="--seed")
    sampler = GeneratorSampler.from_directory(args.checkpoint or default_generator())
    class_index = sampler.class_index(args.class_name)
    out = Path(args.out)

    names, note = drawable_labels(sampler.class_names)  # what the label font can draw: '#3' for '鸟' without it
    if note and (args.labels or args.class_grid or args.mix):
        print(f"warning: {note}", file=sys.stderr)

    def caption(seed: int, label: int) -> str:
        return f"seed {seed} · {names[label]}" if sampler.config.conditional else f"seed {seed}"

    if args.interpolate:
        frames = sampler.interpolate(*args.interpolate, args.frames, class_index, class_index, args.truncation)
        save = save_mp4 if suffix == ".mp4" else save_gif
        print(save(frames, out, scale=args.scale))
        return 0
    cell = sampler.config.image_size * args.scale
    if args.mix:
        coarse, fine = args.mix
        images = sampler.mix_levels(coarse, fine, args.crossover, class_index, args.truncation)  # (A, B, H, W, 3)
        rows = [caption(s, label) for s, label in zip(coarse, sampler.labels_for(coarse, class_index), strict=True)]
        columns = [caption(s, label) for s, label in zip(fine, sampler.labels_for(fine, class_index), strict=True)]
        corner = f"coarse \\ fine, crossover {args.crossover}"
        print(save_png(labelled_grid(images, rows, columns, cell, corner), out))
        return 0
    seeds = list(range(args.seed, args.seed + args.num))
    if args.class_grid:
        if not sampler.config.conditional:
            raise ValueError("--class-grid needs a class-conditional generator; this one is unconditional")
        w = np.concatenate([sampler.w_of(seeds, k, args.truncation) for k in range(sampler.config.num_classes)])
        images = sampler.synthesize(w)  # (K·N, H, W, 3), class-major
        images = images.reshape(sampler.config.num_classes, len(seeds), *images.shape[1:])  # (K, N, H, W, 3)
        table = labelled_grid(images, names, [f"seed {s}" for s in seeds], cell, "class \\ seed")
        print(save_png(table, out))
        return 0
    images = sampler.sample(seeds, class_index, args.truncation)
    labels = sampler.labels_for(seeds, class_index)
    if args.labels:
        columns = args.columns or int(np.ceil(np.sqrt(len(images))))
        picture = captioned_grid(images, [caption(s, label) for s, label in zip(seeds, labels, strict=True)],
                                 columns, cell)
    else:
        picture = grid(images, args.columns)
    if suffix == ".png":
        print(save_png(picture, out))
        return 0
    for seed, label, image in zip(seeds, labels, images, strict=True):
        name = f"_{file_safe(sampler.class_names[label], f'class{label}')}" if sampler.config.conditional else ""
        save_png(image, out / f"seed{seed:06d}{name}.png")
    print(save_png(picture, out / "grid.png"))
    return 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    sys.exit(main())
