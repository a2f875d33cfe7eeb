"""Train a NesT classifier: `train_and_evaluate(config, workdir)`.

One jitted, donated train step (the whole augmentation — crop, flip, RandAugment, random erasing, Mixup/CutMix,
label smoothing — on the device, rngs folded from the step), data parallel over every device of every host, orbax
checkpoints with exact resume (of the same model, data, seed and batch: WORKDIR/run.json, run_record.py), metrics
to TensorBoard / JSONL / console, a NaN guard, an optional wall-clock budget (`TimeBudget`), and the model
exported as a nestgen checkpoint directory (`workdir/export`, rewritten at every checkpoint and at the end). A run
on an in-memory split (folders, zips) never imports TensorFlow. The splits and their batches are
classifier_data.py; the helpers of the loop that the GAN shares are loop.py.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from nestgen import sharding
from nestgen.convert.checkpoint import save_checkpoint
from nestgen.data.augment import AugmentConfig, augment_batch
from nestgen.data.mixing import MixConfig, mix_batch
from nestgen.data.pipeline import HostSlice
from nestgen.data.sources import parse_data_spec
from nestgen.inference.sampling import check_seeds
from nestgen.metrics.accuracy import evaluate_batches, make_eval_step
from nestgen.models.registry import get_config
from nestgen.training import run_record
from nestgen.training.budget import TimeBudget
from nestgen.training.checkpoints import TrainCheckpoints
from nestgen.training.classifier_data import Split, train_and_eval_splits
from nestgen.training.loop import Throughput, TrainingDiverged, finite, itstime, mean_metrics, progress_bar
from nestgen.training.metrics import MetricWriter
from nestgen.training.networks import compute_dtype, execution, matching_params, params_fingerprint
from nestgen.training.optim import create_optimizer, learning_rate, peak_learning_rate


@flax.struct.dataclass
class TrainState:
    """The classifier's whole training state (all of it checkpointed): step int32 (), params, optimizer state."""

    step: jax.Array
    params: Any
    opt_state: Any


def model_config(config: ml_collections.ConfigDict):
    """The NesT config of an experiment; fails with a readable message for unknown variants or bad shapes."""
    overrides = dict(config.model.get("overrides", {}) or {})
    try:
        return get_config(config.model.variant, **overrides)
    except KeyError as error:
        raise ValueError(f"config.model.variant: {error.args[0]}") from error
    except (TypeError, ValueError) as error:
        raise ValueError(f"config.model ({config.model.variant} with {overrides}): {error}") from error


def validate(config: ml_collections.ConfigDict):
    """Check everything that can be checked before loading data or compiling; returns the model config."""
    cfg = model_config(config)
    check_seeds(config.seed, 2, "config.seed")  # the run uses seed and seed + 1: neither may wrap
    if config.input.image_size != cfg.image_size:
        raise ValueError(f"config.input.image_size {config.input.image_size} differs from the model's "
                         f"{cfg.image_size}: set model.overrides.image_size or input.image_size")
    compute_dtype(config)
    execution(config)
    MixConfig.from_dict(config.mixing)  # unknown or misspelt settings fail here
    AugmentConfig.from_dict(config.augment)
    sharding.check_batch_divisible(config.global_batch, "config.global_batch")
    sharding.check_batch_divisible(config.eval_batch, "config.eval_batch")
    if config.checkpoint_every_steps % config.log_every_steps:
        raise ValueError("config.checkpoint_every_steps must be a multiple of config.log_every_steps "
                         "(so a resumed run logs exactly what an uninterrupted one would)")
    for key in ("train", "eval"):
        text = config.data.get(key)
        if not text:
            continue
        spec = parse_data_spec(text)
        if spec.kind in ("folder", "zip") and not Path(spec.target).exists():
            raise FileNotFoundError(f"config.data.{key}: {spec.target} does not exist")
    return cfg


def run_description(config, cfg, train: Split) -> dict[str, Any]:
    """What this run is, for WORKDIR/run.json: a resume may change its recipe, never the rest (run_record.py)."""
    data = run_record.data_record(config.data.train, config.data.train_split, config.data.train_limit,
                                  train.num_examples, train.class_names)
    return {"trainer": "classifier", "model": cfg.to_dict(), "data": data, "global_batch": config.global_batch,
            "seed": config.seed, "image_size": config.input.image_size,
            "recipe": {"augment": config.augment.to_dict(), "mixing": config.mixing.to_dict()}}


