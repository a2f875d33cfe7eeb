"""AdamW with the official NesT recipe: decoupled weight decay except on position embeddings, warm-up + cosine."""

from __future__ import annotations

from typing import Any

import optax
from flax import traverse_util


def learning_rate_schedule(base_lr: float, global_batch: int, warmup_steps: int, total_steps: int,
                           reference_batch: int = 256) -> optax.Schedule:
    """Peak lr = base_lr × global_batch / reference_batch; linear warm-up from 0, then cosine to 0."""
    peak = base_lr * global_batch / reference_batch
    warmup_steps = min(warmup_steps, total_steps)
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, max(total_steps, warmup_steps + 1), 0.0)


def weight_decay_mask(params: Any) -> Any:
    """True where weight decay applies: every parameter except the position embeddings."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({path: path[-1] != "pos_embed" for path in flat})


def create_optimizer(schedule: optax.Schedule, *, weight_decay: float, b1: float = 0.9, b2: float = 0.999,
                     eps: float = 1e-8, grad_clip_norm: float | None = None) -> optax.GradientTransformation:
    adamw = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=weight_decay_mask)
    return optax.chain(optax.clip_by_global_norm(grad_clip_norm), adamw) if grad_clip_norm else adamw
