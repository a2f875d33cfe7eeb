"""GAN losses on raw discriminator logits, and the R1 gradient penalty.

Non-saturating logistic loss (Goodfellow et al. 2014, as in StyleGAN2), hinge loss (Lim & Ye 2017, as in
SAGAN / BigGAN) or the relativistic pairing loss (Jolicoeur-Martineau 2018; with R1 and R2 it is R3GAN's, Huang
et al. 2024); R1 (Mescheder et al. 2018) penalises the discriminator's gradient on real data, R2 the same on fake
data (`r1_penalty` computes both: pass the images). All return float32 scalars (batch means) whatever the dtype
of the scores.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

LOSS_KINDS = ("non_saturating", "hinge", "relativistic")


def _check_kind(kind: str) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; known: {list(LOSS_KINDS)}")


def discriminator_loss(real_scores: jax.Array, fake_scores: jax.Array, kind: str = "non_saturating") -> jax.Array:
    """Discriminator loss from D logits on real and fake images, each (B,), averaged over the batch.

    non_saturating: softplus(-D(x)) + softplus(D(G(z)))  (= -log σ(D(x)) - log(1 - σ(D(G(z)))))
    hinge:          relu(1 - D(x)) + relu(1 + D(G(z)))
    relativistic:   softplus(D(G(z_i)) - D(x_i))  (each fake paired with a real)
    """
    _check_kind(kind)
    real, fake = real_scores.astype(jnp.float32), fake_scores.astype(jnp.float32)
    if kind == "relativistic":
        return jnp.mean(jax.nn.softplus(fake - real))
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))


def generator_loss(fake_scores: jax.Array, kind: str = "non_saturating",
                   real_scores: jax.Array | None = None) -> jax.Array:
    """Generator loss from D logits on fake images (B,), averaged over the batch.

    non_saturating: softplus(-D(G(z)))  (= -log σ(D(G(z))))
    hinge:          -D(G(z))
    relativistic:   softplus(D(x_i) - D(G(z_i)))  (needs `real_scores`, (B,))
    """
    _check_kind(kind)
    fake = fake_scores.astype(jnp.float32)
    if kind == "relativistic":
        if real_scores is None:
            raise ValueError("the relativistic generator loss needs D's scores on the paired real images")
        return jnp.mean(jax.nn.softplus(real_scores.astype(jnp.float32) - fake))
    if kind == "hinge":
        return -jnp.mean(fake)
    return jnp.mean(jax.nn.softplus(-fake))


def r1_penalty(score_fn: Callable[[jax.Array], jax.Array], real_images: jax.Array) -> jax.Array:
    """R1 = mean_i ||∇_x D(x_i)||², the squared gradient norm of D's score on each real image, averaged over the batch.

    `score_fn` maps images (B, H, W, C) → scores (B,); since score i depends only on image i, the gradient of the
    summed scores holds every per-example gradient. Images are cast to float32 first, so the gradient and the norm
    are float32. Built from jax.grad, it is differentiable in the parameters `score_fn` closes over (for D's update).
    The caller applies the weight γ/2 (and the interval of lazy regularisation).
    """
    grads = jax.grad(lambda x: jnp.sum(score_fn(x).astype(jnp.float32)))(real_images.astype(jnp.float32))
    return jnp.mean(jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=1))  # (B,) → scalar
