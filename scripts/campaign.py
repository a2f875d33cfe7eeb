"""One command per borrowed GPU window: train the GAN or the classifier for M minutes and bring back what matters.

  python3 scripts/campaign.py --job gan --minutes 7.5 --out $OUT --data .data/cifar10.tar.xz
  python3 scripts/campaign.py --job classifier --minutes 7.5 --out $OUT --data .data/cifar10.tar.xz --resume prev/
  python3 scripts/campaign.py --job gan --minutes 1 --out /tmp/dry --smoke             # the CPU dry run
  python3 scripts/campaign.py --job gan --minutes 4 --out /tmp/reh --rehearse          # the H200 preset, shrunk
  python scripts/rehearse_window.py                         # the README's window block in the lease's environment

Trains the job's GPU configuration (configs/gan_cifar10.py:h200, configs/classifier_cifar10.py:h200; `:smoke`
with --smoke, `:h200,shrink` with --rehearse) until M minutes after this process started, compile time included:
the first steps are timed and the run's length, with its learning-rate schedule, is fitted to the time left
(nestgen/training/budget.py), so it always ends with a saved result. Nothing here needs TensorFlow,
tensorflow-datasets or Gradio.

OUT receives at most 7 files of at most 16 MiB (safetensors cut into shards where needed, float16 weights), the
8th being the benchmark's JSON; they are rewritten at every evaluation (each file renamed into place whole), so a
window killed at any moment after its first evaluation leaves the last one. The files of one delivery are
written one after another, so a kill during a delivery can leave some files of that delivery beside the rest of
the one before: each file is whole and names its step, and the release's shards carry the metrics of their own
weights (metadata "evaluation"):
  config.json + model[-0000k-of-0000n].safetensors   the release checkpoint: the classifier, or the EMA generator
                                                      (for the GAN the snapshot with the best FD_NesT measured)
  resume[-0000k-of-0000n].safetensors                 what --resume needs to continue: the classifier's float32
                                                      weights, or G and D; step and images seen in its metadata
  metrics.jsonl                                       the run's log, with test accuracy or FD_NesT
  eval.json (classifier)                              the latest test accuracy
The library versions are printed first and checked against nestgen's minimums; the summary line gives the seconds
to the first two compiled steps and the number of XLA compilations with their seconds. Scratch files (the unpacked
data, orbax checkpoints) go to /dev/shm if present.
`--resume DIR` (a folder an earlier window brought back) continues that model with a new schedule.
`scripts/package.py campaign DIR --output checkpoints/NAME` turns a returned folder into a shipped checkpoint.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # the budget counts from here: imports and compilation are part of the window

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from nestgen.files import process_scratch  # noqa: E402
from nestgen.release import window  # noqa: E402  (the files that come back: light, no JAX)
from nestgen.release.rehearsal import ENV_VARIABLE as REHEARSAL  # noqa: E402  (light, no JAX)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"gan": ROOT / "configs" / "gan_cifar10.py", "classifier": ROOT / "configs" / "classifier_cifar10.py"}
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax._src.dispatch.BACKEND_COMPILE_EVENT


def _unpack(archive: Path, into: Path) -> Path:
    """A .tar.xz / .tar.gz / .tar of `<split>/<class>/<image>` folders, unpacked safely (no links, no escapes)."""
    began = time.perf_counter()
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    files = sum(1 for p in into.rglob("*") if p.is_file())
    print(f"data: {archive} unpacked into {into} ({files} files) in {time.perf_counter() - began:.1f} s",
          file=sys.stderr, flush=True)
    return into


def _data_overrides(job: str, data: str | None, scratch: Path) -> list[str]:
    """--set overrides pointing the config at the data that travelled with the checkout."""
    if not data:
        return []
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"--data {data}: no such file or folder")
    if path.is_file() and path.suffix.lower() != ".zip":
        path = _unpack(path, scratch / "data")
    spec = f"zip:{path}" if path.suffix.lower() == ".zip" else f"folder:{path}"
    if job == "gan":
        return [f"data.train={spec}", f"fid.reference={spec}@test"]
    return [f"data.train={spec}", f"data.eval={spec}"]


def _provenance(args, config, steps: int, images_seen: int, device_kind: str) -> dict:
    return {"job": args.job, "minutes_budget": args.minutes, "wall_seconds": round(time.monotonic() - STARTED, 1),
            "device_kind": device_kind, "images_seen": int(images_seen), "steps": int(steps),
            "command": " ".join(["python3", "scripts/campaign.py", *sys.argv[1:]]),
            "rehearsal": f"{REHEARSAL}={os.environ[REHEARSAL]}" if REHEARSAL in os.environ else None,
            "resumed_from": str(args.resume) if args.resume else None, "config": config.to_dict()}


def _fitted_schedule(workdir: Path, steps: int) -> list[int]:
    """[warm-up, total] steps of the schedule the trainer fitted (metrics.jsonl), or [0, steps] before any fit."""
    warmup, total = 0, steps
    log = workdir / "metrics.jsonl"
    for line in log.read_text().splitlines() if log.is_file() else []:
        record = json.loads(line)
        warmup = int(record.get("budget/warmup_steps", warmup))
        total = int(record.get("budget/refit_total_steps", record.get("budget/total_steps", total)))
    return [warmup, max(total, steps)]


def run_classifier(args, config, workdir: Path, budget, out: Path) -> dict:
    """A window of the classifier. The resume file holds the whole train state (float16 weights, bfloat16 Adam
    moments, the step) and the schedule planned for `--windows` windows: a later window continues that schedule
    where the last one stopped, so that windows add up to one run; once the plan is done, `--resume` starts a new
    schedule from its weights."""
    import jax
    import numpy as np

    from nestgen.convert.tree import unflatten
    from nestgen.training import relay_state
    from nestgen.training.classifier_trainer import train_and_evaluate

    initial, previous, start_from, plan, first_step = None, {}, None, None, 0
    if args.resume:
        arrays, previous = window.read_resume(args.resume)
        if previous.get("plan") and previous["steps"] < previous["plan"][1]:  # the planned schedule goes on
            plan, first_step = previous["plan"], int(previous["steps"])
            budget.fit = False  # keep the plan; stop (and save) at this window's deadline

            def start_from(template):
                return relay_state.decode(arrays, template, f"{args.resume}/resume")
        else:  # a finished plan, or weights only: a new schedule from these weights
            params = {k.removeprefix("params/"): v for k, v in arrays.items() if k.startswith("params/")} \
                if previous.get("plan") else arrays
            initial = unflatten({k: np.asarray(v, np.float32) for k, v in params.items()})
    continuing = plan is not None
    evaluation: dict[str, float] = {}
    last: dict = {}  # the run record of the latest delivery

    def deliver(state, steps: int, metrics: dict[str, float]) -> None:
        """At every checkpoint (the trainer has just exported it): the release, the resume state, eval.json."""
        images = (steps - first_step) * config.global_batch
        record = _provenance(args, config, steps, images, jax.devices()[0].device_kind)
        record["images_seen_total"] = (steps * config.global_batch if continuing
                                       else images + int(previous.get("images_seen_total", 0)))
        record["windows"] = int(previous.get("windows", 0)) + 1
        record["plan"] = plan or _fitted_schedule(workdir, steps)
        evaluation.update(metrics)
        window.write_release(workdir / "export", out, steps, evaluation=evaluation)
        window.write_resume(out, relay_state.encode(state), record)
        window.write_text(out / "eval.json", json.dumps({**evaluation, "steps": steps, **{k: record[k] for k in (
            "job", "device_kind", "images_seen", "images_seen_total", "windows", "plan", "wall_seconds",
            "minutes_budget")}}, indent=2) + "\n")
        window.copy_metrics(workdir, out)
        last.update(record)

    _, result = train_and_evaluate(config, workdir, budget=budget, initial_params=initial, on_checkpoint=deliver,
                                   start_from=start_from, planned_schedule=tuple(plan) if plan else None)
    return {**{k: v for k, v in result.items() if k.startswith("eval/")}, **last}


def run_gan(args, config, workdir: Path, budget, out: Path) -> dict:
    import jax
    import numpy as np

    from nestgen.convert.tree import flatten, unflatten
    from nestgen.training.gan_trainer import train_and_evaluate

    initial, previous = None, {}
    if args.resume:
        from nestgen.convert.shards import read_sharded

        arrays, previous = window.read_resume(args.resume)
        ema, _ = read_sharded(args.resume, "model")
        initial = {"g_params": unflatten({k[2:]: v for k, v in arrays.items() if k.startswith("g/")}),
                   "d_params": unflatten({k[2:]: v for k, v in arrays.items() if k.startswith("d/")}),
                   "g_ema": unflatten(dict(ema)), "w_avg": arrays["w_avg"],
                   "images_seen": int(previous.get("images_seen_total", 0))}
        config.total_images += initial["images_seen"]  # the state counts images across windows
    released = {}

    def record_of(steps: int, images_seen_total: int) -> dict:
        record = _provenance(args, config, steps, images_seen_total, jax.devices()[0].device_kind)
        record["images_seen_total"] = int(images_seen_total)  # the state counts across windows
        record["images_seen"] = record["images_seen_total"] - int(previous.get("images_seen_total", 0))
        record["windows"] = int(previous.get("windows", 0)) + 1
        return record

    def deliver(state, steps: int, metrics: dict[str, float]) -> None:
        """At every checkpoint (the trainer has just exported it): the release (the EMA generator with the best
        FD_NesT so far, else the latest) and the resume state (G and D themselves, not the EMA, and the mean w)."""
        best = workdir / "export_best" if (workdir / "export_best").is_dir() else workdir / "export"
        window.write_release(best, out, steps)
        arrays = {f"g/{k}": np.asarray(v, np.float16) for k, v in flatten(state.g_params).items()}
        arrays |= {f"d/{k}": np.asarray(v, np.float16) for k, v in flatten(state.d_params).items()}
        arrays["w_avg"] = np.asarray(state.w_avg, np.float32)
        window.write_resume(out, arrays, record_of(steps, int(state.images_seen)))
        window.copy_metrics(workdir, out)
        released["name"] = best.name

    _, result = train_and_evaluate(config, workdir, _guarded_fid(config), budget=budget, initial=initial,
                                   on_checkpoint=deliver)
    metrics = {k: v for k, v in result.items() if k.startswith("fid/")}
    return {**metrics, **record_of(result["step"], result["images_seen"]), "release": released["name"]}


def _guarded_fid(config):
    """The periodic FD_NesT of the GAN config, or None (none measured) when its packages or files are missing;
    a failed evaluation is reported and skipped. A window is not lost for a metric."""
    if not config.fid.every_images:
        return None
    from nestgen.training.gan_trainer import clean_fid_fn

    try:
        evaluate = clean_fid_fn(config.fid)
    except Exception as error:  # ImportError (no clean-fid), FIDError (no reference), ...
        print(f"warning: no FD_NesT in this window ({type(error).__name__}: {error}); the last EMA generator "
              "is released", file=sys.stderr)
        config.fid.every_images = 0
        return None

    def guarded(checkpoint):
        try:
            return evaluate(checkpoint)
        except Exception as error:
            print(f"warning: FD_NesT failed ({type(error).__name__}: {error}); training goes on", file=sys.stderr)
            return {}

    return guarded


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--minutes", required=True, type=float, help="wall-clock budget, compilation included")
    parser.add_argument("--out", required=True, type=Path, help="the folder that comes back (at most 8 files)")
    parser.add_argument("--resume", type=Path, help="a folder an earlier window brought back: continue its model")
    parser.add_argument("--data", help="CIFAR-10 as <split>/<class>/<image>: a .tar.xz, a .zip or a folder "
                                       "(default: the config's ../shared/data zips)")
    parser.add_argument("--windows", type=int, default=1,
                        help="classifier: plan the learning-rate schedule for this many windows like this one; "
                             "each later window continues it with --resume (default 1: one window, one schedule)")
    parser.add_argument("--smoke", action="store_true", help="the tiny smoke configuration (a CPU dry run)")
    parser.add_argument("--rehearse", action="store_true",
                        help="the H200 preset itself with only its sizes shrunk (:h200,shrink): a CPU rehearsal")
    parser.add_argument("--reserve-seconds", type=float, help="kept for the final evaluation and the outputs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = parser.parse_args(argv)

    if REHEARSAL in os.environ:  # set by scripts/rehearse_window.py, never on the lease machine
        rehearsal = os.environ[REHEARSAL]
        try:
            args.minutes, args.rehearse = float(rehearsal), True
        except ValueError:
            args.minutes = float("nan")
        if not 0 < args.minutes <= 600:
            print(f"error: {REHEARSAL}={rehearsal!r}: give the rehearsal's minutes (0 < minutes ≤ 600, e.g. 3), "
                  "or unset it", file=sys.stderr)
            return 2
        print(f"rehearsal ({REHEARSAL}): the H200 preset shrunk (--rehearse) for {args.minutes:g} minutes",
              file=sys.stderr, flush=True)
    if not 0 < args.minutes <= 600:
        print(f"error: --minutes must be in (0, 600], got {args.minutes}", file=sys.stderr)
        return 2
    if args.windows < 1 or (args.windows > 1 and (args.job != "classifier" or args.resume)):
        print("error: --windows K (K ≥ 1) plans the classifier's schedule in its first window; the GAN has no "
              "schedule to plan, and a --resume window continues the plan it finds", file=sys.stderr)
        return 2
    if args.resume and not args.resume.is_dir():
        print(f"error: --resume {args.resume}: no such folder", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: --out {args.out} is not empty; give a new folder (nothing is overwritten)", file=sys.stderr)
        return 2
    from nestgen.runtime import library_versions, version_problems

    versions = library_versions()
    print("versions: " + json.dumps(versions), file=sys.stderr, flush=True)
    if version_problems(versions):
        print(f"error: {'; '.join(version_problems(versions))}: install newer ones (pip install -U ...) or carry "
              "their wheels in .whl (README, the GPU window)", file=sys.stderr)
        return 2
    from nestgen.convert.shards import ShardError
    from nestgen.data.sources import DataError
    from nestgen.training.budget import TimeBudget
    from nestgen.training.configs import load_config
    from nestgen.training.loop import TrainingDiverged

    # scratch (the unpacked data, the run's own checkpoints) in memory where the machine has a tmpfs: unpacking and
    # deleting CIFAR-10's 60,000 files took 20 s + 1 s there against 75 s + 86 s on ext4
    shm = Path("/dev/shm")
    scratch = process_scratch(f"nestgen-campaign-{args.job}-", shm if shm.is_dir() and os.access(shm, os.W_OK)
                              else None)  # and the scratch of killed windows removed
    budget, compiled = None, []
    import jax

    jax.monitoring.register_event_duration_secs_listener(  # every XLA compilation of the window, and its seconds
        lambda event, seconds, **_: compiled.append(seconds) if event == COMPILE_EVENT else None)
    try:
        overrides = _data_overrides(args.job, args.data, scratch) + list(args.set)
        preset = "smoke" if args.smoke else "h200,shrink" if args.rehearse else "h200"
        config = load_config(f"{CONFIGS[args.job]}:{preset}", overrides)
        small = args.smoke or args.rehearse
        reserve = args.reserve_seconds if args.reserve_seconds is not None else (20.0 if small else 45.0)
        budget = TimeBudget.from_minutes(args.minutes, started=STARTED, reserve_seconds=reserve,
                                         calibration_steps=3 if small else 20, eval_seconds=1.0,
                                         plan_windows=args.windows)
        args.out.mkdir(parents=True, exist_ok=True)
        run = run_gan if args.job == "gan" else run_classifier
        summary = run(args, config, scratch / "work", budget, args.out)
        window.copy_metrics(scratch / "work", args.out)  # the log of the whole window
    except (FileNotFoundError, KeyError, ValueError, DataError, ShardError, TrainingDiverged) as error:
        print(f"error: {error}{window.kept(args.out)}", file=sys.stderr)
        return 2
    except Exception as error:  # an XLA or orbax failure: the traceback helps, and the last release stays
        traceback.print_exc()
        print(f"error: {type(error).__name__}: {error}{window.kept(args.out)}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    problems = window.check_outputs(args.out)
    summary = {k: v for k, v in summary.items() if k != "config"}
    summary["versions"] = versions
    summary["compilations"] = {"count": len(compiled), "seconds": round(sum(compiled), 1)}
    if budget is not None and budget.first_steps_at is not None:
        summary["seconds_to_first_steps"] = round(budget.first_steps_at - STARTED, 1)  # imports, data, compiling
    print(json.dumps({**summary, "out": str(args.out), "files": sorted(p.name for p in args.out.iterdir()),
                      "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # a no-op where JAX computes on an accelerator
    raise SystemExit(main())
