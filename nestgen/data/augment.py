"""Per-example classifier augmentations in TensorFlow, run inside a tf.data `map`.

The official NesT recipe follows timm: random crop (CIFAR: pad to 36, crop 32, flip; ImageNet: random-resized
crop, flip), RandAugment `rand-m9-mstd0.5-inc1`, normalisation, random erasing. Every op is a pure function of the
image and an explicit stateless seed of shape (2,), so the pipeline is exactly reproducible and resumable: give
each example its own seed (e.g. `tf.random.experimental.stateless_fold_in(epoch_seed, index)`). Mixup / CutMix
work on whole batches and live in `nestgen.data.mixing` (JAX, on device).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

try:
    import tensorflow as tf
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("nestgen.data.augment needs TensorFlow: pip install 'nestgen[data]'") from error

try:
    tf.config.set_visible_devices([], "GPU")  # the accelerators belong to JAX
except (RuntimeError, ValueError):  # pragma: no cover - TF already initialised its devices
    pass

FILL = 128  # grey fill of the geometric ops, as the TF reference RandAugment
TRANSLATE_PCT = 0.45  # timm's default largest translation, as a fraction of the image side
MAX_LEVEL = 10.0  # RandAugment magnitudes live in [0, MAX_LEVEL]
RECIPES = ("cifar", "imagenet", "none")

try:  # a Case op left functional runs only its taken branch; lowered to Switch/Merge (tf.switch_case inside
    # tf.function) it visits every branch's ops, which made RandAugment ~2x slower in tf.data
    from tensorflow.python.ops.cond_v2 import indexed_case as _indexed_case
except ImportError:  # pragma: no cover - private API moved
    _indexed_case = None


def _switch(index: tf.Tensor, branches: list[Callable[[], tf.Tensor]]) -> tf.Tensor:
    """`tf.switch_case` that stays a functional Case op in graphs."""
    if _indexed_case is None or tf.executing_eagerly():
        return tf.switch_case(index, branches)
    return _indexed_case(index, branches, lower_using_switch_merge=False)


def _split(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
    """`num` independent (2,) seeds from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num))


def _uniform(seed: tf.Tensor, shape=(), minval=0.0, maxval=1.0) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, minval, maxval)


def _randint(seed: tf.Tensor, low, high) -> tf.Tensor:
    """A uniform int32 in [low, high] (both included), like Python's `random.randint`."""
    return tf.random.stateless_uniform([], seed, low, high + 1, dtype=tf.int32)


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _truncate_uint8(image: tf.Tensor) -> tf.Tensor:
    """Pillow's float → uint8 in its enhance and autocontrast lookup tables: clip, then truncate."""
    return tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8)


def _random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    return tf.cond(_uniform(seed) < 0.5, lambda: tf.reverse(image, [1]), lambda: image)


