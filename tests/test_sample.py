"""scripts/sample.py end to end on a tiny generator checkpoint: grid, single images, GIF, and clear errors."""

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
    (["--num", "4", "--class", "zebra"], "unknown class 'zebra'; this generator knows: cat, dog, horse"),
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
