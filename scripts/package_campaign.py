"""Turn a folder a GPU window brought back (scripts/campaign.py --out) into a shipped checkpoint with a model card.

  python scripts/package_campaign.py RETURNED --output checkpoints/gan-cifar10-nest_gen_32_cond
  python scripts/package_campaign.py RETURNED --output checkpoints/classifier-cifar10-nest_tiny_s16_32

Joins the weight shards, then runs scripts/package_generator.py (FD_NesT, KD_NesT, precision/recall against the
CIFAR-10 test images, sample grid) or scripts/package_classifier.py (test accuracy) on them, with the hardware,
the minutes, the images seen and the command taken from the run record the campaign stored in the folder. Other
options (`--num`, `--reference`, `--data`, …) are passed on to that script.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from nestgen.cli import entry_point

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling packaging scripts


def restore_export(returned: Path, into: Path) -> tuple[Path, dict]:
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


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("returned", type=Path, help="the folder campaign.py wrote (--out)")
    parser.add_argument("--output", required=True, help="the checkpoint directory to create, e.g. checkpoints/NAME")
    parser.add_argument("--hardware", help="default: '1× <device kind the run saw>'")
    parser.add_argument("--note", default="", help="a paragraph for the model card")
    args, passed_on = parser.parse_known_args(argv)  # e.g. --num 2000, --data …: for the packaging script

    with tempfile.TemporaryDirectory() as tmp:
        export, run = restore_export(args.returned, Path(tmp))
        minutes = run.get("wall_seconds", 0) / 60
        common = ["--export", str(export), "--output", args.output,
                  "--hardware", args.hardware or f"1× {run.get('device_kind', 'unknown device')}",
                  "--train-time", f"{minutes:.1f} min in window {run.get('windows', 1)} ("
                                  f"{run.get('images_seen_total', run.get('images_seen', 0)):,} images in all)",
                  "--train-command", run.get("command", "python scripts/campaign.py ..."),
                  "--note", args.note, *passed_on]
        if run.get("job") == "gan":
            import package_generator

            return package_generator.main(common)
        import package_classifier

        return package_classifier.main(common)


if __name__ == "__main__":
    sys.exit(main())
