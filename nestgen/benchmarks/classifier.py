r"""Forward and train-step throughput of nestgen's NesT, against timm's PyTorch NesT of the same shape on CPUs.

  python scripts/benchmark.py classifier --variant nest_tiny_s16_32 --batch 64 [--json]          # CPU vs timm
  python scripts/benchmark.py classifier --variant nest_tiny_s16_32 --batch 256 --dtype bfloat16 \
      --execution plain fused remat --reference none                                            # GPU: MFU

timm (multi-head only, float32, on the CPU) and nestgen (each attention kind × each execution option) are measured
in turns, `--rounds` times, in this process; a ratio is the median over rounds of nestgen images/s over the timm
images/s of the same round, so a load that drifts during the run does not favour either side. The train step is
forward + softmax cross-entropy + backward + AdamW update. Execution options (same function, see
`nestgen.models.nest.Execution`): plain, fused (jax.nn.dot_product_attention), remat (recompute layers in the
backward pass), fused+remat. Model FLOPs per train step are 3x the forward FLOPs (XLA's cost analysis; remat's
recomputation is not counted), MFU divides them by the device's datasheet peak where one is known. Memory: the
train step's peak by XLA's memory analysis (arguments + temporaries) and the accelerator's high-water mark.
timm needs the `test` extra (timm, torch).
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

from nestgen.benchmarks.timing import compiled_memory_bytes, device_peak_memory_bytes, flops, peak_flops, throughput
from nestgen.benchmarks.timing import machine as timing_machine
from nestgen.models.nest import COMPUTE_DTYPES as DTYPES
from nestgen.models.nest import Execution
from nestgen.models.registry import get_config, init_params

EXECUTIONS = {"plain": Execution(), "fused": Execution(fused_attention=True), "remat": Execution(remat=True),
              "fused+remat": Execution(fused_attention=True, remat=True)}


@dataclasses.dataclass
class Steps:
    """Callables that run one forward pass / one train step and block until done, with what they cost."""

    forward: object
    train_step: object
    gflops_per_image: float  # forward
    train_memory_bytes: int | None = None


def nestgen_steps(cfg, batch: int, dtype: str = "float32", execution: Execution = EXECUTIONS["plain"]) -> Steps:
    """Forward and train step of nestgen's NesT in `dtype` (parameters float32) with `execution`."""
    model = cfg.build(DTYPES[dtype], execution)
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
    memory = compiled_memory_bytes(train_step, state["params"], state["opt"], images, labels)

    def run_train():
        state["params"], state["opt"] = train_step(state["params"], state["opt"], images, labels)
        jax.block_until_ready(state["params"])

    return Steps(lambda: forward(state["params"], images).block_until_ready(), run_train, flops_per_image / 1e9,
                 memory)


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

    return Steps(forward, train_step, float("nan"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="nest_tiny_s16_32")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--attention", choices=["both", "multi_query", "multi_head"], default="both")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="compute dtype of nestgen's rows")
    parser.add_argument("--execution", nargs="+", choices=list(EXECUTIONS), default=["plain"])
    parser.add_argument("--reference", choices=["timm", "none"], default=None,
                        help="timm on CPUs in float32 (default there), none elsewhere")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-iters", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="measure every model this many times, in turns")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    timing = dict(warmup=args.warmup, min_iters=args.min_iters, min_seconds=args.min_seconds)
    on_cpu = jax.default_backend() == "cpu"
    reference = args.reference or ("timm" if on_cpu and args.dtype == "float32" else "none")
    if reference == "timm" and not (on_cpu and args.dtype == "float32"):
        parser.error("--reference timm compares float32 on the CPU on both sides: use --reference none here")

    base = get_config(args.variant)
    kinds = ["multi_query", "multi_head"] if args.attention == "both" else [args.attention]
    models = {}
    if reference == "timm":  # timm's NesT is multi-head with exact GELU: the reference shape for every row
        models["timm"] = timm_steps(dataclasses.replace(base, attention="multi_head", activation="gelu"), args.batch)
    for kind in kinds:
        for name in args.execution:
            models[(kind, name)] = nestgen_steps(dataclasses.replace(base, attention=kind), args.batch, args.dtype,
                                                 EXECUTIONS[name])
    speeds = {key: {"forward": [], "train_step": []} for key in models}
    for _ in range(args.rounds):
        for key, steps in models.items():
            speeds[key]["forward"].append(throughput(steps.forward, args.batch, **timing))
            speeds[key]["train_step"].append(throughput(steps.train_step, args.batch, **timing))
    machine = timing_machine()
    peak = peak_flops(str(machine["device"]), args.dtype)
    rows = []
    for (kind, name), steps in ((k, v) for k, v in models.items() if k != "timm"):
        ours = speeds[(kind, name)]
        row = {"variant": args.variant, "attention": kind, "execution": name, "dtype": args.dtype,
               "batch": args.batch, "rounds": args.rounds, "gflops_per_image_forward": steps.gflops_per_image,
               **{what: statistics.median(ours[what]) for what in ("forward", "train_step")},
               "train_memory_mib": steps.train_memory_bytes / 2**20}
        row["train_tflops_per_second"] = 3 * steps.gflops_per_image * row["train_step"] / 1e3
        row["mfu"] = row["train_tflops_per_second"] * 1e12 / peak if peak else None
        if reference == "timm":
            timm = speeds["timm"]
            for what in ("forward", "train_step"):
                row[f"timm_{what}"] = statistics.median(timm[what])
                row[f"{what}_ratio"] = statistics.median(a / b for a, b in zip(ours[what], timm[what], strict=True))
        rows.append(row)
    peak_memory = device_peak_memory_bytes()
    result = {"machine": machine, "peak_flops": peak, "device_peak_memory_mib": peak_memory and peak_memory / 2**20,
              "rows": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {machine['cpus']} CPUs, {machine['processor']}, {machine['platform']}, "
          f"jax {machine['jax']} on {machine['device']}; {args.dtype}; peak "
          + (f"{peak / 1e12:.0f} TFLOP/s" if peak else "unknown"))
    print(f"{'variant':<19} {'attention':<11} {'execution':<11} {'batch':>5} {'GFLOP/img':>9} | {'fwd img/s':>9} "
          + (f"{'timm':>7} {'ratio':>6} | " if reference == "timm" else "| ")
          + f"{'train img/s':>11} " + (f"{'timm':>7} {'ratio':>6} " if reference == "timm" else "")
          + f"{'TFLOP/s':>8} {'MFU':>6} {'memory MiB':>10}")
    for r in rows:
        timm_fwd = f"{r['timm_forward']:>7.1f} {r['forward_ratio']:>5.2f}x | " if reference == "timm" else "| "
        timm_train = f"{r['timm_train_step']:>7.1f} {r['train_step_ratio']:>5.2f}x " if reference == "timm" else ""
        mfu = f"{100 * r['mfu']:>5.1f}%" if r["mfu"] is not None else f"{'-':>6}"
        print(f"{r['variant']:<19} {r['attention']:<11} {r['execution']:<11} {r['batch']:>5} "
              f"{r['gflops_per_image_forward']:>9.2f} | {r['forward']:>9.1f} {timm_fwd}{r['train_step']:>11.1f} "
              f"{timm_train}{r['train_tflops_per_second']:>8.2f} {mfu} {r['train_memory_mib']:>10.0f}")
    if peak_memory is not None:
        print(f"device peak memory (whole run): {peak_memory / 2**20:.0f} MiB")
    return 0
