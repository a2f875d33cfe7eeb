"""RandAugment in pure JAX (timm's `rand-m9-mstd0.5-inc1`, the official NesT recipe), one image at a time under
vmap: fifteen ops, each a pure function of (uint8 image, magnitude in [0, 10], PRNG key).

The colour ops are exact ports of Pillow's (integer arithmetic, or float32 where Pillow's C code uses float;
bit-exact on XLA:CPU, while a backend that fuses multiply-adds may round an enhance blend one level apart), the
geometric ops are the bilinear warp of TensorFlow's ImageProjectiveTransformV3 with constant grey fill. Under vmap
every RandAugment layer computes its op as one of three kinds (a per-channel lookup table, a blend with a
degenerate image, an affine warp), so a layer costs three image-sized ops rather than fifteen. The crops, flips,
erasing and the composed train transform that calls `rand_augment` are in `nestgen.data.augment`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

FILL = 128  # grey fill of the geometric ops, as the TF reference RandAugment
TRANSLATE_PCT = 0.45  # timm's default largest translation, as a fraction of the image side
MAX_LEVEL = 10.0  # RandAugment magnitudes live in [0, MAX_LEVEL]


def uniform(key: jax.Array, shape=(), minval=0.0, maxval=1.0) -> jax.Array:
    """float32 uniform draws in [minval, maxval) of `shape`."""
    return jax.random.uniform(key, shape, jnp.float32, minval, maxval)


def to_uint8(x: jax.Array) -> jax.Array:
    """Round to nearest (ties to even) and saturate: float → uint8."""
    return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)


def _truncate_uint8(x: jax.Array) -> jax.Array:
    """Pillow's float → uint8 in its enhance and autocontrast lookup tables: clip, then truncate."""
    return jnp.clip(x, 0, 255).astype(jnp.uint8)


def _random_sign(value: jax.Array, key: jax.Array) -> jax.Array:
    return jnp.where(uniform(key) < 0.5, -value, value)


def check_uint8(image, what: str) -> jax.Array:
    """`image` as a jax uint8 (H, W, C) array; TypeError naming `what` otherwise."""
    image = jnp.asarray(image)
    if image.dtype != jnp.uint8 or image.ndim != 3:
        raise TypeError(f"{what} expects a uint8 (H, W, C) image, got {image.dtype} {image.shape}")
    return image


# ---- RandAugment ops: fn(image uint8 (H, W, 3), magnitude in [0, 10], key) -> uint8 (H, W, 3) -------------------
# Each op is one of three kinds, so that a RandAugment layer under vmap applies one of each kind:
#   lookup table  lut(image, magnitude, key) -> int32 (3, 256), applied per channel;
#   blend         (degenerate float32 (H, W, 3), factor) -> Pillow's ImageEnhance blend with the image;
#   warp          affine matrix (6,) -> bilinear warp with a constant fill.

_IDENTITY_LUT = np.arange(256, dtype=np.int32)


def _apply_lut(image: jax.Array, lut: jax.Array) -> jax.Array:
    """Per-channel lookup: image uint8 (H, W, 3), lut int (3, 256) → uint8 (H, W, 3)."""
    index = image.astype(jnp.int32) + 256 * jnp.arange(3, dtype=jnp.int32)  # (H, W, 3) into lut.reshape(768)
    return lut.reshape(-1)[index].astype(jnp.uint8)


def _autocontrast_low_keys() -> np.ndarray:
    """Where Pillow's autocontrast table, `int(ix * scale + offset)` in double precision, lands one below the exact
    floor((ix - lo)·255 / (hi - lo)): the sorted keys (lo·256 + hi)·256 + ix, int32 (about 12,000 of the 2.8 million
    (lo, hi, ix) with lo ≤ ix ≤ hi; all at an exact integer that rounding pushed below)."""
    keys = []
    for d in range(1, 256):
        lo = np.arange(256 - d)[:, None]  # (256-d, 1)
        ix = lo + np.arange(d + 1)[None]  # (256-d, d+1): every value a channel spanning [lo, lo+d] can hold
        scale = 255.0 / d
        pillow = (ix * scale + (-lo * scale)).astype(np.int64)  # truncates toward zero, as Python's int()
        exact = (ix - lo) * 255 // d
        assert ((exact - pillow) >= 0).all() and ((exact - pillow) <= 1).all()
        low = pillow < exact
        keys.append(((lo * 256 + lo + d) * 256 + ix)[low])
    return np.sort(np.concatenate(keys)).astype(np.int32)


