"""GAN discriminators: a residual convolutional one in the StyleGAN2 style, and a NesT one built from the
classifier's encoder. Both return raw scores (B,) (logits of "real") and, when class-conditional, add a
projection term ⟨embed(y), φ(x)⟩ / √C (Miyato & Koyama 2018) to the unconditional score ψ(φ(x)).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from nestgen.models.classifier import NestConfig, NestEncoder
from nestgen.models.nest import DEFAULT_EXECUTION, ConfigRecord, Dtype, Execution, LayerNorm


def _projection(features: jax.Array, labels: jax.Array | None, num_classes: int, dtype: Dtype) -> jax.Array:
    """ψ(φ) + ⟨embed(y), φ⟩ / √C for class-conditional discriminators; features (B, C) → scores (B,) float32."""
    score = nn.Dense(1, dtype=dtype, name="head")(features)[:, 0]  # (B,)
    if num_classes:
        if labels is None:
            raise ValueError(f"this discriminator is class-conditional ({num_classes} classes): pass labels")
        embed = nn.Embed(num_classes, features.shape[-1], name="class_embed")(labels).astype(dtype)  # (B, C)
        score = score + jnp.sum(embed * features, axis=-1) / math.sqrt(features.shape[-1])
    return score.astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class ConvDiscriminatorConfig(ConfigRecord):
    """Residual conv discriminator: `channels[i]` at resolution image_size / 2**i, down to 4×4."""

    kind: ClassVar[str] = "conv_discriminator"

    image_size: int = 32
    channels: tuple[int, ...] = (128, 256, 256, 256)
    num_classes: int = 0
    mbstd_group: int = 4
    in_channels: int = 3

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.image_size < 4 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two ≥ 4, got {self.image_size}")
        expected = int(math.log2(self.image_size)) - 1
        if len(self.channels) != expected:
            raise ValueError(f"channels needs one entry per resolution {self.image_size}…4 ({expected}), "
                             f"got {self.channels}")

    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, ...]:
        images = jnp.zeros((batch, self.image_size, self.image_size, self.in_channels), jnp.float32)
        return (images, jnp.zeros((batch,), jnp.int32)) if self.num_classes else (images,)

    def build(self, dtype: Dtype = jnp.float32, execution: Execution = DEFAULT_EXECUTION) -> ConvDiscriminator:
        """`execution` is accepted like every network's build; a convolutional network has nothing it changes."""
        return ConvDiscriminator(self, dtype=dtype)


def _minibatch_std(x: jax.Array, group: int) -> jax.Array:
    """Append the standard deviation over groups of consecutive examples as one channel: (B, H, W, C+1)."""
    b, h, w, c = x.shape
    group = math.gcd(group, b)
    y = x.astype(jnp.float32).reshape(b // group, group, h, w, c)  # (B/G, G, H, W, C)
    std = jnp.sqrt(jnp.var(y, axis=1) + 1e-8).mean(axis=(1, 2, 3))  # (B/G,)
    std = jnp.broadcast_to(jnp.repeat(std, group)[:, None, None, None], (b, h, w, 1))  # (B, H, W, 1)
    return jnp.concatenate([x, std.astype(x.dtype)], axis=-1)


class ConvDiscriminator(nn.Module):
    """images (B, H, W, 3) in [-1, 1] [, labels] → (scores (B,), {"features": (B, C)}).

    from-RGB 1×1 conv, then residual blocks (two 3×3 convs + 2× average-pool, with a pooled 1×1 skip, summed
    and scaled by 1/√2) down to 4×4, minibatch standard deviation, a 3×3 conv, a dense layer, the head.
    """

    config: ConvDiscriminatorConfig
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None, *, train: bool = False):
        cfg = self.config
        conv = lambda c, k, name, bias=True: nn.Conv(c, (k, k), padding="SAME", use_bias=bias,  # noqa: E731
                                                     dtype=self.dtype, name=name)
        act = lambda y: nn.leaky_relu(y, 0.2)  # noqa: E731
        pool = lambda y: nn.avg_pool(y, (2, 2), strides=(2, 2))  # noqa: E731
        x = act(conv(cfg.channels[0], 1, "from_rgb")(images.astype(self.dtype)))  # (B, H, W, C0)
        for i in range(len(cfg.channels) - 1):
            skip = conv(cfg.channels[i + 1], 1, f"block_{i}_skip", bias=False)(pool(x))
            y = act(conv(cfg.channels[i], 3, f"block_{i}_conv0")(x))
            y = pool(act(conv(cfg.channels[i + 1], 3, f"block_{i}_conv1")(y)))  # (B, H/2, W/2, C_i+1)
            x = (skip + y) * (1 / math.sqrt(2))
        x = _minibatch_std(x, cfg.mbstd_group)  # (B, 4, 4, C+1)
        x = act(conv(cfg.channels[-1], 3, "epilogue_conv")(x))
        x = x.reshape(x.shape[0], -1)  # (B, 16 C)
        features = act(nn.Dense(cfg.channels[-1], dtype=self.dtype, name="epilogue_fc")(x))  # (B, C)
        return _projection(features, labels, cfg.num_classes, self.dtype), {"features": features}


@dataclasses.dataclass(frozen=True)
class NestDiscriminatorConfig(NestConfig):
    """A NesT encoder (the classifier's fields) scoring real vs fake; `num_classes` > 0 adds projection."""

    kind: ClassVar[str] = "nest_discriminator"

    num_classes: int = 0
    drop_path_rate: float = 0.0

    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, ...]:
        images = jnp.zeros((batch, self.image_size, self.image_size, self.in_channels), jnp.float32)
        return (images, jnp.zeros((batch,), jnp.int32)) if self.num_classes else (images,)

    def build(self, dtype: Dtype = jnp.float32, execution: Execution = DEFAULT_EXECUTION) -> NestDiscriminator:
        return NestDiscriminator(self, dtype=dtype, execution=execution)


class NestDiscriminator(nn.Module):
    """images [, labels] → (scores (B,), {"levels": [(B, T_l, N, C_l)], "pre_logits": (B, C)}).

    The classifier's encoder (same parameter names, same `perturb` hooks), so GradCAT can walk its block tree
    to show which blocks make an image look real or fake.
    """

    config: NestDiscriminatorConfig
    dtype: Dtype = jnp.float32
    execution: Execution = DEFAULT_EXECUTION

    @nn.compact
    def __call__(self, images: jax.Array, labels: jax.Array | None = None, *, train: bool = False):
        features = NestEncoder(self.config, self.dtype, self.execution, name="encoder")(images, train=train)
        x = LayerNorm(dtype=self.dtype, name="norm")(features[-1])  # (B, 1, N, C)
        pooled = x.mean(axis=(1, 2))  # (B, C)
        scores = _projection(pooled, labels, self.config.num_classes, self.dtype)
        return scores, {"levels": features, "pre_logits": pooled}
