"""The one registry of named model variants: the six published NesT classifiers, nestgen's own classifier,
generators and discriminators.

`get_config(name, **overrides)` returns the variant's config with fields replaced; `create_model` builds the
Flax module from a name or a config; `init_params` gives its float32 parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from nestgen.models.classifier import NestConfig
from nestgen.models.discriminator import ConvDiscriminatorConfig, NestDiscriminatorConfig
from nestgen.models.generator import GeneratorConfig

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
    # The CPU relay's classifier (configs/classifier_cifar10.py:relay): the paper's block tree at 32 px with 3
    # levels (16 → 4 → 1 blocks of 4×4 tokens on 2×2 patches), so that a GradCAT path has a step per level.
    "nest_mini_32": NestConfig(image_size=32, patch_size=2, num_levels=3, dims=(64, 128, 128), heads=(2, 4, 4),
                               depths=(2, 2, 3), attention="multi_head", num_classes=10, drop_path_rate=0.1),
}

# Generators: 4×4-pixel blocks; every resolution doubling adds one finer level with half the channels, so the
# cost per image grows about linearly with the number of pixels. `_cond` variants are class-conditional (CIFAR-10
# classes by default; `num_classes=` overrides).
_GEN = dict(block_size=4, attention="multi_head", latent_dim=128, w_dim=256, mapping_layers=2)
_GEN_32 = dict(_GEN, image_size=32, num_levels=4, dims=(128, 256, 256, 512), heads=(2, 4, 4, 8), depths=(1, 2, 2, 2))
_GEN_64 = dict(_GEN, image_size=64, num_levels=5, dims=(64, 128, 256, 256, 512), heads=(1, 2, 4, 4, 8),
               depths=(1, 1, 2, 2, 2))
_GEN_128 = dict(_GEN, image_size=128, num_levels=6, dims=(32, 64, 128, 256, 256, 512), heads=(1, 1, 2, 4, 4, 8),
                depths=(1, 1, 1, 2, 2, 2))
# A generator small enough to train on 2 CPU cores (the shipped stand-in).
_GEN_MICRO = dict(_GEN, image_size=32, num_levels=4, dims=(32, 64, 128, 128), heads=(1, 2, 4, 4), depths=(1, 1, 1, 1),
                  latent_dim=64, w_dim=128)
for _name, _shape in (("32", _GEN_32), ("64", _GEN_64), ("128", _GEN_128), ("micro_32", _GEN_MICRO)):
    VARIANTS[f"nest_gen_{_name}"] = GeneratorConfig(**_shape)
    VARIANTS[f"nest_gen_{_name}_cond"] = GeneratorConfig(**_shape, num_classes=10)

# Discriminators (unconditional; the GAN trainer sets num_classes to the generator's for projection).
VARIANTS.update({
    "conv_disc_32": ConvDiscriminatorConfig(image_size=32, channels=(128, 256, 256, 256)),
    "conv_disc_64": ConvDiscriminatorConfig(image_size=64, channels=(64, 128, 256, 256, 256)),
    "conv_disc_128": ConvDiscriminatorConfig(image_size=128, channels=(32, 64, 128, 256, 256, 256)),
    "conv_disc_micro_32": ConvDiscriminatorConfig(image_size=32, channels=(32, 64, 64, 64)),
    # NesT discriminators: 2×2 patches (4×4 at 128), 4×4-token blocks, multi-head attention.
    "nest_disc_32": NestDiscriminatorConfig(image_size=32, patch_size=2, num_levels=3, dims=(128, 256, 256),
                                            heads=(2, 4, 4), depths=(1, 2, 2), attention="multi_head"),
    "nest_disc_64": NestDiscriminatorConfig(image_size=64, patch_size=2, num_levels=4, dims=(64, 128, 256, 256),
                                            heads=(1, 2, 4, 4), depths=(1, 1, 2, 2), attention="multi_head"),
    "nest_disc_128": NestDiscriminatorConfig(image_size=128, patch_size=4, num_levels=4, dims=(64, 128, 256, 256),
                                             heads=(1, 2, 4, 4), depths=(1, 1, 2, 2), attention="multi_head"),
    "nest_disc_micro_32": NestDiscriminatorConfig(image_size=32, patch_size=2, num_levels=3, dims=(32, 64, 64),
                                                  heads=(1, 2, 2), depths=(1, 1, 1), attention="multi_head"),
})

CONFIG_TYPES = {cls.kind: cls for cls in (NestConfig, GeneratorConfig, ConvDiscriminatorConfig,
                                          NestDiscriminatorConfig)}


def get_config(name: str, **overrides: Any):
    """The config of a registered variant, with any fields replaced (e.g. `num_classes=100`)."""
    if name not in VARIANTS:
        raise KeyError(f"unknown model variant {name!r}; known variants: {', '.join(sorted(VARIANTS))}")
    fields = {field.name for field in dataclasses.fields(VARIANTS[name]) if field.init}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise KeyError(f"{name} has no field {', '.join(map(repr, unknown))}; its fields: {', '.join(sorted(fields))}")
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
    """Randomly initialised float32 parameters of any registered config kind."""
    rng = jax.random.key(rng) if isinstance(rng, int) else rng
    return jax.jit(lambda r: config.build().init(r, *config.example_inputs())["params"])(rng)


def abstract_params(config) -> dict[str, Any]:
    """Parameter shapes and dtypes without allocating them (jax.ShapeDtypeStruct leaves)."""
    return jax.eval_shape(lambda: config.build().init(jax.random.key(0), *config.example_inputs()))["params"]


def count_params(params) -> int:
    return sum(int(jnp.size(leaf)) if hasattr(leaf, "size") else 0 for leaf in jax.tree.leaves(params))
