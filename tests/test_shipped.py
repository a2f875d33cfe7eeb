"""The classifier the repository ships: loads, and still scores what its model card says (a regression test)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nestgen.convert.checkpoint import load_checkpoint
from nestgen.evaluation.accuracy import evaluate_checkpoint
from nestgen.shipped import default_classifier

ROOT = Path(__file__).resolve().parents[1]
TEST_ZIP = "zip:../shared/data/cifar10-test.zip"


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(default_classifier())


def test_shipped_classifier_scores_its_model_card_on_the_fixed_slice(shipped, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(ROOT)
    card = shipped.metadata["model_card"]
    result = evaluate_checkpoint(shipped, TEST_ZIP, "test", limit=1000,
                                 cache_dir=tmp_path_factory.mktemp("cache"))
    assert result["count"] == 1000
    assert result["top1"] == pytest.approx(card["test_top1_first_1000"], abs=0.002)  # ≤ 2 images of float noise
    readme = (default_classifier() / "README.md").read_text()
    assert f"{card['test_top1_first_1000']:.2%}" in readme and f"{card['test_top1']:.2%}" in readme
    assert shipped.class_names[0] == "airplane" and card["test_examples"] == 10000


def test_classify_uses_the_shipped_model_by_default(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "classify.py"), str(tmp_path / "red.png"),
                             "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout)
    assert len(row["logits"]) == 10 and row["top_k"][0]["class"] in load_checkpoint(default_classifier()).class_names
