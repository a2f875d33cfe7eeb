"""The crops of streamed input in TensorFlow, run per example inside a tf.data `map` (ImageNet via tfds).

Splits too large for memory are decoded on the host by tf.data, which must crop each image to a fixed size before
batching: the training view is timm's random-resized crop + flip (`inception_crop`, a pure function of the image
and a stateless seed of shape (2,)), the evaluation view the resize-and-centre crop (`center_crop`). Both return
uint8; the rest of the augmentation (RandAugment, normalisation, random erasing) runs on the device in JAX
(`nestgen.data.augment`). TensorFlow is imported when this module is, with the GPUs hidden from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

try:
    import tensorflow as tf
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("nestgen.data.streaming_crops needs TensorFlow: pip install 'nestgen[data]'") from error

try:
    tf.config.set_visible_devices([], "GPU")  # the accelerators belong to JAX
except (RuntimeError, ValueError):  # pragma: no cover - TF already initialised its devices
    pass


def _split(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
    """`num` independent (2,) seeds from one."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num))


def _uniform(seed: tf.Tensor, shape=(), minval=0.0, maxval=1.0) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, minval, maxval)


def _randint(seed: tf.Tensor, low, high) -> tf.Tensor:
    """A uniform int32 in [low, high] (both included), like Python's `random.randint`."""
    return tf.random.stateless_uniform([], seed, low, high + 1, dtype=tf.int32)


def _round_int(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.round(x), tf.int32)


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _resize(image: tf.Tensor, height, width) -> tf.Tensor:
    """Antialiased bicubic resize (as Pillow's), back to uint8."""
    return _to_uint8(tf.image.resize(image, tf.stack([height, width]), method="bicubic", antialias=True))


def _first_valid(valid: tf.Tensor, *values: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Whether any attempt is valid, and each of `values` at the first valid attempt (index 0 if none)."""
    first = tf.argmax(tf.cast(valid, tf.int32), output_type=tf.int32)
    return (tf.reduce_any(valid), *(v[first] for v in values))


def inception_crop(image: tf.Tensor, seed: tf.Tensor, size: int, scale: Sequence[float] = (0.08, 1.0),
                   ratio: Sequence[float] = (3 / 4, 4 / 3), attempts: int = 10) -> tf.Tensor:
    """timm RandomResizedCrop + flip: a crop of random area fraction in `scale` and log-uniform aspect ratio in
    `ratio` (first of `attempts` that fits, else the centre crop of clamped aspect), bicubic-resized to
    size×size, then flipped half of the time. uint8 (H, W, 3) of any size + seed (2,) → uint8 (size, size, 3)."""
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
    resized = _resize(crop, size, size)  # (size, size, 3)
    flipped = tf.cond(_uniform(s_flip) < 0.5, lambda: tf.reverse(resized, [1]), lambda: resized)
    return tf.ensure_shape(flipped, [size, size, image.shape[-1]])


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
