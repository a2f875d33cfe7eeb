"""FID through clean-fid's real code path, offline: a tiny nestgen classifier stands in for Inception (FD_NesT)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestgen.convert.checkpoint import save_checkpoint
from nestgen.inference.sampling import GeneratorSampler
from nestgen.metrics import fid
from nestgen.metrics.precision_recall import precision_recall
from nestgen.models.registry import get_config, init_params

ROOT = Path(__file__).resolve().parents[1]
NUM_REAL = 48  # > 32, the tiny classifier's feature size: a full-rank covariance


def _smooth_images(n: int, seed: int) -> np.ndarray:
    """uint8 (n, 16, 16, 3): colour gradients, one hue per class of 4 — images with structure, unlike noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, 16, dtype=np.float32)
    base = np.asarray([[230, 40, 40], [40, 200, 60], [50, 70, 230], [220, 210, 50]], np.float32)
    images = []
    for i in range(n):
        angle = rng.uniform(0, np.pi)
        field = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]  # (16, 16)
        image = base[i % 4] * (0.4 + 0.6 * field[..., None] / max(field.max(), 1e-3)) + rng.normal(0, 4, (16, 16, 3))
        images.append(np.clip(image, 0, 255))
    return np.asarray(images, np.uint8)


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory) -> Path:
    """<root>/train/<class>/<i>.png: NUM_REAL 16x16 images in 4 classes."""
    root = tmp_path_factory.mktemp("real")
    for i, image in enumerate(_smooth_images(NUM_REAL, 0)):
        path = root / "train" / f"class_{i % 4}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    return root


@pytest.fixture(scope="module")
def generator_checkpoint(tmp_path_factory) -> Path:
    config = get_config("nest_gen_micro_32_cond", image_size=16, num_levels=3, dims=(16, 32, 32), heads=(1, 2, 2),
                        depths=(1, 1, 1))
    directory = tmp_path_factory.mktemp("gen") / "tiny_gen"
    return save_checkpoint(directory, config, init_params(config, 0))


@pytest.fixture(scope="module")
def nest(tiny_checkpoint) -> fid.FeatureNetwork:
    return fid.load_features(f"nest:{tiny_checkpoint}", batch_size=16)


def _folder_images(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))])


def test_frechet_distance_is_zero_on_itself_and_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 6)) @ rng.normal(size=(6, 6))
    mu, sigma = fid.feature_statistics(features)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6

    # Covariances sharing eigenvectors: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    a, b = rng.uniform(0.5, 3.0, 6), rng.uniform(0.5, 3.0, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    closed = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    sigma1, sigma2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert fid.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(closed, rel=1e-6)
    # ...and estimated from samples of the two Gaussians.
    x = rng.multivariate_normal(mu1, sigma1, 40_000)
    y = rng.multivariate_normal(mu2, sigma2, 40_000)
    estimate = fid.frechet_distance(*fid.feature_statistics(x), *fid.feature_statistics(y))
    assert estimate == pytest.approx(closed, rel=0.05, abs=0.02)


def test_frechet_distance_is_clean_fids_and_survives_scipy_without_disp(monkeypatch):
    import cleanfid.fid
    import scipy.linalg

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(500, 8)), rng.normal(size=(500, 8)) @ rng.normal(size=(8, 8)) + 0.3
    stats = (*fid.feature_statistics(x), *fid.feature_statistics(y))
    ours = fid.frechet_distance(*stats)
    assert ours == pytest.approx(float(cleanfid.fid.frechet_distance(*stats)), rel=1e-9)
    singular = (np.zeros(8), np.diag([1.0] * 7 + [0.0]), np.zeros(8), np.diag([0.0] + [1.0] * 7))
    assert fid.frechet_distance(*singular) == pytest.approx(float(cleanfid.fid.frechet_distance(*singular)), abs=1e-6)

    original = scipy.linalg.sqrtm

    def sqrtm_without_disp(a, **kwargs):  # SciPy 1.18: `disp` is gone
        if "disp" in kwargs:
            raise TypeError("sqrtm() got an unexpected keyword argument 'disp'")
        return original(a, **kwargs)

    monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm_without_disp)
    with pytest.raises(TypeError, match="disp"):
        cleanfid.fid.frechet_distance(*stats)
    assert fid.frechet_distance(*stats) == ours


