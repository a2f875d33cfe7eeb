"""The GAN's update, as stylegan2-ada runs it: separate discriminator and generator steps in one jitted iteration,
lazy R1 (and R2) on D, DiffAugment on both of D's inputs, optional level mixing of two latents, x-flips of the
reals, a generator EMA with a half-life counted in images (ramped up early on), and a tracked mean of w per class
(the truncation centre). `GanState` holds all of it; gan_trainer.py runs the loop around it.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from nestgen.data.diffaugment import POLICIES, diff_augment
from nestgen.losses import discriminator_loss, generator_loss, r1_penalty
from nestgen.models.generator import mix_levels


@flax.struct.dataclass
class GanState:
    """Everything a GAN run carries from one iteration to the next (all of it checkpointed)."""

    step: jax.Array
    g_params: Any
    d_params: Any
    g_ema: Any  # exponential moving average of g_params: what is sampled, evaluated and exported
    g_opt: Any
    d_opt: Any
    w_avg: jax.Array  # (num_classes or 1, w_dim): tracked mean of w per class, the truncation centre
    images_seen: jax.Array  # int32: real images shown to D so far (exact even if the batch size changed)


def augment_policy(config) -> tuple[str, ...]:
    """config.loss.diffaugment ("color,translation,cutout") as DiffAugment's operations; ValueError naming any
    unknown one."""
    policy = tuple(p.strip() for p in config.loss.diffaugment.split(",") if p.strip())
    if unknown := [p for p in policy if p not in POLICIES]:
        raise ValueError(f"config.loss.diffaugment: unknown operations {unknown}; known: {', '.join(POLICIES)}")
    return policy


def ema_beta(images_seen: jax.Array, batch: int, half_life_images: float, rampup: float | None) -> jax.Array:
    """Decay per step so the EMA halves every `half_life_images` images: β = 0.5 ** (batch / half-life).

    With a ramp-up the half-life is at most `rampup` × images seen, so early weights are forgotten quickly."""
    half_life = jnp.asarray(half_life_images, jnp.float32)
    if rampup:
        half_life = jnp.minimum(half_life, jnp.asarray(images_seen, jnp.float32) * rampup)
    return jnp.power(0.5, batch / jnp.maximum(half_life, 1e-8))


def ema_update(ema: Any, params: Any, beta: jax.Array) -> Any:
    """ema ← params + β (ema − params)."""
    return jax.tree.map(lambda e, p: p + beta * (e - p), ema, params)


def track_w_avg(w_avg: jax.Array, w: jax.Array, labels: jax.Array, beta: float) -> jax.Array:
    """Move each class's mean of w toward the batch mean of that class (classes absent from the batch stay)."""
    k = w_avg.shape[0]
    onehot = jax.nn.one_hot(labels if k > 1 else jnp.zeros_like(labels), k, dtype=jnp.float32)  # (B, K)
    counts = onehot.sum(0)[:, None]  # (K, 1)
    means = (onehot.T @ w.astype(jnp.float32)) / jnp.maximum(counts, 1.0)  # (K, W)
    return jnp.where(counts > 0, means + beta * (w_avg - means), w_avg)


