"""GAN discriminators: every variant scores images, projection conditioning, the NesT one exposes its levels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.convert.tree import flatten
from nestgen.models.discriminator import ConvDiscriminatorConfig, NestDiscriminatorConfig
from nestgen.models.registry import VARIANTS, config_from_dict, get_config, init_params
from tests.test_generator import random_params

DISCRIMINATORS = sorted(n for n, c in VARIANTS.items() if c.kind in ("conv_discriminator", "nest_discriminator"))


@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_every_discriminator_variant_scores_a_batch(name):
    cfg = get_config(name, num_classes=10)
    images = jax.random.uniform(jax.random.key(0), (4, cfg.image_size, cfg.image_size, 3), minval=-1, maxval=1)
    labels = jnp.array([0, 1, 2, 3])
    scores, aux = jax.jit(cfg.build().apply)({"params": random_params(cfg)}, images, labels)
    assert scores.shape == (4,) and scores.dtype == jnp.float32 and bool(jnp.isfinite(scores).all())
    assert float(jnp.std(scores)) > 0  # different images, different scores
    if cfg.kind == "nest_discriminator":
        assert [f.shape[1] for f in aux["levels"]] == list(cfg.blocks_per_level())


@pytest.mark.parametrize("cfg", [
    ConvDiscriminatorConfig(image_size=16, channels=(8, 16, 16), num_classes=3),
    NestDiscriminatorConfig(image_size=16, patch_size=2, num_levels=2, dims=(8, 16), heads=(1, 2), depths=(1, 1),
                            attention="multi_head", num_classes=3)], ids=["conv", "nest"])
def test_projection_conditioning(cfg):
    params = init_params(cfg, 0)
    model = cfg.build()
    x = jax.random.uniform(jax.random.key(0), (4, 16, 16, 3), minval=-1, maxval=1)
    apply = jax.jit(model.apply)
    a, aux = apply({"params": params}, x, jnp.array([0, 0, 0, 0]))
    b, _ = apply({"params": params}, x, jnp.array([1, 2, 1, 2]))
    assert float(jnp.abs(a - b).min()) > 0  # the class changes every score
    # score = ψ(φ) + ⟨embed(y), φ⟩ / √C, exactly
    phi = aux["features"] if "features" in aux else aux["pre_logits"]
    head, embed = params["head"], params["class_embed"]["embedding"]
    expected = phi @ head["kernel"][:, 0] + head["bias"][0] + (embed[0] * phi).sum(-1) / np.sqrt(phi.shape[-1])
    np.testing.assert_allclose(a, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="class-conditional"):
        model.apply({"params": params}, x)
    unconditional = type(cfg).from_dict({**cfg.to_dict(), "num_classes": 0})
    assert "class_embed/embedding" not in flatten(init_params(unconditional, 0))


def test_nest_discriminator_uses_the_classifier_encoder():
    cfg = get_config("nest_disc_micro_32")
    names = set(flatten(init_params(cfg, 0)))
    assert {"encoder/patch_embed/proj/kernel", "encoder/level_0/layer_0/attn/query/kernel",
            "encoder/aggregate_0/conv/kernel", "norm/scale", "head/kernel"} <= names
    assert config_from_dict(cfg.to_dict()) == cfg and cfg.to_dict()["kind"] == "nest_discriminator"


def test_minibatch_std_sees_the_batch():
    """StyleGAN2's minibatch-std: a batch of identical images scores differently from a varied one."""
    cfg = ConvDiscriminatorConfig(image_size=8, channels=(8, 8), mbstd_group=4)
    params = init_params(cfg, 0)
    same = jnp.ones((4, 8, 8, 3)) * 0.3
    varied = same.at[1:].set(jax.random.uniform(jax.random.key(2), (3, 8, 8, 3)))
    apply = jax.jit(cfg.build().apply)
    a, _ = apply({"params": params}, same)
    b, _ = apply({"params": params}, varied)
    assert float(jnp.abs(a[0] - b[0])) > 0  # image 0 is the same; only its group's spread changed


def test_bad_discriminator_configs_are_explained():
    with pytest.raises(ValueError, match="one entry per resolution"):
        ConvDiscriminatorConfig(image_size=32, channels=(8, 8))
    with pytest.raises(ValueError, match="power of two"):
        ConvDiscriminatorConfig(image_size=24, channels=(8, 8, 8))
