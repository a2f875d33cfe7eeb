"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training") in pure JAX.

With little data a GAN discriminator memorises the real images; augmenting only the reals shifts the distribution the
generator learns to match. DiffAugment applies the same random, differentiable transforms to every image the
discriminator sees, real and fake, in both the D and the G steps; gradients flow through them back to the generator.

Semantics of the official DiffAugment-pytorch (images in [-1, 1]) on NHWC arrays: "color" (brightness, saturation,
contrast), "translation" (integer shift of up to 1/8 of the size, zero fill) and "cutout" (a zeroed square of half
the size). Every image of the batch draws its own parameters; everything is a pure function of an explicit PRNG key,
so it jits (the policy is static) and runs inside the train step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")


def _uniform(rng: jax.Array, x: jax.Array, low: float, high: float) -> jax.Array:
    """One uniform draw per image, shaped (B, 1, 1, 1) to broadcast over pixels, in the images' dtype."""
    return jax.random.uniform(rng, (x.shape[0], 1, 1, 1), jnp.float32, low, high).astype(x.dtype)


def rand_color(rng: jax.Array, x: jax.Array) -> jax.Array:
    """Brightness (+U(-0.5, 0.5)), then saturation (×U(0, 2) about the channel mean), then contrast (×U(0.5, 1.5)
    about the image mean), each per image."""
    k_brightness, k_saturation, k_contrast = jax.random.split(rng, 3)
    x = x + _uniform(k_brightness, x, -0.5, 0.5)
    x_mean = x.mean(axis=3, keepdims=True)  # (B, H, W, 1)
    x = (x - x_mean) * _uniform(k_saturation, x, 0.0, 2.0) + x_mean
    x_mean = x.mean(axis=(1, 2, 3), keepdims=True)  # (B, 1, 1, 1)
    return (x - x_mean) * _uniform(k_contrast, x, 0.5, 1.5) + x_mean


def rand_translation(rng: jax.Array, x: jax.Array, ratio: float = 0.125) -> jax.Array:
    """Shift each image by integers in [-s, s] rows and columns, s = round(ratio · size); pixels shifted in are 0.

    As the original: output[i, j] = input[i + ty, j + tx], read from a one-pixel zero border with clamped indices, so
    the result is a gather of pixel values and differentiable in them.
    """
    batch, height, width, _ = x.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    k_y, k_x = jax.random.split(rng)
    ty = jax.random.randint(k_y, (batch, 1), -shift_y, shift_y + 1)  # (B, 1)
    tx = jax.random.randint(k_x, (batch, 1), -shift_x, shift_x + 1)  # (B, 1)
    rows = jnp.clip(jnp.arange(height)[None] + ty + 1, 0, height + 1)  # (B, H), indices into the padded image
    cols = jnp.clip(jnp.arange(width)[None] + tx + 1, 0, width + 1)  # (B, W)
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # (B, H + 2, W + 2, C)
    return jax.vmap(lambda image, r, c: image[r[:, None], c[None, :]])(padded, rows, cols)  # (B, H, W, C)


def rand_cutout(rng: jax.Array, x: jax.Array, ratio: float = 0.5) -> jax.Array:
    """Zero a (ratio·H) × (ratio·W) square per image, centred uniformly (as the original, the centre may lie on the
    border, so the square is clipped to between a quarter and all of its area)."""
    batch, height, width, _ = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    k_y, k_x = jax.random.split(rng)
    cy = jax.random.randint(k_y, (batch, 1), 0, height + 1 - size_y % 2)  # (B, 1)
    cx = jax.random.randint(k_x, (batch, 1), 0, width + 1 - size_x % 2)  # (B, 1)
    top, left = cy - size_y // 2, cx - size_x // 2
    rows, cols = jnp.arange(height)[None], jnp.arange(width)[None]  # (1, H), (1, W)
    in_rows = (rows >= top) & (rows < top + size_y)  # (B, H)
    in_cols = (cols >= left) & (cols < left + size_x)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
    return x * keep[..., None].astype(x.dtype)  # (B, H, W, C)


_OPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "color": rand_color,
    "translation": rand_translation,
    "cutout": rand_cutout,
}


def diff_augment(rng: jax.Array, images: jax.Array, policy: Sequence[str] = POLICIES) -> jax.Array:
    """Apply the ops of `policy` in order to images (B, H, W, C) in [-1, 1]; shape and dtype are kept.

    Each op gets its own key split from `rng` and draws per-image parameters. An empty policy returns `images`
    itself; a string is read as comma-separated names ("color,translation", as the original). Under jit, pass
    `policy` as a static argument.
    """
    if isinstance(policy, str):
        policy = [name for name in policy.split(",") if name]
    for name in policy:
        if name not in _OPS:
            raise ValueError(f"unknown DiffAugment op {name!r}; known: {sorted(_OPS)}")
    if not policy:
        return images
    for key, name in zip(jax.random.split(rng, len(policy)), policy, strict=True):
        images = _OPS[name](key, images)
    return images
