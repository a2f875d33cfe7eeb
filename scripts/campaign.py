"""One command per borrowed GPU window: train the GAN or the classifier for M minutes and bring back what matters.

  python scripts/campaign.py --job gan --minutes 8 --out $OUT --data .data/cifar10.tar.xz
  python scripts/campaign.py --job classifier --minutes 8 --out $OUT --data .data/cifar10.tar.xz --resume prev/
  python scripts/campaign.py --job gan --minutes 1 --out /tmp/dry --smoke              # the CPU dry run

Trains the job's GPU configuration (configs/gan_cifar10.py:h200, configs/classifier_cifar10.py:h200; `:smoke`
with --smoke) until M minutes after this process started, compile time included: the first steps are timed and
the run's length, with its learning-rate schedule, is fitted to the time left (nestgen/training/budget.py), so it
always ends with a saved result. Nothing here needs TensorFlow, tensorflow-datasets or Gradio.

OUT receives at most 8 files of at most 16 MiB (safetensors cut into shards where needed, float16 weights):
  config.json + model[-0000k-of-0000n].safetensors   the release checkpoint: the classifier, or the EMA generator
                                                      (for the GAN the snapshot with the best FD_NesT measured)
  resume[-0000k-of-0000n].safetensors                 what --resume needs to continue: the classifier's float32
                                                      weights, or G and D; step and images seen in its metadata
  metrics.jsonl                                       the run's log, with test accuracy or FD_NesT
  samples.png (GAN) / eval.json (classifier)          one row per class / the final test accuracy
`--resume DIR` (a folder an earlier window brought back) continues that model with a new schedule.
`scripts/package_campaign.py DIR --output checkpoints/NAME` turns a returned folder into a shipped checkpoint.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # the budget counts from here: imports and compilation are part of the window

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"gan": ROOT / "configs" / "gan_cifar10.py", "classifier": ROOT / "configs" / "classifier_cifar10.py"}
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20


def _unpack(archive: Path, into: Path) -> Path:
    """A .tar.xz / .tar.gz / .tar of `<split>/<class>/<image>` folders, unpacked safely (no links, no escapes)."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
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


def _provenance(args, config, result: dict, device_kind: str) -> dict:
    return {"job": args.job, "minutes_budget": args.minutes, "wall_seconds": round(time.monotonic() - STARTED, 1),
            "device_kind": device_kind, "images_seen": int(result["images_seen"]), "steps": int(result["step"]),
            "command": " ".join(["python", "scripts/campaign.py", *sys.argv[1:]]),
            "resumed_from": str(args.resume) if args.resume else None, "config": config.to_dict()}


def _read_resume(directory: Path) -> tuple[dict, dict]:
    """(flat float arrays, run record) of a returned folder's resume state."""
    from nestgen.convert.shards import read_sharded

    arrays, metadata = read_sharded(directory, "resume")
    return arrays, json.loads(metadata.get("run", "{}"))


