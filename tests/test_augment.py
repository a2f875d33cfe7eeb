"""Classifier augmentations: deterministic given a seed, Pillow-exact colour ops, timm semantics, tf.data-ready."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

tf = pytest.importorskip("tensorflow")

from nestgen.data import augment  # noqa: E402
from nestgen.data.augment import (  # noqa: E402
    OPS,
    AugmentConfig,
    center_crop,
    eval_transform,
    inception_crop,
    normalize,
    pad_crop_flip,
    rand_augment,
    random_erasing,
    train_transform,
)
from nestgen.data.images import preprocess  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
WIDE = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)  # non-square
LARGE = RNG.integers(0, 256, (256, 320, 3), dtype=np.uint8)


def _seed(*values):
    return tf.constant(values or (1, 2), tf.int32)


def _smooth(height, width):
    """A smooth colour image: resampling differences between libraries stay small on it."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    return np.stack([200 * x + 20, 150 * y + 50, 100 * (x + y) + 10], -1).round().astype(np.uint8)


@pytest.mark.parametrize("transform", [
    lambda image, seed: pad_crop_flip(image, seed),
    lambda image, seed: rand_augment(image, seed, prob=1.0),
    lambda image, seed: random_erasing(normalize(image, MEAN, STD), seed, prob=1.0),
    lambda image, seed: inception_crop(image, seed, 32),
    lambda image, seed: train_transform(image, seed, recipe="cifar" if image.shape[0] == image.shape[1] else "imagenet",
                                        image_size=32, mean=MEAN, std=STD),
], ids=["pad_crop_flip", "rand_augment", "random_erasing", "inception_crop", "train_transform"])
@pytest.mark.parametrize("image", [IMAGE, WIDE], ids=["32x32", "24x40"])
def test_same_seed_same_output_other_seed_other_output(transform, image):
    first, again = transform(image, _seed(7, 8)).numpy(), transform(image, _seed(7, 8)).numpy()
    other = transform(image, _seed(9, 10)).numpy()
    assert first.dtype == again.dtype and first.tobytes() == again.tobytes()
    assert not np.array_equal(first, other)


def test_graph_mode_matches_eager_mode():
    """Inside tf.data / tf.function the op choice is a functional Case op, eagerly a Python branch: same result."""
    graph = tf.function(lambda x, s: rand_augment(x, s, prob=1.0))
    full = tf.function(lambda x, s: train_transform(x, s, recipe="cifar", image_size=32, mean=MEAN, std=STD))
    for i in range(6):
        assert np.array_equal(graph(IMAGE, _seed(i, 3)), rand_augment(IMAGE, _seed(i, 3), prob=1.0))
        eager = train_transform(IMAGE, _seed(i, 3), recipe="cifar", image_size=32, mean=MEAN, std=STD)
        np.testing.assert_allclose(full(IMAGE, _seed(i, 3)), eager, atol=1e-5)  # grappler may reorder float math


def test_pad_crop_flip_is_a_shifted_maybe_flipped_copy():
    padded = np.pad(IMAGE, [(4, 4), (4, 4), (0, 0)])
    flips = 0
    for i in range(48):
        out = pad_crop_flip(IMAGE, _seed(i, 0)).numpy()
        assert out.shape == IMAGE.shape and out.dtype == np.uint8
        matches = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if np.array_equal(out[:, ::-1] if flip else out, padded[dy:dy + 32, dx:dx + 32])]
        assert len(matches) == 1, f"seed {i}: not one crop of the padded image"
        flips += matches[0][2]
    assert 12 <= flips <= 36  # about half, binomial(48, 0.5) within ±3.5 std


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("image", [IMAGE, WIDE], ids=["32x32", "24x40"])
def test_every_op_keeps_uint8_and_shape(name, image):
    for magnitude in (0.0, 5.0, 10.0):
        out = OPS[name](tf.constant(image), tf.constant(magnitude), _seed(3, 4))
        assert out.dtype == tf.uint8 and out.shape == image.shape


