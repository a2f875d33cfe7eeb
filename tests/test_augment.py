"""Classifier augmentations in JAX: deterministic given a key, Pillow-exact colour ops, TF-matching geometric ops,
timm semantics, one batch = its examples, the same on 1 or 8 devices; the TensorFlow crops of streamed input."""

import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from nestgen.data import augment, randaugment
from nestgen.data.augment import (
    AugmentConfig,
    augment_batch,
    normalize,
    pad_crop_flip,
    random_erasing,
    train_transform,
)
from nestgen.data.randaugment import GEOMETRIC, OPS, rand_augment

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
WIDE = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)  # non-square
LARGE = RNG.integers(0, 256, (256, 320, 3), dtype=np.uint8)
ROOT = Path(__file__).resolve().parents[1]


def _keys(n: int, seed: int = 0) -> jax.Array:
    return jax.random.split(jax.random.key(seed), n)


def _smooth(height, width):
    """A smooth colour image: resampling differences between libraries stay small on it."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    return np.stack([200 * x + 20, 150 * y + 50, 100 * (x + y) + 10], -1).round().astype(np.uint8)


def _sign(key) -> float:
    """The ±1 an op's key draws for the direction of its magnitude."""
    return float(randaugment._random_sign(jnp.float32(1.0), key))


# Compiling dominates these tests' time: every jitted function below is shared by the tests that need it, with
# the same argument shapes (six magnitudes / keys for the ops, batches of 8 for the composed transforms).

@jax.jit
def _ops_at(image, magnitudes, keys):
    """Every op at every (magnitude, key): {name: uint8 (M, H, W, 3)}, one compilation per image shape."""
    return {name: jax.vmap(partial(op, image))(magnitudes, keys) for name, op in OPS.items()}


# rand_augment of one image under 64 keys; `prob` is traced, so one compilation serves every probability
_rand_augment = jax.jit(jax.vmap(lambda image, key, prob: rand_augment(image, key, prob=prob), in_axes=(None, 0, None)))
# random_erasing of one normalised image under 64 keys, `prob` traced
_random_erasing = jax.jit(jax.vmap(random_erasing, in_axes=(None, 0, None)))
_cifar_batch = jax.jit(partial(augment_batch, recipe="cifar", image_size=32, mean=MEAN, std=STD))
# the imagenet recipe's own part, the random-resized crop (RandAugment and erasing are compiled once, for cifar)
_imagenet_batch = jax.jit(partial(augment_batch, image_size=32, mean=MEAN, std=STD, recipe={
    "recipe": "imagenet", "crop_scale": (0.35, 1.0), "randaugment_layers": 0, "random_erasing": 0.0}))

_TRANSFORMS = {
    "pad_crop_flip": jax.jit(jax.vmap(pad_crop_flip, in_axes=(None, 0))),
    "rand_augment": lambda image, keys: _rand_augment(image, jnp.concatenate([keys] * 22)[:64], 1.0),
    "random_erasing": lambda image, keys: _random_erasing(normalize(image, MEAN, STD), jnp.concatenate(
        [keys] * 22)[:64], 1.0),
    "inception_crop": jax.jit(jax.vmap(lambda image, key: augment.inception_crop(image, key, 32), in_axes=(None, 0))),
    "augment_batch": lambda image, keys: _cifar_batch(keys[0], np.stack([image] * 8)),
    "augment_batch_imagenet": lambda image, keys: _imagenet_batch(keys[0], np.stack([image] * 8)),
}


@pytest.mark.parametrize("name", list(_TRANSFORMS))
def test_same_key_same_output_other_key_other_output(name):
    image = WIDE if name in ("pad_crop_flip", "inception_crop", "augment_batch_imagenet") else IMAGE
    run = _TRANSFORMS[name]
    first, again = np.asarray(run(image, _keys(3, 7))), np.asarray(run(image, _keys(3, 7)))
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], first[2])
    if name.startswith("augment_batch"):  # the examples of a batch draw their own augmentations
        assert not np.array_equal(run(image, _keys(3, 8))[0], first[0])


