"""Classifier training augmentations in pure JAX, run on the device inside the jitted train step on whole batches.

The official NesT recipe follows timm: random crop (CIFAR: pad to 36, crop 32, flip; ImageNet: random-resized
crop, flip), RandAugment `rand-m9-mstd0.5-inc1`, normalisation, random erasing. Every op is a pure function of the
image and an explicit JAX PRNG key; `augment_batch` gives example j of a batch the key `split(key, B)[j]` and vmaps
the per-example `train_transform`, so a step's augmentation depends on (key, images) alone: the same on 1 or 8
devices, exactly reproducible and resumable. RandAugment's fifteen ops live in `nestgen.data.randaugment`,
Mixup / CutMix (whole batches) in `nestgen.data.mixing`. Streaming input (ImageNet through tf.data) crops on the
host with `nestgen.data.streaming_crops`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nestgen.data.randaugment import FILL, check_uint8, rand_augment, to_uint8, uniform

RECIPES = ("cifar", "imagenet", "none")


def _random_flip(image: jax.Array, key: jax.Array) -> jax.Array:
    """Mirror left-right half of the time: (H, W, C) → (H, W, C)."""
    return jnp.where(uniform(key) < 0.5, image[:, ::-1], image)


# ---- crops, flips, normalisation, random erasing -----------------------------------------------------------

def pad_crop_flip(image, key: jax.Array, pad: int = 4) -> jax.Array:
    """Zero-pad by `pad` pixels on every side, crop back to (H, W) at a random offset, flip half of the time.
    (H, W, C) → (H, W, C), any dtype."""
    image = jnp.asarray(image)
    k_crop, k_flip = jax.random.split(key)
    padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)))  # (H+2p, W+2p, C)
    top, left = jax.random.randint(k_crop, (2,), 0, 2 * pad + 1)
    crop = lax.dynamic_slice(padded, (top, left, 0), image.shape)  # (H, W, C)
    return _random_flip(crop, k_flip)


def _first_valid(valid: jax.Array, *values: jax.Array) -> tuple[jax.Array, ...]:
    """Whether any attempt is valid, and each of `values` (attempts,) at the first valid attempt (0 if none)."""
    first = jnp.argmax(valid)
    return (valid.any(), *(v[first] for v in values))


def _round_int(x: jax.Array) -> jax.Array:
    return jnp.round(x).astype(jnp.int32)


def random_erasing(x, key: jax.Array, prob: float = 0.25, min_area: float = 0.02, max_area: float = 1 / 3,
                   min_aspect: float = 0.3, max_aspect: float | None = None, attempts: int = 10) -> jax.Array:
    """timm RandomErasing, 'pixel' mode, one box: with probability `prob` replace a rectangle of the normalised
    float image (H, W, C) by standard normal noise; same shape and dtype. The box has a uniform area fraction in
    [min_area, max_area] and a log-uniform aspect ratio; its sides are rounded to pixels, so tiny images can stray
    slightly outside the area range. If no attempt fits inside the image, nothing is erased."""
    x = jnp.asarray(x)
    h, w, c = x.shape
    max_aspect = 1.0 / min_aspect if max_aspect is None else max_aspect
    # a box of rounded sides box_h < h, box_w < w around area A holds at most A + (h + w)/2 pixels: draw noise for
    # that many, not for the whole image
    max_pixels = min(h * w, int(max_area * h * w + (h + w) / 2) + 2)
    k_apply, k_box, k_noise = jax.random.split(key, 3)
    draws = uniform(k_box, (4, attempts))  # area, aspect, top, left draws of every attempt
    area = (min_area + (max_area - min_area) * draws[0]) * (h * w)
    aspect = jnp.exp(math.log(min_aspect) + (math.log(max_aspect) - math.log(min_aspect)) * draws[1])
    box_h, box_w = _round_int(jnp.sqrt(area * aspect)), _round_int(jnp.sqrt(area / aspect))  # (attempts,)
    fits = (box_h < h) & (box_w < w) & (box_h * box_w <= max_pixels)  # the last holds whenever the first two do
    found, box_h, box_w, u_top, u_left = _first_valid(fits, box_h, box_w, draws[2], draws[3])
    found = found & (uniform(k_apply) < prob)
    box_h, box_w = jnp.where(found, box_h, 0), jnp.where(found, box_w, 0)  # nothing fits or not drawn: no box
    top = jnp.minimum((u_top * (h - box_h + 1)).astype(jnp.int32), h - box_h)  # in [0, h - box_h]
    left = jnp.minimum((u_left * (w - box_w + 1)).astype(jnp.int32), w - box_w)
    rows, cols = jnp.arange(h)[:, None] - top, jnp.arange(w)[None] - left  # (H, 1), (1, W): offsets in the box
    inside = (rows >= 0) & (rows < box_h) & (cols >= 0) & (cols < box_w)  # (H, W)
    noise = jax.random.normal(k_noise, (max_pixels, c), x.dtype)  # (P, C): the box's pixels in row-major order
    box_noise = noise[jnp.clip(rows * box_w + cols, 0, max_pixels - 1)]  # (H, W, C)
    return jnp.where(inside[..., None], box_noise, x)  # (H, W, C)


def normalize(image, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
    """uint8 (..., C) → float32 (x/255 - mean) / std."""
    x = jnp.asarray(image).astype(jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _keys_cubic(x: jax.Array) -> jax.Array:
    """Keys' cubic convolution kernel (a = -0.5) of |x|, as TensorFlow's and JAX's "cubic" resize."""
    out = (1.5 * x - 2.5) * x * x + 1.0
    out = jnp.where(x >= 1.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, out)
    return jnp.where(x >= 2.0, 0.0, out)


