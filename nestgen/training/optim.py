"""AdamW with the official NesT recipe: decoupled weight decay except on position embeddings, warm-up + cosine."""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp
import optax
from flax import traverse_util


def learning_rate(step, *, peak: float, warmup_steps, total_steps):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then cosine to 0 at `total_steps`.

    `step`, `warmup_steps` and `total_steps` may be traced scalars, so a run can fit its length to a time budget
    without compiling its train step again (nestgen.training.budget). Returns float32."""
    step = jnp.asarray(step, jnp.float32)
    warmup = jnp.minimum(jnp.asarray(warmup_steps, jnp.float32), jnp.asarray(total_steps, jnp.float32))
    total = jnp.maximum(jnp.asarray(total_steps, jnp.float32), warmup + 1.0)
    progress = jnp.clip((step - warmup) / (total - warmup), 0.0, 1.0)
    decay = 0.5 * peak * (1.0 + jnp.cos(jnp.pi * progress))
    return jnp.where(step < warmup, peak * step / jnp.maximum(warmup, 1.0), decay)


def peak_learning_rate(base_lr: float, global_batch: int, reference_batch: int = 256) -> float:
    """The official scaling: base_lr × global_batch / reference_batch."""
    return base_lr * global_batch / reference_batch


def learning_rate_schedule(base_lr: float, global_batch: int, warmup_steps, total_steps,
                           reference_batch: int = 256) -> optax.Schedule:
    """Peak lr = base_lr × global_batch / reference_batch; linear warm-up from 0, then cosine to 0."""
    peak = peak_learning_rate(base_lr, global_batch, reference_batch)
    return functools.partial(learning_rate, peak=peak, warmup_steps=warmup_steps, total_steps=total_steps)


def weight_decay_mask(params: Any) -> Any:
    """True where weight decay applies: every parameter except the position embeddings."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({path: path[-1] != "pos_embed" for path in flat})


def create_optimizer(schedule: optax.Schedule, *, weight_decay: float, b1: float = 0.9, b2: float = 0.999,
                     eps: float = 1e-8, grad_clip_norm: float | None = None) -> optax.GradientTransformation:
    adamw = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=weight_decay_mask)
    return optax.chain(optax.clip_by_global_norm(grad_clip_norm), adamw) if grad_clip_norm else adamw
