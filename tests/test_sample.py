"""scripts/sample.py end to end on a tiny generator checkpoint (grid, single images, GIF/MP4, class grid, level
mixing, captions, clear errors), and the library under it: w_of, interpolate_w, mix_levels, labelled pictures."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestgen.convert.checkpoint import save_checkpoint
from nestgen.models.registry import get_config, init_params

ROOT = Path(__file__).resolve().parents[1]
TINY_G = get_config("nest_gen_micro_32_cond", image_size=16, num_levels=3, dims=(16, 32, 32), heads=(1, 2, 2),
                    depths=(1, 1, 1), latent_dim=16, w_dim=32, num_classes=3)


def _main(argv):
    spec = importlib.util.spec_from_file_location("sample", ROOT / "scripts" / "sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gen") / "g"
    w_avg = np.zeros((3, TINY_G.w_dim)).tolist()
    save_checkpoint(directory, TINY_G, init_params(TINY_G, 1), class_names=["cat", "dog", "horse"],
                    metadata={"w_avg": w_avg})
    return str(directory)


def test_grid_single_images_and_gif(generator, tmp_path):
    assert _main(["--checkpoint", generator, "--num", "6", "--seed", "3", "--columns", "3",
                  "--out", str(tmp_path / "grid.png")]) == 0
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (2 * 18 + 2, 3 * 18 + 2, 3)  # 2 rows × 3 columns of 16 px + 2 px padding

    assert _main(["--checkpoint", generator, "--num", "4", "--seed", "5", "--class", "horse", "--truncation", "0.7",
                  "--out", str(tmp_path / "samples")]) == 0
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["grid.png", "seed000005_horse.png", "seed000006_horse.png", "seed000007_horse.png",
                     "seed000008_horse.png"]
    # the same seed and class again: the same pixels
    assert _main(["--checkpoint", generator, "--num", "1", "--seed", "6", "--class", "2", "--truncation", "0.7",
                  "--out", str(tmp_path / "again")]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "again/seed000006_horse.png")),
                                  np.asarray(Image.open(tmp_path / "samples/seed000006_horse.png")))

    assert _main(["--checkpoint", generator, "--interpolate", "1", "2", "--frames", "5", "--scale", "2",
                  "--out", str(tmp_path / "walk.gif")]) == 0
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 8 and gif.size == (32, 32)  # 5 forward + 3 back: a seamless loop


@pytest.mark.parametrize("argv, message", [
    (["--num", "4", "--class", "zebra"], "unknown class 'zebra'; classes: cat, dog, horse"),
    (["--num", "4", "--class", "7"], "class index 7 is out of range"),
    (["--num", "0"], "--num must be a positive number"),
    (["--num", "-3"], "--num must be a positive number"),
    (["--truncation", "0"], "--truncation must be in (0, 1]"),
    (["--truncation", "1.5"], "--truncation must be in (0, 1]"),
    (["--interpolate", "1", "2", "--frames", "1"], "--frames must be at least 2"),
])
def test_bad_arguments_are_explained(generator, tmp_path, capsys, argv, message):
    try:
        status = _main(["--checkpoint", generator, "--out", str(tmp_path / "x.png"), *argv])
    except SystemExit as exit:  # argparse errors exit with status 2
        status = exit.code
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_seeds_run_from_0_to_2_to_the_32_minus_1(generator, tmp_path, capsys):
    top = 2**32 - 1  # the largest seed: accepted, and not seed 0's image
    assert _main(["--checkpoint", generator, "--num", "1", "--seed", str(top), "--class", "cat",
                  "--out", str(tmp_path / "top")]) == 0
    assert _main(["--checkpoint", generator, "--num", "1", "--seed", "0", "--class", "cat",
                  "--out", str(tmp_path / "zero")]) == 0
    capsys.readouterr()
    assert not np.array_equal(np.asarray(Image.open(tmp_path / f"top/seed{top:06d}_cat.png")),
                              np.asarray(Image.open(tmp_path / "zero/seed000000_cat.png")))


@pytest.mark.parametrize("argv, message", [
    (["--seed", "4294967303"], "error: --seed 4294967303 is out of range: seeds are whole numbers from 0 to "
                               "4,294,967,295 (2**32 - 1)"),
    (["--seed", "-1"], "error: --seed -1 is out of range"),
    (["--seed", "4294967290", "--num", "10"], "error: --seed 4294967290 with 10 images needs seeds up to 4294967299, "
                                              "past 4,294,967,295"),
    (["--interpolate", "0", "4294967296"], "error: --interpolate seed 4294967296 is out of range"),
])
def test_seeds_beyond_2_to_the_32_are_refused_in_one_line(generator, tmp_path, capsys, argv, message):
    out = tmp_path / ("walk.gif" if "--interpolate" in argv else "x.png")
    assert _main(["--checkpoint", generator, "--out", str(out), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1 and not captured.out
    assert not out.exists()


def test_missing_checkpoint_is_explained(tmp_path, capsys):
    assert _main(["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "g.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---- the library under the script: w, level mixing, labelled pictures, MP4 -------------------------------------


@pytest.fixture(scope="module")
def sampler(generator):
    from nestgen.inference.sampling import GeneratorSampler

    return GeneratorSampler.from_directory(generator, batch_size=8)


def test_samplers_of_one_architecture_share_their_compiled_programs(generator, tmp_path):
    """The weights are an argument of the jitted programs: a training run's periodic FD_NesT builds a sampler per
    evaluation and must not compile again for each (nor draw the same images from other weights)."""
    from nestgen.inference import sampling

    other = tmp_path / "other"
    save_checkpoint(other, TINY_G, init_params(TINY_G, 7), class_names=["cat", "dog", "horse"])
    first = sampling.GeneratorSampler.from_directory(generator, batch_size=8)
    second = sampling.GeneratorSampler.from_directory(str(other), batch_size=8)
    map_fn, synthesize = sampling._programs(TINY_G, "float32")
    a = first.sample([0, 1], 0)
    compiled = (map_fn._cache_size(), synthesize._cache_size())
    b = second.sample([0, 1], 0)
    assert (map_fn._cache_size(), synthesize._cache_size()) == compiled and compiled[0] >= 1
    assert not np.array_equal(a, b)


def test_w_of_is_what_sample_and_interpolate_render(sampler):
    seeds = [3, 4, 5]
    w = sampler.w_of(seeds, truncation=0.7)
    assert w.shape == (3, TINY_G.w_dim) and w.dtype == np.float32
    np.testing.assert_array_equal(sampler.synthesize(w), sampler.sample(seeds, truncation=0.7))
    walk = sampler.interpolate(3, 4, 4, 0, 2)  # (F, H, W, 3)
    w_a, w_b = sampler.w_of([3], 0)[0], sampler.w_of([4], 2)[0]
    np.testing.assert_array_equal(walk, sampler.interpolate_w(w_a, w_b, 4))
    np.testing.assert_array_equal(walk[[0, -1]], np.concatenate([sampler.sample([3], 0), sampler.sample([4], 2)]))
    with pytest.raises(ValueError, match="at least 2 frames"):
        sampler.interpolate_w(w_a, w_b, 1)


def test_per_level_w_all_equal_renders_sample_bit_for_bit(sampler):
    w = sampler.w_of([7, 8], 1)  # (2, W)
    w_levels = np.repeat(w[:, None], TINY_G.num_levels, axis=1)  # (2, L, W)
    np.testing.assert_array_equal(sampler.synthesize_levels(w_levels), sampler.sample([7, 8], 1))


def test_mix_levels_takes_coarse_levels_from_rows_and_fine_levels_from_columns(sampler):
    coarse, fine, crossover = [0, 1], [10, 11, 12], 1
    grid = sampler.mix_levels(coarse, fine, crossover, truncation=0.8)
    assert grid.shape == (2, 3, 16, 16, 3) and grid.dtype == np.uint8
    w_coarse, w_fine = sampler.w_of(coarse, truncation=0.8), sampler.w_of(fine, truncation=0.8)
    for i in range(2):
        for j in range(3):
            by_hand = np.stack([w_coarse[i] if level >= crossover else w_fine[j] for level in range(3)])  # (L, W)
            np.testing.assert_array_equal(grid[i, j], sampler.synthesize_levels(by_hand[None])[0])
    assert not np.array_equal(grid[0, 0], grid[0, 1])  # another fine seed changes the picture …
    assert not np.array_equal(grid[0, 0], grid[1, 0])  # … and so does another coarse seed
    # … but not the coarse levels: the root level's features are the same along a row, different across rows
    checkpoint = sampler.checkpoint
    model = checkpoint.build()
    w_levels = np.stack([np.stack([w_coarse[i] if level >= crossover else w_fine[j] for level in range(3)])
                         for i in range(2) for j in range(3)])  # (A·B, L, W), row-major as the grid
    levels = model.apply({"params": checkpoint.params}, w_levels, method=lambda m, w: m.synthesis(w)[1])
    root = np.asarray(levels[-1]).reshape(2, 3, -1)  # (A, B, T·N·C)
    finest = np.asarray(levels[0]).reshape(2, 3, -1)
    for i in range(2):
        np.testing.assert_array_equal(root[i, 1:], np.broadcast_to(root[i, :1], root[i, 1:].shape))
        assert not np.array_equal(finest[i, 0], finest[i, 1])
    assert not np.array_equal(root[0, 0], root[1, 0])


def test_level_mixing_effect_measures_rows_and_columns_of_the_grid_per_class(sampler):
    from nestgen.inference.sampling import level_mixing_effect

    effect = level_mixing_effect(sampler, crossover=2, seeds=[3, 4, 5])
    by_class = []
    for class_index in range(3):
        grid = sampler.mix_levels([3, 4, 5], [3, 4, 5], 2, class_index).astype(np.float64)  # (A, B, H, W, 3)
        rows = [np.abs(grid[i] - grid[k]).mean() for i in range(3) for k in range(3) if i != k]  # coarse seed
        columns = [np.abs(grid[:, j] - grid[:, k]).mean() for j in range(3) for k in range(3) if j != k]  # fine
        by_class.append((np.mean(rows), np.mean(columns)))
    coarse, fine = np.mean(by_class, axis=0)
    assert effect["crossover"] == 2 and effect["coarse"] == pytest.approx(coarse, rel=1e-5)
    assert effect["fine"] == pytest.approx(fine, rel=1e-5) and effect["coarse"] > 0 and effect["fine"] > 0


@pytest.mark.parametrize("crossover", [0, 3, -1, 1.5])
def test_mix_levels_refuses_crossovers_that_do_not_mix(sampler, crossover):
    with pytest.raises(ValueError, match=r"^crossover must be a level from 1 to 2 \(this generator has 3 levels"):
        sampler.mix_levels([0], [1], crossover)


def _smooth(batch: int, size: int = 16) -> np.ndarray:
    """uint8 (B, size, size, 3): smooth colour ramps, different per image."""
    ramp = np.linspace(0, 1, size)
    y, x = np.meshgrid(ramp, ramp, indexing="ij")  # (size, size) each
    images = [np.stack([x * 200 + 20 * b, y * 180 + 30, (x + y) * 100 + 10 * b], -1) for b in range(batch)]
    return np.clip(np.stack(images), 0, 255).astype(np.uint8)  # (B, size, size, 3)


def test_captioned_grid_layout_pixels_and_text():
    from nestgen.drawing.pictures import PAD, captioned_grid, text_height

    images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    picture = captioned_grid(images, [f"seed {k} · horse" for k in range(5)], columns=3, cell=64)
    band = text_height(64)
    assert picture.dtype == np.uint8 and picture.shape == (PAD + 2 * (64 + band + PAD), PAD + 3 * (64 + PAD), 3)
    for k, image in enumerate(images):
        r, c = divmod(k, 3)
        top, left = PAD + r * (64 + band + PAD), PAD + c * (64 + PAD)
        np.testing.assert_array_equal(picture[top:top + 64, left:left + 64], image.repeat(4, 0).repeat(4, 1))
        caption = picture[top + 64:top + 64 + band, left:left + 64]
        assert (caption < 100).all(-1).sum() > 20  # black text was written on the white band
    assert (picture[PAD + 64 + band + PAD:, PAD + 2 * (64 + PAD):] == 255).all()  # the empty sixth cell stays white
    with pytest.raises(ValueError, match="one caption per image"):
        captioned_grid(images, ["a"], columns=3)


def test_long_captions_are_shortened_to_their_cell():
    from nestgen.drawing.pictures import PAD, captioned_grid

    images = np.zeros((2, 16, 16, 3), np.uint8)
    picture = captioned_grid(images, ["seed 1 · " + "x" * 200, "seed 2"], columns=2, cell=32)
    between = picture[:, PAD + 32:PAD + 32 + PAD]  # the white gap between the two columns
    assert (between == 255).all()


def test_labelled_grid_layout_pixels_and_labels():
    from nestgen.drawing.pictures import PAD, labelled_grid, text_height

    images = np.random.default_rng(1).integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    picture = labelled_grid(images, ["cat", "horse"], ["seed 0", "seed 1", "seed 2"], cell=48, corner="class \\ seed")
    band = text_height(48)
    assert picture.shape == (band + PAD + 2 * (48 + PAD), 48 + PAD + 3 * (48 + PAD), 3)
    for r in range(2):
        top = band + PAD + r * (48 + PAD)
        assert (picture[top:top + 48, :48] < 100).all(-1).sum() > 10  # the row label
        for c in range(3):
            left = 48 + PAD + c * (48 + PAD)
            np.testing.assert_array_equal(picture[top:top + 48, left:left + 48], images[r, c].repeat(3, 0).repeat(3, 1))
            assert (picture[:band, left:left + 48] < 100).all(-1).sum() > 10  # the column label
    assert (picture[:band, :48] < 100).all(-1).sum() > 10  # the corner
    with pytest.raises(ValueError, match="one label per row and per column"):
        labelled_grid(images, ["cat"], ["a", "b", "c"])


def test_save_mp4_plays_forward_then_back(tmp_path):
    import av

    from nestgen.drawing.pictures import save_mp4

    frames = _smooth(5, size=15)  # odd size: padded to even
    path = save_mp4(frames, tmp_path / "walk.mp4", fps=10, scale=2)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])  # (F', H, W, 3)
    assert decoded.shape == (8, 30, 30, 3)  # 5 forward + 3 back, 15 px × 2
    first = frames[0].repeat(2, 0).repeat(2, 1).astype(np.float32)
    assert np.abs(decoded[0].astype(np.float32) - first).mean() < 10
    assert np.abs(decoded[-1].astype(np.float32) - frames[1].repeat(2, 0).repeat(2, 1)).mean() < 10


def test_script_class_grid_mix_mp4_and_labels(generator, tmp_path, capsys):
    from nestgen.drawing.pictures import PAD, text_height

    cell, band = 16 * 4, text_height(64)  # --scale 4 by default
    assert _main(["--checkpoint", generator, "--class-grid", "--num", "2", "--seed", "5",
                  "--out", str(tmp_path / "classes.png")]) == 0
    table = np.asarray(Image.open(tmp_path / "classes.png"))
    assert table.shape == (band + PAD + 3 * (cell + PAD), cell + PAD + 2 * (cell + PAD), 3)  # 3 classes × 2 seeds
    from nestgen.inference.sampling import GeneratorSampler

    sampler = GeneratorSampler.from_directory(generator)
    top, left = band + PAD + 2 * (cell + PAD), cell + PAD + 1 * (cell + PAD)  # row "horse", column seed 6
    np.testing.assert_array_equal(table[top:top + cell, left:left + cell],
                                  sampler.sample([6], 2)[0].repeat(4, 0).repeat(4, 1))

    assert _main(["--checkpoint", generator, "--mix", "0,1", "10,11,12", "--crossover", "2", "--scale", "3",
                  "--out", str(tmp_path / "mix.png")]) == 0
    mix = np.asarray(Image.open(tmp_path / "mix.png"))
    band48 = text_height(48)
    assert mix.shape == (band48 + PAD + 2 * (48 + PAD), 48 + PAD + 3 * (48 + PAD), 3)
    top, left = band48 + PAD + 1 * (48 + PAD), 48 + PAD + 2 * (48 + PAD)  # coarse seed 1, fine seed 12
    np.testing.assert_array_equal(mix[top:top + 48, left:left + 48],
                                  sampler.mix_levels([1], [12], 2)[0, 0].repeat(3, 0).repeat(3, 1))

    assert _main(["--checkpoint", generator, "--interpolate", "1", "2", "--frames", "4", "--scale", "2",
                  "--out", str(tmp_path / "walk.mp4")]) == 0
    import av

    with av.open(str(tmp_path / "walk.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (32, 32, 3)

    assert _main(["--checkpoint", generator, "--num", "3", "--seed", "4", "--labels", "--columns", "3",
                  "--scale", "2", "--out", str(tmp_path / "labelled.png")]) == 0
    labelled = np.asarray(Image.open(tmp_path / "labelled.png"))
    assert labelled.shape == (PAD + 32 + text_height(32) + PAD, PAD + 3 * (32 + PAD), 3)
    first = sampler.sample([4])[0].repeat(2, 0).repeat(2, 1)  # (32, 32, 3)
    np.testing.assert_array_equal(labelled[PAD:PAD + 32, PAD:PAD + 32], first)
    assert (labelled[PAD + 32:PAD + 32 + text_height(32)] < 100).all(-1).sum() > 20  # captions drawn
    capsys.readouterr()


@pytest.mark.parametrize("argv, message", [
    (["--class-grid", "--class", "cat"], "--class-grid draws every class in its own row: leave out --class"),
    (["--class-grid", "--out", "classes"], "with --class-grid, --out must name a .png file"),
    (["--mix", "0,1", "2"], "--mix and --crossover go together"),
    (["--crossover", "1"], "--mix and --crossover go together"),
    (["--mix", "0,x", "2", "--crossover", "1"], "expected comma-separated whole-number seeds like 0,1,2, got '0,x'"),
    (["--mix", "0", "2", "--crossover", "3"], "error: crossover must be a level from 1 to 2"),
    (["--mix", "0", "2", "--crossover", "0"], "error: crossover must be a level from 1 to 2"),
    (["--mix", "0", "4294967296", "--crossover", "1"], "error: --mix seed 4294967296 is out of range"),
    (["--mix", "0", "1", "--crossover", "1", "--out", "mix.gif"], "with --mix, --out must name a .png file"),
    (["--mix", "0", "1", "--crossover", "1", "--class-grid"], "not allowed with argument"),
    (["--interpolate", "1", "2", "--out", "walk.webm"], "--out must name a .gif or .mp4 file"),
    (["--labels", "--class-grid"], "--labels captions the plain grid"),
    (["--scale", "0"], "--scale must be a positive whole number"),
])
def test_new_bad_arguments_get_one_line(generator, tmp_path, capsys, argv, message):
    out = [] if "--out" in argv else ["--out", str(tmp_path / "x.png")]
    argv = [str(tmp_path / a) if a in ("classes", "mix.gif", "walk.webm") else a for a in argv]
    try:
        status = _main(["--checkpoint", generator, *out, *argv])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    assert status == 2 and message in captured.err and captured.err.count("\n") == 1 and not captured.out
    assert not list(tmp_path.iterdir())


def test_class_grid_is_refused_for_unconditional_generators(tmp_path, capsys):
    config = get_config("nest_gen_micro_32_cond", image_size=16, num_levels=3, dims=(16, 32, 32), heads=(1, 2, 2),
                        depths=(1, 1, 1), latent_dim=16, w_dim=32, num_classes=0)
    save_checkpoint(tmp_path / "u", config, init_params(config, 1))
    assert _main(["--checkpoint", str(tmp_path / "u"), "--class-grid", "--num", "2",
                  "--out", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err == ("error: --class-grid needs a class-conditional generator; "
                                       "this one is unconditional\n")
    assert not (tmp_path / "c.png").exists()


def test_save_mp4_without_pyav_names_the_install_command(monkeypatch, tmp_path):
    import sys

    from nestgen.drawing.pictures import save_mp4

    monkeypatch.setitem(sys.modules, "av", None)  # `import av` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[app\]"'):
        save_mp4(_smooth(2), tmp_path / "walk.mp4")
    assert not (tmp_path / "walk.mp4").exists()
