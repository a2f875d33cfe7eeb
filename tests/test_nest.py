"""The shared NesT modules: blocks, locality, aggregation, attention kinds, drop path."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestgen.models.nest import (
    BlockAggregation,
    Conv3x3,
    Execution,
    Level,
    LocalAttention,
    blockify,
    conv3x3_cpu,
    unblockify,
)
from nestgen.models.registry import get_config, init_params


@settings(max_examples=30, deadline=None)
@given(grid=st.integers(1, 4), block=st.integers(1, 5), channels=st.integers(1, 3), batch=st.integers(1, 2))
def test_blockify_unblockify_are_inverse(grid, block, channels, batch):
    size = grid * block
    image = np.random.default_rng(0).normal(size=(batch, size, size, channels)).astype(np.float32)
    blocks = blockify(image, block)
    assert blocks.shape == (batch, grid * grid, block * block, channels)
    np.testing.assert_array_equal(unblockify(blocks), image)
    np.testing.assert_array_equal(blockify(unblockify(blocks), block), blocks)


def test_blockify_groups_each_square_in_raster_order():
    image = np.arange(4 * 4).reshape(1, 4, 4, 1)
    blocks = np.asarray(blockify(image, 2))[0, :, :, 0]  # (T=4, N=4)
    np.testing.assert_array_equal(blocks, [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])


def test_blockify_rejects_grid_it_cannot_cut():
    with pytest.raises(ValueError, match="does not divide"):
        blockify(np.zeros((1, 6, 6, 1)), 4)


@pytest.mark.parametrize("padding", ["same", "symmetric"])
def test_aggregation_halves_grid_and_quarters_blocks(padding):
    x = jax.random.normal(jax.random.key(0), (2, 16, 9, 8))  # 4x4 blocks of 3x3 tokens → a 12x12 plane
    module = BlockAggregation(dim=12, padding=padding)
    y, _ = module.init_with_output(jax.random.key(1), x)
    assert y.shape == (2, 4, 9, 12)  # 2x2 blocks of 3x3 tokens (a 6x6 plane), new channel count


def test_aggregation_same_and_symmetric_padding_differ():
    x = jax.random.normal(jax.random.key(0), (1, 4, 4, 4))
    params = BlockAggregation(4, "same").init(jax.random.key(1), x)
    same = BlockAggregation(4, "same").apply(params, x)
    symmetric = BlockAggregation(4, "symmetric").apply(params, x)
    assert not np.allclose(same, symmetric)


def test_level_is_local_changing_one_block_changes_only_that_block():
    level = Level(depth=2, num_heads=2, num_kv_heads=2)
    x = jax.random.normal(jax.random.key(0), (1, 16, 4, 8))  # 16 blocks of 4 tokens
    params = level.init(jax.random.key(1), x)
    changed = x.at[0, 5].add(jax.random.normal(jax.random.key(2), (4, 8)))
    delta = jnp.abs(level.apply(params, changed) - level.apply(params, x)).max(axis=(2, 3))[0]
    assert delta[5] > 1e-3
    np.testing.assert_array_equal(np.delete(np.asarray(delta), 5), 0.0)


@pytest.mark.parametrize("kv_heads,expected", [(4, (8, 2, 4, 2)), (1, (8, 2, 1, 2))])
def test_multi_head_and_multi_query_parameter_shapes(kv_heads, expected):
    x = jnp.ones((1, 2, 3, 8))
    params = LocalAttention(num_heads=4, num_kv_heads=kv_heads).init(jax.random.key(0), x)["params"]
    assert params["query"]["kernel"].shape == (8, 4, 2)
    assert params["key_value"]["kernel"].shape == expected
    assert params["out"]["kernel"].shape == (4, 2, 8)


def test_multi_query_equals_multi_head_with_shared_key_value():
    """A multi-head layer whose key/value heads are all copies of one head computes multi-query attention."""
    x = jax.random.normal(jax.random.key(0), (2, 3, 5, 8))
    mq = LocalAttention(num_heads=4, num_kv_heads=1)
    p = mq.init(jax.random.key(1), x)["params"]
    shared = dict(p, key_value={"kernel": jnp.repeat(p["key_value"]["kernel"], 4, axis=2),
                                "bias": jnp.repeat(p["key_value"]["bias"], 4, axis=1)})
    mh = LocalAttention(num_heads=4, num_kv_heads=4)
    np.testing.assert_allclose(mq.apply({"params": p}, x), mh.apply({"params": shared}, x), atol=1e-6)


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_fused_attention_computes_the_same_function(kv_heads):
    # jax.nn.dot_product_attention (cuDNN on GPUs) must be a drop-in for the einsum path: same parameters, same output.
    x = jax.random.normal(jax.random.key(0), (2, 3, 16, 32))
    params = LocalAttention(num_heads=4, num_kv_heads=kv_heads).init(jax.random.key(1), x)["params"]
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(2), p.shape), params)  # sharp weights
    plain = LocalAttention(num_heads=4, num_kv_heads=kv_heads).apply({"params": params}, x)
    fused = LocalAttention(num_heads=4, num_kv_heads=kv_heads, fused=True).apply({"params": params}, x)
    np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-5)
    assert float(jnp.abs(plain).mean()) > 0.1  # a real signal, not two zeros


def test_execution_options_keep_parameters_outputs_and_gradients():
    """Fused attention and rematerialisation change how the classifier computes, never what: the same parameter
    tree, loss and training gradients (drop path on, same rng)."""
    cfg = get_config("nest_micro_32", image_size=16, dims=(16, 32), depths=(1, 2), drop_path_rate=0.2)
    params, images = init_params(cfg, 0), jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
    labels = jnp.arange(4) % cfg.num_classes

    def loss_and_grads(execution):
        model = cfg.build(execution=execution)
        shapes = jax.eval_shape(model.init, jax.random.key(0), images)["params"]
        assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, params)

        def loss(p):
            logits, _ = model.apply({"params": p}, images, train=True, rngs={"dropout": jax.random.key(2)})
            return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1).mean()

        return jax.jit(jax.value_and_grad(loss))(params)

    base_loss, base_grads = loss_and_grads(Execution())
    for execution in (Execution(fused_attention=True), Execution(remat=True)):
        loss, grads = loss_and_grads(execution)
        np.testing.assert_allclose(loss, base_loss, rtol=1e-5)
        for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(base_grads), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_remat_recomputes_the_layers_in_the_backward_pass():
    # The lowered gradient of a rematerialised level holds each layer's forward computation twice.
    level_input = jax.random.normal(jax.random.key(0), (2, 4, 16, 32))

    def dot_count(remat):
        level = Level(depth=2, num_heads=2, num_kv_heads=2, execution=Execution(remat=remat))
        params = level.init(jax.random.key(1), level_input)
        grad = jax.grad(lambda p: level.apply(p, level_input).sum())
        return jax.jit(grad).lower(params).compile().as_text().count(" dot(")

    assert dot_count(True) > dot_count(False)


def test_drop_path_only_in_training():
    level = Level(depth=2, num_heads=2, num_kv_heads=2, drop_path=(0.5, 0.5))
    x = jax.random.normal(jax.random.key(0), (8, 4, 4, 8))
    params = level.init(jax.random.key(1), x)
    eval_a, eval_b = level.apply(params, x), level.apply(params, x, train=False)
    np.testing.assert_array_equal(eval_a, eval_b)
    train = level.apply(params, x, train=True, rngs={"dropout": jax.random.key(3)})
    assert not np.allclose(train, eval_a)


def test_conv3x3_matches_xla_convolution_values_and_gradients():
    # conv3x3_cpu replaces XLA:CPU's slow kernel gradient with 9 matmuls; values and both gradients must not change.
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 5))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, 5, 7))
    cotangent = jax.random.normal(jax.random.key(2), (2, 8, 8, 7))

    def reference(x, kernel):
        return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    ours, ours_vjp = jax.vjp(conv3x3_cpu, x, kernel)
    want, want_vjp = jax.vjp(reference, x, kernel)
    np.testing.assert_allclose(ours, want, rtol=1e-6, atol=1e-6)
    for got, expected in zip(ours_vjp(cotangent), want_vjp(cotangent), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_conv3x3_module_has_nn_conv_parameters_and_outputs():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
    conv = nn.Conv(3, (3, 3), padding="SAME")
    params = conv.init(jax.random.key(1), x)
    params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)  # non-zero bias
    assert jax.tree.map(jnp.shape, Conv3x3(3).init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(Conv3x3(3).apply(params, x), conv.apply(params, x), rtol=1e-6, atol=1e-6)
