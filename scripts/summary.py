"""Show the registered NesT variants, or one variant's block tree level by level with exact shapes and parameters.

  python scripts/summary.py                      # every registered variant
  python scripts/summary.py nest_tiny_s16_32     # the data flow of one variant
"""

from __future__ import annotations

import argparse
import math
import sys

import jax
import jax.numpy as jnp

from nestgen.models.registry import VARIANTS, abstract_params, get_config


def _count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _forward_gflops(cfg) -> float:
    """Forward FLOPs per image from XLA's cost analysis of the lowered (uncompiled) program."""
    image = jax.ShapeDtypeStruct((1, cfg.image_size, cfg.image_size, cfg.in_channels), jnp.float32)
    params = abstract_params(cfg)
    lowered = jax.jit(lambda p, x: cfg.build().apply({"params": p}, x)[0]).lower(params, image)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))) / 1e9


def print_table() -> None:
    print(f"{'variant':<22} {'input':>5} {'patch':>5} {'S':>3} {'levels':>6}  {'dims':<16} {'heads':<10} "
          f"{'depths':<10} {'attention':<12} {'params':>12}")
    for name, cfg in VARIANTS.items():
        print(f"{name:<22} {cfg.image_size:>5} {cfg.patch_size:>5} {cfg.block_size:>3} {cfg.num_levels:>6}  "
              f"{','.join(map(str, cfg.dims)):<16} {','.join(map(str, cfg.heads)):<10} "
              f"{','.join(map(str, cfg.depths)):<10} {cfg.attention:<12} {_count(abstract_params(cfg)):>12,}")


def print_tree(name: str) -> None:
    cfg = get_config(name)
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
    print(f"  head: LayerNorm → mean over blocks and tokens → Dense({cfg.num_classes})   "
          f"params {_count(params['norm']) + _count(params['head']):,}")
    gflops = _forward_gflops(cfg)
    print(f"  total parameters {_count(params):,}; forward {gflops:.2f} GFLOP per image "
          f"(≈ {gflops / 2:.2f} G multiply-accumulates)")


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
