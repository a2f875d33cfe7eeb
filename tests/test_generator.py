"""The NesT generator: shapes and range of every variant, the tree read backwards, conditioning, sampling."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.convert.checkpoint import load_checkpoint, save_checkpoint
from nestgen.convert.tree import flatten
from nestgen.inference.sampling import MAX_SEED, GeneratorSampler, latents
from nestgen.models.generator import GeneratorConfig
from nestgen.models.nest import BlockDeAggregation, blockify, pixel_shuffle
from nestgen.models.registry import VARIANTS, abstract_params, config_from_dict, get_config, init_params

GENERATORS = sorted(name for name, cfg in VARIANTS.items() if cfg.kind == "generator")
TINY_G = get_config("nest_gen_micro_32_cond", image_size=16, num_levels=3, dims=(16, 32, 32), heads=(1, 2, 2),
                    depths=(1, 1, 1), latent_dim=16, w_dim=32, num_classes=3)


def random_params(cfg, seed: int = 0):
    """Parameters shaped like the variant's, drawn in numpy (compiling the initialiser of a big model takes longer
    than running it): LayerNorm scales 1, everything else normal(0, 0.02), like the real initialisation."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if path[-1].key == "scale":
            return np.ones(leaf.shape, np.float32)
        return rng.normal(0, 0.02, leaf.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract_params(cfg))


@pytest.mark.parametrize("name", GENERATORS)
def test_every_generator_variant_makes_images_in_range(name):
    cfg = get_config(name)
    inputs = (jax.random.normal(jax.random.key(0), (2, cfg.latent_dim)),) + cfg.example_inputs(2)[1:]
    images, aux = jax.jit(cfg.build().apply)({"params": random_params(cfg)}, *inputs)
    assert images.shape == (2, cfg.image_size, cfg.image_size, 3) and images.dtype == jnp.float32
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0 and float(images.std()) > 0.01
    assert aux["w"].shape == (2, cfg.w_dim)
    # the block tree read backwards: level l holds 4**(L-1-l) blocks of S×S tokens with dims[l] channels
    for level, blocks in enumerate(cfg.blocks_per_level()):
        assert aux["levels"][level].shape == (2, blocks, cfg.block_size**2, cfg.dims[level])


def test_variants_cover_32_64_128_conditional_and_not():
    sizes = {(VARIANTS[n].image_size, VARIANTS[n].conditional) for n in GENERATORS}
    assert {(s, c) for s in (32, 64, 128) for c in (False, True)} <= sizes


def test_pixel_shuffle_moves_channels_to_a_2x2_patch():
    x = np.arange(2 * 3 * 3 * 8, dtype=np.float32).reshape(2, 3, 3, 8)
    y = np.asarray(pixel_shuffle(jnp.asarray(x), 2))
    assert y.shape == (2, 6, 6, 2)
    for i in range(3):
        for j in range(3):
            for a in range(2):
                for b in range(2):
                    k = (2 * a + b) * 2  # channels k, k+1 of pixel (i, j) go to output pixel (2i+a, 2j+b)
                    np.testing.assert_array_equal(y[:, 2 * i + a, 2 * j + b], x[:, i, j, k:k + 2])


def test_de_aggregation_children_sit_under_their_parent():
    """Changing parent block t changes its 4 children (2i+a, 2j+b), and outside them only the conv's 1-pixel halo."""
    x = jax.random.normal(jax.random.key(0), (1, 4, 4, 16))  # 2×2 blocks of 2×2 tokens
    layer = BlockDeAggregation(8)
    params = layer.init(jax.random.key(1), x)
    base = layer.apply(params, x)
    assert base.shape == (1, 16, 4, 8)
    changed = layer.apply(params, x.at[:, 3].add(5.0))  # parent (1, 1) of the 2×2 grid
    moved = np.abs(np.asarray(changed - base)).sum(axis=(0, 2, 3)) > 1e-4  # (16,) children grid 4×4, raster
    children = [2 * 4 + 2, 2 * 4 + 3, 3 * 4 + 2, 3 * 4 + 3]  # (2,2), (2,3), (3,2), (3,3)
    assert moved[children].all()
    assert not moved[[0, 1, 2, 3, 4, 8, 12]].any()  # beyond the halo (row 0, column 0): untouched
    assert blockify(jnp.zeros((1, 8, 8, 1)), 2).shape == (1, 16, 4, 1)