def _random_sign(value: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    return tf.where(_uniform(seed) < 0.5, -value, value)


# ---- RandAugment ops: fn(image uint8 (H, W, 3), magnitude in [0, 10], seed (2,)) -> uint8 (H, W, 3) ----------

def _gray(image: tf.Tensor) -> tf.Tensor:
    """ITU-R 601 luma as Pillow's `convert("L")`: float32 (H, W, 1)."""
    return tf.round(tf.reduce_sum(tf.cast(image, tf.float32) * [0.299, 0.587, 0.114], -1, keepdims=True))


def _blend(degenerate: tf.Tensor, image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """Pillow's ImageEnhance: factor 0 gives `degenerate`, 1 the image, > 1 extrapolates."""
    image = tf.cast(image, tf.float32)
    return _truncate_uint8(degenerate + factor * (image - degenerate))


def _enhance_factor(magnitude: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """timm's "increasing" enhance level: 1 ± 0.9·m/10, at least 0.1."""
    return tf.maximum(0.1, 1.0 + _random_sign(magnitude / MAX_LEVEL * 0.9, seed))


def auto_contrast(image, magnitude, seed):
    """Stretch every channel to the full [0, 255] range (flat channels unchanged)."""
    x = tf.cast(image, tf.float64)  # Pillow's lookup table is computed in double precision
    lo, hi = tf.reduce_min(x, [0, 1]), tf.reduce_max(x, [0, 1])  # (3,)
    scale = tf.where(hi > lo, 255.0 / tf.maximum(hi - lo, 1.0), 1.0)
    return _truncate_uint8(x * scale - tf.where(hi > lo, lo, 0.0) * scale)


def equalize(image, magnitude, seed):
    """Histogram equalisation per channel with Pillow's lookup table."""
    shape = tf.shape(image)
    x = tf.transpose(tf.reshape(tf.cast(image, tf.int32), [-1, 3]))  # (3, H·W)
    hist = tf.math.bincount(x, minlength=256, maxlength=256, axis=-1)  # (3, 256)
    last = 255 - tf.argmax(tf.cast(tf.reverse(hist, [1]) > 0, tf.int32), axis=1, output_type=tf.int32)  # (3,)
    step = (tf.reduce_sum(hist, 1) - tf.gather(hist, last, batch_dims=1)) // 255  # (3,)
    safe = tf.maximum(step, 1)[:, None]
    lut = tf.minimum((tf.cumsum(hist, axis=1, exclusive=True) + safe // 2) // safe, 255)  # (3, 256)
    lut = tf.where(step[:, None] > 0, lut, tf.range(256)[None])  # a single-valued channel stays as it is
    out = tf.gather(lut, x, batch_dims=1)  # (3, H·W)
    return tf.reshape(tf.cast(tf.transpose(out), tf.uint8), shape)


def invert(image, magnitude, seed):
    return 255 - image


def posterize(image, magnitude, seed):
    """Keep 4 → 0 most significant bits as the magnitude rises (timm PosterizeIncreasing)."""
    bits = 4 - tf.cast(magnitude / MAX_LEVEL * 4.0, tf.int32)
    mask = tf.bitwise.bitwise_and(tf.bitwise.left_shift(255, 8 - bits), 255)
    return tf.cast(tf.bitwise.bitwise_and(tf.cast(image, tf.int32), mask), tf.uint8)


def solarize(image, magnitude, seed):
    """Invert pixels at or above a threshold falling 256 → 0 with magnitude (timm SolarizeIncreasing)."""
    threshold = 256 - tf.cast(magnitude / MAX_LEVEL * 256.0, tf.int32)
    return tf.where(tf.cast(image, tf.int32) >= threshold, 255 - image, image)


def solarize_add(image, magnitude, seed):
    """Add up to 110 to pixels below 128 (saturating)."""
    add = tf.cast(magnitude / MAX_LEVEL * 110.0, tf.int32)
    x = tf.cast(image, tf.int32)
    return tf.cast(tf.where(x < 128, tf.minimum(x + add, 255), x), tf.uint8)


def color(image, magnitude, seed):
    return _blend(_gray(image), image, _enhance_factor(magnitude, seed))


def contrast(image, magnitude, seed):
    return _blend(tf.round(tf.reduce_mean(_gray(image))), image, _enhance_factor(magnitude, seed))


def brightness(image, magnitude, seed):
    return _blend(0.0, image, _enhance_factor(magnitude, seed))


def sharpness(image, magnitude, seed):
    """Blend with Pillow's SMOOTH filter (3×3, centre weight 5 of 13); border pixels are left as they are."""
    x = tf.cast(image, tf.float32)
    kernel = tf.tile(tf.constant([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]])[:, :, None, None] / 13.0, [1, 1, 3, 1])
    smooth = tf.round(tf.nn.depthwise_conv2d(x[None], kernel, [1, 1, 1, 1], "VALID")[0])  # (H-2, W-2, 3)
    smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])  # (H, W, 3)
    interior = tf.pad(tf.ones_like(smooth[1:-1, 1:-1, :1], tf.bool), [[1, 1], [1, 1], [0, 0]], constant_values=False)
    return _blend(tf.where(interior, smooth, x), image, _enhance_factor(magnitude, seed))


def _transform(image: tf.Tensor, matrix: Sequence[tf.Tensor], fill: float) -> tf.Tensor:
    """Bilinear warp; `matrix` (a0, a1, a2, b0, b1, b2) maps output (x, y) to input (a0x+a1y+a2, b0x+b1y+b2)."""
    transform = tf.stack([tf.cast(v, tf.float32) for v in matrix] + [0.0, 0.0])[None]  # (1, 8)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=transform, output_shape=tf.shape(image)[:2],
        fill_value=float(fill), interpolation="BILINEAR", fill_mode="CONSTANT")  # (1, H, W, 3)
    return _to_uint8(out[0])


def rotate(image, magnitude, seed, fill=FILL):
    """Rotate about the centre by up to ±30 degrees."""
    angle = _random_sign(magnitude / MAX_LEVEL * 30.0, seed) * (math.pi / 180.0)
    h, w = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float32))
    cx, cy, cos, sin = (w - 1) / 2, (h - 1) / 2, tf.cos(angle), tf.sin(angle)
    return _transform(image, [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy], fill)