def test_pad_crop_flip_is_a_shifted_maybe_flipped_copy():
    padded = np.pad(IMAGE, [(4, 4), (4, 4), (0, 0)])
    outs = np.asarray(_TRANSFORMS["pad_crop_flip"](IMAGE, _keys(48)))
    flips = 0
    for i, out in enumerate(outs):
        assert out.shape == IMAGE.shape and out.dtype == np.uint8
        matches = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if np.array_equal(out[:, ::-1] if flip else out, padded[dy:dy + 32, dx:dx + 32])]
        assert len(matches) == 1, f"key {i}: not one crop of the padded image"
        flips += matches[0][2]
    assert 12 <= flips <= 36  # about half, binomial(48, 0.5) within ±3.5 std


@pytest.mark.parametrize("image", [IMAGE, WIDE], ids=["32x32", "24x40"])
def test_every_op_keeps_uint8_and_shape_and_geometric_ops_are_identity_at_zero(image):
    magnitudes = jnp.array([0.0, 5.0, 10.0, 0.0, 2.0, 7.0])
    outs = _ops_at(image, magnitudes, _keys(6, 3))
    assert list(OPS) == ["AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
                          "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX",
                          "TranslateY"]  # timm's _RAND_INCREASING_TRANSFORMS order
    for name, out in outs.items():
        assert out.dtype == np.uint8 and out.shape == (6, *image.shape), name
        if name in GEOMETRIC:
            assert np.array_equal(out[0], image) and np.array_equal(out[3], image), name
            assert not np.array_equal(out[2], image), name


def test_pixel_ops_by_definition():
    outs = _ops_at(IMAGE, jnp.array([0.0, 10.0, 2.5, 5.0, 9.0, 7.0]), _keys(6))
    assert np.array_equal(outs["Invert"][0], 255 - IMAGE)
    assert np.array_equal(outs["Solarize"][1], 255 - IMAGE)  # threshold 0: everything inverted
    assert np.array_equal(outs["Solarize"][0], IMAGE)  # threshold 256: nothing
    assert np.array_equal(outs["Posterize"][0], IMAGE & 0xF0)  # 4 bits kept
    assert not outs["Posterize"][1].any()  # 0 bits kept
    assert np.array_equal(outs["SolarizeAdd"][0], IMAGE)
    added = np.where(IMAGE < 128, np.minimum(IMAGE.astype(int) + 110, 255), IMAGE)
    assert np.array_equal(outs["SolarizeAdd"][1], added)
    pil = Image.fromarray(IMAGE)
    for i, magnitude in enumerate([0.0, 10.0, 2.5, 5.0, 9.0, 7.0]):  # timm's levels, as it calls Pillow
        assert np.array_equal(outs["Posterize"][i], ImageOps.posterize(pil, 4 - int(magnitude / 10 * 4)))
        assert np.array_equal(outs["Solarize"][i], ImageOps.solarize(pil, 256 - int(magnitude / 10 * 256)))


def _autocontrast_corners() -> np.ndarray:
    """24×40 images whose channel ranges (lo, hi) include ones where Pillow's double-precision table lands one below
    the exact value (e.g. (0, 25): 25 → 254, not 255), and flat and two-valued channels."""
    ranges = [(0, 25), (0, 105), (3, 108), (0, 255), (7, 7), (10, 11), (30, 220), (1, 52), (200, 255)]
    images = []
    for i in range(0, len(ranges), 3):
        channels = []
        for lo, hi in ranges[i:i + 3]:
            channel = RNG.integers(lo, hi + 1, (24, 40))
            channel[0, :2] = lo, hi
            channels.append(channel)
        images.append(np.stack(channels, -1).astype(np.uint8))
    return np.stack(images)


