"""The classifier the repository ships: loads, and still scores what its model card says (a regression test)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nestgen.convert.checkpoint import load_checkpoint
from nestgen.metrics.accuracy import evaluate_checkpoint
from nestgen.shipped import FD_FEATURES, default_classifier

ROOT = Path(__file__).resolve().parents[1]
TEST_ZIP = "zip:../shared/data/cifar10-test.zip"
DEFAULT_REFERENCE = "zip:../shared/data/cifar10-test.zip@test"


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(default_classifier())


def test_shipped_classifier_scores_its_model_card_on_the_fixed_slice(shipped, monkeypatch):
    monkeypatch.chdir(ROOT)
    card = shipped.metadata["model_card"]
    result = evaluate_checkpoint(shipped, TEST_ZIP, "test", limit=1000)  # the session's cache (conftest)
    assert result["count"] == 1000
    assert result["top1"] == pytest.approx(card["test_top1_first_1000"], abs=0.002)  # ≤ 2 images of float noise
    readme = (default_classifier() / "README.md").read_text()
    assert f"{card['test_top1_first_1000']:.2%}" in readme and f"{card['test_top1']:.2%}" in readme
    assert shipped.class_names[0] == "airplane" and card["test_examples"] == 10000


def test_shipped_classifier_has_a_gradcat_step_per_level_and_beats_the_first_stand_in(shipped):
    """Issue 24: the shipped classifier has ≥ 3 levels (a GradCAT path root → 4 → 16 blocks) and replaced the
    first stand-in only because it scores better; the first stays as FD_NesT's pinned feature network."""
    from nestgen.explain.gradcat import GradCAT

    assert shipped.config.num_levels >= 3
    explainer = GradCAT(shipped.build(), shipped.params, shipped.class_names, shipped.config.image_size)
    image = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    path = explainer.explain(image)[0][0].path
    assert [node.level for node in path] == list(range(shipped.config.num_levels - 1, -1, -1))
    assert [node.box[2] - node.box[0] for node in path] == [32, 16, 8]  # each step a quarter of its parent
    first = load_checkpoint(ROOT / FD_FEATURES.removeprefix("nest:"))
    assert first.path != shipped.path and first.config.num_levels == 2
    assert shipped.metadata["model_card"]["test_top1"] > first.metadata["model_card"]["test_top1"] == 0.7079


def test_classify_uses_the_shipped_model_by_default(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "classify.py"), str(tmp_path / "red.png"),
                             "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout)
    assert len(row["logits"]) == 10 and row["top_k"][0]["class"] in load_checkpoint(default_classifier()).class_names


@pytest.fixture(scope="module")
def shipped_generator():
    from nestgen.shipped import default_generator

    return load_checkpoint(default_generator())


def test_shipped_generator_is_deterministic_per_seed_and_class(shipped_generator):
    from nestgen.inference.sampling import GeneratorSampler

    sampler = GeneratorSampler(shipped_generator, batch_size=16)
    horse = sampler.class_index("horse")
    a, b = sampler.sample(range(8), horse), sampler.sample(range(8), horse)
    assert a.shape == (8, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sampler.sample(range(8), sampler.class_index("ship")))  # the class matters
    assert len(shipped_generator.metadata["w_avg"]) == 10 and shipped_generator.class_names[7] == "horse"


def test_shipped_generator_scores_its_model_card(shipped_generator):
    """FD_NesT of 2,000 samples against the test images, as the model card measured it (a regression test), by
    the documented command. It runs long, so at XLA's defaults (conftest sets level 0 for the tests)."""
    card = shipped_generator.metadata["model_card"]
    assert card["protocol"]["num_samples"] == 2000 and card["metric"].startswith("FD_NesT[")
    tests_flags = os.environ.get("NESTGEN_TEST_XLA_FLAGS", "").split()
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if f not in tests_flags]
    env = {**os.environ, "XLA_FLAGS": " ".join(flags)}
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate_fid.py"), "--checkpoint",
                          str(shipped_generator.path), "--num", "2000", "--ref", DEFAULT_REFERENCE, "--features",
                          FD_FEATURES, "--batch-size", "100", "--quiet"], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["metric"] == card["metric"]
    assert result["fd_nest"] == pytest.approx(card["fd_nest"], rel=0.02)  # float noise across machines
    readme = (shipped_generator.path / "README.md").read_text()
    assert f"{card['fd_nest']:.3f}" in readme and (shipped_generator.path / "samples.png").is_file()