_AUTOCONTRAST_LOW = _autocontrast_low_keys()


def _member(table: np.ndarray, queries: jax.Array) -> jax.Array:
    """Whether each of `queries` is in the sorted 1-D constant `table`: an unrolled binary search (jnp.searchsorted
    under vmap would copy the table for every example)."""
    table = jnp.asarray(table)
    low = jnp.zeros(queries.shape, jnp.int32)  # invariant: table[low - 1] < query <= table[low + width - 1]
    width = table.size
    while width > 1:
        half = width // 2
        low = jnp.where(table[low + half - 1] < queries, low + half, low)
        width -= half
    return table[low] == queries


def _auto_contrast_lut(image, magnitude, key):
    """Pillow's ImageOps.autocontrast table: stretch every channel to [0, 255] (flat channels unchanged)."""
    x = image.reshape(-1, 3).astype(jnp.int32)  # (H·W, 3)
    lo, hi = x.min(0), x.max(0)  # (3,)
    ix = jnp.arange(256, dtype=jnp.int32)
    exact = (ix[None] - lo[:, None]) * 255 // jnp.maximum(hi - lo, 1)[:, None]  # (3, 256)
    keys = (lo[:, None] * 256 + hi[:, None]) * 256 + ix[None]  # (3, 256)
    lut = jnp.clip(exact - _member(_AUTOCONTRAST_LOW, keys).astype(jnp.int32), 0, 255)  # Pillow's double rounding
    return jnp.where((hi > lo)[:, None], lut, ix[None])