def test_colour_ops_match_pillow_exactly():
    """At magnitude 7 and keys of both signs: every colour op equals Pillow's (ImageOps / ImageEnhance, as timm
    calls them) on every pixel."""
    images = np.concatenate([RNG.integers(30, 220, (1, 24, 40, 3)), RNG.integers(0, 256, (1, 24, 40, 3)),
                             _autocontrast_corners()]).astype(np.uint8)  # WIDE's shape: _ops_at is compiled for it
    keys = _keys(6, 5)
    signs = [_sign(key) for key in keys]
    assert -1.0 in signs and 1.0 in signs
    magnitude = 7.0
    factors = [1 + sign * 0.63 for sign in signs]  # inc1: 1 ± 0.9·m/10
    np.testing.assert_allclose([float(randaugment._enhance_factor(magnitude, key)) for key in keys], factors, rtol=1e-6)
    outs = [_ops_at(image, jnp.full(6, magnitude), keys) for image in images]  # [{name: (6, 24, 40, 3)}]
    references = {
        "AutoContrast": lambda pil, f: ImageOps.autocontrast(pil),
        "Equalize": lambda pil, f: ImageOps.equalize(pil),
        "Invert": lambda pil, f: ImageOps.invert(pil),
        "Posterize": lambda pil, f: ImageOps.posterize(pil, 4 - int(magnitude / 10 * 4)),
        "Solarize": lambda pil, f: ImageOps.solarize(pil, 256 - int(magnitude / 10 * 256)),
        "SolarizeAdd": lambda pil, f: Image.fromarray(np.where(np.asarray(pil) < 128, np.minimum(
            np.asarray(pil).astype(int) + int(magnitude / 10 * 110), 255), np.asarray(pil)).astype(np.uint8)),
        "Color": lambda pil, f: ImageEnhance.Color(pil).enhance(f),
        "Contrast": lambda pil, f: ImageEnhance.Contrast(pil).enhance(f),
        "Brightness": lambda pil, f: ImageEnhance.Brightness(pil).enhance(f),
        "Sharpness": lambda pil, f: ImageEnhance.Sharpness(pil).enhance(f),
    }
    for name, reference in references.items():
        for n, image in enumerate(images):
            pil = Image.fromarray(image)
            for k in (0, signs.index(-1.0), signs.index(1.0)):
                factor = float(randaugment._enhance_factor(magnitude, keys[k]))  # the exact float32 factor
                expected = np.asarray(reference(pil, factor))
                assert np.array_equal(outs[n][name][k], expected), (name, n, k)


def _tf_warp(tf, image: np.ndarray, matrix, fill=128) -> np.ndarray:
    """The reference: TensorFlow's ImageProjectiveTransformV3, bilinear, constant fill, rounded to uint8."""
    transform = tf.constant([list(np.float32(matrix)) + [0.0, 0.0]], tf.float32)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=transform, output_shape=image.shape[:2],
        fill_value=float(fill), interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8).numpy()


def _timm_matrix(name: str, magnitude: float, sign: float, height: int, width: int) -> list[float]:
    """timm's op arguments at `magnitude` as the inverse affine map output (x, y) → input (a0x+a1y+a2, b0x+b1y+b2)."""
    level = sign * magnitude / 10
    if name == "Rotate":  # PIL's Image.rotate(degrees), about the centre
        angle = np.deg2rad(level * 30)
        cx, cy, cos, sin = (width - 1) / 2, (height - 1) / 2, np.cos(angle), np.sin(angle)
        return [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy]
    return {"ShearX": [1, level * 0.3, 0, 0, 1, 0], "ShearY": [1, 0, 0, level * 0.3, 1, 0],
            "TranslateX": [1, 0, level * 0.45 * width, 0, 1, 0],
            "TranslateY": [1, 0, 0, 0, 1, level * 0.45 * height]}[name]


def test_geometric_ops_match_tensorflow_warp():
    tf = pytest.importorskip("tensorflow")
    magnitudes, keys = jnp.array([3.0, 3.0, 7.5, 7.5, 10.0, 10.0]), _keys(6, 11)
    outs = _ops_at(WIDE, magnitudes, keys)
    signs = [_sign(key) for key in keys]
    assert set(signs) == {-1.0, 1.0}
    for name in GEOMETRIC:
        for i, (magnitude, sign) in enumerate(zip(magnitudes.tolist(), signs, strict=True)):
            expected = _tf_warp(tf, WIDE, _timm_matrix(name, magnitude, sign, 24, 40))
            diff = np.abs(outs[name][i].astype(int) - expected)
            assert diff.max() <= 1, (name, magnitude, sign)  # float32 vs these float64 arguments: ties may flip
    moved = _ops_at(np.zeros_like(WIDE), magnitudes, keys)
    for name in GEOMETRIC:  # grey enters from outside, nothing else
        assert (moved[name] == 128).any() and set(np.unique(moved[name])) <= set(range(129)), name
    assert not np.asarray(OPS["Rotate"](np.zeros_like(WIDE), 10.0, keys[0], fill=0)).any()