def test_generator_reuses_the_shared_nest_modules():
    names = set(flatten(init_params(TINY_G, 0)))
    assert "synthesis/level_2/pos_embed" in names  # root level: one block
    assert "synthesis/level_0/layer_0/attn/query/kernel" in names  # LocalAttention of nest.py
    assert "synthesis/level_0/layer_0/mlp/fc1/kernel" in names
    assert "synthesis/level_1/layer_0/norm1/style/kernel" in names  # LayerNorm modulated by w
    assert "synthesis/expand_1/conv/kernel" in names and "synthesis/expand_2/norm/scale" in names
    assert "mapping/class_embed/embedding" in names


def test_w_modulates_the_image_and_labels_condition_it():
    model, params = TINY_G.build(), {"params": init_params(TINY_G, 0)}
    z = jax.random.normal(jax.random.key(0), (2, 16))
    a, _ = model.apply(params, z, jnp.array([0, 0]))
    b, _ = model.apply(params, z, jnp.array([1, 2]))
    assert float(jnp.abs(a - b).mean()) > 1e-3
    w = model.apply(params, z, jnp.array([0, 0]), method="map")
    np.testing.assert_allclose(model.apply(params, w, method="synthesize"), a, atol=1e-6)
    assert float(jnp.abs(model.apply(params, w * 0.0, method="synthesize") - a).mean()) > 1e-3
    with pytest.raises(ValueError, match="class-conditional"):
        model.apply(params, z)


def test_level_mixing_takes_coarse_levels_from_one_w_and_fine_levels_from_another():
    """Per-level w: crossover 0 (or L) is one w everywhere; a crossover keeps the root's block from w_coarse, so
    the image's coarse layout moves with w_coarse and its fine detail with w_fine."""
    from nestgen.models.generator import mix_levels

    strong = jax.tree_util.tree_map_with_path(  # w's styles made strong, as after training
        lambda path, x: x * 100 if any(getattr(k, "key", "") == "style" for k in path) else x, random_params(TINY_G, 1))
    model, params = TINY_G.build(), {"params": strong}
    z = jax.random.normal(jax.random.key(3), (2, 16))
    w = model.apply(params, z, jnp.array([0, 1]), method="map")  # (2, W)
    a, b = w[:1], w[1:]
    per_level = mix_levels(a, b, 0, TINY_G.num_levels)  # (1, L, W): every level from a
    assert per_level.shape == (1, TINY_G.num_levels, w.shape[1])
    np.testing.assert_allclose(model.apply(params, per_level, method="synthesize"),
                               model.apply(params, a, method="synthesize"), atol=1e-5)
    np.testing.assert_allclose(model.apply(params, mix_levels(a, b, TINY_G.num_levels, TINY_G.num_levels),
                                           method="synthesize"), model.apply(params, b, method="synthesize"), atol=1e-5)
    mixed = mix_levels(a, b, jnp.array([1]), TINY_G.num_levels)  # levels 1, 2 from a; the finest from b
    np.testing.assert_array_equal(mixed[0, 0], b[0]) and np.testing.assert_array_equal(mixed[0, 2], a[0])
    image = model.apply(params, mixed, method="synthesize")
    for pure in (a, b):
        assert float(jnp.abs(image - model.apply(params, pure, method="synthesize")).mean()) > 1e-5  # noise: 1e-7
    with pytest.raises(ValueError, match="per-level w"):
        model.apply(params, jnp.zeros((1, TINY_G.num_levels + 1, w.shape[1])), method="synthesize")


def test_rgb_skips_draw_the_coarse_levels_directly_into_the_image():
    """With rgb_skips every level adds its own picture (one pixel per token, upsampled bilinearly): with the finest
    level's to-RGB silenced, the image is still drawn (by the coarser levels alone) and only w_coarse moves it;
    without skips the same silencing leaves a flat grey image (tanh 0). Old checkpoints (no field) load without."""
    from nestgen.models.generator import mix_levels

    cfg = dataclasses.replace(TINY_G, rgb_skips=True)
    params = random_params(cfg, 1)
    assert {k for k in params["synthesis"] if k.startswith("to_rgb")} == {
        "to_rgb", "to_rgb_norm", "to_rgb_1", "to_rgb_norm_1", "to_rgb_2", "to_rgb_norm_2"}
    params["synthesis"]["to_rgb_2"]["kernel"] *= 100  # a root picture strong enough to read
    params["synthesis"]["to_rgb"] = jax.tree_util.tree_map(np.zeros_like, params["synthesis"]["to_rgb"])
    model = cfg.build()
    z = jax.random.normal(jax.random.key(3), (2, 16))
    w = model.apply({"params": params}, z, jnp.array([0, 1]), method="map")  # (2, W)
    a, b = w[:1], w[1:]
    image = model.apply({"params": params}, mix_levels(a, b, 1, cfg.num_levels), method="synthesize")
    assert float(jnp.abs(image).mean()) > 1e-3  # drawn by levels 1 and 2
    np.testing.assert_allclose(  # the finest level's w no longer shows: its picture is silenced
        image, model.apply({"params": params}, a, method="synthesize"), atol=1e-6)
    assert float(jnp.abs(image - model.apply({"params": params}, b, method="synthesize")).mean()) > 1e-4
    plain = dict(params["synthesis"])
    plain = {k: v for k, v in plain.items() if not k.startswith("to_rgb_") or k == "to_rgb_norm"}
    flat = TINY_G.build().apply({"params": {"mapping": params["mapping"], "synthesis": plain}}, a, method="synthesize")
    np.testing.assert_array_equal(flat, np.zeros_like(flat))
    assert config_from_dict({k: v for k, v in TINY_G.to_dict().items() if k != "rgb_skips"}).rgb_skips is False