def _release(directory: Path, out: Path, weights_dtype: str = "float16") -> None:
    """Copy a nestgen checkpoint directory into `out` as config.json + model shards in `weights_dtype`."""
    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.convert.shards import write_sharded
    from nestgen.convert.tree import flatten

    checkpoint = load_checkpoint(directory)
    record = json.loads((directory / "config.json").read_text())
    record["weights_dtype"] = weights_dtype
    (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    arrays = {k: __import__("numpy").asarray(v, weights_dtype) for k, v in flatten(checkpoint.params).items()}
    write_sharded(out, "model", arrays, metadata={"format": "nestgen"})


def run_classifier(args, config, workdir: Path, budget, out: Path) -> dict:
    import numpy as np

    from nestgen.convert.shards import write_sharded
    from nestgen.convert.tree import flatten, unflatten
    from nestgen.training.classifier_trainer import train_and_evaluate

    initial, previous = None, {}
    if args.resume:
        arrays, previous = _read_resume(args.resume)
        initial = unflatten({k: v for k, v in arrays.items()})
    result = train_and_evaluate(config, workdir, budget=budget, initial_params=initial)
    import jax

    record = _provenance(args, config, result, jax.devices()[0].device_kind)
    record["images_seen_total"] = record["images_seen"] + int(previous.get("images_seen_total", 0))
    record["windows"] = int(previous.get("windows", 0)) + 1
    _release(workdir / "export", out)
    from nestgen.convert.checkpoint import load_checkpoint

    params = flatten(load_checkpoint(workdir / "export").params)
    write_sharded(out, "resume", {k: np.asarray(v, np.float32) for k, v in params.items()},
                  metadata={"run": json.dumps(record)})
    evaluation = {k: v for k, v in result.items() if k.startswith("eval/")}
    (out / "eval.json").write_text(json.dumps({**evaluation, **{k: record[k] for k in (
        "job", "device_kind", "images_seen", "images_seen_total", "windows", "wall_seconds", "minutes_budget")}},
        indent=2) + "\n")
    return {**evaluation, **record}


def run_gan(args, config, workdir: Path, budget, out: Path) -> dict:
    import numpy as np

    from nestgen.convert.shards import write_sharded
    from nestgen.convert.tree import flatten, unflatten
    from nestgen.training.gan_trainer import train_and_evaluate

    initial, previous = None, {}
    if args.resume:
        from nestgen.convert.shards import read_sharded

        arrays, previous = _read_resume(args.resume)
        ema, _ = read_sharded(args.resume, "model")
        initial = {"g_params": unflatten({k[2:]: v for k, v in arrays.items() if k.startswith("g/")}),
                   "d_params": unflatten({k[2:]: v for k, v in arrays.items() if k.startswith("d/")}),
                   "g_ema": unflatten(dict(ema)), "w_avg": arrays["w_avg"],
                   "images_seen": int(previous.get("images_seen_total", 0))}
        config.total_images += initial["images_seen"]  # the state counts images across windows
    result = train_and_evaluate(config, workdir, _guarded_fid(config), budget=budget, initial=initial)
    import jax

    record = _provenance(args, config, result, jax.devices()[0].device_kind)
    record["images_seen_total"] = int(result["images_seen"])  # the state counts across windows
    record["images_seen"] = record["images_seen_total"] - int(previous.get("images_seen_total", 0))
    record["windows"] = int(previous.get("windows", 0)) + 1
    best = workdir / "export_best" if (workdir / "export_best").is_dir() else workdir / "export"
    _release(best, out)
    networks = result["networks"]  # the last state: G and D themselves (not the EMA), and the mean of w
    arrays = {f"g/{k}": np.asarray(v, np.float16) for k, v in flatten(networks["g_params"]).items()}
    arrays |= {f"d/{k}": np.asarray(v, np.float16) for k, v in flatten(networks["d_params"]).items()}
    arrays["w_avg"] = np.asarray(networks["w_avg"], np.float32)
    write_sharded(out, "resume", arrays, metadata={"run": json.dumps(record)})
    _sample_grid(best, out / "samples.png")
    metrics = {k: v for k, v in result.items() if k.startswith("fid/")}
    return {**metrics, **record, "release": best.name}


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


def _sample_grid(checkpoint_dir: Path, path: Path) -> None:
    """One row per class, seeds 0–9 in every row (the model card's picture)."""
    import numpy as np

    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.evaluation.sampling import GeneratorSampler, grid, save_png

    checkpoint = load_checkpoint(checkpoint_dir)
    sampler = GeneratorSampler(checkpoint, batch_size=10)
    rows = [sampler.sample(range(10), c) for c in range(checkpoint.config.num_classes)] or [sampler.sample(range(10))]
    save_png(grid(np.concatenate(rows), 10), path)


def check_outputs(out: Path) -> list[str]:
    """Problems that would stop the folder from coming back whole: too many files, a file too large, subfolders."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = [f"{len(files)} files, at most {MAX_FILES} come back"] if len(files) > MAX_FILES else []
    problems += [f"{p.name} is {p.stat().st_size:,} bytes (at most {MAX_FILE_BYTES:,})"
                 for p in files if p.stat().st_size > MAX_FILE_BYTES]
    problems += [f"{p} is in a subfolder" for p in files if p.parent != out]
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", required=True, choices=sorted(CONFIGS))
    parser.add_argument("--minutes", required=True, type=float, help="wall-clock budget, compilation included")
    parser.add_argument("--out", required=True, type=Path, help="the folder that comes back (at most 8 files)")
    parser.add_argument("--resume", type=Path, help="a folder an earlier window brought back: continue its model")
    parser.add_argument("--data", help="CIFAR-10 as <split>/<class>/<image>: a .tar.xz, a .zip or a folder "
                                       "(default: the config's ../shared/data zips)")
    parser.add_argument("--smoke", action="store_true", help="the tiny smoke configuration (a CPU dry run)")
    parser.add_argument("--reserve-seconds", type=float, help="kept for the final evaluation and the outputs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = parser.parse_args(argv)

    if not 0 < args.minutes <= 600:
        print(f"error: --minutes must be in (0, 600], got {args.minutes}", file=sys.stderr)
        return 2
    if args.resume and not args.resume.is_dir():
        print(f"error: --resume {args.resume}: no such folder", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"error: --out {args.out} is not empty; give a new folder (nothing is overwritten)", file=sys.stderr)
        return 2
    from nestgen.convert.shards import ShardError
    from nestgen.data.sources import DataError
    from nestgen.training.budget import TimeBudget
    from nestgen.training.classifier_trainer import TrainingDiverged
    from nestgen.training.configs import load_config

    scratch = Path(tempfile.mkdtemp(prefix=f"nestgen-campaign-{args.job}-"))
    try:
        overrides = _data_overrides(args.job, args.data, scratch) + list(args.set)
        config = load_config(f"{CONFIGS[args.job]}:{'smoke' if args.smoke else 'h200'}", overrides)
        reserve = args.reserve_seconds if args.reserve_seconds is not None else (20.0 if args.smoke else 45.0)
        budget = TimeBudget.from_minutes(args.minutes, started=STARTED, reserve_seconds=reserve,
                                         calibration_steps=3 if args.smoke else 20, eval_seconds=1.0)
        args.out.mkdir(parents=True, exist_ok=True)
        run = run_gan if args.job == "gan" else run_classifier
        summary = run(args, config, scratch / "work", budget, args.out)
        shutil.copy(scratch / "work" / "metrics.jsonl", args.out / "metrics.jsonl")
    except (FileNotFoundError, KeyError, ValueError, DataError, ShardError, TrainingDiverged) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    problems = check_outputs(args.out)
    summary = {k: v for k, v in summary.items() if k != "config"}
    print(json.dumps({**summary, "out": str(args.out), "files": sorted(p.name for p in args.out.iterdir()),
                      "problems": problems}))
    return 1 if problems else 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # a no-op where JAX computes on an accelerator
    raise SystemExit(main())