def _resize_weights(in_size: int, out_size: int, start, length) -> jax.Array:
    """Antialiased bicubic weights float32 (out_size, in_size) resizing input pixels [start, start + length) to
    out_size pixels: the kernel of TensorFlow's ScaleAndTranslate (`tf.image.resize(..., "bicubic",
    antialias=True)`) on the crop alone, weights renormalised at the crop's edges. start/length may be traced."""
    length = jnp.asarray(length, jnp.float32)
    inv_scale = length / out_size
    kernel_scale = jnp.maximum(inv_scale, 1.0)
    sample = (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * inv_scale  # (S,), in crop coordinates
    source = jnp.arange(in_size, dtype=jnp.float32) - jnp.asarray(start, jnp.float32) + 0.5  # (N,), pixel centres
    weights = _keys_cubic(jnp.abs(source[None] - sample[:, None]) / kernel_scale)  # (S, N)
    weights = jnp.where((source[None] > 0) & (source[None] < length), weights, 0.0)  # only the crop's pixels
    total = weights.sum(1, keepdims=True)
    return jnp.where(jnp.abs(total) >= 1000.0 * np.finfo(np.float32).tiny, weights / total, 0.0)


def _resized_crop(image: jax.Array, top, left, height, width, out_h: int, out_w: int) -> jax.Array:
    """Crop rows [top, top+height) × cols [left, left+width) (traced) and resize it to (out_h, out_w), antialiased
    bicubic, as `tf.image.resize` of the crop: uint8 (H, W, C) → uint8 (out_h, out_w, C)."""
    wy = _resize_weights(image.shape[0], out_h, top, height)  # (out_h, H)
    wx = _resize_weights(image.shape[1], out_w, left, width)  # (out_w, W)
    highest = lax.Precision.HIGHEST  # no reduced-precision matmuls on GPUs/TPUs: pixels must round the same
    rows = jnp.einsum("oh,hwc->owc", wy, image.astype(jnp.float32), precision=highest)  # (out_h, W, C)
    return to_uint8(jnp.einsum("pw,owc->opc", wx, rows, precision=highest))  # (out_h, out_w, C)


def inception_crop(image, key: jax.Array, size: int, scale: Sequence[float] = (0.08, 1.0),
                   ratio: Sequence[float] = (3 / 4, 4 / 3), attempts: int = 10) -> jax.Array:
    """timm RandomResizedCrop + flip: a crop of random area fraction in `scale` and log-uniform aspect ratio in
    `ratio` (first of `attempts` that fits, else the centre crop of clamped aspect), bicubic-resized (antialiased)
    to size×size, then flipped half of the time. uint8 (H, W, 3) of a static size → uint8 (size, size, 3)."""
    image = check_uint8(image, "inception_crop")
    h, w = image.shape[:2]
    k_area, k_aspect, k_top, k_left, k_flip = jax.random.split(key, 5)
    area = uniform(k_area, (attempts,), scale[0], scale[1]) * (h * w)
    aspect = jnp.exp(uniform(k_aspect, (attempts,), math.log(ratio[0]), math.log(ratio[1])))  # width / height
    crop_w, crop_h = _round_int(jnp.sqrt(area * aspect)), _round_int(jnp.sqrt(area / aspect))
    valid = (crop_w > 0) & (crop_w <= w) & (crop_h > 0) & (crop_h <= h)
    found, crop_h, crop_w = _first_valid(valid, crop_h, crop_w)
    low, high = min(ratio), max(ratio)  # fallback: the whole image, aspect clamped (static)
    fallback_h = int(round(w / low)) if w / h < low else h
    fallback_w = int(round(h * high)) if w / h > high else w
    crop_h, crop_w = jnp.where(found, crop_h, fallback_h), jnp.where(found, crop_w, fallback_w)
    top = jnp.where(found, jax.random.randint(k_top, (), 0, h - crop_h + 1), (h - crop_h) // 2)
    left = jnp.where(found, jax.random.randint(k_left, (), 0, w - crop_w + 1), (w - crop_w) // 2)
    return _random_flip(_resized_crop(image, top, left, crop_h, crop_w, size, size), k_flip)


def center_crop(image, size: int, crop_pct: float = 0.875) -> jax.Array:
    """Resize the shorter side to size / crop_pct (bicubic, antialiased), centre-crop size×size: the evaluation
    view of `nestgen.data.streaming_crops.center_crop`, in JAX. uint8 (H, W, 3) → uint8 (size, size, 3)."""
    image = check_uint8(image, "center_crop")
    h, w = image.shape[:2]
    scale = max(size, int(round(size / crop_pct)))
    factor = scale / min(h, w)
    new_h, new_w = max(scale, round(h * factor)), max(scale, round(w * factor))  # as streaming_crops.center_crop
    if (new_h, new_w) != (h, w):
        image = _resized_crop(image, 0, 0, h, w, new_h, new_w)  # (new_h, new_w, 3)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return image[top:top + size, left:left + size]


# ---- the composed transforms the train step calls ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Per-example training augmentation; the defaults are the official NesT CIFAR recipe."""

    recipe: str = "cifar"  # "cifar": pad-crop-flip; "imagenet": inception crop; "none": normalise only
    pad: int = 4
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    randaugment_layers: int = 2  # 0 disables RandAugment
    randaugment_magnitude: float = 9.0
    randaugment_magnitude_std: float = 0.5
    randaugment_prob: float = 0.5
    random_erasing: float = 0.25  # probability; 0 disables
    fill: int = FILL

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown augmentation recipe {self.recipe!r}; expected one of {RECIPES}")
        for name in ("randaugment_prob", "random_erasing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability, got {getattr(self, name)}")
        if self.randaugment_layers < 0 or self.pad < 0:
            raise ValueError("randaugment_layers and pad must not be negative")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None = None) -> AugmentConfig:
        """Build from a plain dict or ml_collections ConfigDict; unknown keys are an error."""
        values = dict(values.to_dict() if hasattr(values, "to_dict") else values or {})
        known = {field.name for field in dataclasses.fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"unknown augmentation settings {unknown}; known: {sorted(known)}")
        for name in ("crop_scale", "crop_ratio"):
            if name in values:
                values[name] = tuple(float(v) for v in values[name])
        return cls(**values)


def _as_config(recipe: str | AugmentConfig | Mapping[str, Any]) -> AugmentConfig:
    if isinstance(recipe, AugmentConfig):
        return recipe
    return AugmentConfig(recipe=recipe) if isinstance(recipe, str) else AugmentConfig.from_dict(recipe)


def train_transform(image, key: jax.Array, *, recipe: str | AugmentConfig | Mapping[str, Any] = "cifar",
                    image_size: int, mean: Sequence[float], std: Sequence[float], crop: bool = True) -> jax.Array:
    """One training example: uint8 (H, W, 3) + key → normalised float32 (image_size, image_size, 3).

    `recipe` is a name in RECIPES (official values), an AugmentConfig, or a dict of AugmentConfig fields; it and
    image_size, mean, std are static. "cifar" and "none" keep the image's size, which must be image_size.
    crop=False skips the recipe's crop and flip, for images cropped already (the streamed input of
    `nestgen.data.streaming_crops`): RandAugment, normalisation and random erasing still follow the recipe."""
    config = _as_config(recipe)
    image = check_uint8(image, "train_transform")
    k_crop, k_randaugment, k_erase = jax.random.split(key, 3)
    if crop and config.recipe == "cifar":
        image = pad_crop_flip(image, k_crop, config.pad)
    elif crop and config.recipe == "imagenet":
        image = inception_crop(image, k_crop, image_size, config.crop_scale, config.crop_ratio)
    if image.shape != (image_size, image_size, 3):
        raise ValueError(f"recipe {config.recipe!r}{'' if crop else ' without its crop'} gives {image.shape} "
                         f"images, not {image_size}x{image_size}x3")
    if config.recipe != "none" and config.randaugment_layers and config.randaugment_prob:
        image = rand_augment(image, k_randaugment, config.randaugment_layers, config.randaugment_magnitude,
                             config.randaugment_magnitude_std, config.randaugment_prob, config.fill)
    x = normalize(image, mean, std)
    if config.recipe != "none" and config.random_erasing:
        x = random_erasing(x, k_erase, config.random_erasing)
    return x


def augment_batch(key: jax.Array, images, *, recipe: str | AugmentConfig | Mapping[str, Any] = "cifar",
                  image_size: int, mean: Sequence[float], std: Sequence[float], crop: bool = True) -> jax.Array:
    """A training batch: uint8 (B, H, W, 3) → normalised float32 (B, image_size, image_size, 3).

    Example j is `train_transform(images[j], jax.random.split(key, B)[j], ...)`: a pure function of (key, images),
    so it gives the same values whether the batch is on one device or sharded over many. Call it inside the jitted
    train step (recipe, image_size, mean, std and crop are static Python values; crop=False: see train_transform)."""
    config = _as_config(recipe)
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise TypeError(f"augment_batch expects uint8 (B, H, W, 3) images, got {images.dtype} {images.shape}")
    keys = jax.random.split(key, images.shape[0])  # (B,) keys
    transform = partial(train_transform, recipe=config, image_size=image_size, mean=tuple(mean), std=tuple(std),
                        crop=crop)
    return jax.vmap(transform)(images, keys)  # (B, S, S, 3)