def test_generator_checkpoint_vs_image_folder_through_clean_fid(generator_checkpoint, real_folder, nest,
                                                                 tiny_checkpoint):
    sampler = GeneratorSampler.from_directory(generator_checkpoint, batch_size=16)
    reference = f"images:{real_folder}"
    first = fid.evaluate(sampler, reference, 48, features=nest, seed=0, batch_size=16, verbose=False)
    again = fid.fid_for_sampler(sampler, reference, 48, features=nest, seed=0, batch_size=16)
    other_seed = fid.fid_for_sampler(sampler, reference, 48, features=nest, seed=1000, batch_size=16)
    assert np.isfinite(first.metrics["fd_nest"]) and first.metrics["fd_nest"] > 0
    assert again == first.metrics and other_seed["fd_nest"] != first.metrics["fd_nest"]
    assert first.label == f"FD_NesT[{fid.checkpoint_id(tiny_checkpoint)}]" and "fid" not in first.metrics
    assert first.protocol["num_samples"] == 48 and first.protocol["class_mix"] == "uniform, label = i mod 10"

    # A "generator" that serves the real images, one per seed, with the seeds and labels clean-fid's gen= got.
    real, calls = _folder_images(real_folder), []

    def serve_real(seeds, labels):
        calls.append((seeds.copy(), labels.copy()))
        return real[(seeds - 7) % len(real)]

    def noise(seeds, labels):
        return np.stack([np.random.default_rng(s).integers(0, 256, (16, 16, 3), dtype=np.uint8) for s in seeds])

    same = fid.fid_for_sampler(serve_real, reference, NUM_REAL, features=nest, seed=7, batch_size=16, num_classes=4)
    noisy = fid.fid_for_sampler(noise, reference, NUM_REAL, features=nest, seed=7, batch_size=16)
    assert same["fd_nest"] < 1e-3 * noisy["fd_nest"] and same["fd_nest"] < first.metrics["fd_nest"]
    np.testing.assert_array_equal(np.concatenate([s for s, _ in calls]), 7 + np.arange(NUM_REAL))
    np.testing.assert_array_equal(np.concatenate([label for _, label in calls]), np.arange(NUM_REAL) % 4)
    assert all(len(s) == 16 for s, _ in calls)  # fixed batch size


def test_missing_inception_is_named_before_any_sample_is_drawn(monkeypatch, tmp_path, real_folder):
    monkeypatch.setattr(fid, "CLEANFID_INCEPTION", tmp_path / fid.INCEPTION_FILE)
    monkeypatch.setattr(fid, "INCEPTION_URL", "http://127.0.0.1:9/inception-2015-12-05.pt")  # refused at once
    drawn = []

    def draw(seeds, labels):
        drawn.append(len(seeds))
        return np.zeros((len(seeds), 16, 16, 3), np.uint8)

    with pytest.raises(fid.FIDError) as error:
        fid.evaluate(draw, f"images:{real_folder}", 8, features="inception", device="cpu", verbose=False)
    message = str(error.value)
    assert f"{tmp_path / fid.INCEPTION_FILE} does not exist and could not be downloaded" in message
    assert f"put it at {tmp_path / fid.INCEPTION_FILE}, or pass --inception-weights PATH" in message
    with pytest.raises(fid.FIDError, match=r"--inception-weights .*nowhere\.pt: no such file"):
        fid.evaluate(draw, "cifar10:train", 8, inception_weights=tmp_path / "nowhere.pt", device="cpu")
    assert drawn == []
    assert not (tmp_path / fid.INCEPTION_FILE).exists()  # no partial download left behind


def test_missing_reference_statistics_are_named(monkeypatch, tmp_path, nest):
    monkeypatch.setattr(fid, "CLEANFID_STATS_DIR", tmp_path / "stats")
    monkeypatch.setattr(fid, "STATS_URL", "http://127.0.0.1:9/stats/")
    inception_like = dataclasses.replace(nest, metric="fid", label="FID")  # precomputed stats need the FID metric
    with pytest.raises(fid.FIDError) as error:
        fid.reference_statistics("cifar10:test", inception_like, need_features=True, cache_dir=tmp_path, verbose=False)
    assert f"put it at {tmp_path / 'stats' / 'cifar10_clean_test_32.npz'}" in str(error.value)
    with pytest.raises(fid.FIDError, match="are Inception features; FD_NesT.*needs reference images"):
        fid.reference_statistics("cifar10:train", nest, cache_dir=tmp_path)