def test_positions_below_the_root_can_hide_where_a_block_sits():
    """Level(positions="in_block") has one embedding (1, 1, N, C) for all its blocks and "none" has none: such a
    level, whose attention stays inside blocks, treats every block alike (permuting the blocks permutes its output),
    so the finest level cannot place a layout from its own positions; "absolute" (spec.md §3) sees the block.
    The generator's `positions` picks them below the root; the root keeps its embedding."""
    from nestgen.models.nest import Level

    x = jax.random.normal(jax.random.key(0), (2, 4, 16, 8))  # (B, T, N, C)
    order = jnp.array([2, 0, 3, 1])
    for positions, shape in (("in_block", (1, 1, 16, 8)), ("none", None), ("absolute", (1, 4, 16, 8))):
        level = Level(1, 2, 2, positions=positions)
        params = level.init(jax.random.key(1), x)
        params = jax.tree_util.tree_map(lambda p: p + 0.5 * jax.random.normal(jax.random.key(2), p.shape), params)
        assert (params["params"]["pos_embed"].shape if shape else "pos_embed" in params["params"]) == (shape or False)
        moved = level.apply(params, x[:, order])
        assert bool(jnp.allclose(moved, level.apply(params, x)[:, order], atol=1e-5)) is (positions != "absolute")
    for positions, shapes in (("in_block", {"level_0": (1, 1, 16, 16), "level_1": (1, 1, 16, 32),
                                            "level_2": (1, 1, 16, 32)}), ("root", {"level_2": (1, 1, 16, 32)}),
                             ("coarse_levels", {"level_1": (1, 4, 16, 32), "level_2": (1, 1, 16, 32)})):
        cfg = dataclasses.replace(TINY_G, positions=positions)
        tree = abstract_params(cfg)["synthesis"]
        assert {k: v["pos_embed"].shape for k, v in tree.items() if "pos_embed" in v} == shapes
        images, _ = cfg.build().apply({"params": random_params(cfg)}, *cfg.example_inputs(2))
        assert images.shape == (2, 16, 16, 3)
    assert config_from_dict({k: v for k, v in TINY_G.to_dict().items() if k != "positions"}).positions == "every_level"
    with pytest.raises(ValueError, match="positions must be one of"):
        dataclasses.replace(TINY_G, positions="relative")


def test_level_positions_benchmark_sees_a_level_that_paints_from_its_positions():
    """scripts/benchmark.py level_positions: a finest level whose position embedding differs from block to block
    moves the picture when that embedding is replaced by its in-block part; with positions "in_block" or "root"
    there is nothing to replace (0.0); the skip generator's pictures get their rms."""
    from nestgen.benchmarks.level_positions import measure
    from nestgen.convert.checkpoint import Checkpoint

    results = {}
    for positions in ("every_level", "in_block", "root"):
        cfg = dataclasses.replace(TINY_G, positions=positions, rgb_skips=True)
        params = random_params(cfg, 3)
        if positions != "root":
            params["synthesis"]["level_0"]["pos_embed"] = params["synthesis"]["level_0"]["pos_embed"] * 100
        results[positions] = measure(Checkpoint(cfg, params, ["a", "b", "c"], {}, {}), seeds=2)
    assert results["every_level"]["levels"][0]["in_block"] > 1.0 and results["in_block"]["levels"][0]["in_block"] == 0
    assert results["in_block"]["levels"][0]["zero"] > 1.0 and results["every_level"]["seed_to_seed"] > 0
    assert results["root"]["levels"][0] == {"in_block": 0.0, "zero": 0.0, "picture_rms": pytest.approx(
        results["root"]["levels"][0]["picture_rms"])}
    assert set(results["in_block"]["levels"]) == {0, 1, 2} and results["in_block"]["levels"][2]["picture_rms"] > 0
    assert set(results["in_block"]["level_mixing"]) == {"crossover", "coarse", "fine"}


