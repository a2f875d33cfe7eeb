"""Which levels of a NesT generator place the picture? The diagnosis behind the relay's `gan-inblock`
and `gan-rootpos` jobs.

  python scripts/benchmark.py level_positions                              # the shipped generator
  python scripts/benchmark.py level_positions --relay gan-skips gan-inblock  # committed relay states
  python scripts/benchmark.py level_positions --checkpoint DIR [--seeds 8]

For every level below the root, the picture's change (mean absolute difference in pixel levels of 255, over `seeds`
samples of every class) when that level's position embedding is replaced by its in-block part (its mean over the
level's blocks: the token still knows its place inside its block, no longer where the block sits) and when it is
set to zero. Beside them, the scale: how far two seeds of one class lie apart; the level-mixing effect at crossover
1 (sampling.level_mixing_effect); and with `rgb_skips` each level's own picture (rms before the tanh). A level
whose in-block replacement moves the picture by about the seed-to-seed distance paints the layout from its own
positions; the README's "Level mixing" paragraph quotes these numbers. A generator trained with
`positions="in_block"` has nothing across blocks to remove, one with `positions="root"` nothing at all (rows 0.0).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import jax
import numpy as np

from nestgen.convert.checkpoint import Checkpoint, load_checkpoint
from nestgen.inference.sampling import GeneratorSampler, latents, level_mixing_effect
from nestgen.models.nest import LayerNorm
from nestgen.shipped import DEFAULT_GENERATOR
from nestgen.shipped import REPOSITORY as ROOT


def _images(checkpoint: Checkpoint, params, z: np.ndarray, labels: np.ndarray):
    """Pixels in [0, 255] float32 (B, H, W, 3) and the levels' features, from the given (possibly edited) params."""
    model = checkpoint.config.build()
    w = model.apply({"params": params}, z, labels if checkpoint.config.conditional else None, method="map")
    images, levels = model.apply({"params": params}, w, method=lambda m, w: m.synthesis(w))
    return (np.asarray(images, np.float32) + 1.0) * 127.5, levels


def measure(checkpoint: Checkpoint, seeds: int = 8) -> dict:
    """The measurements described in the module docstring, as a dict (pixel levels of 255 unless said)."""
    cfg = checkpoint.config
    classes = cfg.num_classes if cfg.conditional else 1
    z = latents(range(seeds * classes), cfg.latent_dim)  # (S·K, Z): seed i of class k at row k·S + i
    labels = np.repeat(np.arange(classes), seeds).astype(np.int32)
    base, levels = _images(checkpoint, checkpoint.params, z, labels)
    per_class = base.reshape(classes, seeds, *base.shape[1:])  # (K, S, H, W, 3)
    apart = np.abs(per_class[:, :, None] - per_class[:, None]).mean(axis=(3, 4, 5))  # (K, S, S)
    out = {"seed_to_seed": float(apart[:, ~np.eye(seeds, dtype=bool)].mean()), "levels": {}}
    synthesis = checkpoint.params["synthesis"]
    for level in range(cfg.num_levels - 1):
        if "pos_embed" not in synthesis[f"level_{level}"]:  # positions="root": nothing to remove
            out["levels"][level] = {"in_block": 0.0, "zero": 0.0}
            continue
        pos = np.asarray(synthesis[f"level_{level}"]["pos_embed"], np.float32)  # (1, T or 1, N, C)
        row = {}
        in_block = np.broadcast_to(pos.mean(axis=1, keepdims=True), pos.shape)  # every block gets the mean
        for name, replacement in (("in_block", in_block), ("zero", np.zeros_like(pos))):
            edited = jax.tree_util.tree_map(lambda x: x, checkpoint.params)  # a new tree, the same leaves
            edited["synthesis"] = {**synthesis, f"level_{level}": {**synthesis[f"level_{level}"],
                                                                    "pos_embed": replacement}}
            row[name] = float(np.abs(_images(checkpoint, edited, z, labels)[0] - base).mean())
        out["levels"][level] = row
    if cfg.rgb_skips:  # each level's own picture before the tanh (the finest level's too), rms
        for level, features in enumerate(levels):
            suffix = f"_{level}" if level else ""
            norm = LayerNorm(name="n").apply({"params": synthesis[f"to_rgb_norm{suffix}"]}, features)
            kernel, bias = synthesis[f"to_rgb{suffix}"]["kernel"], synthesis[f"to_rgb{suffix}"]["bias"]
            picture = np.asarray(norm @ kernel + bias, np.float32)
            out["levels"].setdefault(level, {})["picture_rms"] = float(np.sqrt((picture**2).mean()))
    out["level_mixing"] = level_mixing_effect(GeneratorSampler(checkpoint, batch_size=100), crossover=1,
                                              seeds=range(seeds))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py level_positions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="*", default=[], help="generator checkpoint folders")
    parser.add_argument("--relay", nargs="*", default=[], help="relay GAN jobs: their committed EMA generator")
    parser.add_argument("--seeds", type=int, default=8, help="samples per class (default 8)")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds needs at least 2 (seed-to-seed distances)")
    sources = [(str(p), lambda p=p: load_checkpoint(p)) for p in args.checkpoint]
    if not sources and not args.relay:
        sources = [(str(DEFAULT_GENERATOR.relative_to(ROOT)), lambda: load_checkpoint(DEFAULT_GENERATOR))]
    for job in args.relay:
        def from_relay(job=job):
            from nestgen.release.relay import export_generator

            with tempfile.TemporaryDirectory() as tmp:
                export_generator(job, Path(tmp) / "export", root=ROOT)
                return load_checkpoint(Path(tmp) / "export")
        sources.append((f"relay/{job}", from_relay))
    for name, load in sources:
        checkpoint = load()
        result = measure(checkpoint, args.seeds)
        print(json.dumps({"generator": name, "images_seen": checkpoint.metadata.get("images_seen"), **result}))
    return 0