def shear_x(image, magnitude, seed, fill=FILL):
    factor = _random_sign(magnitude / MAX_LEVEL * 0.3, seed)
    return _transform(image, [1.0, factor, 0.0, 0.0, 1.0, 0.0], fill)


def shear_y(image, magnitude, seed, fill=FILL):
    factor = _random_sign(magnitude / MAX_LEVEL * 0.3, seed)
    return _transform(image, [1.0, 0.0, 0.0, factor, 1.0, 0.0], fill)


def translate_x(image, magnitude, seed, fill=FILL):
    """Shift by up to ±45% of the width (timm TranslateXRel)."""
    pixels = _random_sign(magnitude / MAX_LEVEL * TRANSLATE_PCT, seed) * tf.cast(tf.shape(image)[1], tf.float32)
    return _transform(image, [1.0, 0.0, pixels, 0.0, 1.0, 0.0], fill)


def translate_y(image, magnitude, seed, fill=FILL):
    pixels = _random_sign(magnitude / MAX_LEVEL * TRANSLATE_PCT, seed) * tf.cast(tf.shape(image)[0], tf.float32)
    return _transform(image, [1.0, 0.0, 0.0, 0.0, 1.0, pixels], fill)


OPS: dict[str, Callable[..., tf.Tensor]] = {
    "AutoContrast": auto_contrast, "Equalize": equalize, "Invert": invert, "Rotate": rotate,
    "Posterize": posterize, "Solarize": solarize, "SolarizeAdd": solarize_add, "Color": color,
    "Contrast": contrast, "Brightness": brightness, "Sharpness": sharpness, "ShearX": shear_x, "ShearY": shear_y,
    "TranslateX": translate_x, "TranslateY": translate_y,
}  # timm's `_RAND_INCREASING_TRANSFORMS`, in its order
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")  # the ops that take `fill`


def rand_augment(image: tf.Tensor, seed: tf.Tensor, num_layers: int = 2, magnitude: float = 9.0,
                 magnitude_std: float = 0.5, prob: float = 0.5, fill: float = FILL) -> tf.Tensor:
    """timm RandAugment `rand-m{magnitude}-mstd{magnitude_std}-inc1`: `num_layers` ops drawn uniformly (with
    replacement), each applied with probability `prob` at a magnitude ~ Normal(magnitude, magnitude_std) clipped
    to [0, 10] (magnitude_std = inf: uniform in [0, magnitude])."""
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise TypeError(f"rand_augment expects a uint8 image, got {image.dtype.name}")
    if num_layers == 0:
        return image
    ops = [partial(fn, fill=fill) if name in GEOMETRIC else fn for name, fn in OPS.items()]
    s_op, s_apply, s_magnitude, s_args = _split(seed, 4)  # every layer's draws at once: fewer small ops
    if math.isinf(magnitude_std):
        levels = _uniform(s_magnitude, [num_layers], maxval=magnitude)
    else:
        levels = magnitude + magnitude_std * tf.random.stateless_normal([num_layers], s_magnitude)
    levels = tf.clip_by_value(levels, 0.0, MAX_LEVEL)  # (L,)
    indices = tf.random.stateless_uniform([num_layers], s_op, 0, len(ops), dtype=tf.int32)
    indices = tf.where(_uniform(s_apply, [num_layers]) < prob, indices, len(ops))  # the last branch: no op
    arg_seeds = _split(s_args, num_layers)
    for layer in range(num_layers):
        branches = [partial(op, image, levels[layer], arg_seeds[layer]) for op in ops] + [partial(tf.identity, image)]
        image = tf.ensure_shape(_switch(indices[layer], branches), image.shape)
    return image


# ---- crops, flips, normalisation, random erasing -----------------------------------------------------------

