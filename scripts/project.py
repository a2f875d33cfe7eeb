"""Project an image into a trained NesT generator (GAN inversion): find the w that reconstructs it.

  python scripts/project.py photo.jpg --out recon.png
  python scripts/project.py photo.jpg --class horse --steps 400 --out recon.png --w-out w.npy

The image is read like every nestgen input (any Pillow format, EXIF orientation, RGB) and resized to the
generator's size (shorter side, bicubic, centre crop). --out gets the target and its reconstruction side by side;
--w-out gets w as a float32 (W,) .npy file (read it back with np.load(path, allow_pickle=False)). Without --class
a class-conditional generator tries every class's start and keeps the best. Without --checkpoint the shipped
CIFAR-10 generator is used. Prints the class used, the pixel errors on [0, 255] and the seconds taken.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nestgen.cli import entry_point


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="the image file to project")
    parser.add_argument("--checkpoint", help="generator checkpoint directory (default: the shipped generator)")
    parser.add_argument("--class", dest="class_name", help="class name or index (class-conditional generators)")
    parser.add_argument("--steps", type=int, help="optimisation steps (default: DEFAULT_STEPS of the projector)")
    parser.add_argument("--out", required=True, help="PNG: the target and its reconstruction side by side")
    parser.add_argument("--w-out", help="write the optimised w here as a .npy file")
    args = parser.parse_args(argv)

    from nestgen.data.images import load_image, resize_and_crop
    from nestgen.inference.projection import MAX_STEPS, Projector
    from nestgen.inference.sampling import GeneratorSampler, grid, save_png
    from nestgen.shipped import default_generator

    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        parser.error(f"--steps must be from 1 to {MAX_STEPS}, got {args.steps}")
    sampler = GeneratorSampler.from_directory(args.checkpoint or default_generator(), batch_size=1)
    class_index = sampler.class_index(args.class_name)
    size = sampler.config.image_size
    image = load_image(args.image, target_size=size)
    if image.size != (size, size):
        image = resize_and_crop(image, size)
    import numpy as np

    projector = Projector(sampler, **({"steps": args.steps} if args.steps else {}))
    result = projector.project(np.asarray(image, np.uint8), class_index)  # (H, W, 3) uint8 in, out
    out = save_png(grid(np.stack([result.target, result.image]), columns=2), args.out)
    if args.w_out:
        Path(args.w_out).parent.mkdir(parents=True, exist_ok=True)
        np.save(args.w_out, result.w, allow_pickle=False)
    chosen = f"class {sampler.class_names[result.class_index]}, " if result.class_index is not None else ""
    print(f"{chosen}{result.steps} steps: mse {result.mse:.1f}, psnr {result.psnr:.2f} dB, mae {result.mae:.2f} "
          f"(pixels 0-255), {result.seconds:.2f} s (compile included)")
    print(out)
    return 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    sys.exit(main())
