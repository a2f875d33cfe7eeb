"""The command-line entry points, end to end on checkpoints and files the tests create."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestgen.convert.checkpoint import load_checkpoint
from nestgen.convert.official import save_official
from nestgen.convert.tree import flatten, unflatten
from nestgen.data.images import load_image, preprocess
from nestgen.models.registry import get_config, init_params
from nestgen.shipped import DEFAULT_CLASSIFIER

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = {
        "rgb": tmp_path / "rgb.png", "gray16": tmp_path / "gray16.png", "rgba": tmp_path / "rgba.png",
        "big": tmp_path / "big.jpg",
    }
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(paths["rgb"])
    Image.fromarray(rng.integers(0, 65535, (20, 30), dtype=np.uint16)).save(paths["gray16"])
    Image.fromarray(rng.integers(0, 255, (9, 9, 4), dtype=np.uint8)).save(paths["rgba"])
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(paths["big"])
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    paths["broken"] = tmp_path / "broken.png"
    return paths


def test_classify_end_to_end_with_a_bad_file(tiny_checkpoint, images):
    args = [sys.executable, str(ROOT / "scripts" / "classify.py"), "--checkpoint", str(tiny_checkpoint), "--json",
            "--top-k", "3", str(images["rgb"]), str(images["broken"]), str(images["gray16"]), str(images["rgba"]),
            str(images["big"])]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr  # one file failed, the others were classified
    assert (f"error: {images['broken']}: not an image file (PNG, JPEG, GIF, BMP, WebP, TIFF … expected)"
            in result.stderr.splitlines())
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["image"]).name for r in rows] == ["rgb.png", "gray16.png", "rgba.png", "big.jpg"]

    checkpoint = load_checkpoint(tiny_checkpoint)
    x = preprocess(load_image(images["rgb"]), checkpoint.preprocess)[None]
    logits = np.asarray(checkpoint.build().apply({"params": checkpoint.params}, x)[0][0])
    np.testing.assert_allclose(rows[0]["logits"], logits, rtol=1e-5, atol=1e-5)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    best = int(np.argmax(logits))
    assert rows[0]["top_k"][0] == {"class": checkpoint.class_names[best], "index": best,
                                   "probability": pytest.approx(float(probs[best]), rel=1e-5)}
    assert all(len(r["top_k"]) == 3 for r in rows)


def test_classify_text_output_and_missing_checkpoint(tiny_checkpoint, images, capsys, tmp_path):
    classify = _script("classify")
    assert classify.main(["--checkpoint", str(tiny_checkpoint), str(images["rgb"])]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == str(images["rgb"]) and "1. " in out and "5. " in out
    assert classify.main(["--checkpoint", str(tmp_path / "none"), str(images["rgb"])]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_convert_official_then_to_official_round_trip(tmp_path, capsys):
    convert = _script("convert")
    cfg = get_config("nest_tiny_s16_32")
    flat = flatten(init_params(cfg, 0))
    save_official(tmp_path / "ckpt-39.flax", flat, cfg)
    assert convert.main(["official", "--variant", "nest_tiny_s16_32", "--input", str(tmp_path / "ckpt-39.flax"),
                         "--output", str(tmp_path / "out"), "--weights-dtype", "float16"]) == 0
    loaded = load_checkpoint(tmp_path / "out")
    assert loaded.class_names[0] == "airplane" and loaded.metadata["source"]["type"] == "official"
    np.testing.assert_allclose(flatten(loaded.params)["head/kernel"], flat["head/kernel"], rtol=1e-3, atol=1e-6)
    out = str(tmp_path / "out")
    assert convert.main(["to-official", "--checkpoint", out, "--output", str(tmp_path / "r.flax")]) == 0
    assert convert.main(["to-timm", "--checkpoint", str(tmp_path / "out"), "--output", str(tmp_path / "t.st")]) == 2
    assert "multi-head attention only" in capsys.readouterr().err


def test_convert_reports_a_mismatched_tree(tmp_path, capsys):
    convert = _script("convert")
    cfg = get_config("nest_tiny_s16_32")
    save_official(tmp_path / "small.flax", flatten(init_params(cfg, 0)), cfg)
    code = convert.main(["official", "--variant", "nest_small_s16_32", "--input", str(tmp_path / "small.flax"),
                         "--output", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "key 'Dense_0/kernel' has shape (192, 10), expected (384, 10)" in err
    assert not (tmp_path / "out").exists()


def test_convert_timm_cli(tmp_path):
    import torch  # the test extra's reference implementation
    from timm.models.nest import Nest

    from nestgen.convert.timm import timm_kwargs

    cfg = get_config("nest_micro_32", activation="gelu")
    model = Nest(**timm_kwargs(cfg)).eval()
    torch.save(model.state_dict(), tmp_path / "micro.pth")
    convert = _script("convert")
    assert convert.main(["timm", "--variant", "nest_micro_32", "--input", str(tmp_path / "micro.pth"),
                         "--output", str(tmp_path / "out")]) == 0
    loaded = load_checkpoint(tmp_path / "out")
    assert loaded.config.activation == "gelu"
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    ours = np.asarray(loaded.build().apply({"params": unflatten(flatten(loaded.params))}, x)[0])
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()


def test_repack_to_half_precision(tiny_checkpoint, tmp_path):
    convert = _script("convert")
    assert convert.main(["repack", "--checkpoint", str(tiny_checkpoint), "--output", str(tmp_path / "half")]) == 0
    half, full = load_checkpoint(tmp_path / "half"), load_checkpoint(tiny_checkpoint)
    assert json.loads((tmp_path / "half" / "config.json").read_text())["weights_dtype"] == "float16"
    assert half.class_names == full.class_names and half.preprocess == full.preprocess
    size = (tmp_path / "half" / "model.safetensors").stat().st_size
    assert size < 0.55 * (tiny_checkpoint / "model.safetensors").stat().st_size
    for key, value in flatten(full.params).items():
        np.testing.assert_allclose(flatten(half.params)[key], value, rtol=1e-3, atol=1e-6)


def test_benchmark_latency_measures_the_shipped_models():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "latency", "--repeats", "2",
                          "--json"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert [r["what"] for r in result["rows"]] == ["GradCAT, one 32x32 image", "16 generator samples"]
    assert all(r["ms"] > 0 and r["reference_ms"] > 0 for r in result["rows"])
    assert result["classifier"] == DEFAULT_CLASSIFIER.name and result["peak_memory_mib"] > 100
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "bogus"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and "invalid choice: 'bogus'" in bad.stderr


def test_every_benchmark_is_behind_the_one_entry_point_and_the_old_names_say_their_new_form(capsys):
    """`scripts/benchmark.py NAME --help` for every benchmark (its own options, under its new name); each former
    `scripts/benchmark_NAME.py` and `scripts/package_KIND.py` prints one line naming its new form
    (`python scripts/benchmark.py NAME`, `python scripts/package.py KIND`) and exits 2."""
    import runpy

    entry = _script("benchmark")
    for name in entry.BENCHMARKS:
        with pytest.raises(SystemExit) as done:
            entry.main([name, "--help"])
        assert done.value.code == 0, name
        assert f"usage: scripts/benchmark.py {name}" in capsys.readouterr().out
    old = sorted((ROOT / "scripts").glob("benchmark_*.py")) + sorted((ROOT / "scripts").glob("package_*.py"))
    assert len(old) == 11 + 3
    for path in old:
        command, _, name = path.stem.partition("_")
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(path), run_name="__main__")
        assert done.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"`python scripts/{command}.py {name}`" in err
    assert set(name for path in old[:11] for name in [path.stem.removeprefix("benchmark_")]) <= set(entry.BENCHMARKS)
    package = _script("package")
    for kind in ("classifier", "generator", "campaign"):
        with pytest.raises(SystemExit) as done:
            package.main([kind, "--help"])
        assert done.value.code == 0 and "--output" in capsys.readouterr().out


def test_benchmark_classifier_measures_execution_options_against_timm():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "classifier", "--variant",
                          "nest_micro_32", "--batch", "4", "--attention", "multi_head", "--execution", "plain", "fused",
                          "remat", "--rounds", "1", "--warmup", "1", "--min-iters", "1", "--min-seconds", "0",
                          "--json"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)["rows"]
    assert [r["execution"] for r in rows] == ["plain", "fused", "remat"]
    for r in rows:
        assert r["forward"] > 0 and r["train_step"] > 0 and r["timm_forward"] > 0 and r["timm_train_step"] > 0
        assert r["forward_ratio"] == pytest.approx(r["forward"] / r["timm_forward"])  # one round: plain ratio
        assert r["train_memory_mib"] > 1
        assert r["train_tflops_per_second"] == pytest.approx(3 * r["gflops_per_image_forward"] * r["train_step"] / 1e3)
    assert rows[0]["gflops_per_image_forward"] == pytest.approx(0.152, rel=0.05)  # nest_micro_32's forward
    bf16_vs_timm = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "classifier", "--dtype",
                                   "bfloat16", "--reference", "timm"], capture_output=True, text=True, timeout=300,
                                  cwd=ROOT)
    assert bf16_vs_timm.returncode == 2 and "--reference none" in bf16_vs_timm.stderr


def test_peak_flops_come_from_the_datasheet_table():
    from nestgen.benchmarks.timing import peak_flops

    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12  # the PCIe part is matched before the SXM one
    assert peak_flops("NVIDIA H200", "float32") == 67e12
    assert peak_flops("cpu", "float32") is None


def test_benchmark_data_compares_the_pipeline_with_the_train_step():
    """The in-memory pipeline (host batches + the JAX augmentation) and the tf.data stream, against a train step."""
    test_zip = ROOT.parent / "shared" / "data" / "cifar10-test.zip"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "data", "--data", f"zip:{test_zip}",
                          "--split", "test", "--batch", "8", "--steps", "3", "--against", "nest_micro_32",
                          "--min-seconds", "0", "--streamed"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["examples"] == 10000 and result["train_step"]["variant"] == "nest_micro_32"
    train = result["train_step"]["images_per_second"]
    assert train > 0 and result["in_memory_images_per_second"] > 0 and result["streaming_images_per_second"] > 0
    assert result["in_memory_over_train_step"] == pytest.approx(result["in_memory_images_per_second"] / train, rel=0.01)


def test_window_benchmark_writes_its_rows(tmp_path):
    """The GPU window's benchmark call, at CPU size: classifier rows with MFU fields, the augmentation against the
    train step, and one JSON file."""
    out = tmp_path / "benchmark.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "window", "--out", str(out),
                          "--small",
                          "--dtype", "float32", "--batch", "8", "--big-batch", "4", "--min-seconds", "0.1",
                          "--rows", "classifier", "augmentation"], capture_output=True, text=True, timeout=600,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = {(r["row"], r.get("execution"), r["batch"]): r for r in result["rows"]}
    assert {("classifier train", "plain", 8), ("classifier train", "fused", 8), ("classifier train", "plain", 4),
            ("augmentation (full CIFAR recipe)", None, 8)} <= set(rows) and result["errors"] == []
    plain = rows[("classifier train", "plain", 8)]
    assert plain["images_per_second"] > 0 and plain["mfu"] is None  # no datasheet peak for a CPU
    augment = rows[("augmentation (full CIFAR recipe)", None, 8)]["images_per_second"]
    assert result["augmentation_over_train_step"] == pytest.approx(augment / plain["images_per_second"], rel=0.02)


def test_window_benchmark_keeps_finished_rows_when_cut_short_and_honours_its_time_box(tmp_path):
    """The JSON is rewritten after every row: a call killed in its second row keeps the first; --max-seconds
    starts no row past the box and says which were skipped."""
    out = tmp_path / "benchmark.json"
    command = [sys.executable, str(ROOT / "scripts" / "benchmark.py"), "window", "--out", str(out), "--small",
               "--dtype", "float32", "--batch", "8", "--big-batch", "4", "--rows", "classifier"]
    process = subprocess.Popen([*command, "--min-seconds", "5"], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 400
        while not out.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]  # still in its second row
    finally:
        process.kill()
        process.communicate()
    first = json.loads(out.read_text())
    assert [(r["variant"], r["execution"]) for r in first["rows"]] == [("nest_micro_32", "plain")]
    boxed = subprocess.run([*command, "--min-seconds", "0.1", "--max-seconds", "0.5"], capture_output=True,
                           text=True, timeout=600, cwd=ROOT)
    result = json.loads(out.read_text())
    assert boxed.returncode == 0 and len(result["rows"]) == 1 and result["skipped"] == ["nest_micro_32 fused",
                                                                                         "nest_micro_32"]
