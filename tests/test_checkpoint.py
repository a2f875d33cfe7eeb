"""nestgen's checkpoint directory: round trip, half precision, validation errors, saves that cannot destroy."""

import json

import numpy as np
import pytest

from nestgen.convert import checkpoint as ckpt
from nestgen.convert.tree import flatten
from nestgen.models.registry import init_params

from .conftest import TINY


def test_round_trip_keeps_everything(tmp_path):
    params = init_params(TINY, 3)
    preprocess = {"image_size": 16, "resize": "bilinear", "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.25] * 3}
    ckpt.save_checkpoint(tmp_path / "c", TINY, params, class_names=list("abcde"), preprocess=preprocess,
                         metadata={"note": "test"})
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["config.json", "model.safetensors"]
    loaded = ckpt.load_checkpoint(tmp_path / "c")
    assert loaded.config == TINY and loaded.class_names == list("abcde") and loaded.preprocess == preprocess
    assert loaded.metadata == {"note": "test"}
    a, b = flatten(params), flatten(loaded.params)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_half_precision_weights_halve_the_file_and_load_as_float32(tmp_path):
    params = init_params(TINY, 0)
    ckpt.save_checkpoint(tmp_path / "f32", TINY, params)
    ckpt.save_checkpoint(tmp_path / "f16", TINY, params, weights_dtype="float16")
    size32 = (tmp_path / "f32" / "model.safetensors").stat().st_size
    size16 = (tmp_path / "f16" / "model.safetensors").stat().st_size
    assert size16 < 0.55 * size32
    loaded = flatten(ckpt.load_checkpoint(tmp_path / "f16").params)
    for key, value in flatten(params).items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_allclose(loaded[key], value, rtol=1e-3, atol=1e-6)


def test_defaults_for_cifar_and_imagenet_sized_models(tmp_path):
    assert ckpt.default_class_names(10)[0] == "airplane"
    assert ckpt.default_class_names(1000)[:2] == ["tench", "goldfish"] and len(set(ckpt.imagenet_classes())) == 1000
    assert ckpt.default_preprocess(32)["mean"] == list(ckpt.CIFAR10_MEAN)
    assert ckpt.default_preprocess(224)["crop_pct"] == 0.875


def test_missing_directory_and_files_are_named(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ckpt.CheckpointError, match="config.json is missing"):
        ckpt.load_checkpoint(tmp_path / "empty")


def test_corrupt_files_give_clear_errors(tmp_path):
    ckpt.save_checkpoint(tmp_path / "c", TINY, init_params(TINY, 0))
    (tmp_path / "c" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match="could not be read as safetensors"):
        ckpt.load_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="not valid JSON"):
        ckpt.load_checkpoint(tmp_path / "c")


def test_weights_that_do_not_match_the_config_name_the_key(tmp_path):
    ckpt.save_checkpoint(tmp_path / "c", TINY, init_params(TINY, 0))
    record = json.loads((tmp_path / "c" / "config.json").read_text())
    record["model"]["num_classes"] = 6
    (tmp_path / "c" / "config.json").write_text(json.dumps(record))
    with pytest.raises(ckpt.CheckpointError, match=r"key 'head/bias' has shape \(5,\), expected \(6,\)"):
        ckpt.load_checkpoint(tmp_path / "c")


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path / "c", TINY, init_params(TINY, 0), class_names=list("vwxyz"))
    before = {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}

    import safetensors.numpy

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(tmp_path / "c", TINY, init_params(TINY, 1))
    assert {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no staging debris
    assert ckpt.load_checkpoint(tmp_path / "c").class_names == list("vwxyz")


def test_wrong_class_name_count_is_rejected(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="3 class names given for a model with 5 classes"):
        ckpt.save_checkpoint(tmp_path / "c", TINY, init_params(TINY, 0), class_names=["a", "b", "c"])
