"""Generator speed: images/s at 32×32 and 64×64 (batch 1 and 64), cost per image vs pixels, FLOPs, a G+D step.

  python scripts/benchmark.py generator [--variants nest_gen_32 nest_gen_64] [--batches 1 64] [--json]
  python scripts/benchmark.py generator --batches 256 --train-batch 256 --dtype bfloat16   # on a GPU

Every number comes from this one process, so the ratios compare like with like on a noisy machine. Sampling is
z → mapping → synthesis → images, computed in `--dtype` (parameters float32). "cost ratio" is seconds per image
of each variant over the first variant's at the largest batch; pixels grow 4× per resolution doubling, so a
ratio ≤ 4 means cost at most linear in pixels. The training step is one GAN iteration as the trainer runs it:
D step (+ DiffAugment, non-saturating loss) then G step, Adam, EMA update; with and without the lazy R1 pass.
"""

from __future__ import annotations

import argparse
import functools
import json

import jax
import jax.numpy as jnp

from nestgen.benchmarks.timing import flops, machine, throughput
from nestgen.models.nest import COMPUTE_DTYPES as DTYPES
from nestgen.models.registry import get_config, init_params
from nestgen.shipped import REPOSITORY  # benchmarks run in a checkout

CONFIG = REPOSITORY / "configs" / "gan_cifar10.py"


def measure_sampling(name: str, batch: int, timing: dict, dtype: str = "float32") -> dict:
    cfg = get_config(name)
    params = init_params(cfg, 0)
    model = cfg.build(DTYPES[dtype])
    z = jax.random.normal(jax.random.key(1), (batch, cfg.latent_dim))
    labels = jnp.arange(batch) % max(cfg.num_classes, 1) if cfg.conditional else None
    forward = jax.jit(lambda p, z, y: model.apply({"params": p}, z, y)[0])
    rate = throughput(lambda: forward(params, z, labels).block_until_ready(), batch, **timing)
    return {"variant": name, "image_size": cfg.image_size, "batch": batch, "images_per_second": rate,
            "gflops_per_image": flops(forward, params, z, labels) / batch / 1e9,
            "params_millions": sum(x.size for x in jax.tree.leaves(params)) / 1e6}


def measure_train_step(generator: str, discriminator: str, batch: int, timing: dict, dtype: str = "float32") -> dict:
    from nestgen.training import gan_steps, gan_trainer
    from nestgen.training.configs import load_config

    config = load_config(f"{CONFIG}:variant={generator},disc={discriminator}",
                         [f"global_batch={batch}", f"dtype={dtype}"])
    g_cfg, d_cfg = gan_trainer.model_configs(config)
    g_opt, d_opt = gan_steps.create_optimizers(config)
    state = jax.jit(functools.partial(gan_steps.init_state, g_cfg, d_cfg, g_opt, d_opt))(jax.random.key(0))
    *_, step = gan_steps.make_steps(g_cfg.build(DTYPES[dtype]), d_cfg.build(DTYPES[dtype]), g_opt, d_opt, config,
                                    g_cfg.latent_dim)
    step = jax.jit(step, static_argnums=3, donate_argnums=0)
    batch_data = {"images": jax.random.uniform(jax.random.key(1), (batch, g_cfg.image_size, g_cfg.image_size, 3),
                                               minval=-1, maxval=1), "labels": jnp.arange(batch) % 10}
    holder, rng, out = {"state": state}, jax.random.key(2), {}
    for r1 in (False, True):
        def run(r1=r1):
            holder["state"], metrics = step(holder["state"], batch_data, rng, r1)
            jax.block_until_ready(metrics)
        rate = throughput(run, batch, **timing)
        out["step_seconds_r1" if r1 else "step_seconds"] = batch / rate
    every = config.loss.r1_every
    out["images_per_second"] = batch / ((out["step_seconds"] * (every - 1) + out["step_seconds_r1"]) / every)
    return {"generator": generator, "discriminator": discriminator, "batch": batch, **out}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py generator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["nest_gen_32", "nest_gen_64"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--train", nargs=2, default=["nest_gen_32_cond", "conv_disc_32"], metavar=("G", "D"),
                        help="generator and discriminator of the training-step measurement ('none' to skip)")
    parser.add_argument("--train-batch", type=int, default=64)
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="compute dtype")
    parser.add_argument("--min-seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    timing = dict(warmup=2, min_iters=3, min_seconds=args.min_seconds)

    rows = [measure_sampling(name, batch, timing, args.dtype) for name in args.variants for batch in args.batches]
    largest = max(args.batches)
    base = next(r for r in rows if r["variant"] == args.variants[0] and r["batch"] == largest)
    for r in rows:
        if r["batch"] == largest:
            r["cost_ratio"] = base["images_per_second"] / r["images_per_second"]
            r["flops_ratio"] = r["gflops_per_image"] / base["gflops_per_image"]
            r["pixel_ratio"] = (r["image_size"] / base["image_size"]) ** 2
    train = measure_train_step(*args.train, args.train_batch, timing, args.dtype) if args.train[0] != "none" else None
    result = {"machine": machine(), "dtype": args.dtype, "sampling": rows, "train_step": train}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m = result["machine"]
    print(f"machine: {m['cpus']} CPUs, {m['processor']}, jax {m['jax']} on {m['device']}; {args.dtype}")
    print(f"{'variant':<18} {'px':>4} {'batch':>5} {'params M':>8} {'GFLOP/img':>9} {'img/s':>8} "
          f"{'cost ratio':>10} {'FLOP ratio':>10} {'pixel ratio':>11}")
    for r in rows:
        ratios = (f"{r['cost_ratio']:>9.2f}x {r['flops_ratio']:>9.2f}x {r['pixel_ratio']:>10.0f}x"
                  if "cost_ratio" in r else "")
        print(f"{r['variant']:<18} {r['image_size']:>4} {r['batch']:>5} {r['params_millions']:>8.2f} "
              f"{r['gflops_per_image']:>9.3f} {r['images_per_second']:>8.1f} {ratios}")
    if train:
        print(f"G+D training step ({train['generator']} + {train['discriminator']}, batch {train['batch']}): "
              f"{train['step_seconds']:.2f} s, with R1 {train['step_seconds_r1']:.2f} s, "
              f"{train['images_per_second']:.1f} img/s averaged over the R1 interval")
    return 0
