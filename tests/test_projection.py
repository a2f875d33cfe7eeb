"""Projection into a tiny generator: the loss falls, a known w comes back, progress, refusals, the script."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestgen.convert.checkpoint import save_checkpoint
from nestgen.inference.projection import MAX_STEPS, Projector, pixel_errors
from nestgen.inference.sampling import GeneratorSampler
from nestgen.models.registry import get_config, init_params

ROOT = Path(__file__).resolve().parents[1]
TINY_G = get_config("nest_gen_micro_32_cond", image_size=16, num_levels=3, dims=(16, 32, 32), heads=(1, 2, 2),
                    depths=(1, 1, 1), latent_dim=16, w_dim=32, num_classes=3)
CHUNK = 10


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gen") / "g"  # no tracked w_avg: starts are means of mapped seeds
    save_checkpoint(directory, TINY_G, init_params(TINY_G, 1), class_names=["cat", "dog", "horse"])
    return str(directory)


@pytest.fixture(scope="module")
def projector(checkpoint):
    return Projector(GeneratorSampler.from_directory(checkpoint, batch_size=4), steps=60, chunk=CHUNK)


def test_a_sample_with_known_w_comes_back(projector):
    sampler = projector.sampler
    image = sampler.sample([7], 1)[0]  # (16, 16, 3) uint8
    start = sampler.synthesize(projector._starts[1:2])[0]  # what the optimisation starts from
    start_mse = pixel_errors(start, image)[0]
    calls = []
    result = projector.project(image, 1, steps=100, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(d, 100) for d in range(CHUNK, 101, CHUNK)]
    assert result.steps == 100 and result.losses.shape == (100,) and result.class_index == 1
    assert result.w.shape == (TINY_G.w_dim,) and result.w.dtype == np.float32
    assert result.image.shape == result.target.shape == (16, 16, 3) and result.image.dtype == np.uint8
    np.testing.assert_array_equal(result.target, image)
    assert result.losses[-1] < 0.2 * result.losses[0]  # the loss falls
    assert result.mse < 0.1 * start_mse and result.mse < 20.0, (start_mse, result.mse)  # 20 ≈ 4.5 levels rms
    assert result.psnr > 35.0
    np.testing.assert_array_equal(sampler.synthesize(result.w[None])[0], result.image)  # w reproduces the image


def test_no_class_tries_every_class_and_keeps_one(projector):
    image = projector.sampler.sample([3], 2)[0]
    calls = []
    result = projector.project(image, None, steps=30, progress=lambda done, total: calls.append(done))
    assert calls == [10, 20, 30] and result.class_index in (0, 1, 2) and result.steps == 30
    assert result.losses[-1] < result.losses[0]


def test_a_partial_last_chunk_runs_exactly_the_steps_asked(projector):
    image = projector.sampler.sample([5], 0)[0]
    calls = []
    result = projector.project(image, 0, steps=15, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(10, 15), (15, 15)] and result.steps == 15 and result.losses.shape == (15,)
    longer = projector.project(image, 0, steps=20)
    np.testing.assert_array_equal(longer.losses[:15], result.losses)  # the same path, and it goes on


@pytest.mark.parametrize("image, kwargs, message", [
    (np.zeros((32, 32, 3), np.uint8), {}, "the generator's size 16x16, got uint8 (32, 32, 3)"),
    (np.zeros((16, 16), np.uint8), {}, "got uint8 (16, 16)"),
    (np.zeros((16, 16, 3), np.float32), {}, "must be uint8 (16, 16, 3)"),
    (np.zeros((16, 16, 3), np.uint8), {"steps": MAX_STEPS + 1}, f"steps must be from 1 to {MAX_STEPS}, got 1001"),
    (np.zeros((16, 16, 3), np.uint8), {"steps": 0}, "steps must be from 1 to"),
    (np.zeros((16, 16, 3), np.uint8), {"class_index": 5}, "class index 5 is out of range"),
])
def test_bad_requests_are_refused(projector, image, kwargs, message):
    with pytest.raises(ValueError) as error:
        projector.project(image, **kwargs)
    assert message in str(error.value)


def _main(argv):
    spec = importlib.util.spec_from_file_location("project", ROOT / "scripts" / "project.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_script_writes_the_reconstruction_and_w(checkpoint, tmp_path, capsys):
    source = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), np.uint8)).save(source)  # resized
    assert _main([str(source), "--checkpoint", checkpoint, "--class", "dog", "--steps", "20",
                  "--out", str(tmp_path / "out/recon.png"), "--w-out", str(tmp_path / "out/w.npy")]) == 0
    printed = capsys.readouterr().out
    assert "class dog, 20 steps: mse " in printed and " dB" in printed
    assert np.asarray(Image.open(tmp_path / "out/recon.png")).shape == (20, 2 * 18 + 2, 3)  # target | recon
    w = np.load(tmp_path / "out/w.npy", allow_pickle=False)
    assert w.shape == (TINY_G.w_dim,) and w.dtype == np.float32


@pytest.mark.parametrize("name, argv, message", [
    ("in.png", ["--steps", "5000"], "--steps must be from 1 to 1000, got 5000"),
    ("in.png", ["--class", "zebra"], "error: unknown class 'zebra'; classes: cat, dog, horse (or an index #0…#2)\n"),
    ("nope.png", [], "nope.png: no such file\n"),
])
def test_script_errors_are_explained(checkpoint, tmp_path, capsys, name, argv, message):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "in.png")
    try:
        status = _main([str(tmp_path / name), "--checkpoint", checkpoint, "--out", str(tmp_path / "r.png"), *argv])
    except SystemExit as exit:  # argparse errors exit with status 2
        status = exit.code
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()
