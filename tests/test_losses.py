"""GAN losses against their closed forms, and R1: zero for an input-blind D, ||w||² for a linear one, differentiable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.losses import LOSS_KINDS, discriminator_loss, generator_loss, r1_penalty

REAL = jnp.array([2.0, -1.0, 0.5, 0.0])
FAKE = jnp.array([-3.0, 0.25, 1.5, 0.0])
IMAGES = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))


def _softplus(x):
    return np.log1p(np.exp(np.asarray(x, np.float64)))


def test_non_saturating_matches_closed_form():
    expected_d = np.mean(_softplus(-REAL)) + np.mean(_softplus(FAKE))
    np.testing.assert_allclose(discriminator_loss(REAL, FAKE), expected_d, rtol=1e-6)
    np.testing.assert_allclose(generator_loss(FAKE), np.mean(_softplus(-FAKE)), rtol=1e-6)
    # -log σ(s) = softplus(-s): at s = 0 both terms are log 2.
    np.testing.assert_allclose(discriminator_loss(jnp.zeros(2), jnp.zeros(2)), 2 * np.log(2), rtol=1e-6)


def test_relativistic_pairing_matches_closed_form_and_needs_real_scores():
    """R3GAN's loss: each fake scored against its paired real; shifting every score by a constant changes nothing."""
    np.testing.assert_allclose(discriminator_loss(REAL, FAKE, "relativistic"), np.mean(_softplus(FAKE - REAL)),
                               rtol=1e-6)
    np.testing.assert_allclose(generator_loss(FAKE, "relativistic", REAL), np.mean(_softplus(REAL - FAKE)), rtol=1e-6)
    np.testing.assert_allclose(discriminator_loss(REAL + 5, FAKE + 5, "relativistic"),
                               discriminator_loss(REAL, FAKE, "relativistic"), rtol=1e-6)
    with pytest.raises(ValueError, match="paired real images"):
        generator_loss(FAKE, "relativistic")


def test_hinge_matches_closed_form():
    # relu(1 - real) = [0, 2, 0.5, 1], relu(1 + fake) = [0, 1.25, 2.5, 1]
    np.testing.assert_allclose(discriminator_loss(REAL, FAKE, "hinge"), 3.5 / 4 + 4.75 / 4, rtol=1e-6)
    np.testing.assert_allclose(generator_loss(FAKE, "hinge"), -np.mean(FAKE), rtol=1e-6)


@pytest.mark.parametrize("kind", LOSS_KINDS)
def test_discriminator_loss_rewards_separating_real_from_fake(kind):
    confident, confused = discriminator_loss(REAL + 3, FAKE - 3, kind), discriminator_loss(REAL - 3, FAKE + 3, kind)
    assert confident < discriminator_loss(REAL, FAKE, kind) < confused
    real = REAL if kind == "relativistic" else None  # the pairing loss scores fakes against reals
    assert generator_loss(FAKE + 1, kind, real) < generator_loss(FAKE, kind, real)  # G gains when D scores fakes higher
    loss = discriminator_loss(REAL.astype(jnp.bfloat16), FAKE.astype(jnp.bfloat16), kind)
    assert loss.shape == () and loss.dtype == jnp.float32


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="'wasserstein'.*non_saturating.*hinge"):
        discriminator_loss(REAL, FAKE, "wasserstein")
    with pytest.raises(ValueError, match="unknown GAN loss kind"):
        generator_loss(FAKE, "lsgan")


def test_r1_is_zero_for_a_discriminator_blind_to_its_input():
    bias = jnp.array([0.3, -1.2])
    assert r1_penalty(lambda x: jnp.broadcast_to(bias.sum(), x.shape[:1]), IMAGES) == 0
    assert r1_penalty(lambda x: 0.0 * x.sum(axis=(1, 2, 3)) + bias.sum(), IMAGES) == 0


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm():
    w = jax.random.normal(jax.random.key(1), IMAGES.shape[1:])
    r1 = r1_penalty(lambda x: jnp.einsum("bhwc,hwc->b", x, w), IMAGES)
    np.testing.assert_allclose(r1, jnp.sum(w**2), rtol=1e-5)
    # Per-example gradients: D(x) = Σ x² has gradient 2x, so R1 = mean_i 4 ||x_i||².
    expected = np.mean(4 * np.sum(np.asarray(IMAGES) ** 2, axis=(1, 2, 3)))
    np.testing.assert_allclose(r1_penalty(lambda x: jnp.sum(x**2, axis=(1, 2, 3)), IMAGES), expected, rtol=1e-5)
    bf16 = r1_penalty(lambda x: jnp.einsum("bhwc,hwc->b", x, w.astype(x.dtype)), IMAGES.astype(jnp.bfloat16))
    assert bf16.dtype == jnp.float32 and r1 > 0


def test_r1_is_differentiable_in_the_discriminator_parameters():
    w = jax.random.normal(jax.random.key(2), IMAGES.shape[1:])

    def penalty(params):
        return r1_penalty(lambda x: jnp.einsum("bhwc,hwc->b", x, params["w"]) + params["b"], IMAGES)

    grads = jax.jit(jax.grad(penalty))({"w": w, "b": jnp.float32(0.7)})
    np.testing.assert_allclose(grads["w"], 2 * w, rtol=1e-5)  # d/dw ||w||² = 2w
    assert grads["b"] == 0