def make_augment(config, *, streamed: bool = False):
    """augment(rng, uint8 images (B, H, W, 3)) → float32 (B, S, S, 3): the config's recipe on the device.

    A streamed split arrives cropped by tf.data already, so the device does not crop it again."""
    recipe = AugmentConfig.from_dict(config.augment)
    return functools.partial(augment_batch, recipe=recipe, image_size=config.input.image_size,
                             mean=tuple(config.input.mean), std=tuple(config.input.std), crop=not streamed)


def _optimizer(config, schedule):
    return create_optimizer(schedule, weight_decay=config.optim.weight_decay, b1=config.optim.b1,
                            b2=config.optim.b2, eps=config.optim.eps, grad_clip_norm=config.optim.grad_clip_norm)


def make_train_step(model, config, num_classes: int, augment):
    """step_fn(state, uint8 batch, base_rng, schedule) → (state, metrics); `schedule` is int32 (2,) holding
    (warm-up steps, total steps), an argument so that a budgeted run can set its length without recompiling."""
    mixing = MixConfig.from_dict(config.mixing)
    peak = peak_learning_rate(config.optim.base_lr, config.global_batch, config.optim.reference_batch)

    def step_fn(state: TrainState, batch: dict[str, jax.Array], base_rng: jax.Array, schedule: jax.Array):
        rng = jax.random.fold_in(base_rng, state.step)
        augment_rng, mix_rng, dropout_rng = jax.random.split(rng, 3)
        images = augment(augment_rng, batch["images"])  # (B, S, S, 3) float32, normalised
        images, targets = mix_batch(mix_rng, images, batch["labels"], num_classes, mixing)  # targets (B, K)
        lr = functools.partial(learning_rate, peak=peak, warmup_steps=schedule[0], total_steps=schedule[1])

        def loss_fn(params):
            logits, _ = model.apply({"params": params}, images, train=True, rngs={"dropout": dropout_rng})
            return optax.softmax_cross_entropy(logits, targets).mean(), logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = _optimizer(config, lr).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["labels"]),
                   "grad_norm": optax.tree.norm(grads), "learning_rate": lr(state.step)}
        return TrainState(state.step + 1, params, opt_state), metrics

    return step_fn


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path, *,
                       budget: TimeBudget | None = None, initial_params: Any = None,
                       start_from: Callable[[TrainState], TrainState] | None = None,
                       on_checkpoint: Callable[[TrainState, int, dict[str, float]], None] | None = None,
                       planned_schedule: tuple[int, int] | None = None) -> tuple[TrainState, dict[str, Any]]:
    """Train (or resume) in `workdir`; returns (the final state, the final metrics).

    The state is the `TrainState` of the last step (replicated device arrays). The metrics: "step", "export" (the
    directory of the exported model), "devices", "processes", "params_sha256" (the weights' fingerprint),
    "images_seen", "eval_seconds" (the last periodic evaluation's) and the last "eval/…" values.

    With a `budget` the run's length (and its learning-rate schedule) is fitted to the time left after timing
    `budget.calibration_steps` steps; config.num_steps / num_epochs then only bound it from above.
    `initial_params` (a parameter tree of the config's model) starts a new run, with a fresh optimizer and
    schedule, from another run's weights; a workdir that holds checkpoints resumes from them instead.
    `start_from(fresh_state) -> state` continues a whole train state (step, weights, optimizer moments) carried
    from another machine (scripts/relay.py): the schedule and the data order go on from its step.
    `on_checkpoint(state, step, eval_metrics)` is called (process 0, host arrays) after every checkpoint save.
    `planned_schedule` (warm-up steps, total steps) replaces the config's: the plan of a run split over GPU windows
    (scripts/campaign.py --windows), continued with `start_from` and a budget that does not fit."""
    workdir = Path(workdir)
    sharding.initialize_distributed()
    cfg = validate(config)
    host = HostSlice(jax.process_index(), jax.process_count())
    train, evaluation = train_and_eval_splits(config)
    if len(train.class_names) != cfg.num_classes:
        raise ValueError(f"the training data has {len(train.class_names)} classes but the model has "
                         f"{cfg.num_classes}: set model.overrides.num_classes={len(train.class_names)}")

    steps_per_epoch = train.num_examples // config.global_batch
    total_steps = int(config.num_steps or config.num_epochs * steps_per_epoch)
    warmup_steps = int(config.optim.warmup_epochs * steps_per_epoch)
    if planned_schedule is not None:  # a planned schedule, continued
        warmup_steps, total_steps = int(planned_schedule[0]), int(planned_schedule[1])
    mesh = sharding.make_mesh()
    replicated = sharding.replicated(mesh)
    model = cfg.build(compute_dtype(config), execution(config))

    @functools.partial(jax.jit, out_shardings=replicated)
    def init_state(rng):
        image = jnp.zeros((1, cfg.image_size, cfg.image_size, cfg.in_channels), jnp.float32)
        params = cfg.build().init(rng, image)["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, _optimizer(config, lambda step: 0.0).init(params))

    checkpoints = TrainCheckpoints(workdir / "checkpoints", keep=config.keep_checkpoints,
                                   best_metric="eval/top1" if evaluation is not None else None,
                                   asynchronous=config.async_checkpoints)
    start = checkpoints.latest_step() or 0
    try:  # before compiling or restoring: another run's checkpoint never reaches orbax
        run_record.settle(workdir, run_description(config, cfg, train), resuming=bool(start), may_change=("recipe",))
    except run_record.RunMismatch:
        checkpoints.close()
        raise
    state = init_state(jax.random.key(config.seed))
    if start:
        state = checkpoints.restore(start, state)
    elif start_from is not None:  # a whole state from another machine: its step, schedule position and moments
        state = jax.device_put(start_from(jax.device_get(state)), replicated)
        start = int(state.step)
    elif initial_params is not None:  # another run's weights, a new optimizer state and schedule
        params = matching_params(initial_params, state.params)
        state = TrainState(state.step, sharding.replicate(params, mesh),
                           jax.jit(_optimizer(config, lambda step: 0.0).init, out_shardings=replicated)(params))
    writer = MetricWriter(workdir, resume_step=start)

    augment = make_augment(config, streamed=train.stream is not None)
    train_step = jax.jit(make_train_step(model, config, cfg.num_classes, augment),
                         in_shardings=(replicated, sharding.batch_sharded(mesh), replicated, replicated),
                         out_shardings=(replicated, replicated), donate_argnums=(0,))
    eval_step = jax.jit(make_eval_step(model), out_shardings=replicated)

    def evaluate(params) -> dict[str, float]:
        result = evaluate_batches(eval_step, params, evaluation.eval_batches(config, host), mesh)
        return {f"eval/{k}": v for k, v in result.items() if k != "count"}

    def schedule_array():
        return np.asarray([min(warmup_steps, total_steps), total_steps], np.int32)

    schedule = schedule_array()
    base_rng = jax.random.key(config.seed + 1)
    batches = train.train_batches(config, start, total_steps, host)
    progress = progress_bar(total_steps, start, desc="train", unit="step")
    pending, eval_metrics, throughput, last_good, eval_seconds = [], {}, Throughput(), start, 0.0
    done = start

    def export_params(done: int, params, metrics: dict[str, float]) -> None:
        """workdir/export: the model of step `done` as a nestgen checkpoint (rewritten at every checkpoint)."""
        if jax.process_index() == 0:
            save_checkpoint(workdir / "export", cfg, jax.device_get(params), class_names=train.class_names,
                            preprocess=preprocess_record(config), weights_dtype="float32",
                            metadata=export_metadata(config, train.description, done, metrics))

    try:
        while done < total_steps:
            batch = sharding.global_batch_array(next(batches), mesh)
            state, metrics = train_step(state, batch, base_rng, schedule)
            pending.append(metrics)
            done += 1
            progress.update(1)
            per_step = budget.seconds_per_step(
                done, start, lambda s=state: jax.block_until_ready(s.step),  # with the evaluations' share:
                steps_between_evaluations=config.eval_every_steps if evaluation is not None else 0) if budget else None
            if per_step:  # the compiled step is timed: fit the run to the budget
                total_steps = min(total_steps, budget.fitted_steps(done, per_step))  # ≤ the config's own length
                warmup_steps = min(warmup_steps, total_steps // 10)  # a short run warms up for ≤ 10%
                schedule = schedule_array()
                batches = train.train_batches(config, done, total_steps, host)
                progress.total = total_steps
                writer.write(done, {"budget/seconds_per_step": per_step, "budget/total_steps": total_steps,
                                    "budget/warmup_steps": warmup_steps})
            if budget is not None and budget.must_stop() and done < total_steps:
                progress.write(f"step {done}: the time budget is spent; stopping {total_steps - done} steps early")
                total_steps = done
            log_now = itstime(done, config.log_every_steps, total_steps)
            eval_now = evaluation is not None and itstime(done, config.eval_every_steps, total_steps)
            save_now = itstime(done, config.checkpoint_every_steps, total_steps)
            if not (log_now or eval_now or save_now):
                continue
            if pending:
                averaged = mean_metrics(pending)
                if not finite(averaged, state.params):
                    raise TrainingDiverged(
                        f"training diverged by step {done} (loss {averaged['loss']}, grad norm "
                        f"{averaged['grad_norm']}); nothing was saved after step {last_good}, the last good "
                        f"checkpoint, in {checkpoints.directory}. Lower optim.base_lr or set optim.grad_clip_norm, "
                        "then resume from that checkpoint.")
                averaged["images_per_second"] = throughput.images_per_second(len(pending) * config.global_batch)
                writer.write(done, {f"train/{k}": v for k, v in averaged.items()})
                progress.set_postfix(loss=f"{averaged['loss']:.4f}", img_s=f"{averaged['images_per_second']:.0f}")
                pending = []
            if eval_now:
                began = time.perf_counter()
                eval_metrics = evaluate(state.params)
                eval_seconds = time.perf_counter() - began
                writer.write(done, eval_metrics)
                progress.write(f"step {done}: " + ", ".join(f"{k} {v:.4f}" for k, v in eval_metrics.items()))
                throughput.exclude(eval_seconds)  # images/s counts training time only
            if save_now:
                checkpoints.save(done, state, metrics=eval_metrics if eval_now else None)
                export_params(done, state.params, eval_metrics if eval_now else {})  # the latest model, loadable
                last_good = done
                if on_checkpoint is not None and jax.process_index() == 0:
                    on_checkpoint(jax.device_get(state), done, eval_metrics if eval_now else {})
            refitted = budget.refitted_steps(done, total_steps) if budget else None
            if refitted:  # slower than calibrated (evaluations, a busy machine): shorten the schedule so that
                total_steps = progress.total = refitted  # the cosine still ends in time
                schedule = schedule_array()
                writer.write(done, {"budget/refit_total_steps": total_steps})
    finally:
        progress.close()
        checkpoints.close()
        writer.close()

    params = jax.device_get(state.params)
    final_eval = eval_metrics or (evaluate(state.params) if evaluation is not None else {})
    export_params(done, params, final_eval)
    return state, {"step": int(state.step), "export": workdir / "export", "devices": jax.device_count(),
                   "processes": jax.process_count(), "params_sha256": params_fingerprint(params),
                   "images_seen": int(state.step) * config.global_batch, "eval_seconds": eval_seconds, **final_eval}


def preprocess_record(config) -> dict[str, Any]:
    """The checkpoint's `preprocess` entry for a config (image size, resize, crop, mean, std)."""
    return {"image_size": config.input.image_size, "resize": "bicubic", "crop_pct": config.input.crop_pct,
            "mean": list(config.input.mean), "std": list(config.input.std)}


def export_metadata(config, train_data: str, steps: int, metrics: dict[str, float]) -> dict[str, Any]:
    """The metadata of an exported classifier (also of a relay release, nestgen.release.relay.export_classifier)."""
    return {"trained_by": "nestgen.training.classifier_trainer", "train_data": train_data,
            "steps": steps, "global_batch": config.global_batch, "devices": jax.device_count(),
            "device_kind": jax.devices()[0].device_kind, "metrics": metrics, "config": config.to_dict()}

