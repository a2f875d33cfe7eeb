"""Per-batch label mixing in JAX, run on device inside the jitted train step: label smoothing, Mixup, CutMix.

Semantics of timm's `Mixup` in "batch" mode: one λ and one choice (Mixup or CutMix) per batch, every example mixed
with its mirror in the batch (`x[::-1]`). Everything is a pure function of an explicit PRNG key and the inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp


def one_hot_smoothed(labels: jax.Array, num_classes: int, smoothing: float = 0.1) -> jax.Array:
    """Integer labels (B,) → float32 targets (B, K): 1 - smoothing + smoothing/K on the label, smoothing/K off it."""
    off = smoothing / num_classes
    return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32) * (1.0 - smoothing) + off


def _box(rng: jax.Array, lam: jax.Array, height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """timm's `rand_bbox`: a box of about (1 - λ) of the image, centred uniformly, clipped to the image.
    Returns the (H, W) bool mask and λ corrected to the clipped box's area."""
    ratio = jnp.sqrt(1.0 - lam)
    cut_h, cut_w = (height * ratio).astype(jnp.int32), (width * ratio).astype(jnp.int32)
    k_y, k_x = jax.random.split(rng)
    cy, cx = jax.random.randint(k_y, (), 0, height), jax.random.randint(k_x, (), 0, width)
    top, bottom = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height)
    left, right = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)
    rows, cols = jnp.arange(height), jnp.arange(width)
    mask = ((rows >= top) & (rows < bottom))[:, None] & ((cols >= left) & (cols < right))[None]  # (H, W)
    return mask, 1.0 - (bottom - top) * (right - left) / (height * width)


def mixup_or_cutmix(rng: jax.Array, images: jax.Array, targets: jax.Array, mixup_alpha: float = 0.8,
                    cutmix_alpha: float = 1.0, switch_prob: float = 0.5, prob: float = 1.0
                    ) -> tuple[jax.Array, jax.Array]:
    """Mix a batch with its mirror: images (B, H, W, C) float, targets (B, K) → mixed images and targets.

    With probability `prob` the batch is mixed: CutMix with probability `switch_prob`, else Mixup (an alpha of 0
    disables that kind, both 0 disable mixing). λ ~ Beta(α, α); Mixup blends whole images, CutMix pastes a box of
    the mirror image and λ becomes the area left unpasted. Targets are λ·y + (1-λ)·y[::-1]. The alphas are static
    Python floats; everything random is traced, so this jits. Called on per-device shards (shard_map), each shard
    mixes within itself; called on a globally sharded batch, `x[::-1]` pairs examples across devices.
    """
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images, targets
    k_apply, k_switch, k_mixup, k_cutmix, k_box = jax.random.split(rng, 5)
    _, height, width, _ = images.shape
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = jax.random.uniform(k_switch) < switch_prob
    else:
        use_cutmix = jnp.asarray(cutmix_alpha > 0)
    lam_mixup = jax.random.beta(k_mixup, mixup_alpha, mixup_alpha) if mixup_alpha > 0 else jnp.float32(1.0)
    lam_cutmix = jax.random.beta(k_cutmix, cutmix_alpha, cutmix_alpha) if cutmix_alpha > 0 else jnp.float32(1.0)
    box, lam_box = _box(k_box, lam_cutmix, height, width)
    apply = jax.random.uniform(k_apply) < prob
    lam = jnp.where(apply, jnp.where(use_cutmix, lam_box, lam_mixup), 1.0).astype(jnp.float32)
    # Per-pixel weight of the original image: 1 outside / 0 inside the box (CutMix), λ everywhere (Mixup).
    weight = jnp.where(use_cutmix, jnp.where(box, 0.0, 1.0), lam)  # (H, W)
    weight = jnp.where(apply, weight, 1.0)[None, :, :, None].astype(images.dtype)  # (1, H, W, 1)
    mixed = weight * images + (1 - weight) * images[::-1]
    return mixed, lam * targets + (1.0 - lam) * targets[::-1]


@dataclasses.dataclass(frozen=True)
class MixConfig:
    """Per-batch target mixing; the defaults are the official NesT CIFAR recipe."""

    label_smoothing: float = 0.1
    mixup_alpha: float = 0.8  # 0 disables Mixup
    cutmix_alpha: float = 1.0  # 0 disables CutMix
    switch_prob: float = 0.5  # probability of CutMix when both are enabled
    prob: float = 1.0  # probability that a batch is mixed at all

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None = None) -> MixConfig:
        """Build from a plain dict or ml_collections ConfigDict; unknown keys are an error."""
        values = dict(values.to_dict() if hasattr(values, "to_dict") else values or {})
        known = {field.name for field in dataclasses.fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"unknown mixing settings {unknown}; known: {sorted(known)}")
        return cls(**{name: float(value) for name, value in values.items()})


def mix_batch(rng: jax.Array, images: jax.Array, labels: jax.Array, num_classes: int,
              config: MixConfig | None = None) -> tuple[jax.Array, jax.Array]:
    """Integer labels (B,) → smoothed one-hot targets, then Mixup / CutMix: returns images and (B, K) targets."""
    config = config or MixConfig()
    targets = one_hot_smoothed(labels, num_classes, config.label_smoothing)
    return mixup_or_cutmix(rng, images, targets, config.mixup_alpha, config.cutmix_alpha, config.switch_prob,
                           config.prob)
