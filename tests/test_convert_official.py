"""Official Flax NesT checkpoints: the six published trees load, tensors land where they belong, bad trees fail."""

import jax
import numpy as np
import pytest
from flax import serialization

from nestgen.convert.official import from_official, load_official, official_shapes, save_official, to_official
from nestgen.convert.tree import ParameterTreeError, flatten, unflatten
from nestgen.models.registry import get_config, init_params

MIDDLE_LAYER = {"nest_tiny_s16_32": (1, 1, 4), "nest_small_s16_32": (2, 0, 6), "nest_base_s16_32": (1, 2, 5),
                "nest_tiny_s196_224": (2, 3, 7), "nest_small_s196_224": (2, 9, 13),
                "nest_base_s196_224": (2, 10, 14)}  # variant: (level, layer in level, global EncoderNDBlock index)


def _random_official_tree(spec: dict, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(shape, dtype=np.float32) for k, shape in spec["params"].items()}


def _write(path, flat: dict, wrap: bool = True):
    tree = unflatten(flat)
    state = {"optimizer": {"target": tree, "state": {"step": 39}}, "model_state": {}} if wrap else tree
    path.write_bytes(serialization.msgpack_serialize(state))
    return path


@pytest.mark.parametrize("name", sorted(MIDDLE_LAYER))
def test_each_published_variant_loads_and_tensors_land_in_place(name, official_trees, tmp_path):
    spec = official_trees[name]
    cfg = get_config(name)
    official = _random_official_tree(spec, seed=len(name))
    flat = load_official(_write(tmp_path / "ckpt-39.flax", official), cfg)

    level, layer, g = MIDDLE_LAYER[name]
    attn = "MultiHeadAttention_0" if cfg.attention == "multi_head" else "MultiQueryAttention_0"
    np.testing.assert_array_equal(flat["encoder/patch_embed/proj/kernel"], official["PatchEmbedding_0/Conv_0/kernel"])
    np.testing.assert_array_equal(flat[f"encoder/level_{level}/layer_{layer}/attn/query/kernel"],
                                  official[f"EncoderNDBlock_{g}/{attn}/DenseGeneral_0/kernel"])
    np.testing.assert_array_equal(flat["encoder/aggregate_1/conv/kernel"], official["ConvPool_1/Conv_0/kernel"])
    np.testing.assert_array_equal(flat["head/kernel"], official["Dense_0/kernel"])
    np.testing.assert_array_equal(flat["head/bias"], official["Dense_0/bias"])
    np.testing.assert_array_equal(flat[f"encoder/level_{level}/pos_embed"],
                                  official[f"PositionEmbedding_{level}/pos_embedding"])
    # key/value: official stores key then value on the last axis.
    kv_name = "DenseGeneral_1" if cfg.attention == "multi_head" else "Dense_0"
    kv = official[f"EncoderNDBlock_{g}/{attn}/{kv_name}/kernel"]
    d = kv.shape[-1] // 2
    ours = np.asarray(flat[f"encoder/level_{level}/layer_{layer}/attn/key_value/kernel"])  # (C, 2, g, d)
    np.testing.assert_array_equal(ours[:, 0].reshape(kv.shape[:-1] + (d,)), kv[..., :d])
    np.testing.assert_array_equal(ours[:, 1].reshape(kv.shape[:-1] + (d,)), kv[..., d:])
    # and back again, bit for bit
    back = {k: np.asarray(v) for k, v in to_official(flat, cfg).items()}
    assert back.keys() == official.keys()
    assert all(np.array_equal(back[k], official[k]) for k in official)


def test_expected_trees_equal_the_reference_names_and_shapes(official_trees):
    for name, spec in official_trees.items():
        assert official_shapes(get_config(name)) == {k: tuple(s) for k, s in spec["params"].items()}, name


def test_bare_tree_and_save_official_round_trip(tmp_path):
    cfg = get_config("nest_tiny_s16_32")
    flat = flatten(init_params(cfg, 0))
    save_official(tmp_path / "ours.flax", flat, cfg)
    loaded = load_official(tmp_path / "ours.flax", cfg)
    assert all(np.array_equal(loaded[k], flat[k]) for k in flat)
    bare = _write(tmp_path / "bare.msgpack", {k: np.asarray(v) for k, v in to_official(flat, cfg).items()},
                  wrap=False)
    assert np.array_equal(load_official(bare, cfg)["head/kernel"], flat["head/kernel"])
    # the loaded official weights compute the same logits as the original parameters
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    ref = cfg.build().apply({"params": unflatten(flat)}, x)[0]
    np.testing.assert_array_equal(cfg.build().apply({"params": unflatten(loaded)}, x)[0], ref)


@pytest.fixture
def tiny_official(official_trees):
    return _random_official_tree(official_trees["nest_tiny_s16_32"], seed=0)


def test_missing_key_is_named_with_its_shape(tiny_official, tmp_path):
    del tiny_official["EncoderNDBlock_5/MlpBlock_0/Dense_1/kernel"]
    with pytest.raises(ParameterTreeError, match=r"missing key 'EncoderNDBlock_5/MlpBlock_0/Dense_1/kernel' "
                                                 r"\(expected shape \(768, 192\)\)"):
        load_official(_write(tmp_path / "c.flax", tiny_official), get_config("nest_tiny_s16_32"))


def test_extra_key_is_named(tiny_official, tmp_path):
    tiny_official["Dense_1/kernel"] = np.zeros((192, 10), np.float32)
    with pytest.raises(ParameterTreeError, match=r"unexpected key 'Dense_1/kernel' with shape \(192, 10\)"):
        load_official(_write(tmp_path / "c.flax", tiny_official), get_config("nest_tiny_s16_32"))


def test_wrong_shape_names_key_and_both_shapes(tiny_official, tmp_path):
    tiny_official["Dense_0/kernel"] = np.zeros((192, 100), np.float32)
    with pytest.raises(ParameterTreeError, match=r"key 'Dense_0/kernel' has shape \(192, 100\), expected \(192, 10\)"):
        load_official(_write(tmp_path / "c.flax", tiny_official), get_config("nest_tiny_s16_32"))


def test_checkpoint_of_another_variant_fails_clearly(tiny_official, tmp_path):
    with pytest.raises(ParameterTreeError, match="does not match the model"):
        load_official(_write(tmp_path / "c.flax", tiny_official), get_config("nest_small_s16_32"))


def test_not_msgpack_fails_clearly(tmp_path):
    path = tmp_path / "junk.flax"
    path.write_bytes(b"\x00\x01 definitely not msgpack \xff" * 10)
    with pytest.raises(ParameterTreeError, match="not a Flax msgpack checkpoint|not a parameter tree"):
        load_official(path, get_config("nest_tiny_s16_32"))


def test_from_official_inverts_to_official_for_multi_head_and_multi_query():
    for name in ("nest_tiny_s16_32", "nest_tiny_s196_224"):
        cfg = get_config(name)
        flat = flatten(init_params(cfg, 1))
        back = from_official(to_official(flat, cfg), cfg)
        assert back.keys() == flat.keys() and all(np.array_equal(back[k], flat[k]) for k in flat)
