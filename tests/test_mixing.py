"""Label smoothing, Mixup and CutMix: timm "batch" semantics, exact image/target consistency, jittable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.data.mixing import MixConfig, mix_batch, mixup_or_cutmix, one_hot_smoothed

B, H, W, C, K = 6, 12, 16, 3, 10
IMAGES = jax.random.normal(jax.random.key(0), (B, H, W, C))
TARGETS = one_hot_smoothed(jnp.arange(B), K, 0.0)  # example i has class i: λ can be read off the targets
mix = jax.jit(mixup_or_cutmix, static_argnames=("mixup_alpha", "cutmix_alpha", "switch_prob", "prob"))


def _kind(images: np.ndarray) -> str:
    """'cutmix' if every pixel is the original or the mirror's, else 'mixup' (or 'none' if unchanged)."""
    x, flipped = np.asarray(IMAGES), np.asarray(IMAGES)[::-1]
    if np.array_equal(images, x):
        return "none"
    return "cutmix" if np.all((images == x) | (images == flipped)) else "mixup"


def test_one_hot_smoothed():
    targets = np.asarray(one_hot_smoothed(jnp.array([0, 3]), 10, 0.1))
    assert targets.dtype == np.float32 and targets.shape == (2, 10)
    np.testing.assert_allclose(targets[0], [0.91] + [0.01] * 9, rtol=1e-6)
    np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
    assert np.array_equal(one_hot_smoothed(jnp.array([2]), 4, 0.0), [[0, 0, 1, 0]])


def test_mixup_blends_images_with_the_lambda_of_the_targets():
    for seed in range(4):
        images, targets = mix(jax.random.key(seed), IMAGES, TARGETS, cutmix_alpha=0.0)
        targets = np.asarray(targets)
        np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
        lam = targets[0, 0]  # example 0 (class 0) mixed with example B-1
        assert 0 < lam < 1 and targets[0, B - 1] == pytest.approx(1 - lam)
        np.testing.assert_allclose(images, lam * IMAGES + (1 - lam) * IMAGES[::-1], rtol=1e-5, atol=1e-5)


def test_cutmix_pastes_one_box_and_targets_weigh_its_area():
    for seed in range(6):
        images, targets = mix(jax.random.key(seed), IMAGES, TARGETS, mixup_alpha=0.0)
        images, targets = np.asarray(images), np.asarray(targets)
        assert _kind(images) in ("cutmix", "none")  # a box can be clipped to nothing
        pasted = np.all(images == np.asarray(IMAGES)[::-1], axis=(0, 3))  # (H, W), the same box for all examples
        rows, cols = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
        if pasted.any():
            assert pasted[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and pasted.sum() == len(rows) * len(cols)
        np.testing.assert_allclose(targets[0, B - 1], pasted.mean(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)


def test_switch_chooses_both_kinds_and_alphas_force_one():
    kinds = [_kind(np.asarray(mix(jax.random.key(s), IMAGES, TARGETS)[0])) for s in range(24)]
    assert kinds.count("mixup") >= 4 and kinds.count("cutmix") + kinds.count("none") >= 4
    assert {_kind(np.asarray(mix(jax.random.key(s), IMAGES, TARGETS, switch_prob=0.0)[0])) for s in range(6)} \
        == {"mixup"}
    assert {_kind(np.asarray(mix(jax.random.key(s), IMAGES, TARGETS, cutmix_alpha=0.0)[0])) for s in range(6)} \
        == {"mixup"}


def test_disabled_mixing_is_identity():
    for kwargs in ({"prob": 0.0}, {"mixup_alpha": 0.0, "cutmix_alpha": 0.0}):
        images, targets = mix(jax.random.key(1), IMAGES, TARGETS, **kwargs)
        assert np.array_equal(images, IMAGES) and np.array_equal(targets, TARGETS)


def test_deterministic_any_batch_size_and_dtype():
    key = jax.random.key(3)
    first, again = mix(key, IMAGES, TARGETS), mix(key, IMAGES, TARGETS)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    odd_images, odd_targets = mix(key, IMAGES[:3].astype(jnp.bfloat16), TARGETS[:3])  # a per-device shard
    assert odd_images.shape == (3, H, W, C) and odd_images.dtype == jnp.bfloat16 and odd_targets.shape == (3, K)
    np.testing.assert_allclose(np.asarray(odd_targets).sum(1), 1.0, rtol=1e-6)


def test_mix_batch_with_config():
    config = MixConfig.from_dict({"label_smoothing": 0.1, "mixup_alpha": 0.8, "cutmix_alpha": 0})
    images, targets = jax.jit(mix_batch, static_argnums=(3, 4))(jax.random.key(0), IMAGES, jnp.arange(B), K, config)
    targets = np.asarray(targets)
    assert images.shape == IMAGES.shape and targets.shape == (B, K) and targets.min() > 0
    np.testing.assert_allclose(targets.sum(1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown mixing settings"):
        MixConfig.from_dict({"mixup": 0.8})
