"""Does the GAN learn? Train the tiny 16×16 NesT GAN on coloured shapes and compare colour statistics.

  python scripts/benchmark.py gan_toy --seeds 0 1 2 3 4 --steps 300

For each seed: the real trainer (configs/gan_cifar10.py:smoke with a synthetic `folder:` data set of 2,000
images) runs `--steps` iterations; the colour-histogram distance between 512 samples and 512 held-out real images
is printed for the initial generator and the trained EMA generator, with their ratio. tests/test_gan.py asserts
a threshold set from these numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from nestgen.convert.checkpoint import load_checkpoint
from nestgen.data.synthetic import SHAPES, colour_histogram_distance, coloured_shapes, write_image_folder
from nestgen.inference.sampling import GeneratorSampler
from nestgen.shipped import REPOSITORY  # benchmarks run in a checkout
from nestgen.training.configs import load_config
from nestgen.training.gan_steps import create_optimizers, init_state
from nestgen.training.gan_trainer import generator_checkpoint, model_configs

CONFIG = REPOSITORY / "configs" / "gan_cifar10.py"


def toy_config(data_root: Path, seed: int, steps: int, batch: int = 32):
    """The smoke GAN on the synthetic shapes (3 classes, class-conditional), `steps` iterations."""
    config = load_config(f"{CONFIG}:smoke", [
        f"data.train=folder:{data_root}", "data.train_limit=None",
        f"seed={seed}", f"global_batch={batch}", f"total_images={steps * batch}",
        f"log_every_images={50 * batch}", f"checkpoint_every_images={steps * batch}",
        f"sample_every_images={steps * batch}", "ema.half_life_images=2000", "optim.g_lr=2e-3",
        "optim.d_lr=2e-3", "async_checkpoints=False"])
    config.generator.overrides.num_classes = len(SHAPES)
    return config


def learn(seed: int, steps: int, workdir: Path, data_root: Path, held_out: np.ndarray) -> dict:
    from nestgen.training.gan_trainer import train_and_evaluate

    config = toy_config(data_root, seed, steps)
    g_cfg, d_cfg = model_configs(config)
    g_opt, d_opt = create_optimizers(config)
    initial = jax.jit(lambda r: init_state(g_cfg, d_cfg, g_opt, d_opt, r))(jax.random.key(seed))
    before = GeneratorSampler(generator_checkpoint(g_cfg, initial, SHAPES, {}))
    seeds = range(10_000, 10_000 + len(held_out))
    d0 = colour_histogram_distance(before.sample(seeds), held_out)
    start = time.perf_counter()
    train_and_evaluate(config, workdir)
    after = GeneratorSampler(load_checkpoint(workdir / "export"))
    d1 = colour_histogram_distance(after.sample(seeds), held_out)
    return {"seed": seed, "initial": round(d0, 4), "trained": round(d1, 4), "ratio": round(d1 / d0, 4),
            "train_seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py gan_toy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        images, labels = coloured_shapes(2000, 16, seed=123)
        data_root = write_image_folder(Path(tmp) / "shapes", images, labels, SHAPES)
        held_out = coloured_shapes(512, 16, seed=456)[0]
        for seed in args.seeds:
            print(json.dumps(learn(seed, args.steps, Path(tmp) / f"run{seed}", data_root, held_out)), flush=True)
    return 0