def test_pixel_ops_by_definition():
    x = tf.constant(IMAGE)
    m0, m10 = tf.constant(0.0), tf.constant(10.0)
    assert np.array_equal(OPS["Invert"](x, m0, _seed()), 255 - IMAGE)
    assert np.array_equal(OPS["Solarize"](x, m10, _seed()), 255 - IMAGE)  # threshold 0: everything inverted
    assert np.array_equal(OPS["Solarize"](x, m0, _seed()), IMAGE)  # threshold 256: nothing
    assert np.array_equal(OPS["Posterize"](x, m0, _seed()), IMAGE & 0xF0)  # 4 bits kept
    assert not OPS["Posterize"](x, m10, _seed()).numpy().any()  # 0 bits kept
    assert np.array_equal(OPS["SolarizeAdd"](x, m0, _seed()), IMAGE)
    added = np.where(IMAGE < 128, np.minimum(IMAGE.astype(int) + 110, 255), IMAGE)
    assert np.array_equal(OPS["SolarizeAdd"](x, m10, _seed()), added)


def test_colour_ops_match_pillow_exactly():
    image = RNG.integers(30, 220, (20, 28, 3), dtype=np.uint8)
    pil = Image.fromarray(image)
    assert np.array_equal(OPS["Equalize"](tf.constant(image), 0.0, _seed()), ImageOps.equalize(pil))
    assert np.array_equal(OPS["AutoContrast"](tf.constant(image), 0.0, _seed()), ImageOps.autocontrast(pil))
    enhancers = {"Color": ImageEnhance.Color, "Contrast": ImageEnhance.Contrast,
                 "Brightness": ImageEnhance.Brightness, "Sharpness": ImageEnhance.Sharpness}
    for seed in (_seed(3, 4), _seed(5, 6)):  # one of each sign
        factor = float(augment._enhance_factor(tf.constant(7.0), seed))
        assert abs(abs(factor - 1) - 0.63) < 1e-6  # inc1: 1 ± 0.9·m/10
        for name, enhancer in enhancers.items():
            assert np.array_equal(OPS[name](tf.constant(image), tf.constant(7.0), seed),
                                  enhancer(pil).enhance(factor)), name


@pytest.mark.parametrize("name", ["Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"])
def test_geometric_ops_at_magnitude_zero_are_identity_and_fill_grey(name):
    out = OPS[name](tf.constant(IMAGE), tf.constant(0.0), _seed())
    assert np.abs(out.numpy().astype(int) - IMAGE).max() <= 1
    flat = np.zeros((32, 32, 3), np.uint8)
    moved = OPS[name](tf.constant(flat), tf.constant(10.0), _seed()).numpy()
    assert (moved == 128).any() and set(np.unique(moved)) <= set(range(129))  # grey enters from outside


def test_rand_augment_identity_cases_and_sizes():
    x = tf.constant(IMAGE)
    assert np.array_equal(rand_augment(x, _seed(), prob=0.0), IMAGE)
    assert np.array_equal(rand_augment(x, _seed(), num_layers=0), IMAGE)
    changed = [not np.array_equal(rand_augment(x, _seed(i, 1)), IMAGE) for i in range(12)]
    assert 3 <= sum(changed) <= 12  # each of 2 layers applies with p 0.5 (some ops can be no-ops)
    large = rand_augment(tf.constant(LARGE[:224, :224]), _seed(), prob=1.0)
    assert large.shape == (224, 224, 3) and large.dtype == tf.uint8
    with pytest.raises(TypeError, match="uint8"):
        rand_augment(tf.zeros((8, 8, 3)), _seed())