def test_fused_layer_computes_every_op():
    """rand_augment's layer (all kinds computed, then selected) gives what each op gives alone, batched: exactly,
    up to values that fall on a half grey level and round the other way in the other compiled program (with the
    tests' XLA flags, conftest, 21 of ShearX's 3,072 values move by 1; any other op would differ everywhere)."""
    magnitudes, keys = jnp.array([0.0, 3.0, 5.5, 7.25, 9.0, 10.0]), _keys(6, 4)
    alone = _ops_at(IMAGE, magnitudes, keys)  # {name: (6, 32, 32, 3)}
    pair = np.arange(len(OPS) + 1) % 6  # op i at (magnitude, key) pair i % 6; op 15: no op
    layered = jax.jit(jax.vmap(randaugment._layer, in_axes=(None, 0, 0, 0, None)))(
        IMAGE, jnp.arange(len(OPS) + 1), magnitudes[pair], keys[pair], 128)
    for i, name in enumerate(OPS):
        difference = np.abs(np.asarray(layered[i], np.int32) - np.asarray(alone[name][pair[i]], np.int32))
        assert difference.max() <= 1 and np.count_nonzero(difference) <= difference.size // 50, (
            name, np.count_nonzero(difference))
    assert np.array_equal(layered[-1], IMAGE)


def test_rand_augment_identity_cases_and_probability():
    assert np.array_equal(rand_augment(IMAGE, jax.random.key(0), num_layers=0), IMAGE)
    assert np.array_equal(_rand_augment(IMAGE, _keys(64), 0.0), np.stack([IMAGE] * 64))
    changed = [not np.array_equal(out, IMAGE) for out in _rand_augment(IMAGE, _keys(64), 0.5)]
    assert 34 <= sum(changed) <= 58  # P(changed) = 1 - 1/4 for 2 layers of p 0.5: binomial(64, 3/4) ± 3.5 std
    assert sum(not np.array_equal(out, IMAGE) for out in _rand_augment(IMAGE, _keys(64), 1.0)) >= 60
    with pytest.raises(TypeError, match="uint8"):
        rand_augment(jnp.zeros((8, 8, 3)), jax.random.key(0))


