"""Does the relay's compact state cost anything? Continue a relay job for K steps three ways from one checkpoint.

  python scripts/benchmark.py relay_state --job gan --steps 300 --out runs/relay-state-gan.json

Arms, all from the same step of the same run, with the same data order, random numbers and schedule:
  exact      the leg's own orbax checkpoint (float32 weights and Adam moments)
  compact    the relay state as committed (float16 weights, bfloat16 moments: nestgen/training/relay_state.py)
  no_moments the relay state's weights with Adam restarted (moments zero, bias correction from step 0)
Printed: each arm's mean losses and gradient norms over the first 20 steps and over all K (a restart shows as a
jump), and how far each arm's weights end from the exact arm's, relative to how far the exact arm moved in the K
steps. Needs a leg that has run (relay/<job>/state.safetensors and runs/relay/<job>/from-*/checkpoints/<step>).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from nestgen.shipped import REPOSITORY as ROOT  # benchmarks run in a checkout


def _stop_after(steps: int):
    from nestgen.training.budget import TimeBudget

    class StopAfter(TimeBudget):  # the trainers ask must_stop once a step; the schedule stays the run's own
        calls = 0

        def must_stop(self) -> bool:
            self.calls += 1
            return self.calls >= steps

    return StopAfter(deadline=math.inf, fit=False)


def _weights(job: str, state_holder: dict) -> np.ndarray:
    from nestgen.convert.tree import flatten

    params = state_holder["state"].params if job == "classifier" else state_holder["state"].g_params
    return np.concatenate([np.ravel(np.asarray(v, np.float32)) for _, v in sorted(flatten(params).items())])


def _means(records: list[dict], keys: list[str], first: int | None) -> dict[str, float]:
    chosen = records[:first] if first else records
    return {k: round(float(np.mean([r[k] for r in chosen if k in r])), 4) for k in keys
            if any(k in r for r in chosen)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py relay_state", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", default="gan", choices=["gan", "classifier"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, help="write the result as JSON here too")
    args = parser.parse_args(argv)

    from nestgen.training import relay, relay_state
    from nestgen.training.checkpoints import TrainCheckpoints
    from nestgen.training.configs import load_config

    job = relay.JOBS[args.job]
    state_path = ROOT / "relay" / job.name / relay.STATE_FILE
    step = relay_state.read_metadata(state_path)["step"]
    found = sorted((ROOT / "runs" / "relay" / job.name).glob(f"from-*/checkpoints/{step}"))
    if not found:
        print(f"error: no orbax checkpoint of step {step} under runs/relay/{job.name}: run a leg first",
              file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="nestgen-relay-state-"))
    frozen = scratch / "state.safetensors"
    shutil.copy(state_path, frozen)  # the running leg may rewrite it
    exact_dir = scratch / "exact-checkpoint"
    shutil.copytree(found[-1].parent, exact_dir)  # the running leg may delete it

    def exact(template):
        manager = TrainCheckpoints(exact_dir, asynchronous=False)
        try:
            return manager.restore(step, template)
        finally:
            manager.close()

    def compact(template):
        return relay_state.load_state(frozen, template)[0]

    def no_moments(template):
        state = relay_state.load_state(frozen, template)[0]
        if args.job == "classifier":
            return state.replace(opt_state=template.opt_state)
        return state.replace(g_opt=template.g_opt, d_opt=template.d_opt)

    overrides = ["async_checkpoints=False"]
    overrides += (["log_every_steps=1", "eval_every_steps=100000000", f"checkpoint_every_steps={10**8}"]
                  if args.job == "classifier" else
                  ["log_every_images=32", "fid.every_images=0", f"checkpoint_every_images={10**9}",
                   f"sample_every_images={10**9}"])
    arms, weights = {}, {}
    for name, start in (("exact", exact), ("compact", compact), ("no_moments", no_moments)):
        config = load_config(str(ROOT / job.config), overrides)
        holder: dict = {}

        def keep(state, done, metrics, holder=holder):
            holder["state"] = state

        workdir = scratch / name
        kwargs = {"budget": _stop_after(args.steps), "start_from": start, "on_checkpoint": keep}
        if args.job == "classifier":
            from nestgen.training.classifier_trainer import train_and_evaluate

            train_and_evaluate(config, workdir, **kwargs)
        else:
            from nestgen.training.gan_trainer import train_and_evaluate

            train_and_evaluate(config, workdir, **kwargs)
        records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
        records = [r for r in records if any(k.startswith(("train/", "gan/")) for k in r)]
        keys = (["train/loss", "train/grad_norm"] if args.job == "classifier" else
                ["gan/D/loss", "gan/G/loss", "gan/D/grad_norm", "gan/G/grad_norm"])
        weights[name] = _weights(args.job, holder)
        arms[name] = {"first_20_steps": _means(records, keys, 20), f"all_{args.steps}_steps": _means(records, keys,
                                                                                                      None)}
    start_weights = _start_weights(args.job, frozen)
    moved = float(np.linalg.norm(weights["exact"] - start_weights))
    for name in arms:
        arms[name]["distance_to_exact_over_exact_travel"] = round(
            float(np.linalg.norm(weights[name] - weights["exact"])) / moved, 4)
    result = {"job": args.job, "from_step": step, "steps": args.steps, "machine": relay.machine(), "arms": arms,
              "state_bytes": state_path.stat().st_size}
    shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def _start_weights(job: str, frozen: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    prefix = "params/" if job == "classifier" else "g_params/"
    stored = load_file(str(frozen))
    return np.concatenate([np.ravel(stored[k].astype(np.float32)) for k in sorted(stored) if k.startswith(prefix)])
