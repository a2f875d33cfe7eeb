"""The NesT generator (spec.md §3): the encoder's block tree read backwards, root block first.

z [+ class embedding] → mapping MLP → w. w → dense → the root level: one block of S×S tokens. Every level adds
its position embedding and runs transformer layers with local attention inside each block and LayerNorms
modulated by w; between levels, block de-aggregation turns every block into its 4 children (pixel shuffle ×2
+ conv 3×3). The finest level has one token per pixel; to RGB: LayerNorm → dense(3) → tanh, images in [-1, 1]. With
`rgb_skips` every level makes such a picture at its own resolution (one pixel per token), upsampled bilinearly to
the image size and summed before the tanh, as StyleGAN2's skip generator (Karras et al. 2020, §4.1): the coarse
levels draw into the image directly (without skips, the CPU relay's generator let its finest level's transformer
layer swamp its input, rms 0.67 → 6.2, and the coarse levels' seed moved the picture by 0.33 / 255).
`positions` says which levels have a position embedding: "every_level" (spec.md §3: (1, T, N, C) at every level),
"in_block" (below the root one (1, 1, N, C) shared by a level's blocks: a token knows where it sits inside its
block, not where the block sits on the image), "root" (only the root; below it a token's place comes from its
parent, through the pixel shuffle and conv of the de-aggregation, as in StyleGAN's position-free fine layers) or
"coarse_levels" (every level but the finest, which then can only refine what comes down the tree). With every
level's (1, T, N, C) the CPU relay's generators (with and without skips) learned to paint the picture at the finest
level from w and that level's absolute positions: setting level 0's embedding to its in-block part moved the picture
by 49-53 / 255, the same at levels 1 and 2 by at most 0.7 / 255 (scripts/benchmark.py level_positions), and
`rgb_skips` alone lost its coarse seed's effect with training (29.8 / 255 at 48,032 images, 6.3 at 583,552);
"in_block" drew a grid with the blocks' 4-pixel period into the relay's pictures by 64,000 images, and both
"in_block" and "root" lagged far behind in FD_NesT (50.3 and 33.6 at 64,000 and 96,000 images, the spec's 12.5 and
6.6).
Levels are numbered as in the classifier: level 0 is the finest (4**(L-1) blocks), level L-1 the root.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from nestgen.models.nest import (
    ACTIVATIONS,
    ATTENTION_KINDS,
    DEFAULT_EXECUTION,
    LAYER_NORM_EPSILON,
    BlockDeAggregation,
    ConfigRecord,
    Dtype,
    Execution,
    LayerNorm,
    Level,
    kernel_init,
    unblockify,
)

POSITIONS = ("every_level", "in_block", "root", "coarse_levels")


def level_positions(positions: str, level: int, num_levels: int) -> str:
    """The generator's `positions` setting → Level.positions of `level` (0 the finest): the root always has its
    embedding; "every_level" (spec.md §3) keeps (1, T, N, C) everywhere, "in_block" shares one per level below the
    root, "root" has none below the root, "coarse_levels" has none at the finest level only."""
    if level == num_levels - 1 or positions == "every_level":
        return "absolute"
    if positions == "coarse_levels":
        return "none" if level == 0 else "absolute"
    return "in_block" if positions == "in_block" else "none"


@dataclasses.dataclass(frozen=True)
class GeneratorConfig(ConfigRecord):
    """Shape of a NesT generator. `num_classes == 0` is unconditional; otherwise labels select a class embedding."""

    kind: ClassVar[str] = "generator"

    image_size: int = 32
    block_size: int = 4  # S: pixels along a block edge at the finest level (N = S*S tokens per block)
    num_levels: int = 4
    dims: tuple[int, ...] = (128, 256, 256, 512)  # level 0 (finest) first, as NestConfig
    heads: tuple[int, ...] = (2, 4, 4, 8)
    depths: tuple[int, ...] = (1, 2, 2, 2)
    attention: str = "multi_head"
    latent_dim: int = 128
    w_dim: int = 256
    mapping_layers: int = 2
    num_classes: int = 0
    mlp_ratio: float = 4.0
    activation: str = "gelu_tanh"
    out_channels: int = 3
    rgb_skips: bool = False  # every level adds its own to-RGB picture, upsampled (StyleGAN2's skip generator)
    positions: str = "every_level"  # which levels have a position embedding: POSITIONS, level_positions()

    def __post_init__(self):
        for name in ("dims", "heads", "depths"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
            if len(getattr(self, name)) != self.num_levels:
                raise ValueError(f"{name} needs one entry per level ({self.num_levels}), got {getattr(self, name)}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {tuple(POSITIONS)}, got {self.positions!r}")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.image_size != self.block_size * 2 ** (self.num_levels - 1):
            raise ValueError(f"image_size {self.image_size} must equal block_size {self.block_size} × "
                             f"2**(num_levels - 1) = {self.block_size * 2 ** (self.num_levels - 1)}")
        for level, (dim, heads) in enumerate(zip(self.dims, self.heads, strict=True)):
            if dim % heads:
                raise ValueError(f"level {level}: dim {dim} is not divisible by {heads} heads")
            if level > 0 and dim % 4:
                raise ValueError(f"level {level}: dim {dim} must be divisible by 4 (pixel shuffle ×2 below it)")
        if self.num_classes < 0 or self.latent_dim < 1 or self.w_dim < 1 or self.mapping_layers < 1:
            raise ValueError("num_classes must be ≥ 0; latent_dim, w_dim and mapping_layers ≥ 1")

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def num_kv_heads(self) -> tuple[int, ...]:
        return self.heads if self.attention == "multi_head" else (1,) * self.num_levels

    def blocks_per_level(self) -> tuple[int, ...]:
        return tuple(4 ** (self.num_levels - 1 - level) for level in range(self.num_levels))

    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, ...]:
        z = jnp.zeros((batch, self.latent_dim), jnp.float32)
        return (z, jnp.zeros((batch,), jnp.int32)) if self.conditional else (z,)

    def build(self, dtype: Dtype = jnp.float32, execution: Execution = DEFAULT_EXECUTION) -> NestGenerator:
        return NestGenerator(self, dtype=dtype, execution=execution)


def mix_levels(w_coarse: jax.Array, w_fine: jax.Array, crossover: jax.Array, num_levels: int) -> jax.Array:
    """Level mixing, the block tree's style mixing: levels ≥ crossover (the coarse ones, root included) take
    `w_coarse`, the finer levels `w_fine`. w (B, W) each, crossover int (B,) or scalar in [0, num_levels]
    (0: every level from w_coarse) → per-level w (B, L, W) for `NestGenerator.synthesize`."""
    levels = jnp.arange(num_levels)[None, :, None]  # (1, L, 1)
    crossover = jnp.broadcast_to(jnp.asarray(crossover), w_coarse.shape[:1])[:, None, None]  # (B, 1, 1)
    return jnp.where(levels >= crossover, w_coarse[:, None, :], w_fine[:, None, :])  # (B, L, W)


def _normalise(x: jax.Array) -> jax.Array:
    """Scale each vector to unit root-mean-square (StyleGAN's pixel norm on z and the class embedding)."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + 1e-8)


class MappingNetwork(nn.Module):
    """z (B, Z) [+ class embedding of labels (B,)] → w (B, W): an MLP with leaky ReLU, as StyleGAN's."""

    config: GeneratorConfig

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        cfg = self.config
        x = _normalise(z.astype(jnp.float32))
        if cfg.conditional:
            if labels is None:
                raise ValueError(f"this generator is class-conditional ({cfg.num_classes} classes): pass labels")
            embed = nn.Embed(cfg.num_classes, cfg.latent_dim, embedding_init=nn.initializers.normal(1.0),
                             name="class_embed")(labels)  # (B, Z)
            x = jnp.concatenate([x, _normalise(embed)], axis=-1)  # (B, 2Z)
        for i in range(cfg.mapping_layers):
            x = nn.leaky_relu(nn.Dense(cfg.w_dim, name=f"fc{i}")(x), 0.2)
        return x  # (B, W), float32


class ModulatedLayerNorm(nn.Module):
    """LayerNorm whose scale and shift come from w: norm(x) · (1 + γ(w)) + β(w), per level and per layer."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        c = x.shape[-1]
        y = nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, use_scale=False, use_bias=False, dtype=self.dtype)(x)
        style = nn.Dense(2 * c, dtype=self.dtype, kernel_init=kernel_init, name="style")(w)  # (B, 2C)
        gamma, beta = jnp.split(style[:, None, None, :], 2, axis=-1)  # (B, 1, 1, C) each
        return y * (1 + gamma) + beta  # (B, T, N, C)


class SynthesisNetwork(nn.Module):
    """w (B, W) → images (B, H, W, 3) in [-1, 1], plus every level's output features (B, T_l, N, C_l)."""

    config: GeneratorConfig
    dtype: Dtype = jnp.float32
    execution: Execution = DEFAULT_EXECUTION

    @nn.compact
    def __call__(self, w: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        """w (B, W) for every level, or (B, L, W) with one w per level (index 0 the finest): level mixing."""
        cfg = self.config
        top, n = cfg.num_levels - 1, cfg.block_size**2
        if w.ndim == 3 and w.shape[1] != cfg.num_levels:
            raise ValueError(f"per-level w must be (B, {cfg.num_levels}, W), got {w.shape}")
        w_of = (lambda level: w[:, level]) if w.ndim == 3 else (lambda level: w)  # (B, W)
        x = nn.Dense(n * cfg.dims[top], dtype=self.dtype, kernel_init=kernel_init, name="root")(w_of(top))
        x = x.reshape(w.shape[0], 1, n, cfg.dims[top])  # (B, 1, N, C_top): the root level's one block
        levels: list[jax.Array] = [None] * cfg.num_levels
        rgb = None  # with rgb_skips: the sum of the coarser levels' pictures, (B, H, W, 3) float32
        for level in range(top, -1, -1):
            x = Level(cfg.depths[level], cfg.heads[level], cfg.num_kv_heads[level], (), cfg.mlp_ratio,
                      cfg.activation, ModulatedLayerNorm, self.dtype, self.execution,
                      positions=level_positions(cfg.positions, level, cfg.num_levels),
                      name=f"level_{level}")(x, w_of(level))
            levels[level] = x  # (B, T_l, N, C_l)
            if cfg.rgb_skips and level > 0:
                picture = self._to_rgb(x, f"_{level}")  # (B, H_l, W_l, 3), one pixel per token
                size = (picture.shape[0], cfg.image_size, cfg.image_size, cfg.out_channels)
                picture = jax.image.resize(picture, size, "bilinear")  # (B, H, W, 3)
                rgb = picture if rgb is None else rgb + picture
            if level > 0:
                x = BlockDeAggregation(cfg.dims[level - 1], dtype=self.dtype,
                                       name=f"expand_{level}")(x)  # (B, 4 T_l, N, C_l-1)
        picture = self._to_rgb(x, "")  # (B, H, W, 3): the finest level
        images = jnp.tanh(picture if rgb is None else rgb + picture)  # (B, H, W, 3) in [-1, 1]
        return images, levels

    def _to_rgb(self, x: jax.Array, suffix: str) -> jax.Array:
        """(B, T, N, C) → (B, H, W, 3) float32: LayerNorm → dense(3) per token, blocks back on the plane."""
        x = LayerNorm(dtype=self.dtype, name=f"to_rgb_norm{suffix}")(x)
        x = nn.Dense(self.config.out_channels, dtype=self.dtype, kernel_init=kernel_init, name=f"to_rgb{suffix}")(x)
        return unblockify(x).astype(jnp.float32)


class NestGenerator(nn.Module):
    """z (B, Z) [, labels (B,)] → (images (B, H, W, 3) in [-1, 1], {"w": (B, W), "levels": [...]}).

    `method="map"` gives w only and `method="synthesize"` renders a given w, for truncation (ψ toward a tracked
    mean of w) and interpolation in w space. Parameters are float32; `dtype` is the compute dtype, `execution`
    chooses fused attention and rematerialisation.
    """

    config: GeneratorConfig
    dtype: Dtype = jnp.float32
    execution: Execution = DEFAULT_EXECUTION

    def setup(self):
        self.mapping = MappingNetwork(self.config)
        self.synthesis = SynthesisNetwork(self.config, self.dtype, self.execution)

    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, dict[str, Any]]:
        w = self.mapping(z, labels)
        images, levels = self.synthesis(w)
        return images, {"w": w, "levels": levels}

    def map(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        return self.mapping(z, labels)

    def synthesize(self, w: jax.Array) -> jax.Array:
        """w (B, W), or (B, L, W) with one w per level (level mixing) → images (B, H, W, 3)."""
        return self.synthesis(w)[0]