def _erased_box(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The changed pixels; asserts they form one filled rectangle."""
    changed = (before != after).any(-1)
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    assert changed[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and changed.sum() == len(rows) * len(cols)
    return changed


@pytest.mark.parametrize("size,bounds", [(32, (0.012, 0.37)), (128, (0.018, 0.345))])
def test_random_erasing_erases_one_box_of_bounded_area(size, bounds):
    x = normalize(LARGE[:size, :size], MEAN, STD)
    assert np.array_equal(_random_erasing(x, _keys(64), 0.0), np.stack([x] * 64))
    outs = np.asarray(_random_erasing(x, _keys(64, 5), 1.0))
    noise = []
    for out in outs[:8]:
        assert out.shape == x.shape and out.dtype == np.float32
        box = _erased_box(np.asarray(x), out)
        assert bounds[0] <= box.mean() <= bounds[1]  # 2%–33% up to the rounding of the box sides to pixels
        noise.append(out[box].ravel())
        assert len(np.unique(noise[-1])) > 0.99 * len(noise[-1])  # 'pixel' mode: noise per pixel and channel
    noise = np.concatenate(noise)
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - 1) < 0.1  # standard normal
    erased = sum(not np.array_equal(out, x) for out in np.asarray(_random_erasing(x, _keys(64, 6), 0.25)))
    assert 5 <= erased <= 28  # binomial(64, 0.25) within ±3.5 std


def test_normalize():
    out = np.asarray(normalize(IMAGE, MEAN, STD))
    assert out.dtype == np.float32 and out.shape == IMAGE.shape
    np.testing.assert_allclose(out, (IMAGE / 255.0 - MEAN) / STD, rtol=1e-5, atol=1e-5)


def test_resize_matches_tensorflow_bicubic():
    """The JAX crop-and-resize equals tf.image.resize(crop, bicubic, antialias) up to rounding: down and up."""
    tf = pytest.importorskip("tensorflow")
    image = LARGE[:96, :128]
    resized_crop = jax.jit(augment._resized_crop, static_argnums=(5, 6))  # the crop box is traced
    for (top, left, height, width), (out_h, out_w) in [((5, 9, 80, 100), (32, 32)), ((0, 0, 96, 128), (40, 56)),
                                                       ((50, 60, 20, 13), (32, 32))]:
        ours = np.asarray(resized_crop(image, top, left, height, width, out_h, out_w)).astype(int)
        crop = image[top:top + height, left:left + width]
        resized = tf.image.resize(crop, (out_h, out_w), method="bicubic", antialias=True)
        expected = tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()
        assert np.abs(ours - expected).max() <= 1 and (ours != expected).mean() < 0.01


def test_inception_crop_shapes_whole_image_and_fallback():
    inception_crop = jax.jit(augment.inception_crop, static_argnames=("size", "scale", "ratio"))
    out = inception_crop(LARGE[:64, :80], jax.random.key(0), 48)
    assert out.shape == (48, 48, 3) and out.dtype == jnp.uint8
    whole = np.asarray(inception_crop(IMAGE, jax.random.key(0), 32, scale=(1.0, 1.0), ratio=(1.0, 1.0)))
    assert np.array_equal(whole, IMAGE) or np.array_equal(whole, IMAGE[:, ::-1])
    strip = _smooth(20, 300)  # no 90%-area crop of aspect 3/4–4/3 fits: the centre 20×27 crop, resized
    fallback = np.asarray(inception_crop(strip, jax.random.key(0), 27, scale=(0.9, 1.0))).mean(0)  # (27, 3)
    centre = strip[:, 136:163].mean(0)
    assert min(np.abs(fallback - centre).max(), np.abs(fallback[::-1] - centre).max()) < 2


def test_center_crop_matches_the_streaming_view():
    streaming = pytest.importorskip("nestgen.data.streaming_crops")
    center_crop = jax.jit(augment.center_crop, static_argnums=(1, 2))
    assert np.array_equal(center_crop(LARGE, 224, 0.875), LARGE[16:240, 48:272])  # shorter side 256: a pure crop
    assert np.array_equal(center_crop(IMAGE, 32, 1.0), IMAGE)
    for image, size, crop_pct in [(WIDE, 16, 0.875), (_smooth(100, 70), 64, 0.9)]:
        ours = np.asarray(center_crop(image, size, crop_pct)).astype(int)
        expected = streaming.center_crop(image, size, crop_pct).numpy()
        assert ours.shape == expected.shape == (size, size, 3)
        assert np.abs(ours - expected).max() <= 1


def test_augment_config():
    assert AugmentConfig() == AugmentConfig.from_dict({})
    config = AugmentConfig.from_dict({"recipe": "imagenet", "crop_scale": [0.35, 1], "random_erasing": 0.0})
    assert config.crop_scale == (0.35, 1.0) and config.randaugment_magnitude == 9.0
    with pytest.raises(ValueError, match="unknown augmentation settings"):
        AugmentConfig.from_dict({"randaugment_layer": 2})
    with pytest.raises(ValueError, match="recipe"):
        AugmentConfig(recipe="cifar100")
    with pytest.raises(ValueError, match="probability"):
        AugmentConfig(random_erasing=1.5)
    key = jax.random.key(0)
    none = train_transform(IMAGE, key, recipe="none", image_size=32, mean=MEAN, std=STD)
    assert np.array_equal(none, normalize(IMAGE, MEAN, STD))
    plain = {"randaugment_layers": 0, "random_erasing": 0.0}  # crop and flip only
    out = np.asarray(train_transform(IMAGE, key, recipe=plain, image_size=32, mean=[0.0] * 3, std=[1 / 255] * 3))
    assert set(np.unique(out.round())) <= set(np.unique(IMAGE)) | {0.0}
    with pytest.raises(ValueError, match="not 28x28"):
        train_transform(IMAGE, key, recipe="cifar", image_size=28, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="without its crop"):  # crop=False: the image must have the output size
        train_transform(WIDE, key, recipe="imagenet", image_size=32, mean=MEAN, std=STD, crop=False)
    for name in ("cifar", "imagenet"):  # streamed input, cropped by tf.data already: no second crop or flip
        recipe = {"recipe": name, "randaugment_layers": 0, "random_erasing": 0.0}
        out = train_transform(IMAGE, key, recipe=recipe, image_size=32, mean=MEAN, std=STD, crop=False)
        assert np.array_equal(out, normalize(IMAGE, MEAN, STD))


def test_augment_batch_is_its_examples():
    images = RNG.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    batch = np.asarray(_cifar_batch(jax.random.key(3), images))
    assert batch.shape == (8, 32, 32, 3) and batch.dtype == np.float32 and np.isfinite(batch).all()
    single = jax.jit(partial(train_transform, recipe="cifar", image_size=32, mean=MEAN, std=STD))
    for image, key, out in zip(images, jax.random.split(jax.random.key(3), 8), batch, strict=True):
        np.testing.assert_array_equal(out, single(image, key))
    imagenet = _imagenet_batch(jax.random.key(4), np.stack([WIDE] * 8))
    assert imagenet.shape == (8, 32, 32, 3) and imagenet.dtype == jnp.float32


_SHARDED = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    from functools import partial
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    from nestgen.data.augment import augment_batch
    assert jax.device_count() == 8
    images = np.load(sys.argv[1])
    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharded = jax.device_put(images, NamedSharding(mesh, PartitionSpec("data")))
    step = jax.jit(partial(augment_batch, recipe="cifar", image_size=32, mean=%r, std=%r))
    out = step(jax.random.key(42), sharded)
    assert len(out.sharding.device_set) == 8, out.sharding
    np.save(sys.argv[2], np.asarray(out))
""") % (MEAN, STD)