def _equalize_lut(image, magnitude, key):
    """Pillow's ImageOps.equalize table: histogram equalisation per channel."""
    x = image.reshape(-1, 3).astype(jnp.int32) + 256 * jnp.arange(3, dtype=jnp.int32)  # (H·W, 3) bins of (768,)
    hist = jnp.zeros(768, jnp.int32).at[x.reshape(-1)].add(1).reshape(3, 256)  # (3, 256)
    last = 255 - jnp.argmax(hist[:, ::-1] > 0, axis=1)  # (3,): the highest occupied bin
    step = (x.shape[0] - jnp.take_along_axis(hist, last[:, None], 1)[:, 0]) // 255  # (3,)
    safe = jnp.maximum(step, 1)[:, None]
    lut = jnp.minimum((jnp.cumsum(hist, axis=1) - hist + safe // 2) // safe, 255)  # (3, 256)
    return jnp.where(step[:, None] > 0, lut, _IDENTITY_LUT[None])  # a single-valued channel stays as it is


def _invert_lut(image, magnitude, key):
    """255 - x."""
    return jnp.broadcast_to(255 - _IDENTITY_LUT, (3, 256))


def _posterize_lut(image, magnitude, key):
    """Keep 4 → 0 most significant bits as the magnitude rises (timm PosterizeIncreasing)."""
    bits = 4 - (magnitude / MAX_LEVEL * 4.0).astype(jnp.int32)
    mask = (255 << (8 - bits)) & 255
    return jnp.broadcast_to(_IDENTITY_LUT & mask, (3, 256))


def _solarize_lut(image, magnitude, key):
    """Invert values at or above a threshold falling 256 → 0 with magnitude (timm SolarizeIncreasing)."""
    threshold = 256 - (magnitude / MAX_LEVEL * 256.0).astype(jnp.int32)
    return jnp.broadcast_to(jnp.where(_IDENTITY_LUT >= threshold, 255 - _IDENTITY_LUT, _IDENTITY_LUT), (3, 256))


def _solarize_add_lut(image, magnitude, key):
    """Add up to 110 to values below 128, saturating (timm SolarizeAdd)."""
    add = (magnitude / MAX_LEVEL * 110.0).astype(jnp.int32)
    lut = jnp.where(_IDENTITY_LUT < 128, jnp.minimum(_IDENTITY_LUT + add, 255), _IDENTITY_LUT)
    return jnp.broadcast_to(lut, (3, 256))


def _enhance_factor(magnitude, key) -> jax.Array:
    """timm's "increasing" enhance level: 1 ± 0.9·m/10, at least 0.1 (float32 scalar)."""
    return jnp.maximum(0.1, 1.0 + _random_sign(jnp.asarray(magnitude, jnp.float32) / MAX_LEVEL * 0.9, key))


def _gray(image: jax.Array) -> jax.Array:
    """Pillow's `convert("L")` (ITU-R 601 luma in 16-bit fixed point): int32 (H, W, 1)."""
    x = image.astype(jnp.int32)
    return (x[..., :1] * 19595 + x[..., 1:2] * 38470 + x[..., 2:] * 7471 + 0x8000) >> 16


def _color_blend(image, magnitude, key):
    """Pillow's ImageEnhance.Color at 1 ± 0.9·m/10: blend with the image's luma."""
    return jnp.broadcast_to(_gray(image), image.shape).astype(jnp.float32), _enhance_factor(magnitude, key)


def _contrast_blend(image, magnitude, key):
    """Pillow's ImageEnhance.Contrast at 1 ± 0.9·m/10: blend with the mean luma, int(mean + 0.5) (exactly)."""
    total, count = jnp.sum(_gray(image)), image.shape[0] * image.shape[1]
    mean = (2 * total + count) // (2 * count)
    return jnp.broadcast_to(mean.astype(jnp.float32), image.shape), _enhance_factor(magnitude, key)


def _brightness_blend(image, magnitude, key):
    """Pillow's ImageEnhance.Brightness at 1 ± 0.9·m/10: blend with black."""
    return jnp.zeros(image.shape, jnp.float32), _enhance_factor(magnitude, key)


def _sharpness_blend(image, magnitude, key):
    """Pillow's ImageEnhance.Sharpness at 1 ± 0.9·m/10: blend with the SMOOTH filter (3×3, centre weight 5 of 13,
    rounded; border pixels stay as they are)."""
    x = image.astype(jnp.int32)
    h, w = image.shape[:2]
    window = sum(x[dy:dy + h - 2, dx:dx + w - 2] for dy in range(3) for dx in range(3))  # (H-2, W-2, 3)
    smooth = (2 * (window + 4 * x[1:-1, 1:-1]) + 13) // 26  # round(sum / 13): never a tie, 13 is odd
    return x.at[1:-1, 1:-1].set(smooth).astype(jnp.float32), _enhance_factor(magnitude, key)


def _blend(image: jax.Array, degenerate: jax.Array, factor: jax.Array) -> jax.Array:
    """Pillow's ImageEnhance in float32: factor 0 gives `degenerate`, 1 the image, > 1 extrapolates; truncated."""
    return _truncate_uint8(degenerate + factor * (image.astype(jnp.float32) - degenerate))


def _matrix(*values) -> jax.Array:
    """An affine warp matrix (a0, a1, a2, b0, b1, b2): float32 (6,)."""
    return jnp.stack([jnp.asarray(v, jnp.float32) for v in values])


def _rotate_matrix(image, magnitude, key):
    """Rotate about the centre by up to ±30 degrees."""
    angle = _random_sign(magnitude / MAX_LEVEL * 30.0, key) * (math.pi / 180.0)
    cx, cy = (image.shape[1] - 1) / 2, (image.shape[0] - 1) / 2
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    return _matrix(cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)


def _shear_x_matrix(image, magnitude, key):
    """Shear x by up to ±0.3·y."""
    return _matrix(1.0, _random_sign(magnitude / MAX_LEVEL * 0.3, key), 0.0, 0.0, 1.0, 0.0)


def _shear_y_matrix(image, magnitude, key):
    """Shear y by up to ±0.3·x."""
    return _matrix(1.0, 0.0, 0.0, _random_sign(magnitude / MAX_LEVEL * 0.3, key), 1.0, 0.0)


def _translate_x_matrix(image, magnitude, key):
    """Shift by up to ±45% of the width (timm TranslateXRel)."""
    return _matrix(1.0, 0.0, _random_sign(magnitude / MAX_LEVEL * TRANSLATE_PCT, key) * image.shape[1], 0.0, 1.0, 0.0)


def _translate_y_matrix(image, magnitude, key):
    """Shift by up to ±45% of the height (timm TranslateYRel)."""
    return _matrix(1.0, 0.0, 0.0, 0.0, 1.0, _random_sign(magnitude / MAX_LEVEL * TRANSLATE_PCT, key) * image.shape[0])


def _warp(image: jax.Array, matrix: jax.Array, fill: float) -> jax.Array:
    """TensorFlow's ImageProjectiveTransformV3 (bilinear, constant fill) for an affine `matrix` (6,) =
    (a0, a1, a2, b0, b1, b2), which maps output pixel (x, y) to input (a0x+a1y+a2, b0x+b1y+b2); neighbours outside
    the image read `fill`. uint8 (H, W, C) → uint8 (H, W, C)."""
    h, w, c = image.shape
    y, x = jnp.arange(h, dtype=jnp.float32)[:, None], jnp.arange(w, dtype=jnp.float32)[None]  # (H, 1), (1, W)
    in_x = matrix[0] * x + matrix[1] * y + matrix[2]  # (H, W)
    in_y = matrix[3] * x + matrix[4] * y + matrix[5]
    x0, y0 = jnp.floor(in_x), jnp.floor(in_y)
    x1, y1 = x0 + 1.0, y0 + 1.0
    padded = jnp.pad(image.astype(jnp.float32), ((1, 1), (1, 1), (0, 0)), constant_values=fill)  # (H+2, W+2, C)
    flat = padded.reshape((h + 2) * (w + 2), c)  # (H+2 · W+2, C): every index outside the image reads the fill

    def read(yy, xx):  # (H, W) float corners → (H, W, C)
        row = jnp.clip(yy, -1, h).astype(jnp.int32) + 1
        col = jnp.clip(xx, -1, w).astype(jnp.int32) + 1
        return flat[row * (w + 2) + col]

    wx0, wx1 = (x1 - in_x)[..., None], (in_x - x0)[..., None]  # (H, W, 1)
    top = wx0 * read(y0, x0) + wx1 * read(y0, x1)
    bottom = wx0 * read(y1, x0) + wx1 * read(y1, x1)
    return to_uint8((y1 - in_y)[..., None] * top + (in_y - y0)[..., None] * bottom)


# (name, kind, parameter function) in timm's `_RAND_INCREASING_TRANSFORMS` order
_KINDS = ("lut", "blend", "warp")
_SPECS: tuple[tuple[str, str, Callable], ...] = (
    ("AutoContrast", "lut", _auto_contrast_lut), ("Equalize", "lut", _equalize_lut), ("Invert", "lut", _invert_lut),
    ("Rotate", "warp", _rotate_matrix), ("Posterize", "lut", _posterize_lut), ("Solarize", "lut", _solarize_lut),
    ("SolarizeAdd", "lut", _solarize_add_lut), ("Color", "blend", _color_blend),
    ("Contrast", "blend", _contrast_blend), ("Brightness", "blend", _brightness_blend),
    ("Sharpness", "blend", _sharpness_blend), ("ShearX", "warp", _shear_x_matrix),
    ("ShearY", "warp", _shear_y_matrix), ("TranslateX", "warp", _translate_x_matrix),
    ("TranslateY", "warp", _translate_y_matrix),
)
_MEMBERS = {kind: [fn for _, k, fn in _SPECS if k == kind] for kind in _KINDS}
# op index → kind index (3: no op) and position among its kind, for op indices 0…14 and 15 (no op)
_KIND_OF = np.array([_KINDS.index(kind) for _, kind, _ in _SPECS] + [len(_KINDS)], np.int32)
_MEMBER_OF = np.array([_MEMBERS[kind].index(fn) for _, kind, fn in _SPECS] + [0], np.int32)


def _apply(kind: str, params, image: jax.Array, fill: float) -> jax.Array:
    """Apply an op of `kind` given its parameters (a lut, (degenerate, factor), or a matrix)."""
    if kind == "lut":
        return _apply_lut(image, params)
    if kind == "blend":
        return _blend(image, *params)
    return _warp(image, params, fill)


def _make_op(name: str, kind: str, fn: Callable) -> Callable[..., jax.Array]:
    def op(image, magnitude, key, fill=FILL):
        image = check_uint8(image, name)
        return _apply(kind, fn(image, jnp.asarray(magnitude, jnp.float32), key), image, fill)

    def geometric(image, magnitude, key, fill=FILL):
        return op(image, magnitude, key, fill)

    def colour(image, magnitude, key):
        return op(image, magnitude, key)

    chosen = geometric if kind == "warp" else colour
    chosen.__name__ = chosen.__qualname__ = name
    chosen.__doc__ = (f"RandAugment {name} (image uint8 (H, W, 3), magnitude in [0, 10], key"
                      f"{', fill=FILL' if kind == 'warp' else ''}) → uint8 (H, W, 3). {' '.join(fn.__doc__.split())}")
    return chosen


OPS: dict[str, Callable[..., jax.Array]] = {name: _make_op(name, kind, fn) for name, kind, fn in _SPECS}
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")  # the ops that take `fill`


def _layer(image: jax.Array, op: jax.Array, magnitude: jax.Array, key: jax.Array, fill: float) -> jax.Array:
    """One RandAugment layer on uint8 (H, W, 3): op int32 scalar in [0, 15] (15: no op). Unbatched only the chosen
    kind runs; under vmap the switches become selects, so each kind is applied once, with its parameters (table,
    degenerate image and factor, or matrix) computed for every member and the op's selected."""
    member = jnp.asarray(_MEMBER_OF)[op]

    def branch(kind):
        params = [partial(fn, image, magnitude, key) for fn in _MEMBERS[kind]]
        if kind == "lut":  # the chosen table as a one-hot weighted sum, not a switch: under vmap XLA:CPU fuses
            # the tables into the per-pixel lookup either way, and this form fuses into ~10% fewer operations
            def lookup():
                tables = jnp.stack([p() for p in params])  # (6, 3, 256)
                return _apply_lut(image, jnp.sum(tables * (jnp.arange(len(params)) == member)[:, None, None], 0))

            return lookup
        return lambda: _apply(kind, lax.switch(member, params), image, fill)

    return lax.switch(jnp.asarray(_KIND_OF)[op], [branch(kind) for kind in _KINDS] + [lambda: image])


def rand_augment(image, key: jax.Array, num_layers: int = 2, magnitude: float = 9.0, magnitude_std: float = 0.5,
                 prob: float = 0.5, fill: float = FILL) -> jax.Array:
    """timm RandAugment `rand-m{magnitude}-mstd{magnitude_std}-inc1` on one uint8 image (H, W, 3) → uint8 (H, W, 3):
    `num_layers` ops drawn uniformly from OPS (with replacement), each applied with probability `prob` at a
    magnitude ~ Normal(magnitude, magnitude_std) clipped to [0, 10] (magnitude_std = inf: uniform in [0, magnitude]).
    The layer count and the distribution parameters are static; vmap it for a batch."""
    image = check_uint8(image, "rand_augment")
    if num_layers == 0:
        return image
    k_op, k_apply, k_magnitude, k_args = jax.random.split(key, 4)
    if math.isinf(magnitude_std):
        levels = uniform(k_magnitude, (num_layers,), maxval=magnitude)
    else:
        levels = magnitude + magnitude_std * jax.random.normal(k_magnitude, (num_layers,), jnp.float32)
    levels = jnp.clip(levels, 0.0, MAX_LEVEL)  # (L,)
    ops = jax.random.randint(k_op, (num_layers,), 0, len(OPS))  # (L,)
    ops = jnp.where(uniform(k_apply, (num_layers,)) < prob, ops, len(OPS))  # len(OPS): no op

    def layer(image, args):  # a loop, not an unrolled chain: XLA would fuse (recompute) a layer into the next
        return _layer(image, *args, fill), None

    return lax.scan(layer, image, (ops, levels, jax.random.split(k_args, num_layers)))[0]
