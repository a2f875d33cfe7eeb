"""Releases from the CPU relay: the model of a job's committed state (relay/<job>/state.safetensors) as a nestgen
checkpoint, with the card's provenance from its record (relay.py); used by `scripts/package.py classifier` and
`generator --relay JOB`, on any machine, from what the repository holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nestgen.training import relay, relay_state
from nestgen.training.relay import RECORD_FILE, STATE_FILE, Job, RelayError


def export_generator(job_name: str, out: Path, *, root: Path, state_root: Path | None = None) -> dict[str, Any]:
    """Write the EMA generator of a GAN job's committed state to `out` (a nestgen checkpoint directory, float32, as
    the trainer's `export`) and its discriminator to `out`_discriminator; returns the job's record.

    The release of a relay run is made from what the repository holds, on any machine (scripts/package.py
    generator --relay). Raises RelayError for a job that is not a GAN or has no state yet."""
    import jax

    from nestgen.convert.checkpoint import save_checkpoint
    from nestgen.data.sources import list_source_split
    from nestgen.training.configs import load_config
    from nestgen.training.gan_steps import create_optimizers, init_state
    from nestgen.training.gan_trainer import generator_checkpoint, validate

    job, directory = _committed(job_name, "gan", state_root or root / "relay")
    config = load_config(str(root / job.config))
    record = json.loads((directory / RECORD_FILE).read_text())
    g_cfg, d_cfg = validate(config)
    template = init_state(g_cfg, d_cfg, *create_optimizers(config), jax.random.key(config.seed))
    state, stored = relay_state.load_state(directory / STATE_FILE, template)
    class_names = list_source_split(config.data.train, config.data.train_split).class_names
    metadata = {"trained_by": "nestgen.training.gan_trainer (scripts/relay.py)", "train_data": str(config.data.train),
                "steps": int(stored["step"]), "images_seen": int(stored["images"]),
                "global_batch": config.global_batch, "devices": 1, "device_kind": "cpu",
                "discriminator": d_cfg.to_dict(), "config": config.to_dict(),
                "relay": {"job": job.name, "legs": record["legs"], "hours": record.get("hours")}}
    checkpoint = generator_checkpoint(g_cfg, state, class_names, metadata)
    save_checkpoint(out, g_cfg, checkpoint.params, class_names=class_names, preprocess=checkpoint.preprocess,
                    metadata=checkpoint.metadata)
    save_checkpoint(Path(f"{out}_discriminator"), d_cfg, jax.device_get(state.d_params),
                    class_names=class_names if d_cfg.num_classes else [], preprocess=checkpoint.preprocess,
                    metadata={k: v for k, v in metadata.items() if k != "relay"})
    return record


def export_classifier(job_name: str, out: Path, *, root: Path, state_root: Path | None = None) -> dict[str, Any]:
    """Write the classifier of a classifier job's committed state to `out` (a nestgen checkpoint directory, float32,
    as the trainer's `export`; its metadata carries the relay's legs and the last test accuracy); returns the job's
    record. The weights are the run's at its last checkpoint, wherever it is in its learning-rate schedule
    (scripts/package.py classifier --relay). Raises RelayError for a job that is not a classifier or has no state
    yet, RelayStateError for a state of another model."""
    import jax
    import numpy as np
    from safetensors.numpy import load_file

    from nestgen.convert.checkpoint import save_checkpoint
    from nestgen.data.sources import list_source_split
    from nestgen.training.classifier_trainer import export_metadata, preprocess_record, validate
    from nestgen.training.configs import load_config

    job, directory = _committed(job_name, "classifier", state_root or root / "relay")
    config = load_config(str(root / job.config))
    record = json.loads((directory / RECORD_FILE).read_text())
    cfg = validate(config)
    image = np.zeros((1, cfg.image_size, cfg.image_size, cfg.in_channels), np.float32)
    template = {"params": jax.eval_shape(cfg.build().init, jax.random.key(0), image)["params"]}
    template = jax.tree_util.tree_map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), template)
    stored = load_file(str(directory / STATE_FILE))  # the weights only: Adam's moments and the step stay behind
    params = relay_state.decode({k: v for k, v in stored.items() if k.startswith("params/")}, template,
                                str(directory / STATE_FILE))["params"]
    metadata = relay_state.read_metadata(directory / STATE_FILE)
    listing = list_source_split(config.data.train, config.data.train_split)
    examples = min(len(listing.files), config.data.train_limit or len(listing.files))
    class_names, per_epoch = listing.class_names, examples // config.global_batch
    last = next((p for p in reversed(record["curve"]) if p["step"] == metadata["step"]), {})
    exported = dict(export_metadata(config, str(config.data.train), int(metadata["step"]),
                                     {k: v for k, v in last.items() if k.startswith("eval/")}),
                    trained_by="nestgen.training.classifier_trainer (scripts/relay.py)", devices=1, device_kind="cpu",
                    images_seen=int(metadata["images"]),
                    relay={"job": job.name, "legs": record["legs"], "hours": record.get("hours"),
                           "planned_steps": int(config.num_steps or config.num_epochs * per_epoch)})
    save_checkpoint(out, cfg, params, class_names=class_names, preprocess=preprocess_record(config),
                    metadata=exported)
    return record


def _committed(job_name: str, trainer: str, state_root: Path) -> tuple[Job, Path]:
    """The job and its state folder, for a release made from the committed state; RelayError otherwise."""
    job = relay.JOBS.get(job_name)
    if job is None or job.trainer != trainer:
        kind = "GAN" if trainer == "gan" else trainer
        raise RelayError(f"{job_name!r} is not a {kind} relay job; {kind} jobs: "
                         f"{', '.join(n for n, j in relay.JOBS.items() if j.trainer == trainer)}")
    directory = state_root / job.name
    if not (directory / STATE_FILE).is_file():
        raise RelayError(f"{directory / STATE_FILE} does not exist: run a leg first "
                         f"(scripts/relay.py --job {job.name} --until HH:MM)")
    return job, directory


def release_export(args, trainer: str, root: Path) -> tuple[Any, list[dict[str, Any]] | None]:
    """What `scripts/package.py classifier` and `generator` release: (the checkpoint, the relay's curve or
    None). With `args.relay` the job's committed state (`args.state_dir`), and the card's hardware, time and command
    (args.hardware, args.train_time, args.train_command) from its record; otherwise `args.export`, which needs those
    three given. Raises RelayError (a job of another trainer, no state) or ValueError (missing card fields)."""
    import tempfile

    from nestgen.convert.checkpoint import load_checkpoint

    if args.relay:
        export = export_classifier if trainer == "classifier" else export_generator
        with tempfile.TemporaryDirectory() as tmp:
            record = export(args.relay, Path(tmp) / "export", root=root, state_root=args.state_dir)
            checkpoint = load_checkpoint(Path(tmp) / "export")
        vars(args).update(provenance(record))
        return checkpoint, record["curve"]
    if not (args.hardware and args.train_time and args.train_command):
        raise ValueError("with --export give --hardware, --train-time and --train-command (they go into the model "
                         "card), or package a relay run with --relay JOB")
    return load_checkpoint(args.export), None


def provenance(record: dict[str, Any]) -> dict[str, str]:
    """A model card's `hardware`, `train_time` and `train_command` from a relay record (one line per leg)."""
    legs = record["legs"]
    return {"hardware": "; ".join(sorted({leg["machine"] for leg in legs})),
            "train_time": (f"{record['images_seen']:,} images in {len(legs)} legs, {record['hours']:.2f} h wall at "
                           "nice 19 (each leg shared its machine with a working session's tests): "
                           + "; ".join(f"leg {leg['leg']} {leg['started'][:10]} {leg['from_images']:,} → "
                                       f"{leg['to_images']:,} images in {leg['wall_seconds'] / 3600:.2f} h"
                                       for leg in legs)),
            "train_command": f"python scripts/relay.py --job {record['job']} --until HH:MM  # {len(legs)} legs"}