def pad_crop_flip(image: tf.Tensor, seed: tf.Tensor, pad: int = 4) -> tf.Tensor:
    """Zero-pad by `pad` pixels on every side, crop back to (H, W) at a random offset, flip half of the time."""
    image = tf.convert_to_tensor(image)
    s_crop, s_flip = _split(seed, 2)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])  # (H+2p, W+2p, C)
    offset = tf.random.stateless_uniform([2], s_crop, 0, 2 * pad + 1, dtype=tf.int32)
    crop = tf.slice(padded, tf.concat([offset, [0]], 0), tf.shape(image))  # (H, W, C)
    return tf.ensure_shape(_random_flip(crop, s_flip), image.shape)


def _first_valid(valid: tf.Tensor, *values: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Whether any attempt is valid, and each of `values` at the first valid attempt (index 0 if none)."""
    first = tf.argmax(tf.cast(valid, tf.int32), output_type=tf.int32)
    return (tf.reduce_any(valid), *(v[first] for v in values))


def _round_int(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.round(x), tf.int32)


def random_erasing(image: tf.Tensor, seed: tf.Tensor, prob: float = 0.25, min_area: float = 0.02,
                   max_area: float = 1 / 3, min_aspect: float = 0.3, max_aspect: float | None = None,
                   attempts: int = 10) -> tf.Tensor:
    """timm RandomErasing, 'pixel' mode, one box: with probability `prob` replace a rectangle of the normalised
    float image (H, W, C) by standard normal noise. The box has a uniform area fraction in [min_area, max_area]
    and a log-uniform aspect ratio; its sides are rounded to pixels, so tiny images can stray slightly outside the
    area range. If no attempt fits inside the image, nothing is erased."""
    image = tf.convert_to_tensor(image)
    max_aspect = 1.0 / min_aspect if max_aspect is None else max_aspect
    s_apply, s_box, s_noise = _split(seed, 3)

    def erase():
        shape = tf.shape(image)
        h, w = shape[0], shape[1]
        draws = _uniform(s_box, [4, attempts])  # area, aspect, top, left draws of every attempt
        area = (min_area + (max_area - min_area) * draws[0]) * tf.cast(h * w, tf.float32)
        aspect = tf.exp(math.log(min_aspect) + (math.log(max_aspect) - math.log(min_aspect)) * draws[1])
        box_h, box_w = _round_int(tf.sqrt(area * aspect)), _round_int(tf.sqrt(area / aspect))  # (attempts,)
        found, box_h, box_w, u_top, u_left = _first_valid((box_h < h) & (box_w < w), box_h, box_w, draws[2], draws[3])
        box_h, box_w = tf.where(found, box_h, 0), tf.where(found, box_w, 0)  # nothing fits: nothing erased
        top = tf.minimum(tf.cast(u_top * tf.cast(h - box_h + 1, tf.float32), tf.int32), h - box_h)  # in [0, h-box_h]
        left = tf.minimum(tf.cast(u_left * tf.cast(w - box_w + 1, tf.float32), tf.int32), w - box_w)
        inside = tf.pad(tf.ones(tf.stack([box_h, box_w, 1]), tf.bool),
                        [[top, h - top - box_h], [left, w - left - box_w], [0, 0]])  # (H, W, 1)
        return tf.where(inside, tf.random.stateless_normal(shape, s_noise, dtype=image.dtype), image)

    return tf.cond(_uniform(s_apply) < prob, erase, lambda: image)


def normalize(image: tf.Tensor, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """uint8 (H, W, C) → float32 (x/255 - mean) / std."""
    x = tf.cast(image, tf.float32) / 255.0
    return (x - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def _resize(image: tf.Tensor, height, width) -> tf.Tensor:
    """Antialiased bicubic resize (as Pillow's), back to uint8."""
    return _to_uint8(tf.image.resize(image, tf.stack([height, width]), method="bicubic", antialias=True))


def inception_crop(image: tf.Tensor, seed: tf.Tensor, size: int, scale: Sequence[float] = (0.08, 1.0),
                   ratio: Sequence[float] = (3 / 4, 4 / 3), attempts: int = 10) -> tf.Tensor:
    """timm RandomResizedCrop + flip: a crop of random area fraction in `scale` and log-uniform aspect ratio in
    `ratio` (first of `attempts` that fits, else the centre crop of clamped aspect), bicubic-resized to
    size×size, then flipped half of the time. uint8 (H, W, 3) of any size → uint8 (size, size, 3)."""
    image = tf.convert_to_tensor(image)
    s_area, s_aspect, s_top, s_left, s_flip = _split(seed, 5)
    h, w = tf.unstack(tf.shape(image)[:2])
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    area = _uniform(s_area, [attempts], scale[0], scale[1]) * hf * wf
    aspect = tf.exp(_uniform(s_aspect, [attempts], math.log(ratio[0]), math.log(ratio[1])))  # width / height
    crop_w, crop_h = _round_int(tf.sqrt(area * aspect)), _round_int(tf.sqrt(area / aspect))
    valid = (crop_w > 0) & (crop_w <= w) & (crop_h > 0) & (crop_h <= h)
    found, crop_h, crop_w = _first_valid(valid, crop_h, crop_w)
    in_ratio, low, high = wf / hf, min(ratio), max(ratio)  # fallback: the whole image, aspect clamped
    fallback_w = tf.where(in_ratio > high, _round_int(hf * high), w)
    fallback_h = tf.where(in_ratio < low, _round_int(wf / low), h)
    crop_h, crop_w = tf.where(found, crop_h, fallback_h), tf.where(found, crop_w, fallback_w)
    top = tf.where(found, _randint(s_top, 0, h - crop_h), (h - crop_h) // 2)
    left = tf.where(found, _randint(s_left, 0, w - crop_w), (w - crop_w) // 2)
    crop = tf.slice(image, tf.stack([top, left, 0]), tf.stack([crop_h, crop_w, -1]))  # (h', w', 3)
    return tf.ensure_shape(_random_flip(_resize(crop, size, size), s_flip), [size, size, image.shape[-1]])


def center_crop(image: tf.Tensor, size: int, crop_pct: float = 0.875) -> tf.Tensor:
    """Resize the shorter side to size / crop_pct (bicubic), centre-crop size×size: the evaluation view, the same
    geometry as `nestgen.data.images.preprocess`. uint8 (H, W, 3) → uint8 (size, size, 3)."""
    image = tf.convert_to_tensor(image)
    scale = max(size, int(round(size / crop_pct)))
    h, w = tf.unstack(tf.shape(image)[:2])
    factor = scale / tf.cast(tf.minimum(h, w), tf.float64)
    new_h = tf.maximum(scale, _round_int(tf.cast(h, tf.float64) * factor))
    new_w = tf.maximum(scale, _round_int(tf.cast(w, tf.float64) * factor))
    resized = tf.cond((new_h == h) & (new_w == w), lambda: image, lambda: _resize(image, new_h, new_w))
    crop = tf.slice(resized, tf.stack([(new_h - size) // 2, (new_w - size) // 2, 0]), [size, size, -1])
    return tf.ensure_shape(crop, [size, size, image.shape[-1]])


# ---- the composed transforms the input pipeline calls ------------------------------------------------------

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


def train_transform(image: tf.Tensor, seed: tf.Tensor, *, recipe: str | AugmentConfig | Mapping[str, Any] = "cifar",
                    image_size: int, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
    """One training example: uint8 (H, W, 3) + seed (2,) → normalised float32 (image_size, image_size, 3).

    `recipe` is a name in RECIPES (official values), an AugmentConfig, or a dict of AugmentConfig fields."""
    config = _as_config(recipe)
    s_crop, s_randaugment, s_erase = _split(seed, 3)
    if config.recipe == "cifar":
        image = pad_crop_flip(image, s_crop, config.pad)
    elif config.recipe == "imagenet":
        image = inception_crop(image, s_crop, image_size, config.crop_scale, config.crop_ratio)
    if config.recipe != "none" and config.randaugment_layers and config.randaugment_prob:
        image = rand_augment(image, s_randaugment, config.randaugment_layers, config.randaugment_magnitude,
                             config.randaugment_magnitude_std, config.randaugment_prob, config.fill)
    x = normalize(image, mean, std)
    if config.recipe != "none" and config.random_erasing:
        x = random_erasing(x, s_erase, config.random_erasing)
    return tf.ensure_shape(x, [image_size, image_size, 3])


def eval_transform(image: tf.Tensor, *, image_size: int, crop_pct: float = 1.0, mean: Sequence[float],
                   std: Sequence[float]) -> tf.Tensor:
    """One evaluation example: uint8 (H, W, 3) → centre view, normalised float32 (image_size, image_size, 3)."""
    return normalize(center_crop(image, image_size, crop_pct), mean, std)