def test_invalid_generator_configs_are_explained():
    with pytest.raises(ValueError, match="image_size 30 must equal"):
        GeneratorConfig(image_size=30)
    with pytest.raises(ValueError, match="divisible by 4"):
        GeneratorConfig(image_size=16, num_levels=3, dims=(8, 10, 16), heads=(1, 1, 1), depths=(1, 1, 1))
    with pytest.raises(ValueError, match="one entry per level"):
        GeneratorConfig(dims=(64, 64))


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gen") / "g"
    w_avg = np.random.default_rng(0).normal(size=(3, TINY_G.w_dim)).tolist()
    save_checkpoint(directory, TINY_G, init_params(TINY_G, 0), class_names=["square", "disc", "triangle"],
                    weights_dtype="float16", metadata={"w_avg": w_avg})
    return directory


def test_generator_checkpoint_round_trip(generator_dir):
    ckpt = load_checkpoint(generator_dir)
    assert ckpt.config == TINY_G and config_from_dict(TINY_G.to_dict()) == TINY_G
    assert ckpt.class_names == ["square", "disc", "triangle"]


def test_sampling_is_deterministic_per_seed_and_batch_independent(generator_dir):
    sampler = GeneratorSampler.from_directory(generator_dir, batch_size=4)
    a = sampler.sample([0, 1, 2, 3, 4], class_index=1)
    b = sampler.sample([0, 1, 2, 3, 4], class_index=1)
    c = sampler.sample([9, 3], class_index=1)
    assert a.dtype == np.uint8 and a.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[3], c[1])  # seed 3 alone and in another batch: the same image
    assert not np.array_equal(a[0], a[1])
    np.testing.assert_array_equal(latents([7], 16)[0], latents([1, 7], 16)[1])


def test_latents_take_seeds_from_0_to_2_to_the_32_minus_1_and_refuse_the_rest():
    import jax

    edge = [0, 7, 2**31, MAX_SEED]  # today's images for every seed below 2**32: z = normal(key(seed)), unchanged
    expected = np.stack([jax.random.normal(jax.random.key(s), (16,)) for s in edge])
    np.testing.assert_array_equal(latents(edge, 16), expected)
    np.testing.assert_array_equal(latents(np.arange(5, 7), 16), latents([5, 6], 16))  # numpy integers are seeds
    assert not np.array_equal(latents([MAX_SEED], 16), latents([0], 16))
    for bad in (-1, MAX_SEED + 1, 2**32 + 7, 2**64):
        with pytest.raises(ValueError, match=f"seed {bad} is out of range: seeds are whole numbers from 0 to "
                                             "4,294,967,295"):
            latents([3, bad], 16)
    with pytest.raises(ValueError, match="a seed must be a whole number from 0 to 4,294,967,295, got 1.5"):
        latents([1.5], 16)


def test_truncation_pulls_toward_the_class_mean_w(generator_dir):
    sampler = GeneratorSampler.from_directory(generator_dir)
    z, labels = latents([0, 1], 16), np.array([2, 2])
    w = sampler.mapping(z, labels)
    expected = sampler.w_avg[2] + 0.5 * (w - sampler.w_avg[2])
    np.testing.assert_allclose(sampler.mapping(z, labels, truncation=0.5), expected, rtol=1e-5, atol=1e-5)
    tiny = sampler.sample([0, 1], 2, truncation=1e-6)
    np.testing.assert_allclose(tiny[0].astype(int), tiny[1].astype(int), atol=1)  # both collapse onto the mean
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match="truncation"):
            sampler.sample([0], 1, truncation=bad)


def test_interpolation_starts_and_ends_at_the_seeds(generator_dir):
    sampler = GeneratorSampler.from_directory(generator_dir)
    frames = sampler.interpolate(3, 8, 5, 0, 0)
    assert frames.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(frames[0], sampler.sample([3], 0)[0])
    np.testing.assert_array_equal(frames[-1], sampler.sample([8], 0)[0])
    with pytest.raises(ValueError, match="unknown class 'horse'"):
        sampler.class_index("horse")
