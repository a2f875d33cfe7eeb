"""Train the NesT GAN: `train_and_evaluate(config, workdir)`.

Separate discriminator and generator steps (one jitted, donated update per iteration), lazy R1 on reals,
DiffAugment on both of D's inputs, Adam β = (0, 0.99), a generator EMA with a half-life counted in images (ramped
up early on), a tracked mean of w for truncation, data parallel over every device of every host, orbax
checkpoints with exact resume (data order and rngs are functions of the step), a NaN guard, hierarchical metrics
(`gan/D/loss`, `gan/G/loss`, `gan/D/r1`, …), fixed-latent sample grids, periodic FID of the EMA generator, and
the EMA generator (and the discriminator) exported as nestgen checkpoint directories after every save (and the
best EMA generator by FID to `export_best`). Images seen are counted in the state, so they stay exact when a
resumed run changes its batch size, and no sample grid is ever written twice; a resume that changes the models,
the data or the seed is refused before any checkpoint is read (WORKDIR/run.json, run_record.py). An optional
wall-clock budget (`TimeBudget`) fits the run's length to the time left. Training data stays uint8 until the
device; no TensorFlow. The update itself (`GanState`, the D and G steps, the EMA) is gan_steps.py; the helpers of
the loop that the classifier shares are loop.py.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from nestgen import sharding
from nestgen.convert.checkpoint import Checkpoint, save_checkpoint
from nestgen.data.pipeline import HostSlice, train_batches
from nestgen.data.sources import load_split, parse_data_spec
from nestgen.inference.sampling import W_AVG_KEY, check_seeds, grid, latents, save_png, to_uint8
from nestgen.losses import LOSS_KINDS
from nestgen.models.registry import get_config
from nestgen.training import run_record
from nestgen.training.budget import TimeBudget
from nestgen.training.checkpoints import TrainCheckpoints
from nestgen.training.gan_steps import GanState, augment_policy, create_optimizers, init_state, make_steps
from nestgen.training.loop import Throughput, TrainingDiverged, finite, itstime, mean_metrics, progress_bar
from nestgen.training.metrics import MetricWriter
from nestgen.training.networks import compute_dtype, execution, matching_params, params_fingerprint


def model_configs(config: ml_collections.ConfigDict):
    """(generator config, discriminator config); D's num_classes follows G's (projection conditioning)."""
    def build(section: str, extra: dict[str, Any]):
        overrides = {**dict(config[section].get("overrides", {}) or {}), **extra}
        try:
            return get_config(config[section].variant, **overrides)
        except KeyError as error:
            raise ValueError(f"config.{section}: {error.args[0]}") from error
        except (TypeError, ValueError) as error:
            raise ValueError(f"config.{section} ({config[section].variant} with {overrides}): {error}") from error

    g_cfg = build("generator", {})
    if g_cfg.kind != "generator":
        raise ValueError(f"config.generator.variant {config.generator.variant!r} is a {g_cfg.kind}, not a generator")
    d_cfg = build("discriminator", {"num_classes": g_cfg.num_classes})
    if d_cfg.kind not in ("conv_discriminator", "nest_discriminator"):
        raise ValueError(f"config.discriminator.variant {config.discriminator.variant!r} is a {d_cfg.kind}")
    if d_cfg.image_size != g_cfg.image_size:
        raise ValueError(f"the generator makes {g_cfg.image_size}px images but the discriminator takes "
                         f"{d_cfg.image_size}px: choose matching variants or set discriminator.overrides.image_size")
    return g_cfg, d_cfg


def validate(config: ml_collections.ConfigDict):
    """Check everything that can be checked before loading data or compiling; returns (G config, D config)."""
    g_cfg, d_cfg = model_configs(config)
    check_seeds(config.seed, 2, "config.seed")  # the run uses seed and seed + 1: neither may wrap
    if config.loss.kind not in LOSS_KINDS:
        raise ValueError(f"config.loss.kind must be one of {LOSS_KINDS}, got {config.loss.kind!r}")
    augment_policy(config)
    compute_dtype(config)
    execution(config)
    if config.loss.r1_every < 1 or config.loss.r1_gamma < 0 or config.loss.get("r2_gamma", 0.0) < 0:
        raise ValueError("config.loss.r1_every must be ≥ 1 and config.loss.r1_gamma, r2_gamma ≥ 0")
    if not 0.0 <= config.loss.get("level_mixing", 0.0) <= 1.0:
        raise ValueError(f"config.loss.level_mixing is a probability, got {config.loss.level_mixing}")
    if not 0 <= config.w_avg_beta < 1 or config.ema.half_life_images < 0:
        raise ValueError("config.w_avg_beta must be in [0, 1) and config.ema.half_life_images ≥ 0")
    sharding.check_batch_divisible(config.global_batch, "config.global_batch")
    check_seeds(config.grid.seed, config.grid.rows * config.grid.columns, flag="config.grid.seed")
    if config.global_batch < 1 or config.total_images < 1:
        raise ValueError("config.global_batch and config.total_images must be positive")
    if not config.log_every_images or config.checkpoint_every_images % config.log_every_images:
        raise ValueError("config.checkpoint_every_images must be a multiple of config.log_every_images (so a "
                         "resumed run logs exactly what an uninterrupted one would)")
    spec = parse_data_spec(config.data.train)
    if spec.kind in ("folder", "zip") and not Path(spec.target).exists():
        raise FileNotFoundError(f"config.data.train: {spec.target} does not exist")
    return g_cfg, d_cfg


def grid_inputs(config, g_cfg) -> tuple[np.ndarray, np.ndarray]:
    """The fixed latents of the sample grids: seeds grid.seed … (rows × columns), one row per class."""
    n, columns = config.grid.rows * config.grid.columns, config.grid.columns
    z = latents(range(config.grid.seed, config.grid.seed + n), g_cfg.latent_dim)
    labels = (np.arange(n) // columns) % max(g_cfg.num_classes, 1)
    return z, labels.astype(np.int32)


def generator_checkpoint(g_cfg, state: GanState, class_names, metadata: dict[str, Any]) -> Checkpoint:
    """The EMA generator as an in-memory release checkpoint (what is exported, sampled and evaluated)."""
    params = jax.device_get(state.g_ema)
    meta = {**metadata, W_AVG_KEY: np.asarray(jax.device_get(state.w_avg)).tolist()}
    return Checkpoint(g_cfg, params, list(class_names), {"image_size": g_cfg.image_size, "range": [-1, 1]}, meta)


def clean_fid_fn(fid_config) -> Callable[[Checkpoint], dict[str, float]]:
    """FID (or FD_NesT) of a generator checkpoint as configured in `config.fid`, as {"fid/<metric>": value}; with
    `fid.level_mixing` also "fid/mixing_coarse" and "fid/mixing_fine" (sampling.level_mixing_effect, crossover 1).

    The feature network and reference statistics are loaded (or the missing file named) now, before training."""
    from nestgen.inference.sampling import GeneratorSampler, level_mixing_effect
    from nestgen.metrics import fid

    fid.backends()
    network = fid.load_features(fid_config.features, batch_size=fid_config.batch_size)
    fid.reference_statistics(fid_config.reference, network, batch_size=fid_config.batch_size, verbose=False,
                             need_features=fid_config.get("kid", False) or fid_config.get("pr", False))

    def evaluate(checkpoint: Checkpoint) -> dict[str, float]:
        sampler = GeneratorSampler(checkpoint, batch_size=fid_config.batch_size)
        metrics = fid.fid_for_sampler(sampler, fid_config.reference, fid_config.num, features=network,
                                      batch_size=fid_config.batch_size, kid=fid_config.get("kid", False),
                                      pr=fid_config.get("pr", False), pr_samples=fid_config.num)
        out = {f"fid/{name}": value for name, value in metrics.items()}
        if fid_config.get("level_mixing", False) and checkpoint.config.num_levels > 1:
            effect = level_mixing_effect(sampler, crossover=1)  # pixels (0-255) moved by each side's seed
            out.update({"fid/mixing_coarse": effect["coarse"], "fid/mixing_fine": effect["fine"]})
        return out

    return evaluate


def run_description(config, g_cfg, d_cfg, data) -> dict[str, Any]:
    """What this run is, for WORKDIR/run.json: a resume may change its batch and recipe, never the rest."""
    record = run_record.data_record(config.data.train, config.data.train_split, config.data.train_limit, len(data),
                                    data.class_names)
    return {"trainer": "gan", "generator": g_cfg.to_dict(), "discriminator": d_cfg.to_dict(), "data": record,
            "global_batch": config.global_batch, "seed": config.seed, "image_size": g_cfg.image_size,
            "recipe": {"loss": config.loss.to_dict(), "xflip": config.data.xflip}}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path,
                       fid_fn: Callable[[Checkpoint], dict[str, float]] | None = None, *,
                       budget: TimeBudget | None = None, initial: dict[str, Any] | None = None,
                       start_from: Callable[[GanState], GanState] | None = None,
                       on_checkpoint: Callable[[GanState, int, dict[str, float]], None] | None = None,
                       ) -> tuple[GanState, dict[str, Any]]:
    """Train (or resume) in `workdir`; returns (the final state, the final metrics).

    The state is the `GanState` of the last step (replicated device arrays: G, D, the EMA generator, their Adam
    states, w_avg, images seen). The metrics: "step", "images_seen", "export" (the directory of the EMA generator;
    the discriminator is beside it), "devices", "processes", the sha256 fingerprints "g_ema_sha256" and "d_sha256",
    and the last "fid/…" values.

    `initial` ({"g_params", "d_params", "g_ema", "w_avg", "images_seen"}) starts from another run's networks with
    fresh optimizer states (scripts/campaign.py --resume); a workdir that holds checkpoints resumes from them.
    `start_from(fresh_state) -> state` continues a whole GAN state (networks, EMA, Adam moments, images seen)
    carried from another machine (scripts/relay.py); `on_checkpoint(state, step, fid_metrics)` is called
    (process 0, host arrays) after every checkpoint save.

    `fid_fn(checkpoint) -> {"fid/…": value}` evaluates the EMA generator every `fid.every_images` images (default:
    clean-fid as configured in `config.fid`); the checkpoint with the lowest first value is kept as the best."""
    workdir = Path(workdir)
    sharding.initialize_distributed()
    g_cfg, d_cfg = validate(config)
    host = HostSlice(jax.process_index(), jax.process_count())
    if config.fid.every_images and fid_fn is None:
        fid_fn = clean_fid_fn(config.fid)  # before TensorFlow loads (torchvision must come first)
    data = load_split(config.data.train, config.data.train_split, data_dir=config.data.data_dir,
                      cache_dir=config.data.cache_dir, limit=config.data.train_limit, image_size=g_cfg.image_size)
    if g_cfg.conditional and len(data.class_names) != g_cfg.num_classes:
        raise ValueError(f"the training data has {len(data.class_names)} classes but the generator has "
                         f"{g_cfg.num_classes}: set generator.overrides.num_classes={len(data.class_names)}")

    mesh = sharding.make_mesh()
    replicated = sharding.replicated(mesh)
    dtype = compute_dtype(config)
    generator, discriminator = g_cfg.build(dtype, execution(config)), d_cfg.build(dtype, execution(config))
    g_optimizer, d_optimizer = create_optimizers(config)
    checkpoints = TrainCheckpoints(workdir / "checkpoints", keep=config.keep_checkpoints,
                                   best_metric="fid/best_key" if config.fid.every_images else None, best_mode="min",
                                   asynchronous=config.async_checkpoints)
    start = checkpoints.latest_step() or 0
    try:  # before compiling or restoring; a new batch size is fine: images_seen stays exact
        run_record.settle(workdir, run_description(config, g_cfg, d_cfg, data), resuming=bool(start),
                          may_change=("global_batch", "recipe"))
    except run_record.RunMismatch:
        checkpoints.close()
        raise
    state = jax.jit(functools.partial(init_state, g_cfg, d_cfg, g_optimizer, d_optimizer),
                    out_shardings=replicated)(jax.random.key(config.seed))
    if start:
        state = checkpoints.restore(start, state)
    elif start_from is not None:  # a whole state from another machine
        state = jax.device_put(start_from(jax.device_get(state)), replicated)
        start = int(state.step)
    elif initial is not None:  # another run's networks; fresh Adam moments
        g_params = matching_params(initial["g_params"], state.g_params, "the generator to continue")
        d_params = matching_params(initial["d_params"], state.d_params, "the discriminator to continue")
        g_ema = matching_params(initial["g_ema"], state.g_ema, "the EMA generator to continue")
        state = jax.device_put(GanState(
            state.step, g_params, d_params, g_ema, g_optimizer.init(g_params), d_optimizer.init(d_params),
            np.asarray(initial["w_avg"], np.float32).reshape(state.w_avg.shape),
            np.asarray(int(initial["images_seen"]), np.int32)), replicated)
    writer = MetricWriter(workdir, resume_step=start)

    *_, step_fn = make_steps(generator, discriminator, g_optimizer, d_optimizer, config, g_cfg.latent_dim)
    train_step = jax.jit(step_fn, static_argnums=(3,), donate_argnums=(0,),
                         in_shardings=(replicated, sharding.batch_sharded(mesh), replicated),
                         out_shardings=(replicated, replicated))
    render = jax.jit(lambda params, z, y: generator.apply({"params": params}, z, y if g_cfg.conditional else None)[0])
    grid_z, grid_labels = grid_inputs(config, g_cfg)
    samples_dir = workdir / "samples"

    def save_grid(params, name: str):
        path = samples_dir / name
        if jax.process_index() == 0 and not path.exists():  # never overwrite what an earlier run wrote
            save_png(grid(to_uint8(render(params, grid_z, grid_labels)), config.grid.columns), path)

    def metadata(done: int, seen: int) -> dict[str, Any]:
        return {"trained_by": "nestgen.training.gan_trainer", "train_data": data.description, "steps": done,
                "images_seen": seen, "global_batch": config.global_batch, "devices": jax.device_count(),
                "device_kind": jax.devices()[0].device_kind, "discriminator": d_cfg.to_dict(),
                "config": config.to_dict()}

    def export(name: str, done: int, seen: int, metrics: dict[str, float], discriminator: bool = True):
        if jax.process_index() != 0:
            return
        ckpt = generator_checkpoint(g_cfg, state, data.class_names, {**metadata(done, seen), "metrics": metrics})
        save_checkpoint(workdir / name, g_cfg, ckpt.params, class_names=data.class_names,
                        preprocess=ckpt.preprocess, metadata=ckpt.metadata)
        if discriminator:
            save_checkpoint(workdir / f"{name}_discriminator", d_cfg, jax.device_get(state.d_params),
                            class_names=data.class_names if d_cfg.num_classes else [], preprocess=ckpt.preprocess,
                            metadata=metadata(done, seen))

    if start == 0 and jax.process_index() == 0:
        reals = data.images[: len(grid_z)]
        save_png(grid(reals, config.grid.columns), samples_dir / "reals.png")
        save_grid(state.g_ema, "fakes_init.png")

    batch_size = config.global_batch
    total_images = int(config.total_images)
    every = {"log": config.log_every_images, "sample": config.sample_every_images,
             "checkpoint": config.checkpoint_every_images, "fid": config.fid.every_images}
    seen = int(jax.device_get(state.images_seen))
    base_rng = jax.random.key(config.seed + 1)
    progress = progress_bar(total_images, seen, desc="train GAN", unit="img", unit_scale=True)
    pending, fid_metrics, throughput, last_good, best_fid = [], {}, Throughput(), start, math.inf
    done = start
    try:
        while seen < total_images:
            index = train_batches(data, global_batch=batch_size, seed=config.seed, start_step=done,
                                  num_steps=done + 1, host=host)
            batch = sharding.global_batch_array(next(index), mesh)
            state, metrics = train_step(state, batch, base_rng, done % config.loss.r1_every == 0)
            pending.append(metrics)
            before, seen, done = seen, seen + batch_size, done + 1
            progress.update(batch_size)
            per_step = budget.seconds_per_step(
                done, start, lambda s=state: jax.block_until_ready(s.step),  # with FID's share of the time:
                steps_between_evaluations=every["fid"] / batch_size if every["fid"] else 0) if budget else None
            if per_step:  # the compiled step is timed: fit the run, counted in images from here, to the budget
                total_images = min(total_images, seen + budget.fitted_steps(0, per_step) * batch_size)  # ≤ config's
                progress.total = total_images
                writer.write(done, {"budget/seconds_per_step": per_step, "budget/total_images": total_images})
            if budget is not None and budget.must_stop() and seen < total_images:
                progress.write(f"{seen} images: the time budget is spent; stopping {total_images - seen} images early")
                total_images = seen
            due = {k: itstime(seen, v, total_images, previous=before) for k, v in every.items()}
            if not any(due.values()):
                continue
            if pending:
                averaged = mean_metrics(pending)  # R1 appears only in the steps that computed it
                if not finite(averaged, state.g_params, state.d_params):
                    raise TrainingDiverged(
                        f"GAN training diverged by step {done} (D loss {averaged['gan/D/loss']}, G loss "
                        f"{averaged['gan/G/loss']}); nothing was saved after step {last_good}, the last good "
                        f"checkpoint, in {checkpoints.directory}. Lower optim.g_lr / optim.d_lr or raise "
                        "loss.r1_gamma, then resume from that checkpoint.")
                averaged["gan/images_per_second"] = throughput.images_per_second(len(pending) * batch_size)
                averaged["gan/images_seen"] = seen
                writer.write(done, averaged)
                progress.set_postfix(D=f"{averaged['gan/D/loss']:.3f}", G=f"{averaged['gan/G/loss']:.3f}")
                pending = []
            if due["sample"]:
                save_grid(state.g_ema, f"fakes_{seen:09d}.png")
            if due["fid"]:
                began = time.perf_counter()
                fid_metrics = fid_fn(generator_checkpoint(g_cfg, state, data.class_names, metadata(done, seen)))
                writer.write(done, {**fid_metrics, "gan/images_seen": seen,  # and the evaluation's own seconds
                                    "gan/fid_seconds": round(time.perf_counter() - began, 2)})
                progress.write(f"{seen} images: " + ", ".join(f"{k} {v:.3f}" for k, v in fid_metrics.items()))
                if fid_metrics and next(iter(fid_metrics.values())) < best_fid:  # the best EMA generator so far
                    best_fid = next(iter(fid_metrics.values()))
                    export("export_best", done, seen, fid_metrics, discriminator=False)
                throughput.exclude(time.perf_counter() - began)  # images/s counts training time only
            if due["checkpoint"]:
                best = {"fid/best_key": next(iter(fid_metrics.values()))} if due["fid"] and fid_metrics else None
                checkpoints.save(done, state, metrics=best)
                export("export", done, seen, fid_metrics if due["fid"] else {})
                last_good = done
                if on_checkpoint is not None and jax.process_index() == 0:
                    on_checkpoint(jax.device_get(state), done, fid_metrics if due["fid"] else {})
    finally:
        progress.close()
        checkpoints.close()
        writer.close()

    metrics = {"step": int(state.step), "images_seen": int(jax.device_get(state.images_seen)),
               "export": workdir / "export", "devices": jax.device_count(), "processes": jax.process_count(),
               "g_ema_sha256": params_fingerprint(jax.device_get(state.g_ema)),
               "d_sha256": params_fingerprint(jax.device_get(state.d_params)), **fid_metrics}
    return state, metrics
