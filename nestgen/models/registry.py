"""The one registry of named model variants: the six published NesT classifiers and nestgen's own.

`get_config(name, **overrides)` returns the variant's config with fields replaced; `create_model` builds the
Flax module from a name or a config; `init_params` gives its float32 parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from nestgen.models.classifier import NestConfig

# The official CIFAR recipe: 1×1 patches, 4×4-token blocks, 4 levels of 3 layers, multi-query attention.
_CIFAR = dict(image_size=32, patch_size=1, num_levels=4, depths=(3, 3, 3, 3), attention="multi_query",
              num_classes=10, drop_path_rate=0.1)
# The official ImageNet recipe: 4×4 patches, 14×14-token blocks, 3 levels, channels and heads double per level.
_IMAGENET = dict(image_size=224, patch_size=4, num_levels=3, attention="multi_head", num_classes=1000)

VARIANTS: dict[str, Any] = {
    "nest_tiny_s16_32": NestConfig(**_CIFAR, dims=(192,) * 4, heads=(3,) * 4),
    "nest_small_s16_32": NestConfig(**_CIFAR, dims=(384,) * 4, heads=(6,) * 4),
    "nest_base_s16_32": NestConfig(**_CIFAR, dims=(768,) * 4, heads=(12,) * 4),
    "nest_tiny_s196_224": NestConfig(**_IMAGENET, dims=(96, 192, 384), heads=(3, 6, 12), depths=(2, 2, 8),
                                     drop_path_rate=0.2),
    "nest_small_s196_224": NestConfig(**_IMAGENET, dims=(96, 192, 384), heads=(3, 6, 12), depths=(2, 2, 20),
                                      drop_path_rate=0.3),
    "nest_base_s196_224": NestConfig(**_IMAGENET, dims=(128, 256, 512), heads=(4, 8, 16), depths=(2, 2, 20),
                                     drop_path_rate=0.5),
    # A NesT small enough to train and test on 2 CPU cores: 2 levels of 8x8-pixel blocks on 16x16 tokens.
    "nest_micro_32": NestConfig(image_size=32, patch_size=2, num_levels=2, dims=(64, 128), heads=(2, 4),
                                depths=(2, 2), attention="multi_head", num_classes=10, drop_path_rate=0.0),
}

CONFIG_TYPES = {cls.kind: cls for cls in (NestConfig,)}


def get_config(name: str, **overrides: Any):
    """The config of a registered variant, with any fields replaced (e.g. `num_classes=100`)."""
    if name not in VARIANTS:
        raise KeyError(f"unknown model variant {name!r}; known variants: {', '.join(sorted(VARIANTS))}")
    return dataclasses.replace(VARIANTS[name], **overrides) if overrides else VARIANTS[name]


def config_from_dict(data: dict[str, Any]):
    """Rebuild a config saved with `config.to_dict()` (the `model` entry of a checkpoint's config.json)."""
    kind = data.get("kind", "classifier")
    if kind not in CONFIG_TYPES:
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {sorted(CONFIG_TYPES)}")
    return CONFIG_TYPES[kind].from_dict(data)


def create_model(name_or_config, dtype=jnp.float32):
    config = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return config.build(dtype)


def init_params(config, rng: jax.Array | int = 0) -> dict[str, Any]:
    """Randomly initialised float32 parameters of a classifier config (truncated normal 0.02, zero biases)."""
    rng = jax.random.key(rng) if isinstance(rng, int) else rng
    image = jnp.zeros((1, config.image_size, config.image_size, config.in_channels), jnp.float32)
    return jax.jit(lambda r: config.build().init(r, image)["params"])(rng)


def abstract_params(config) -> dict[str, Any]:
    """Parameter shapes and dtypes without allocating them (jax.ShapeDtypeStruct leaves)."""
    image = jax.ShapeDtypeStruct((1, config.image_size, config.image_size, config.in_channels), jnp.float32)
    return jax.eval_shape(lambda x: config.build().init(jax.random.key(0), x), image)["params"]


def count_params(params) -> int:
    return sum(int(jnp.size(leaf)) if hasattr(leaf, "size") else 0 for leaf in jax.tree.leaves(params))
