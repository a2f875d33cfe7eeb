"""Which GradCAT block score finds a planted pattern? A synthetic check of spec.md §4's Σ A ⊙ G and alternatives.

  python scripts/benchmark.py gradcat_scores --seeds 0 1 2

16×16 noise images; the class (plus, X or square outline) is a 4×4 motif placed in one of the 16 level-0 blocks.
A 3-level NesT is trained for 300 steps, then the traversal runs on 200 held-out images with each block score;
the hit rate is how often the leaf block is the motif's block (chance 1/16), the quadrant hit rate how often the
level-1 block holds it (chance 1/4). tests/test_gradcat.py trains the same model on the same data.
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nestgen.data.synthetic import planted_patterns
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


def run(seed: int, steps: int = 300) -> dict:
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    train_x, train_y, _ = planted_patterns(3000, rng)
    test_x, test_y, test_blocks = planted_patterns(200, rng)
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
    hits, quadrant_hits = {}, {}
    for name, score in SCORES.items():
        per_level = [score(a, g) for a, g in zip(features, gradients, strict=True)]
        paths = np.asarray([traverse([s[b] for s in per_level]) for b in range(len(test_x))])  # (B, levels)
        hits[name] = float(np.mean(paths[:, -1] == test_blocks))
        parents = (test_blocks // 4 // 2) * 2 + (test_blocks % 4) // 2  # the motif's level-1 block on the 2x2 grid
        quadrant_hits[name] = float(np.mean(paths[:, 1] == parents))
    return {"seed": seed, "test_accuracy": accuracy, "leaf_hit_rate": hits, "quadrant_hit_rate": quadrant_hits,
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py gradcat_scores", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of batch 64")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        print(json.dumps(run(seed, args.steps)), flush=True)
    return 0