def test_cached_statistics_are_reused_and_rebuilt_when_the_images_change(tmp_path, real_folder, nest):
    import shutil

    folder = tmp_path / "data"
    shutil.copytree(real_folder, folder)
    seen = []

    def counting(batch):
        seen.append(len(batch))
        return nest.extract(batch)

    network = dataclasses.replace(nest, extract=counting)
    reference = f"folder:{folder}@train"
    first = fid.reference_statistics(reference, network, batch_size=16, cache_dir=tmp_path, verbose=False)
    assert sum(seen) >= NUM_REAL and fid.stats_path(fid.parse_reference(reference), network, tmp_path).is_file()
    seen.clear()
    second = fid.reference_statistics(reference, network, batch_size=16, cache_dir=tmp_path, verbose=False)
    assert seen == [] and np.array_equal(first.mu, second.mu) and np.array_equal(first.sigma, second.sigma)

    victim = sorted(folder.rglob("*.png"))[0]
    Image.fromarray(np.full((16, 16, 3), 255, np.uint8)).save(victim)
    third = fid.reference_statistics(reference, network, batch_size=16, cache_dir=tmp_path, verbose=False)
    assert sum(seen) >= NUM_REAL and not np.allclose(first.mu, third.mu)
    seen.clear()
    with_features = fid.reference_statistics(reference, network, need_features=True, batch_size=16,
                                             cache_dir=tmp_path, verbose=False)
    assert with_features.features.shape == (NUM_REAL, 32) and sum(seen) >= NUM_REAL  # cached without features


@pytest.mark.filterwarnings("ignore::nestgen.data.listing.SkippedFilesWarning")  # readme.txt in the zips
def test_references_with_too_few_images_are_refused_with_their_count(tmp_path, nest):
    def no_features(batch):
        raise AssertionError("features computed for a reference that is too small")

    network = dataclasses.replace(nest, extract=no_features)
    for name, count in (("none", 0), ("one", 1)):
        folder = tmp_path / name / "train" / "cat"
        folder.mkdir(parents=True)
        (folder / ".DS_Store").write_bytes(b"\0")  # metadata is no image
        for i in range(count):
            Image.fromarray(_smooth_images(1, i)[0]).save(folder / f"{i}.png")
        archive = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("readme.txt", "no images here" if count == 0 else "one image")
            for path in sorted(folder.glob("*.png")):
                zf.write(path, f"imgs/{path.name}")
        for reference in (f"images:{tmp_path / name}", f"images:{archive}", f"folder:{tmp_path / name}@train"):
            with pytest.raises(fid.FIDError) as caught:
                fid.reference_statistics(reference, network, cache_dir=tmp_path / "cache", verbose=False)
            message = str(caught.value)
            assert "\n" not in message and f"holds {count} image{'s' * (count == 0)}; FID needs at least 2" in message
            assert str(fid.parse_reference(reference)) in message


def test_image_references_of_several_sizes_are_read_like_training_data(tmp_path, nest):
    folder = tmp_path / "mixed"
    (folder / "nested" / ".ipynb_checkpoints").mkdir(parents=True)
    images = _smooth_images(6, 3)
    for i, image in enumerate(images):
        Image.fromarray(image).resize((16 + 4 * (i % 2), 16)).save(folder / "nested" / f"{i}.png")
    Image.fromarray(images[0]).save(folder / "nested" / ".ipynb_checkpoints" / "0-checkpoint.png")  # ignored
    reference = fid.image_reference(f"images:{folder}")
    assert len(reference) == 6 and {a.shape for a in reference.read(range(6))} == {(16, 16, 3), (16, 20, 3)}
    stats = fid.reference_statistics(f"images:{folder}", nest, batch_size=4, cache_dir=tmp_path, verbose=False)
    assert stats.features.shape == (6, 32) and np.isfinite(stats.mu).all() and "6 images" in stats.description


def test_precision_recall_sees_mode_dropping():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 10, (4, 4))
    real = centers[np.arange(800) % 4] + rng.normal(size=(800, 4))
    assert precision_recall(real, real.copy()) == pytest.approx((1.0, 1.0))
    dropped = centers[np.arange(800) % 2] + rng.normal(size=(800, 4))  # only 2 of the 4 modes
    precision, recall = precision_recall(real, dropped)
    assert precision > 0.9 and recall < 0.6
    full = centers[np.arange(800) % 4] + rng.normal(size=(800, 4))
    assert min(precision_recall(real, full)) > 0.9

    # Against a brute-force k-NN (k = 3) on a small set, with row batches that do not divide it.
    a, b = rng.normal(size=(37, 5)), rng.normal(0.5, 1.2, size=(37, 5))
    def dist(x, y):
        return np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))  # (len(x), len(y))

    radius_a, radius_b = np.sort(dist(a, a), axis=1)[:, 3], np.sort(dist(b, b), axis=1)[:, 3]
    expected = ((dist(b, a) <= radius_a[None]).any(1).mean(), (dist(a, b) <= radius_b[None]).any(1).mean())
    assert precision_recall(a, b, batch_size=8) == pytest.approx(expected)


