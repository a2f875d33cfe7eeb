"""The NesT encoder and classifier (Zhang et al. 2022), built from the shared modules in `nest.py`.

image → patch embedding → blockify → for each level: position embedding + transformer layers, then block
aggregation (except after the top level) → LayerNorm → mean over blocks and tokens → dense head.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nestgen.models.nest import (
    ACTIVATIONS,
    ATTENTION_KINDS,
    DEFAULT_EXECUTION,
    POOL_PADDINGS,
    BlockAggregation,
    ConfigRecord,
    Dtype,
    Execution,
    LayerNorm,
    Level,
    PatchEmbedding,
    blockify,
    kernel_init,
)


@dataclasses.dataclass(frozen=True)
class NestConfig(ConfigRecord):
    """Everything that fixes the shape and arithmetic of a NesT classifier (not its compute dtype).

    Level 0 is the finest level with 4**(num_levels - 1) blocks; the top level has one block. The block size S
    (tokens per block edge) follows: image_size / patch_size = S * 2**(num_levels - 1).
    """

    kind: ClassVar[str] = "classifier"

    image_size: int = 32
    patch_size: int = 1
    num_levels: int = 4
    dims: tuple[int, ...] = (192, 192, 192, 192)
    heads: tuple[int, ...] = (3, 3, 3, 3)
    depths: tuple[int, ...] = (3, 3, 3, 3)
    attention: str = "multi_query"
    num_classes: int = 10
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    activation: str = "gelu_tanh"
    pool_padding: str = "same"
    in_channels: int = 3

    def __post_init__(self):
        for name in ("dims", "heads", "depths"):
            value = getattr(self, name)
            object.__setattr__(self, name, tuple(int(v) for v in value))
            if len(getattr(self, name)) != self.num_levels:
                raise ValueError(f"{name} needs one entry per level ({self.num_levels}), got {value}")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")
        if self.pool_padding not in POOL_PADDINGS:
            raise ValueError(f"pool_padding must be one of {POOL_PADDINGS}, got {self.pool_padding!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch size {self.patch_size} does not divide image size {self.image_size}")
        grid, blocks_per_side = self.image_size // self.patch_size, 2 ** (self.num_levels - 1)
        if grid % blocks_per_side:
            raise ValueError(
                f"a {grid}x{grid} token grid cannot hold {blocks_per_side}x{blocks_per_side} blocks at level 0 "
                f"({self.num_levels} levels): choose image_size / patch_size divisible by {blocks_per_side}")
        for level, (dim, heads) in enumerate(zip(self.dims, self.heads, strict=True)):
            if dim % heads:
                raise ValueError(f"level {level}: dim {dim} is not divisible by {heads} heads")

    @property
    def block_size(self) -> int:
        """S: tokens along one edge of a block (N = S*S tokens per block)."""
        return self.image_size // self.patch_size // 2 ** (self.num_levels - 1)

    @property
    def num_kv_heads(self) -> tuple[int, ...]:
        return self.heads if self.attention == "multi_head" else (1,) * self.num_levels

    def blocks_per_level(self) -> tuple[int, ...]:
        return tuple(4 ** (self.num_levels - 1 - level) for level in range(self.num_levels))

    def drop_path_rates(self) -> list[tuple[float, ...]]:
        """Stochastic depth rising linearly from 0 over all layers to `drop_path_rate`, split per level."""
        rates = np.linspace(0.0, self.drop_path_rate, sum(self.depths)).tolist()
        starts = np.cumsum((0,) + self.depths).tolist()
        return [tuple(rates[starts[i]:starts[i + 1]]) for i in range(self.num_levels)]

    def example_inputs(self, batch: int = 1) -> tuple[jax.Array, ...]:
        """Inputs of the right shape for `init` and shape inference."""
        return (jnp.zeros((batch, self.image_size, self.image_size, self.in_channels), jnp.float32),)

    def build(self, dtype: Dtype = jnp.float32, execution: Execution = DEFAULT_EXECUTION) -> NestClassifier:
        return NestClassifier(self, dtype=dtype, execution=execution)


class NestEncoder(nn.Module):
    """Patch embedding and the levels of the tree, finest first. Returns every level's output (B, T_l, N, C_l).

    Each level's output passes through `perturb("features_l")`, so GradCAT can take gradients with respect to it
    (the 'perturbations' collection); it is the identity otherwise.
    """

    config: NestConfig
    dtype: Dtype = jnp.float32
    execution: Execution = DEFAULT_EXECUTION

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> list[jax.Array]:
        cfg = self.config
        x = PatchEmbedding(cfg.dims[0], cfg.patch_size, dtype=self.dtype, name="patch_embed")(
            images.astype(self.dtype))  # (B, H/k, W/k, C0)
        x = blockify(x, cfg.block_size)  # (B, T0, N, C0)
        features = []
        for level, rates in enumerate(cfg.drop_path_rates()):
            x = Level(cfg.depths[level], cfg.heads[level], cfg.num_kv_heads[level], rates, cfg.mlp_ratio,
                      cfg.activation, dtype=self.dtype, execution=self.execution,
                      name=f"level_{level}")(x, train=train)  # (B, T_l, N, C_l)
            x = self.perturb(f"features_{level}", x)
            features.append(x)
            if level + 1 < cfg.num_levels:
                x = BlockAggregation(cfg.dims[level + 1], cfg.pool_padding, dtype=self.dtype,
                                     name=f"aggregate_{level}")(x)  # (B, T_l/4, N, C_l+1)
        return features


class NestClassifier(nn.Module):
    """NesT image classifier. Input: normalised images (B, H, W, C). Output: (logits, intermediates).

    intermediates = {"levels": [level 0 … top level features (B, T_l, N, C_l)], "pre_logits": (B, C)}.
    Logits are float32 whatever the compute dtype; parameters are always float32. `execution` chooses fused
    attention and rematerialisation (same parameters, same function).
    """

    config: NestConfig
    dtype: Dtype = jnp.float32
    execution: Execution = DEFAULT_EXECUTION

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> tuple[jax.Array, dict[str, Any]]:
        features = NestEncoder(self.config, self.dtype, self.execution, name="encoder")(images, train=train)
        x = LayerNorm(dtype=self.dtype, name="norm")(features[-1])  # (B, 1, N, C)
        pooled = x.mean(axis=(1, 2))  # (B, C)
        logits = nn.Dense(self.config.num_classes, dtype=self.dtype, kernel_init=kernel_init, name="head")(pooled)
        out_dtype = jnp.promote_types(self.dtype, jnp.float32)  # float32 logits from bfloat16 compute
        return logits.astype(out_dtype), {"levels": features, "pre_logits": pooled}
