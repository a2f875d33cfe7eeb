"""Which GradCAT block score finds a planted pattern? A synthetic check of spec.md §4's Σ A ⊙ G and alternatives.

  python scripts/benchmark_gradcat_scores.py --seeds 0 1 2

16×16 noise images; the class (plus, X or square outline) is a 4×4 motif placed in one of the 16 level-0 blocks.
A 3-level NesT is trained for 300 steps, then the traversal runs on 200 held-out images with each block score;
the hit rate is how often the leaf block is the motif's block (chance 1/16).
"""

from __future__ import annotations

import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nestgen.explain.gradcat import features_and_gradients, traverse
from nestgen.models.classifier import NestConfig
from nestgen.models.registry import init_params

CONFIG = NestConfig(image_size=16, patch_size=1, num_levels=3, dims=(32, 32, 32), heads=(2, 2, 2), depths=(1, 1, 1),
                    attention="multi_head", num_classes=3, drop_path_rate=0.0)
SCORES = {  # (B, T, N, C) features and gradients → (B, T)
    "signed sum A*G (spec)": lambda a, g: (a * g).sum((2, 3)),
    "sum |A*G|": lambda a, g: np.abs(a * g).sum((2, 3)),
    "gradient norm": lambda a, g: np.sqrt((g**2).sum((2, 3))),
}


def motifs() -> np.ndarray:
    m = np.zeros((3, 4, 4), np.float32)
    m[0, 1:3, :] = m[0, :, 1:3] = 1  # plus
    m[1] = np.eye(4) + np.eye(4)[::-1]  # X
    m[2, [0, 3], :] = m[2, :, [0, 3]] = 1  # square outline
    return m


def planted(n: int, rng: np.random.Generator):
    """(images (n, 16, 16, 3), labels (n,), the motif's level-0 block (n,))."""
    images = rng.normal(0, 0.5, (n, 16, 16, 3)).astype(np.float32)
    labels, blocks = rng.integers(0, 3, n), rng.integers(0, 16, n)
    for k in range(n):
        i, j = divmod(int(blocks[k]), 4)
        images[k, 4 * i:4 * i + 4, 4 * j:4 * j + 4] += 2.0 * motifs()[labels[k]][..., None]
    return images, labels.astype(np.int32), blocks


def run(seed: int, steps: int = 300) -> dict:
    rng = np.random.default_rng(seed)
    train_x, train_y, _ = planted(3000, rng)
    test_x, test_y, test_blocks = planted(200, rng)
    model, params = CONFIG.build(), init_params(CONFIG, seed)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x)[0], y).mean()

        grads = jax.grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for _ in range(steps):
        batch = rng.integers(0, len(train_x), 64)
        params, opt_state = step(params, opt_state, train_x[batch], train_y[batch])
    accuracy = float((np.argmax(model.apply({"params": params}, test_x)[0], -1) == test_y).mean())
    _, features, gradients = jax.jit(functools.partial(features_and_gradients, model))(
        params, test_x, jnp.asarray(test_y))
    features, gradients = [np.asarray(a) for a in features], [np.asarray(g) for g in gradients]
    hits = {}
    for name, score in SCORES.items():
        per_level = [score(a, g) for a, g in zip(features, gradients, strict=True)]
        leaves = [traverse([s[b] for s in per_level])[-1] for b in range(len(test_x))]
        hits[name] = float(np.mean(np.asarray(leaves) == test_blocks))
    return {"seed": seed, "test_accuracy": accuracy, "leaf_hit_rate": hits}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    for seed in args.seeds:
        print(json.dumps(run(seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