def test_evaluate_fid_script(generator_checkpoint, real_folder, tiny_checkpoint, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("evaluate_fid", ROOT / "scripts" / "evaluate_fid.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--checkpoint", str(generator_checkpoint), "--num", "40", "--ref", f"images:{real_folder}",
            "--features", f"nest:{tiny_checkpoint}", "--batch-size", "16", "--kid", "--pr", "--quiet"]
    assert script.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["metric"] == f"FD_NesT[{fid.checkpoint_id(tiny_checkpoint)}]" and np.isfinite(record["fd_nest"])
    assert set(record) >= {"kd_nest", "precision", "recall"} and 0 <= record["recall"] <= 1
    protocol = record["protocol"]
    assert protocol["mode"] == "clean" and protocol["num_samples"] == 40 and str(real_folder) in protocol["reference"]
    assert "pooled pre-logits 32-d" in protocol["features"]

    assert script.main(["--checkpoint", str(generator_checkpoint), "--ref", "cifar100:train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown FID reference 'cifar100:train'") and "cifar10:train" in err
    assert script.main(["--checkpoint", str(generator_checkpoint), "--ref", "cifar10:valid"]) == 2
    assert "has train, test" in capsys.readouterr().err


@pytest.mark.parametrize("seed, num, message", [
    ("4294967303", "2", "error: --seed 4294967303 is out of range: seeds are whole numbers from 0 to 4,294,967,295"),
    ("-5", "2", "error: --seed -5 is out of range"),
    ("4294967295", "2", "error: --seed 4294967295 with 2 images needs seeds up to 4294967296"),
])
def test_evaluate_fid_refuses_seeds_past_2_to_the_32_up_front(seed, num, message, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("evaluate_fid", ROOT / "scripts" / "evaluate_fid.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    # refused before the (missing) checkpoint, reference or Inception network is looked at
    assert script.main(["--checkpoint", str(tmp_path / "none"), "--num", num, "--seed", seed,
                        "--ref", f"images:{tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_fd_nest_keeps_torch_on_the_cpu_even_where_cuda_is_there(monkeypatch, nest):
    """On the GPU machine torch sees CUDA; FD_NesT must not open a CUDA context beside JAX's preallocation."""
    import torch

    from nestgen.metrics.fid import _device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _device(None, nest).type == "cpu" and _device("cuda", nest).type == "cpu"
    assert _device(None).type == "cuda"  # Inception features (a torch network) still use the GPU


def test_the_gan_trainers_evaluation_measures_level_mixing_when_asked(generator_checkpoint, real_folder, nest,
                                                                    tiny_checkpoint):
    """fid.level_mixing adds how far the coarse and the fine seed move the picture (crossover 1) to the periodic
    FD_NesT, so a relay record follows whether the coarse levels keep using the seed; FD_NesT stays the first key."""
    import ml_collections

    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.inference.sampling import level_mixing_effect
    from nestgen.training.gan_trainer import clean_fid_fn

    settings = {"num": 48, "reference": f"images:{real_folder}", "features": f"nest:{tiny_checkpoint}",
                "batch_size": 16, "kid": False, "pr": False}
    checkpoint = load_checkpoint(generator_checkpoint)
    plain = clean_fid_fn(ml_collections.ConfigDict({**settings, "level_mixing": False}))(checkpoint)
    mixed = clean_fid_fn(ml_collections.ConfigDict({**settings, "level_mixing": True}))(checkpoint)
    assert list(plain) == ["fid/fd_nest"] and list(mixed) == ["fid/fd_nest", "fid/mixing_coarse", "fid/mixing_fine"]
    assert mixed["fid/fd_nest"] == plain["fid/fd_nest"]
    effect = level_mixing_effect(GeneratorSampler(checkpoint, batch_size=16), crossover=1)
    assert mixed["fid/mixing_coarse"] == effect["coarse"] > 0 and mixed["fid/mixing_fine"] == effect["fine"] > 0
