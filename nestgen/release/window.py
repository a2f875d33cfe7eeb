"""The files a GPU window brings back (`scripts/campaign.py --out`; README "The GPU window"), written and read here:

  config.json + model[-0000k-of-0000n].safetensors   the release checkpoint in float16 (`write_release`); the
                                                      shards carry their step and, under "evaluation", the metrics
                                                      of their own weights
  resume[-0000k-of-0000n].safetensors                 what --resume needs, the run record under "run"
                                                      (`write_resume`, `read_resume`)
  metrics.jsonl, eval.json                            the run's log, the classifier's latest test accuracy

At most MAX_FILES files of at most MAX_FILE_BYTES (the 8th file coming back is the benchmark's JSON), each
renamed into place whole. `restore_export` turns such a folder back into a nestgen checkpoint for
`scripts/package.py campaign`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nestgen.files import replacing

MAX_FILES, MAX_FILE_BYTES = 7, 16 * 2**20  # 8 files come back; the 8th is the benchmark's JSON


def restore_export(returned: Path, into: Path) -> tuple[Path, dict[str, Any]]:
    """Rebuild the release checkpoint of a returned folder as a nestgen checkpoint directory `into/export`
    (config.json + the joined model.safetensors, loaded once to check names and shapes): (its path, the
    campaign's run record). Raises ShardError / CheckpointError naming what is missing."""
    from nestgen.convert.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_checkpoint
    from nestgen.convert.shards import read_sharded
    from nestgen.files import save_safetensors

    if not (returned / CONFIG_FILE).is_file():
        raise CheckpointError(f"{returned / CONFIG_FILE} is missing: is this a folder scripts/campaign.py wrote?")
    arrays, _ = read_sharded(returned, "model")
    _, run = read_resume(returned)
    export = into / "export"
    export.mkdir(parents=True)
    record = json.loads((returned / CONFIG_FILE).read_text())
    record.setdefault("metadata", {})["campaign"] = run
    (export / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    save_safetensors(export / WEIGHTS_FILE, dict(arrays), {"format": record.get("format", "nestgen")})
    load_checkpoint(export)  # names, shapes and config checked before anything is measured
    if (returned / "metrics.jsonl").is_file():
        (into / "metrics.jsonl").write_text((returned / "metrics.jsonl").read_text())
    return export, run


def provenance(run: dict[str, Any], hardware: str | None) -> list[str]:
    """The packaging options a window's run record gives the card: hardware, time in the window and images seen,
    the campaign's command."""
    minutes = run.get("wall_seconds", 0) / 60
    return ["--hardware", hardware or f"1× {run.get('device_kind', 'unknown device')}",
            "--train-time", f"{minutes:.1f} min in window {run.get('windows', 1)} ("
                            f"{run.get('images_seen_total', run.get('images_seen', 0)):,} images in all)",
            "--train-command", run.get("command", "python scripts/campaign.py ...")]


def write_release(directory: Path, out: Path, steps: int, weights_dtype: str = "float16",
             evaluation: dict | None = None) -> None:
    """Copy a nestgen checkpoint directory into `out` as config.json + model shards in `weights_dtype`; the shards
    carry the step (so that shards of two different saves are told apart, nestgen.convert.shards) and, as JSON
    under "evaluation", the metrics measured on these very weights."""
    import numpy as np

    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.convert.shards import write_sharded
    from nestgen.convert.tree import flatten

    checkpoint = load_checkpoint(directory)
    record = json.loads((directory / "config.json").read_text())
    record["weights_dtype"] = weights_dtype
    arrays = {k: np.asarray(v, weights_dtype) for k, v in flatten(checkpoint.params).items()}
    metadata = {"format": "nestgen", "steps": str(steps)}
    if evaluation is not None:
        metadata["evaluation"] = json.dumps({**evaluation, "steps": steps})
    write_sharded(out, "model", arrays, metadata=metadata)
    write_text(out / "config.json", json.dumps(record, indent=2) + "\n")


def write_resume(out: Path, arrays: dict, run: dict[str, Any]) -> None:
    """The resume shards: flat float arrays (the classifier's float32 weights and moments, or G and D) and the run
    record (step, images seen, schedule, provenance) as JSON under "run"."""
    from nestgen.convert.shards import write_sharded

    write_sharded(out, "resume", arrays, metadata={"run": json.dumps(run)})


def read_resume(directory: Path) -> tuple[dict, dict]:
    """(flat float arrays, run record) of a returned folder's resume state."""
    from nestgen.convert.shards import read_sharded

    arrays, metadata = read_sharded(directory, "resume")
    return arrays, json.loads(metadata.get("run", "{}"))


def write_text(path: Path, text: str) -> None:
    """Write `path` whole or not at all (renamed into place)."""
    with replacing(path) as staging:
        staging.write_text(text)


def copy_metrics(workdir: Path, out: Path) -> None:
    if (workdir / "metrics.jsonl").is_file():
        write_text(out / "metrics.jsonl", (workdir / "metrics.jsonl").read_text())


def kept(out: Path) -> str:
    """'; OUT keeps the release of step 975 (config.json, …)' or '' when nothing was delivered yet."""
    from nestgen.convert.shards import read_sharded

    try:
        _, metadata = read_sharded(out, "model")
        steps = metadata.get("steps", "?")
    except Exception:  # nothing delivered (or unreadable): say so
        return f"; {out} holds no release"
    return f"; {out} keeps the release of step {steps} ({', '.join(sorted(p.name for p in out.iterdir()))})"


def check_outputs(out: Path) -> list[str]:
    """Problems that would stop the folder from coming back whole: too many files, a file too large, subfolders."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = [f"{len(files)} files, at most {MAX_FILES} come back"] if len(files) > MAX_FILES else []
    problems += [f"{p.name} is {p.stat().st_size:,} bytes (at most {MAX_FILE_BYTES:,})"
                 for p in files if p.stat().st_size > MAX_FILE_BYTES]
    problems += [f"{p} is in a subfolder" for p in files if p.parent != out]
    return problems