def make_steps(generator, discriminator, g_optimizer, d_optimizer, config, latent_dim: int):
    """d_step(state, batch, rng, r1) and g_step(state, batch, rng): each updates only its own network."""
    policy, kind, conditional = augment_policy(config), config.loss.kind, generator.config.conditional
    r1_weight = config.loss.r1_gamma / 2 * config.loss.r1_every  # lazy regularisation: k× less often, k× heavier
    r2_weight = config.loss.get("r2_gamma", 0.0) / 2 * config.loss.r1_every  # R2: the same on fakes (R3GAN)
    mixing, num_levels = config.loss.get("level_mixing", 0.0), generator.config.num_levels

    def generate(g_params, rng, labels):
        """Fakes for `labels` (B,); with level mixing, a fraction of them take their fine levels from a second
        latent (crossover level uniform in 1 … L-1). Returns images and the first latent's w."""
        y = labels if conditional else None
        if not mixing:
            z = jax.random.normal(rng, (labels.shape[0], latent_dim))
            images, aux = generator.apply({"params": g_params}, z, y)
            return images, aux["w"]
        z_rng, z2_rng, mix_rng, cross_rng = jax.random.split(rng, 4)
        mapped = [generator.apply({"params": g_params}, jax.random.normal(k, (labels.shape[0], latent_dim)), y,
                                  method="map") for k in (z_rng, z2_rng)]  # 2 × (B, W)
        crossover = jax.random.randint(cross_rng, labels.shape, 1, num_levels)
        crossover = jnp.where(jax.random.uniform(mix_rng, labels.shape) < mixing, crossover, 0)
        per_level = mix_levels(mapped[0], mapped[1], crossover, num_levels)  # (B, L, W)
        return generator.apply({"params": g_params}, per_level, method="synthesize"), mapped[0]

    def score(d_params, rng, images, labels):
        images = diff_augment(rng, images, policy)
        return discriminator.apply({"params": d_params}, images, labels if conditional else None)[0]

    def d_step(state: GanState, batch, rng, r1: bool):
        z_rng, real_rng, fake_rng = jax.random.split(rng, 3)
        labels = batch["labels"]
        fake = jax.lax.stop_gradient(generate(state.g_params, z_rng, labels)[0])

        def loss_fn(d_params):
            real_scores = score(d_params, real_rng, batch["images"], labels)
            fake_scores = score(d_params, fake_rng, fake, labels)
            loss = discriminator_loss(real_scores, fake_scores, kind)
            penalty = r1_penalty(lambda x: score(d_params, real_rng, x, labels), batch["images"]) if r1 else 0.0
            penalty2 = r1_penalty(lambda x: score(d_params, fake_rng, x, labels), fake) if r1 and r2_weight else 0.0
            total = loss + r1_weight * penalty + r2_weight * penalty2
            return total, (loss, (penalty, penalty2), real_scores, fake_scores)

        grads, (loss, (penalty, penalty2), real, fake_scores) = jax.grad(loss_fn, has_aux=True)(state.d_params)
        updates, d_opt = d_optimizer.update(grads, state.d_opt, state.d_params)
        metrics = {"gan/D/loss": loss, "gan/D/real_score": real.mean(), "gan/D/fake_score": fake_scores.mean(),
                   "gan/D/grad_norm": optax.tree.norm(grads)}
        if r1:
            metrics["gan/D/r1"] = penalty
        if r1 and r2_weight:
            metrics["gan/D/r2"] = penalty2
        return state.replace(d_params=optax.apply_updates(state.d_params, updates), d_opt=d_opt), metrics

    def g_step(state: GanState, batch, rng):
        z_rng, fake_rng = jax.random.split(rng)
        labels = batch["labels"]
        real_scores = None
        if kind == "relativistic":  # each fake is scored against a real image
            real_scores = score(state.d_params, jax.random.fold_in(fake_rng, 1), batch["images"], labels)

        def loss_fn(g_params):
            fake, w = generate(g_params, z_rng, labels)
            return generator_loss(score(state.d_params, fake_rng, fake, labels), kind, real_scores), w

        (loss, w), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
        updates, g_opt = g_optimizer.update(grads, state.g_opt, state.g_params)
        w_avg = track_w_avg(state.w_avg, jax.lax.stop_gradient(w), labels, config.w_avg_beta)
        metrics = {"gan/G/loss": loss, "gan/G/grad_norm": optax.tree.norm(grads)}
        return state.replace(g_params=optax.apply_updates(state.g_params, updates), g_opt=g_opt,
                             w_avg=w_avg), metrics

    def train_step(state: GanState, batch, base_rng, r1: bool):
        """One iteration on a uint8 batch: x-flips (if configured), D step, G step, EMA update; step + 1."""
        flip_rng, d_rng, g_rng = jax.random.split(jax.random.fold_in(base_rng, state.step), 3)
        batch = {**batch, "images": real_images(flip_rng, batch["images"], config.data.xflip)}
        state, d_metrics = d_step(state, batch, d_rng, r1)
        state, g_metrics = g_step(state, batch, g_rng)
        images_seen = state.images_seen + batch["images"].shape[0]
        beta = ema_beta(images_seen, batch["images"].shape[0], config.ema.half_life_images, config.ema.rampup)
        state = state.replace(step=state.step + 1, g_ema=ema_update(state.g_ema, state.g_params, beta),
                              images_seen=images_seen)
        return state, {**d_metrics, **g_metrics, "gan/G/ema_beta": beta}

    return d_step, g_step, train_step


def real_images(rng: jax.Array, images: jax.Array, xflip: bool) -> jax.Array:
    """uint8 (B, H, W, 3) → float32 in [-1, 1], each image mirrored left-right with probability 1/2 if `xflip`."""
    x = images.astype(jnp.float32) / 127.5 - 1.0
    if not xflip:
        return x
    flip = jax.random.bernoulli(rng, 0.5, (x.shape[0], 1, 1, 1))  # (B, 1, 1, 1)
    return jnp.where(flip, x[:, :, ::-1], x)


def create_optimizers(config) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """(G's Adam at optim.g_lr, D's Adam at optim.d_lr), both with optim.b1, b2 and eps."""
    adam = lambda lr: optax.adam(lr, b1=config.optim.b1, b2=config.optim.b2, eps=config.optim.eps)  # noqa: E731
    return adam(config.optim.g_lr), adam(config.optim.d_lr)


def init_state(g_cfg, d_cfg, g_optimizer, d_optimizer, rng: jax.Array) -> GanState:
    """A fresh state: G and D initialised from `rng`, the EMA equal to G, fresh Adam states, w_avg zeros
    float32 (num_classes or 1, w_dim), step and images_seen int32 0."""
    g_rng, d_rng = jax.random.split(rng)
    g_params = g_cfg.build().init(g_rng, *g_cfg.example_inputs())["params"]
    d_params = d_cfg.build().init(d_rng, *d_cfg.example_inputs())["params"]
    w_avg = jnp.zeros((max(g_cfg.num_classes, 1), g_cfg.w_dim), jnp.float32)
    return GanState(jnp.zeros((), jnp.int32), g_params, d_params, g_params, g_optimizer.init(g_params),
                    d_optimizer.init(d_params), w_avg, jnp.zeros((), jnp.int32))
