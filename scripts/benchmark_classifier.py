"""Forward and train-step throughput of nestgen's NesT vs timm's PyTorch NesT: same shape, batch and machine, one run.

  python scripts/benchmark_classifier.py --variant nest_tiny_s16_32 --batch 64 [--json]

timm (multi-head only) and nestgen (each attention kind) with the same shape are measured in turns, `--rounds`
times, in this process; the printed ratio is the median over rounds of nestgen images/s over the timm images/s of
the same round, so a load that drifts during the run does not favour either side. The train step is forward +
softmax cross-entropy + backward + AdamW update, float32 on both sides. Needs the `test` extra (timm, torch).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import statistics

import jax
import jax.numpy as jnp
import optax

from nestgen.evaluation.timing import flops, throughput
from nestgen.evaluation.timing import machine as timing_machine
from nestgen.models.registry import get_config, init_params


def nestgen_steps(cfg, batch: int):
    """(forward, train step, GFLOP per image) callables for nestgen's NesT; each call blocks until done."""
    model = cfg.build()
    params = init_params(cfg, 0)
    images = jax.random.normal(jax.random.key(1), (batch, cfg.image_size, cfg.image_size, 3))
    labels = jnp.arange(batch) % cfg.num_classes

    forward = jax.jit(lambda p, x: model.apply({"params": p}, x)[0])
    flops_per_image = flops(forward, params, images) / batch

    optimizer = optax.adamw(1e-4, weight_decay=0.05)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, x, y):
        def loss_fn(p):
            logits, _ = model.apply({"params": p}, x, train=True, rngs={"dropout": jax.random.key(0)})
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    state = {"params": params, "opt": optimizer.init(params)}

    def run_train():
        state["params"], state["opt"] = train_step(state["params"], state["opt"], images, labels)
        jax.block_until_ready(state["params"])

    return (lambda: forward(state["params"], images).block_until_ready()), run_train, flops_per_image / 1e9


def timm_steps(cfg, batch: int):
    """(forward, train step) callables for timm's PyTorch NesT of the same shape."""
    import torch
    from timm.models.nest import Nest

    from nestgen.convert.timm import timm_kwargs

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = Nest(**timm_kwargs(cfg), drop_path_rate=cfg.drop_path_rate)
    images = torch.randn(batch, 3, cfg.image_size, cfg.image_size)
    labels = torch.arange(batch) % cfg.num_classes
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def forward():
        model.eval()
        with torch.no_grad():
            model(images)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return forward, train_step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="nest_tiny_s16_32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--attention", choices=["both", "multi_query", "multi_head"], default="both")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-iters", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="measure every model this many times, in turns")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    timing = dict(warmup=args.warmup, min_iters=args.min_iters, min_seconds=args.min_seconds)

    base = get_config(args.variant)
    kinds = ["multi_query", "multi_head"] if args.attention == "both" else [args.attention]
    # timm's NesT is multi-head with exact GELU: the reference shape for every row.
    models = {"timm": timm_steps(dataclasses.replace(base, attention="multi_head", activation="gelu"), args.batch)}
    models |= {kind: nestgen_steps(dataclasses.replace(base, attention=kind), args.batch) for kind in kinds}
    speeds = {name: {"forward": [], "train_step": []} for name in models}
    for _ in range(args.rounds):
        for name, (forward, train_step, *_) in models.items():
            speeds[name]["forward"].append(throughput(forward, args.batch, **timing))
            speeds[name]["train_step"].append(throughput(train_step, args.batch, **timing))
    reference = speeds["timm"]
    rows = []
    for kind in kinds:
        ours = speeds[kind]
        rows.append({"variant": args.variant, "attention": kind, "batch": args.batch, "rounds": args.rounds,
                     "gflops_per_image_forward": models[kind][2],
                     **{f"{what}": statistics.median(ours[what]) for what in ("forward", "train_step")},
                     **{f"timm_{what}": statistics.median(reference[what]) for what in ("forward", "train_step")},
                     **{f"{what}_ratio": statistics.median(a / b for a, b in zip(ours[what], reference[what],
                                                                                 strict=True))
                        for what in ("forward", "train_step")}})
    machine = timing_machine()
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
        return 0
    print(f"machine: {machine['cpus']} CPUs, {machine['processor']}, {machine['platform']}, "
          f"jax {machine['jax']} on {machine['device']}")
    print(f"{'variant':<18} {'attention':<12} {'batch':>5} {'GFLOP/img':>9} | {'fwd img/s':>9} {'timm':>7} "
          f"{'ratio':>6} | {'train img/s':>11} {'timm':>7} {'ratio':>6}")
    for r in rows:
        print(f"{r['variant']:<18} {r['attention']:<12} {r['batch']:>5} {r['gflops_per_image_forward']:>9.2f} | "
              f"{r['forward']:>9.1f} {r['timm_forward']:>7.1f} {r['forward_ratio']:>5.2f}x | "
              f"{r['train_step']:>11.1f} {r['timm_train_step']:>7.1f} {r['train_step_ratio']:>5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
