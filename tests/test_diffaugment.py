"""DiffAugment: the official semantics of each op, per-image randomness, gradients to the input, jit and dtypes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.data.diffaugment import POLICIES, diff_augment

B, H, W, C = 8, 16, 16, 3
SHIFT = 2  # round(16 / 8): the largest translation
IMAGES = jax.random.uniform(jax.random.key(0), (B, H, W, C), minval=-1.0, maxval=1.0)
SAME = jnp.broadcast_to(IMAGES[:1], IMAGES.shape)  # B copies of one image: any difference comes from the rng
augment = jax.jit(diff_augment, static_argnames="policy")
SINGLE_OPS = [(op,) for op in POLICIES]


def _translated(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The original's translation: out[i, j] = image[i + dy, j + dx], 0 where that lies outside the image."""
    padded = np.pad(image, ((SHIFT, SHIFT), (SHIFT, SHIFT), (0, 0)))
    return padded[SHIFT + dy:SHIFT + dy + H, SHIFT + dx:SHIFT + dx + W]


def test_empty_policy_is_identity():
    assert diff_augment(jax.random.key(1), IMAGES, ()) is IMAGES
    assert np.array_equal(augment(jax.random.key(1), IMAGES, policy=()), IMAGES)


@pytest.mark.parametrize("policy, dtype", [(op, jnp.float32) for op in [*SINGLE_OPS, POLICIES]]
                         + [(POLICIES, jnp.bfloat16)])
def test_shape_dtype_and_finite(policy, dtype):
    out = augment(jax.random.key(2), IMAGES.astype(dtype), policy=policy)
    assert out.shape == IMAGES.shape and out.dtype == dtype
    assert np.isfinite(np.asarray(out, np.float32)).all()


@pytest.mark.parametrize("policy", SINGLE_OPS)
def test_each_op_changes_images_differently_per_example(policy):
    out = np.asarray(augment(jax.random.key(3), SAME, policy=policy))
    assert not np.array_equal(out, SAME)
    assert len({example.tobytes() for example in out}) >= B // 2  # copies of one image come out different


def test_color_shifts_brightness_within_half_and_keeps_constant_images_constant():
    # Saturation and contrast scale deviations from means, so a flat gray image only gets its brightness shift.
    gray = jnp.broadcast_to(jnp.linspace(-0.5, 0.5, B)[:, None, None, None], (B, H, W, C))
    out = np.asarray(augment(jax.random.key(4), gray, policy=("color",)))
    shift = out - np.asarray(gray)
    np.testing.assert_allclose(shift, shift[:, :1, :1, :1] * np.ones_like(shift), atol=1e-6)
    assert np.abs(shift).max() <= 0.5 and len(np.unique(shift[:, 0, 0, 0])) == B
    # Saturation keeps each pixel's channel mean and contrast keeps the image mean: only brightness moves the mean.
    out = np.asarray(augment(jax.random.key(5), IMAGES, policy=("color",)))
    moved = out.mean(axis=(1, 2, 3)) - np.asarray(IMAGES).mean(axis=(1, 2, 3))
    assert np.abs(moved).max() <= 0.5 + 1e-5 and not np.allclose(out, IMAGES)


def test_translation_shifts_by_at_most_an_eighth_with_zero_fill():
    positive = jnp.abs(IMAGES) + 0.1  # no zeros of its own: zeros in the output are the fill
    shifts = []
    for seed in range(4):
        out = np.asarray(augment(jax.random.key(seed), positive, policy=("translation",)))
        for image, moved in zip(np.asarray(positive), out, strict=True):
            matches = [(dy, dx) for dy in range(-SHIFT, SHIFT + 1) for dx in range(-SHIFT, SHIFT + 1)
                       if np.array_equal(moved, _translated(image, dy, dx))]
            assert len(matches) == 1, "not an integer shift of at most H/8 with zero fill"
            shifts.append(matches[0])
            dy, dx = matches[0]
            assert (moved == 0).all(-1).sum() == H * W - (H - abs(dy)) * (W - abs(dx))
    assert len(set(shifts)) > 5 and any(dy != 0 for dy, _ in shifts) and any(dx != 0 for _, dx in shifts)


def test_translation_moves_a_single_bright_pixel():
    dot = jnp.zeros((B, H, W, C)).at[:, H // 2, W // 2].set(1.0)
    out = np.asarray(augment(jax.random.key(6), dot, policy=("translation",)))
    moves = []
    for image in out:
        (ys, xs) = np.nonzero(image[..., 0])
        assert len(ys) == 1 and image.sum() == C  # still one pixel, values unchanged
        assert abs(ys[0] - H // 2) <= SHIFT and abs(xs[0] - W // 2) <= SHIFT
        moves.append((ys[0] - H // 2, xs[0] - W // 2))
    assert any(move != (0, 0) for move in moves)


def test_cutout_zeroes_one_clipped_square_of_half_the_size():
    ones = jnp.ones((B, H, W, C))
    out = np.concatenate([augment(jax.random.key(seed), ones, policy=("cutout",)) for seed in range(4)])
    assert set(np.unique(out)) <= {0.0, 1.0}
    counts = []
    for image in out:
        zero = image[..., 0] == 0
        assert np.array_equal(zero, (image == 0).all(-1))  # all channels together
        rows, cols = np.flatnonzero(zero.any(1)), np.flatnonzero(zero.any(0))
        assert zero.sum() == len(rows) * len(cols) and np.ptp(rows) == len(rows) - 1  # one solid rectangle
        assert H // 4 <= len(rows) <= H // 2 and W // 4 <= len(cols) <= W // 2
        counts.append(zero.sum())
    assert min(counts) >= H * W // 16 and max(counts) == H * W // 4  # a whole square when it fits
    assert len(set(counts)) > 1  # clipped at the borders for some images


@pytest.mark.parametrize("policy", [*SINGLE_OPS, POLICIES])
def test_gradient_reaches_the_input(policy):
    weights = jax.random.normal(jax.random.key(8), IMAGES.shape)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(diff_augment(jax.random.key(9), x, policy) * weights)))(IMAGES)
    grad = np.asarray(grad)
    assert grad.shape == IMAGES.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0
    if policy in (("translation",), ("cutout",)):  # gathers and masks: each input pixel passes at most one weight
        assert np.all((grad == 0) | np.isin(grad, np.asarray(weights)))


def test_deterministic_under_jit_and_the_rng_decides():
    key = jax.random.key(10)
    jitted = augment(key, IMAGES, policy=POLICIES)
    assert np.array_equal(jitted, augment(key, IMAGES, policy=POLICIES))
    assert not np.array_equal(jitted, augment(jax.random.key(11), IMAGES, policy=POLICIES))
    # The original's comma-separated policy string names the same ops.
    assert np.array_equal(augment(key, IMAGES, policy="color,translation,cutout"), jitted)


def test_unknown_op_raises():
    with pytest.raises(ValueError, match="'flip'.*color.*cutout.*translation"):
        diff_augment(jax.random.key(0), IMAGES, ("color", "flip"))
    with pytest.raises(ValueError, match="unknown DiffAugment op"):
        augment(jax.random.key(0), IMAGES, policy=("colour",))