def _erased_box(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The changed pixels; asserts they form one filled rectangle."""
    changed = (before != after).any(-1)
    rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
    assert changed[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and changed.sum() == len(rows) * len(cols)
    return changed


@pytest.mark.parametrize("size,bounds", [(32, (0.012, 0.37)), (224, (0.018, 0.345))])
def test_random_erasing_erases_one_box_of_bounded_area(size, bounds):
    x = normalize(LARGE[:size, :size], MEAN, STD)
    assert np.array_equal(random_erasing(x, _seed(), prob=0.0), x)
    for i in range(8):
        out = random_erasing(x, _seed(i, 5), prob=1.0).numpy()
        assert out.shape == x.shape and out.dtype == np.float32
        fraction = _erased_box(x.numpy(), out).mean()  # 2%–33% up to the rounding of the box sides to pixels
        assert bounds[0] <= fraction <= bounds[1]


def test_normalize():
    out = normalize(IMAGE, MEAN, STD).numpy()
    assert out.dtype == np.float32 and out.shape == IMAGE.shape
    np.testing.assert_allclose(out, (IMAGE / 255.0 - MEAN) / STD, rtol=1e-5, atol=1e-5)


def test_center_crop_geometry():
    crop = center_crop(LARGE, 224, 0.875).numpy()  # shorter side already 256 = 224 / 0.875: a pure crop
    assert np.array_equal(crop, LARGE[16:240, 48:272])
    assert np.array_equal(center_crop(IMAGE, 32, 1.0), IMAGE)
    smooth = _smooth(256, 320)
    ours = eval_transform(smooth, image_size=224, crop_pct=1.0, mean=MEAN, std=STD).numpy()
    spec = {"image_size": 224, "crop_pct": 1.0, "mean": MEAN, "std": STD}
    pillow = preprocess(Image.fromarray(smooth), spec)  # the serving path: same view, Pillow's bicubic
    assert ours.shape == pillow.shape == (224, 224, 3)
    assert np.abs(ours - pillow).mean() * 255 * 0.25 < 1.0  # under one grey level on average


def test_inception_crop_shapes_whole_image_and_fallback():
    out = inception_crop(LARGE, _seed(), 224)
    assert out.shape == (224, 224, 3) and out.dtype == tf.uint8
    whole = inception_crop(IMAGE, _seed(), 32, scale=(1.0, 1.0), ratio=(1.0, 1.0)).numpy()
    assert np.array_equal(whole, IMAGE) or np.array_equal(whole, IMAGE[:, ::-1])
    strip = _smooth(20, 300)  # no 90%-area crop of aspect 3/4–4/3 fits: the centre 20×27 crop, resized
    fallback = inception_crop(strip, _seed(), 27, scale=(0.9, 1.0)).numpy().mean(0)  # (27, 3) column profile
    centre = strip[:, 136:163].mean(0)
    assert min(np.abs(fallback - centre).max(), np.abs(fallback[::-1] - centre).max()) < 2


def test_augment_config():
    assert AugmentConfig() == AugmentConfig.from_dict({})
    config = AugmentConfig.from_dict({"recipe": "imagenet", "crop_scale": [0.35, 1], "random_erasing": 0.0})
    assert config.crop_scale == (0.35, 1.0) and config.randaugment_magnitude == 9.0
    with pytest.raises(ValueError, match="unknown augmentation settings"):
        AugmentConfig.from_dict({"randaugment_layer": 2})
    with pytest.raises(ValueError, match="recipe"):
        AugmentConfig(recipe="cifar100")
    none = train_transform(IMAGE, _seed(), recipe="none", image_size=32, mean=MEAN, std=STD)
    assert np.array_equal(none, normalize(IMAGE, MEAN, STD))
    plain = {"randaugment_layers": 0, "random_erasing": 0.0}  # crop and flip only
    out = train_transform(IMAGE, _seed(), recipe=plain, image_size=32, mean=[0.0] * 3, std=[1 / 255] * 3).numpy()
    assert set(np.unique(out.round())) <= set(np.unique(IMAGE)) | {0.0}


def test_tf_data_pipeline_is_deterministic_in_graph_mode():
    images = RNG.integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)
    seeds = tf.random.experimental.stateless_split(tf.constant([3, 4], tf.int64), 6)
    dataset = tf.data.Dataset.from_tensor_slices((images, seeds))
    cifar = dataset.map(lambda x, s: train_transform(x[:32, :32], s, recipe="cifar", image_size=32, mean=MEAN,
                                                     std=STD), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    imagenet = dataset.map(lambda x, s: train_transform(x, s, recipe="imagenet", image_size=32, mean=MEAN, std=STD),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    evaluation = dataset.map(lambda x, s: eval_transform(x, image_size=32, crop_pct=0.875, mean=MEAN, std=STD))
    for pipeline in (cifar, imagenet, evaluation):
        assert pipeline.element_spec.shape == (32, 32, 3) and pipeline.element_spec.dtype == tf.float32
        first, second = (np.stack(list(pipeline.as_numpy_iterator())) for _ in range(2))
        assert first.shape == (6, 32, 32, 3) and first.tobytes() == second.tobytes()
        assert np.isfinite(first).all()
