"""The NesT classifier: exact parameter counts, outputs, dtypes, train/eval, config validation."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.models.classifier import NestConfig
from nestgen.models.registry import VARIANTS, abstract_params, config_from_dict, create_model, get_config, init_params

from .conftest import TINY

# spec.md §2, "Variants and exact parameter counts".
PUBLISHED_PARAMS = {
    "nest_tiny_s16_32": 6_006_730, "nest_small_s16_32": 22_849_930, "nest_base_s16_32": 89_050_378,
    "nest_tiny_s196_224": 17_057_608, "nest_small_s196_224": 38_351_176, "nest_base_s196_224": 67_723_368,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_published_variants_have_exact_parameter_counts(name, official_trees):
    count = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(abstract_params(get_config(name))))
    assert count == PUBLISHED_PARAMS[name] == official_trees[name]["num_params"]


def test_forward_returns_logits_and_every_level():
    params = init_params(TINY, 0)
    images = jax.random.normal(jax.random.key(1), (3, 16, 16, 3))
    logits, inter = TINY.build().apply({"params": params}, images)
    assert logits.shape == (3, 5) and logits.dtype == jnp.float32
    # 16x16 image, 2x2 patches → 8x8 tokens → 16 blocks of 2x2 tokens, then 4, then 1.
    assert [f.shape for f in inter["levels"]] == [(3, 16, 4, 16), (3, 4, 4, 32), (3, 1, 4, 32)]
    assert inter["pre_logits"].shape == (3, 32)


def test_published_cifar_variant_shapes_follow_the_spec():
    cfg = get_config("nest_tiny_s16_32")
    shapes = jax.eval_shape(lambda x: cfg.build().init_with_output(jax.random.key(0), x)[0],
                            jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
    logits, inter = shapes
    assert logits.shape == (2, 10)
    assert [f.shape for f in inter["levels"]] == [(2, 64, 16, 192), (2, 16, 16, 192), (2, 4, 16, 192), (2, 1, 16, 192)]
    assert cfg.block_size == 4


def test_bfloat16_compute_keeps_float32_parameters_and_close_logits():
    params = init_params(TINY, 0)
    images = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
    ref, _ = TINY.build().apply({"params": params}, images)
    model = create_model(TINY, dtype=jnp.bfloat16)
    variables = model.init(jax.random.key(0), images)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables["params"]))
    out, inter = model.apply({"params": params}, images)
    assert inter["levels"][0].dtype == jnp.bfloat16 and out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref, atol=0.05 * float(jnp.abs(ref).max()) + 1e-2)


def test_train_mode_uses_drop_path_and_eval_is_deterministic():
    params = init_params(TINY, 0)
    images = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))
    model = TINY.build()
    eval_logits, _ = model.apply({"params": params}, images, train=False)
    train_a, _ = model.apply({"params": params}, images, train=True, rngs={"dropout": jax.random.key(0)})
    train_b, _ = model.apply({"params": params}, images, train=True, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(train_a, eval_logits) and not np.allclose(train_a, train_b)
    np.testing.assert_array_equal(eval_logits, model.apply({"params": params}, images)[0])


def test_drop_path_rises_linearly_over_all_layers():
    rates = get_config("nest_tiny_s16_32").drop_path_rates()
    flat = [r for level in rates for r in level]
    assert len(flat) == 12 and flat[0] == 0.0 and flat[-1] == pytest.approx(0.1)
    np.testing.assert_allclose(np.diff(flat), 0.1 / 11)


def test_custom_variant_any_size_levels_and_classes():
    cfg = NestConfig(image_size=48, patch_size=3, num_levels=2, dims=(24, 48), heads=(2, 4), depths=(1, 1),
                     attention="multi_query", num_classes=3)
    logits, inter = cfg.build().apply({"params": init_params(cfg, 0)}, jnp.zeros((1, 48, 48, 3)))
    assert logits.shape == (1, 3) and [f.shape[1:3] for f in inter["levels"]] == [(4, 64), (1, 64)]


@pytest.mark.parametrize("change,message", [
    (dict(dims=(16, 32)), "one entry per level"),
    (dict(attention="global"), "attention must be one of"),
    (dict(image_size=20), "cannot hold"),
    (dict(heads=(3, 4, 4)), "not divisible"),
])
def test_invalid_configs_say_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **change)


def test_config_round_trips_through_dict_and_registry_lookup_errors():
    for cfg in VARIANTS.values():
        assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(KeyError, match="known variants"):
        get_config("nest_huge")
    assert get_config("nest_tiny_s16_32", num_classes=100).num_classes == 100


def test_changing_pixels_of_one_block_changes_only_that_blocks_level0_features():
    # TINY: 16x16 pixels, 2x2 patches, 2x2-token blocks → each level-0 block covers a 4x4 pixel square, 4x4 blocks.
    params = init_params(TINY, 0)
    images = jax.random.normal(jax.random.key(1), (1, 16, 16, 3))
    row, col = 2, 1  # block 2*4 + 1 = 9 in raster order
    changed = images.at[:, 4 * row:4 * row + 4, 4 * col:4 * col + 4].add(1.0)
    model = TINY.build()
    before = model.apply({"params": params}, images)[1]["levels"][0]
    after = model.apply({"params": params}, changed)[1]["levels"][0]
    delta = np.asarray(jnp.abs(after - before).max(axis=(2, 3))[0])  # (T,)
    assert delta[9] > 1e-3
    np.testing.assert_array_equal(np.delete(delta, 9), 0.0)
