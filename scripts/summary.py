"""Show the registered variants, or one variant's block tree level by level with exact shapes and parameters.

  python scripts/summary.py                      # every registered variant (classifiers, generators, discriminators)
  python scripts/summary.py nest_tiny_s16_32     # the data flow of one classifier (or NesT discriminator)
  python scripts/summary.py nest_gen_32_cond     # a generator's tree, root block first
"""

from __future__ import annotations

import argparse
import math
import sys

import jax

from nestgen.cli import entry_point
from nestgen.models.registry import VARIANTS, abstract_params, get_config


def _count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _forward_gflops(cfg) -> float:
    """Forward FLOPs per image from XLA's cost analysis of the lowered (uncompiled) program."""
    inputs = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in cfg.example_inputs()]
    params = abstract_params(cfg)
    lowered = jax.jit(lambda p, *x: cfg.build().apply({"params": p}, *x)[0]).lower(params, *inputs)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))) / 1e9


def _join(values) -> str:
    return ",".join(map(str, values))


def print_table() -> None:
    print(f"{'variant':<22} {'kind':<18} {'size':>4} {'patch':>5} {'S':>3} {'levels':>6}  {'dims / channels':<22} "
          f"{'heads':<12} {'depths':<12} {'classes':>7} {'params':>12}")
    for name, cfg in VARIANTS.items():
        conv = cfg.kind == "conv_discriminator"
        patch = "-" if conv else getattr(cfg, "patch_size", 1)
        block = "-" if conv else cfg.block_size
        levels = "-" if conv else cfg.num_levels
        dims = _join(cfg.channels if conv else cfg.dims)
        heads, depths = ("-", "-") if conv else (_join(cfg.heads), _join(cfg.depths))
        print(f"{name:<22} {cfg.kind:<18} {cfg.image_size:>4} {patch:>5} {block:>3} {levels:>6}  {dims:<22} "
              f"{heads:<12} {depths:<12} {cfg.num_classes:>7} {_count(abstract_params(cfg)):>12,}")


def print_generator(name: str, cfg) -> None:
    params = abstract_params(cfg)["synthesis"]
    n, s, top = cfg.block_size**2, cfg.block_size, cfg.num_levels - 1
    condition = f"{cfg.num_classes} classes" if cfg.conditional else "unconditional"
    print(f"{name}: {cfg.image_size}x{cfg.image_size} images, blocks of {s}x{s} pixels, {condition}")
    print(f"  mapping: z ({cfg.latent_dim}) → {cfg.mapping_layers} dense layers → w ({cfg.w_dim})   params "
          f"{_count(abstract_params(cfg)['mapping']):,}")
    print(f"  root: w → Dense → (B, 1, {n}, {cfg.dims[top]})   params {_count(params['root']):,}")
    for level in range(top, -1, -1):
        t = 4 ** (top - level)
        print(f"  level {level}: (B, {t}, {n}, {cfg.dims[level]})  {cfg.depths[level]} transformer layers, "
              f"{cfg.heads[level]} heads, LayerNorms modulated by w   params {_count(params[f'level_{level}']):,}")
        if level:
            print(f"    expand: pixel shuffle x2 → conv 3x3 → LayerNorm → (B, {4 * t}, {n}, {cfg.dims[level - 1]})"
                  f"   params {_count(params[f'expand_{level}']):,}")
    print(f"  to RGB: LayerNorm → Dense(3) → tanh → (B, {cfg.image_size}, {cfg.image_size}, 3)")
    gflops = _forward_gflops(cfg)
    print(f"  total parameters {_count(abstract_params(cfg)):,}; {gflops:.2f} GFLOP per image")


def print_tree(name: str) -> None:
    cfg = get_config(name)
    if cfg.kind == "generator":
        return print_generator(name, cfg)
    if cfg.kind == "conv_discriminator":
        print(f"{name}: residual conv discriminator, {cfg.image_size}px, channels {_join(cfg.channels)}; "
              f"parameters {_count(abstract_params(cfg)):,}; {_forward_gflops(cfg):.2f} GFLOP per image")
        return None
    params = abstract_params(cfg)
    encoder = params["encoder"]
    grid, n, s = cfg.image_size // cfg.patch_size, cfg.block_size**2, cfg.block_size
    print(f"{name}: {cfg.image_size}x{cfg.image_size} input, {cfg.patch_size}x{cfg.patch_size} patches, blocks of "
          f"{s}x{s} tokens, {cfg.attention.replace('_', '-')} attention, {cfg.num_classes} classes")
    print(f"  patch embedding → (B, {grid}, {grid}, {cfg.dims[0]}) → blockify → "
          f"(B, {4 ** (cfg.num_levels - 1)}, {n}, {cfg.dims[0]})   params {_count(encoder['patch_embed']):,}")
    for level, t in enumerate(cfg.blocks_per_level()):
        print(f"  level {level}: (B, {t}, {n}, {cfg.dims[level]})  {cfg.depths[level]} transformer layers, "
              f"{cfg.heads[level]} heads   params {_count(encoder[f'level_{level}']):,}")
        if level + 1 < cfg.num_levels:
            print(f"    aggregate: conv 3x3 → LayerNorm → max-pool 3x3/2 → (B, {t // 4}, {n}, {cfg.dims[level + 1]})"
                  f"   params {_count(encoder[f'aggregate_{level}']):,}")
    head = "1 + projection" if cfg.kind == "nest_discriminator" else cfg.num_classes
    print(f"  head: LayerNorm → mean over blocks and tokens → Dense({head})   "
          f"params {_count(params['norm']) + _count(params['head']):,}")
    gflops = _forward_gflops(cfg)
    print(f"  total parameters {_count(params):,}; forward {gflops:.2f} GFLOP per image "
          f"(≈ {gflops / 2:.2f} G multiply-accumulates)")


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", help=f"any of: {', '.join(VARIANTS)}")
    args = parser.parse_args(argv)
    if not args.variants:
        print_table()
        return 0
    for name in args.variants:
        try:
            print_tree(name)
        except KeyError as error:
            print(f"error: {error.args[0]}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
