"""GradCAT localisation benchmark: does the leaf box land on the object that decides the class?

  python scripts/benchmark.py gradcat --seeds 0 --steps 2000

Composite 64×64 images of 4 cells of 32×32: one cell (at random) holds a CIFAR-10 image, whose class is the label;
the other three hold "patch soup": 8×8 patches, each cut from a random CIFAR-10 image. The soup has natural colours
and edges but no object and, since its source images are drawn independently of the label, no class signal; the
model must find the intact object to classify. A 3-level NesT (4×4 patches, leaf blocks of 16×16 px, level-1
blocks = the cells) is trained from scratch with AdamW on freshly drawn composites (objects and soup from the
training split, objects flipped at random); on held-out composites (objects and soup from the test split) it
reports the classification accuracy and the pointing accuracy, for the true class, of
  - GradCAT with score="signed" (spec.md §4's Σ A⊙G) and score="magnitude" (Σ |A⊙G|): leaf box inside the
    object's cell (the traversal is nested, so this is its level-1 choice);
  - Grad-CAM's peak (argmax of its map) at each level (0: 4×4-px tokens, 1: 8 px, 2 = the top, the classic
    last-layer choice: 16 px): peak inside the object's cell.
Chance is 25%. One JSON line per seed; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nestgen.data.sources import load_split
from nestgen.explain.gradcat import GradCAT, grad_cam
from nestgen.models.classifier import NestConfig
from nestgen.models.registry import init_params

CANVAS, CELL, SOUP_PATCH = 64, 32, 8
# Small enough for 2 CPU cores: 4×4-pixel patches, 16×16 tokens, 16 leaf blocks of 16×16 px, 4 level-1 blocks = cells.
CONFIG = NestConfig(image_size=CANVAS, patch_size=4, num_levels=3, dims=(32, 64, 128), heads=(1, 2, 4),
                    depths=(1, 1, 2), attention="multi_head", num_classes=10, drop_path_rate=0.0)


def soup_bank(pool: np.ndarray) -> np.ndarray:
    """pool uint8 (m, 32, 32, 3) → all its 8×8 patches, contiguous (16m, 8, 8, 3)."""
    m, p, per_cell = len(pool), SOUP_PATCH, CELL // SOUP_PATCH
    return pool.reshape(m, per_cell, p, per_cell, p, 3).transpose(0, 1, 3, 2, 4, 5).reshape(-1, p, p, 3)


def composites(objects: np.ndarray, bank: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """objects uint8 (n, 32, 32, 3), bank of patches (`soup_bank`) → (images uint8 (n, 64, 64, 3), cells (n,)).

    Every 8×8 patch of the canvas is a random patch of the bank; then the object replaces the patches of its cell
    (a raster index on the 2×2 grid of cells).
    """
    n, per_side = len(objects), CANVAS // SOUP_PATCH
    soup = bank[rng.integers(0, len(bank), (n, per_side, per_side))]  # (n, 8, 8, 8, 8, 3): patch row, col, pixels
    images = soup.transpose(0, 1, 3, 2, 4, 5).reshape(n, CANVAS, CANVAS, 3)  # (n, 64, 64, 3)
    cells = rng.integers(0, 4, n)
    for k in range(n):
        i, j = divmod(int(cells[k]), 2)
        images[k, CELL * i:CELL * (i + 1), CELL * j:CELL * (j + 1)] = objects[k]
    return images, cells


def normalise(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def inside_cell(rows: np.ndarray, cols: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Whether pixel (row, col) lies in the given cell of the 2×2 grid, per image."""
    return (rows // CELL) * 2 + cols // CELL == cells


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(seed: int, steps: int, batch: int, train_limit: int | None, test_size: int, lr: float,
        train_data: str, test_data: str) -> dict:
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    train, test = load_split(train_data, "train", limit=train_limit), load_split(test_data, "test")
    train_bank, test_bank = soup_bank(train.images), soup_bank(test.images)
    model, params = CONFIG.build(), init_params(CONFIG, seed)
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, min(500, steps // 10), steps, lr / 100)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.05))
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits = model.apply({"params": p}, x)[0]
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, (jnp.argmax(logits, -1) == y).mean()

    running = []
    for it in range(1, steps + 1):
        pick = rng.integers(0, len(train.images), batch)
        objects = train.images[pick]
        flip = rng.random(batch) < 0.5
        objects[flip] = objects[flip, :, ::-1]  # horizontal flips
        x, _ = composites(objects, train_bank, rng)
        params, opt_state, loss, acc = step(params, opt_state, normalise(x), train.labels[pick])
        running.append((float(loss), float(acc)))
        if it % 100 == 0 or it == steps:
            loss_mean, acc_mean = np.mean(running, axis=0)
            running = []
            log(f"seed {seed} step {it}/{steps} loss {loss_mean:.3f} train acc {acc_mean:.3f} "
                f"({time.perf_counter() - start:.0f} s)")

    # held-out composites: objects and soup both from the test split
    pick = rng.choice(len(test.images), test_size, replace=False)
    images, cells = composites(test.images[pick], test_bank, rng)
    x, labels = normalise(images), test.labels[pick].astype(np.int32)
    explainers = {s: GradCAT(model, params, test.class_names, CANVAS, score=s) for s in ("signed", "magnitude")}
    predicted, zero_maps = [], {f"gradcam_level{level}": 0 for level in range(CONFIG.num_levels)}
    hits = {f"gradcat_{s}": [] for s in explainers} | {name: [] for name in zero_maps}
    for lo in range(0, test_size, 250):
        xs, ys, cs = x[lo:lo + 250], labels[lo:lo + 250], cells[lo:lo + 250]
        predicted.append(np.argmax(np.asarray(model.apply({"params": params}, xs)[0]), -1))
        for s, explainer in explainers.items():
            leaves = [e[0].leaf.box for e in explainer.explain(xs, target=list(ys))]  # (top, left, bottom, right)
            top, left = np.asarray([b[0] for b in leaves]), np.asarray([b[1] for b in leaves])
            hits[f"gradcat_{s}"].append(inside_cell(top, left, cs))  # leaf blocks never straddle cells
        for level in range(CONFIG.num_levels):
            cam = grad_cam(model, params, xs, ys, level=level)  # (b, H_l, W_l)
            side = CANVAS // cam.shape[1]  # pixels per token of that level
            zero_maps[f"gradcam_level{level}"] += int((cam.reshape(len(xs), -1).max(-1) == 0).sum())  # peak → (0, 0)
            rows, cols = np.unravel_index(cam.reshape(len(xs), -1).argmax(-1), cam.shape[1:])
            hits[f"gradcam_level{level}"].append(inside_cell(rows * side, cols * side, cs))
    correct = np.concatenate(predicted) == labels
    hits = {name: np.concatenate(h) for name, h in hits.items()}
    return {"seed": seed, "steps": steps, "batch": batch, "test_images": test_size,
            "test_accuracy": round(float(correct.mean()), 4),
            "pointing": {name: round(float(h.mean()), 4) for name, h in hits.items()},
            "pointing_on_correct": {name: round(float(h[correct].mean()), 4) for name, h in hits.items()},
            "gradcam_all_zero_maps": zero_maps,
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py gradcat", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", default="zip:../shared/data/cifar10-train.zip", help="objects and soup to train on")
    parser.add_argument("--test", default="zip:../shared/data/cifar10-test.zip", help="held-out objects and soup")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-limit", type=int, default=None, help="use the first N training images as objects")
    parser.add_argument("--test-size", type=int, default=1000, help="held-out composites")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        print(json.dumps(run(seed, args.steps, args.batch, args.train_limit, args.test_size, args.lr,
                             args.train, args.test)), flush=True)
    return 0