def test_augment_batch_is_the_same_sharded_over_8_devices(tmp_path):
    """The batch on 8 (host) devices, one example each, in another process = the batch on this process's 1 device."""
    images = RNG.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", _SHARDED, str(tmp_path / "images.npy"), str(tmp_path / "out.npy")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert jax.device_count() == 1
    assert np.array_equal(np.load(tmp_path / "out.npy"), _cifar_batch(jax.random.key(42), images))


# ---- the TensorFlow crops of streamed input --------------------------------------------------------------------

def test_streaming_crops_are_deterministic_and_match_preprocess():
    tf = pytest.importorskip("tensorflow")
    from nestgen.data.images import preprocess
    from nestgen.data.streaming_crops import center_crop as tf_center_crop
    from nestgen.data.streaming_crops import inception_crop as tf_inception_crop

    seed = tf.constant([7, 8], tf.int64)
    first, again = tf_inception_crop(LARGE, seed, 64).numpy(), tf_inception_crop(LARGE, seed, 64).numpy()
    other = tf_inception_crop(LARGE, tf.constant([9, 10], tf.int64), 64).numpy()
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8 and first.tobytes() == again.tobytes()
    assert not np.array_equal(first, other)
    whole = tf_inception_crop(IMAGE, seed, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0)).numpy()
    assert np.array_equal(whole, IMAGE) or np.array_equal(whole, IMAGE[:, ::-1])

    assert np.array_equal(tf_center_crop(LARGE, 224, 0.875), LARGE[16:240, 48:272])  # a pure crop
    smooth = _smooth(256, 320)
    ours = normalize(tf_center_crop(smooth, 224, 1.0).numpy(), MEAN, STD)
    spec = {"image_size": 224, "crop_pct": 1.0, "mean": MEAN, "std": STD}
    pillow = preprocess(Image.fromarray(smooth), spec)  # the serving path: same view, Pillow's bicubic
    assert ours.shape == pillow.shape == (224, 224, 3)
    assert np.abs(np.asarray(ours) - pillow).mean() * 255 * 0.25 < 1.0  # under one grey level on average

    images = RNG.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)
    seeds = tf.random.experimental.stateless_split(tf.constant([3, 4], tf.int64), 6)
    dataset = tf.data.Dataset.from_tensor_slices((images, seeds))
    train = dataset.map(lambda x, s: tf_inception_crop(x, s, 32), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
    evaluation = dataset.map(lambda x, s: tf_center_crop(x, 32, 0.875))
    for pipeline in (train, evaluation):
        assert pipeline.element_spec.shape == (32, 32, 3) and pipeline.element_spec.dtype == tf.uint8
        first, second = (np.stack(list(pipeline.as_numpy_iterator())) for _ in range(2))
        assert first.shape == (6, 32, 32, 3) and first.tobytes() == second.tobytes()


def test_augment_module_does_not_import_tensorflow():
    code = "import sys, nestgen.data.augment; assert 'tensorflow' not in sys.modules, 'TF imported'; print('ok')"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
