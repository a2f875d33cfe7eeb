"""Releases from a GPU window: the folder `scripts/campaign.py --out` brought back (release shards, resume shards,
config.json, metrics.jsonl; README "The GPU window") turned back into a nestgen checkpoint and the card's
provenance, for `scripts/package.py campaign`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
    _, metadata = read_sharded(returned, "resume")
    run = json.loads(metadata.get("run", "{}"))
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
