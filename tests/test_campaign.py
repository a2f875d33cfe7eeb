"""The GPU-window campaign, rehearsed on the CPU: the exact command with the H200 presets shrunk (--rehearse) and
TensorFlow unimportable, every output within the window's limits, a second window continuing the first, the
packaging command, a window killed after its first evaluation, and two windows adding up to one schedule."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from nestgen.convert.checkpoint import load_checkpoint
from nestgen.convert.shards import ShardError, read_sharded, shard_paths, write_sharded
from nestgen.shipped import FD_FEATURES
from nestgen.training.budget import TimeBudget

ROOT = Path(__file__).resolve().parents[1]
# TensorFlow and tfds made unimportable before anything else runs: an import anywhere fails the run.
NO_TF = ("import sys, runpy; sys.modules['tensorflow'] = None; sys.modules['tensorflow_datasets'] = None; "
         "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def _env(cache: Path, level_0: bool = False) -> dict[str, str]:
    """The scripts' environment: none of the user's XLA flags; XLA's defaults (windows fill a time budget with
    training steps) unless `level_0` (the tests' flags, conftest: for a window that is mostly compiling)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", NESTGEN_CACHE=str(cache))
    if level_0 and os.environ.get("NESTGEN_TEST_XLA_FLAGS"):
        env["XLA_FLAGS"] = os.environ["NESTGEN_TEST_XLA_FLAGS"]
    return env


def _campaign(*args: str, cache: Path, timeout: int = 900, level_0: bool = False) -> dict:
    env = _env(cache, level_0)
    command = [sys.executable, "-c", NO_TF, str(ROOT / "scripts" / "campaign.py"), *args,
               "--data", str(cache / SMALL_CIFAR)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _within_limits(out: Path) -> None:
    files = list(out.iterdir())
    assert len(files) <= 8 and all(p.is_file() and p.stat().st_size <= 16 * 2**20 for p in files)


def test_shards_round_trip_and_refuse_an_incomplete_set(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"layer_{i}/kernel": rng.standard_normal((64, 64)).astype(np.float16) for i in range(5)}
    paths = write_sharded(tmp_path, "model", arrays, metadata={"run": "x"}, max_bytes=3 * 64 * 64 * 2)
    assert [p.name for p in paths] == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    joined, metadata = read_sharded(tmp_path, "model")
    assert metadata == {"run": "x"} and set(joined) == set(arrays)
    assert all(np.array_equal(joined[k], v) and joined[k].dtype == np.float16 for k, v in arrays.items())
    write_sharded(tmp_path, "model", arrays)  # a save cut differently replaces the earlier shards
    assert [p.name for p in shard_paths(tmp_path, "model")] == ["model.safetensors"]
    write_sharded(tmp_path, "model", arrays, max_bytes=3 * 64 * 64 * 2)
    old_second = paths[1].read_bytes()
    write_sharded(tmp_path, "model", arrays, metadata={"run": "y"}, max_bytes=3 * 64 * 64 * 2)
    assert not list(tmp_path.glob(".*.tmp"))  # every shard was written beside its name and renamed
    paths[1].write_bytes(old_second)  # as if a rewrite had been interrupted between its two shards
    with pytest.raises(ShardError, match="another save"):
        read_sharded(tmp_path, "model")
    paths[1].unlink()
    with pytest.raises(ShardError, match="incomplete"):
        read_sharded(tmp_path, "model")
    with pytest.raises(ShardError, match="more than one shard"):
        write_sharded(tmp_path, "big", {"x": np.zeros(100, np.float32)}, max_bytes=100)


def test_time_budget_fits_the_steps_to_the_time_left():
    budget = TimeBudget(deadline=time.monotonic() + 100.0, reserve_seconds=10.0)
    assert 10 + 88 <= budget.fit_steps(10, 1.0) <= 10 + 90  # 90 s left after the reserve, 1 s a step
    assert budget.fit_steps(10, 1.0, overhead_seconds=40.0) <= 10 + 50
    assert TimeBudget(deadline=time.monotonic() - 1.0).fit_steps(5, 1.0) == 6 and \
        TimeBudget(deadline=time.monotonic() + 5.0, reserve_seconds=10.0).must_stop()
    with pytest.raises(ValueError, match="positive"):
        TimeBudget.from_minutes(0)
    clock, waited = TimeBudget(deadline=time.monotonic() + 100.0, calibration_steps=3), []
    timed = [clock.time_steps(done, 10, lambda: waited.append(1)) for done in range(11, 17)]
    assert timed[:4] == [None] * 4 and timed[4] > 0 and timed[5] is None and len(waited) == 2  # steps 12 → 15
    assert clock.observed_seconds_per_step(15) is None and clock.observed_seconds_per_step(16) > 0


SMALL_CIFAR = "cifar10-small.zip"  # in the session's data cache: 300 training and 100 test images per class


def _small_cifar(zip_path: Path) -> None:
    """The first 300 training and 100 test JPEGs of every class of the shared CIFAR-10 zips, copied as they are
    into one zip of <split>/<class>/<image> (the layout the README's .data carries to a lease): more than the
    shrunk presets' 2,048 training and 512 test images, decoded in a second instead of the 60,000 in a minute."""
    import zipfile

    keep = {"train": 300, "test": 100}
    staging = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(staging, "w", zipfile.ZIP_STORED) as small:
        for split in keep:
            with zipfile.ZipFile(ROOT.parent / "shared" / "data" / f"cifar10-{split}.zip") as full:
                taken: dict[str, int] = {}
                for name in sorted(n for n in full.namelist() if n.endswith(".jpg")):
                    label = name.split("/")[1]
                    if taken.setdefault(label, 0) < keep[split]:
                        taken[label] += 1
                        small.writestr(name, full.read(name))
    staging.rename(zip_path)


@pytest.fixture(scope="module")
def cache() -> Path:
    """The session's data cache (conftest) holding SMALL_CIFAR, decoded, with its test images' FD_NesT statistics
    computed before any budget starts (a GPU computes them in seconds; on 2 CPU cores they would take much of a
    rehearsal's window). The campaign commands below take it as --data."""
    cache = Path(os.environ["NESTGEN_CACHE"])
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # XLA's defaults: run-bound
    env.update(NESTGEN_CACHE=str(cache), JAX_PLATFORMS="cpu")
    data = f"zip:{cache / SMALL_CIFAR}"
    code = ("from nestgen.data.sources import load_split\n"
            "from nestgen.metrics.fid import load_features, reference_statistics\n"
            "for split in ('train', 'test'):\n"
            f"    load_split({data!r}, split, image_size=32)\n"
            f"reference_statistics({data + '@test'!r}, load_features({FD_FEATURES!r}), need_features=True,\n"
            "                    batch_size=500, verbose=False)\n")
    with open(cache / "campaign-data.lock", "w") as lock:  # once per test session, whichever worker comes first
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cache / "campaign-data.ready").exists():
            _small_cifar(cache / SMALL_CIFAR)
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=900)
            (cache / "campaign-data.ready").touch()
    return cache


def test_classifier_dry_run_resume_and_package_without_tensorflow(tmp_path, cache):
    """--smoke: the first window asks for far more steps than 75 seconds hold, so the budget decides its length
    and the cosine runs down inside it; a second window resumes it; the packaging command ships the result. With
    the tests' XLA flags (conftest): at XLA's defaults, compiling took the whole window on a machine loaded by three
    test workers."""
    first = _campaign("--job", "classifier", "--minutes", "1.25", "--out", str(tmp_path / "w1"), "--smoke", "--set",
                      "num_steps=1000000", cache=cache, level_0=True)
    _within_limits(tmp_path / "w1")
    names = set(first["files"])
    assert {"config.json", "metrics.jsonl", "eval.json"} <= names and first["problems"] == [] and len(names) <= 7
    assert any(n.startswith("model") for n in names) and any(n.startswith("resume") for n in names)
    assert first["windows"] == 1 and first["images_seen"] > 0
    assert 0 < first["seconds_to_first_steps"] < first["wall_seconds"] and first["versions"]["optax"]
    assert first["compilations"]["count"] >= 2 and first["compilations"]["seconds"] > 0
    assert first["wall_seconds"] < 75 + 5  # compile, training, evaluation and outputs included
    assert 0.0 <= first["eval/top1"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "w1" / "metrics.jsonl").read_text().splitlines()]
    fitted = [r for r in records if "budget/seconds_per_step" in r]  # the run was fitted to its budget
    assert len(fitted) == 1
    refits = [r["budget/refit_total_steps"] for r in records if "budget/refit_total_steps" in r]
    assert (refits or [fitted[0]["budget/total_steps"]])[-1] == first["steps"] < 1_000_000  # the fitted end
    lr = [r["train/learning_rate"] for r in records if "train/learning_rate" in r]
    assert lr[-1] < 0.1 * max(lr)  # the cosine ran down to (nearly) zero inside the budget

    second = _campaign("--job", "classifier", "--minutes", "4", "--out", str(tmp_path / "w2"), "--smoke", "--resume",
                       str(tmp_path / "w1"), cache=cache, level_0=True)
    _resumed_and_packaged(tmp_path, first, second, cache, ["--data", f"zip:{cache / SMALL_CIFAR}"])


def test_classifier_rehearsal_runs_the_h200_preset_itself_at_shrunk_size(tmp_path, cache):
    """--rehearse: configs/classifier_cifar10.py:h200 with only the sizes shrunk (NesT-T's block tree, bfloat16,
    the full recipe, a checkpoint and a delivery at every evaluation), TensorFlow unimportable, within the limits.
    Mostly compiling, so with the tests' XLA flags (conftest): 13 steps in 75 s on a loaded machine (6 in 90 s at
    XLA's defaults)."""
    out = tmp_path / "rehearsal"
    summary = _campaign("--job", "classifier", "--minutes", "1.25", "--out", str(out), "--rehearse", cache=cache,
                        level_0=True)
    _within_limits(out)
    assert summary["problems"] == [] and len(summary["files"]) <= 7
    config = json.loads(read_sharded(out, "resume")[1]["run"])["config"]
    assert config["dtype"] == "bfloat16" and config["model"]["variant"] == "nest_tiny_s16_32"
    assert config["augment"]["randaugment_layers"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in records if "eval/top1" in r] and summary["eval/top1"] >= 0


def test_gan_rehearsal_resume_and_package_without_tensorflow(tmp_path, cache):
    """The GAN's window as a lease runs it, rehearsed: --rehearse is configs/gan_cifar10.py:h200 with only the sizes
    shrunk (bfloat16, the relativistic loss with R1 + R2, DiffAugment, FD_NesT in the loop with the best snapshot
    released, a checkpoint and a delivery at every evaluation), TensorFlow unimportable, the length fitted to the
    minutes, every output within the limits; then a second window resuming the first, and the packaging command.
    These small networks make the window mostly compiling: it runs with the tests' XLA flags (conftest),
    with 30 s kept for the last evaluation and the outputs on a loaded machine (compiling takes 60-80 s of it there)."""
    first = _campaign("--job", "gan", "--minutes", "2.5", "--reserve-seconds", "30", "--out", str(tmp_path / "w1"),
                      "--rehearse", cache=cache, level_0=True)
    _within_limits(tmp_path / "w1")
    names = set(first["files"])
    assert {"config.json", "metrics.jsonl"} <= names and "eval.json" not in names and first["problems"] == []
    assert any(n.startswith("model") for n in names) and any(n.startswith("resume") for n in names)
    assert len(names) <= 7 and first["windows"] == 1 and first["images_seen"] > 0  # the 8th file: the benchmark
    assert 0 < first["seconds_to_first_steps"] < first["wall_seconds"] and first["versions"]["optax"]
    assert first["compilations"]["count"] >= 2 and first["compilations"]["seconds"] > 0
    assert first["wall_seconds"] < 2.5 * 60 + 5  # compile, training, evaluation and outputs included
    config = json.loads(read_sharded(tmp_path / "w1", "resume")[1]["run"])["config"]
    assert config["dtype"] == "bfloat16" and config["loss"]["kind"] == "relativistic" and config["loss"]["r2_gamma"] > 0
    assert config["fid"]["every_images"] == config["checkpoint_every_images"]
    records = [json.loads(line) for line in (tmp_path / "w1" / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in records if "budget/seconds_per_step" in r]) == 1  # the run was fitted to its budget
    assert any("gan/D/r2" in r for r in records)
    assert all(np.isfinite([r["gan/D/loss"] for r in records if "gan/D/loss" in r]))
    fd = [r["fid/fd_nest"] for r in records if "fid/fd_nest" in r]
    assert fd and first["release"] == "export_best" and first["fid/fd_nest"] == fd[-1]

    # the second window compiles nothing new (the XLA cache): 45 s hold a few more steps and a delivery
    second = _campaign("--job", "gan", "--minutes", "0.75", "--out", str(tmp_path / "w2"), "--rehearse", "--resume",
                       str(tmp_path / "w1"), cache=cache, level_0=True)
    _resumed_and_packaged(tmp_path, first, second, cache, ["--num", "200"])
    assert load_checkpoint(tmp_path / "shipped").config.kind == "generator"


def _resumed_and_packaged(tmp_path, first: dict, second: dict, cache: Path, extra: list[str]) -> None:
    """The second window (w2) continued the first (w1); `package.py campaign` ships it with its card."""
    _within_limits(tmp_path / "w2")
    assert second["windows"] == 2 and second["images_seen_total"] == first["images_seen_total"] + second["images_seen"]
    _, run = read_sharded(tmp_path / "w2", "resume")
    assert json.loads(run["run"])["resumed_from"] == str(tmp_path / "w1")
    before, _ = read_sharded(tmp_path / "w1", "model")
    after, _ = read_sharded(tmp_path / "w2", "model")
    assert set(before) == set(after) and any(not np.array_equal(before[k], after[k]) for k in before)
    output = tmp_path / "shipped"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "campaign", str(tmp_path / "w2"),
                             "--output", str(output), *extra], cwd=ROOT, env=_env(cache), capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    shipped = load_checkpoint(output)
    assert shipped.metadata["campaign"]["windows"] == 2 and "scripts/campaign.py" in (output / "README.md").read_text()


def test_a_window_killed_after_its_first_evaluation_leaves_a_loadable_release(tmp_path, cache):
    """The release and resume files are rewritten into --out at every evaluation: a window that is killed (a lease
    ending, an XLA error) keeps the last one."""
    out = tmp_path / "killed"
    env = _env(cache)
    command = [sys.executable, "-c", NO_TF, str(ROOT / "scripts" / "campaign.py"), "--job", "classifier",
               "--minutes", "10", "--out", str(out), "--smoke", "--data", str(cache / SMALL_CIFAR), "--set",
               "num_steps=100000", "--set", "eval_every_steps=10"]  # an evaluation at every checkpoint, as in h200
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while "eval/top1" not in ((out / "eval.json").exists() and (out / "eval.json").read_text() or "") \
                and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(1.0)  # somewhere in the training after the first delivery
    finally:
        process.kill()
        process.communicate()
    _within_limits(out)
    released = load_checkpoint(out)
    assert released.config.kind == "classifier" and np.isfinite(
        np.concatenate([np.ravel(v) for v in jax_leaves(released.params)])).all()
    _, model_metadata = read_sharded(out, "model")
    steps = int(model_metadata["steps"])
    own = json.loads(model_metadata["evaluation"])  # the release's metrics are those of its own weights
    assert own["steps"] == steps >= 10 and 0 <= own["eval/top1"] <= 1
    # the kill may fall inside a delivery (the files are written one after another): every file is whole and is
    # of this delivery or of the one before (checkpoints every 10 steps)
    run = json.loads(read_sharded(out, "resume")[1]["run"])
    evaluation = json.loads((out / "eval.json").read_text())
    assert {run["steps"], evaluation["steps"]} <= {steps, steps - 10} and "eval/top1" in evaluation
    # its scratch (on a tmpfs: memory) outlived it; the next window's start removes it
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    left = list(root.glob(f"nestgen-campaign-classifier-{process.pid}-*"))
    assert len(left) == 1
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "campaign.py"), "--job", "classifier",
                             "--minutes", "1", "--out", str(tmp_path / "next"), "--data", str(tmp_path / "no.zip")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "no.zip: no such file" in result.stderr and not left[0].exists()


def jax_leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)


def test_two_windows_add_up_to_one_schedule(tmp_path, cache, monkeypatch):
    """A run planned over two windows: the first stops halfway through its schedule, the second continues from the
    carried state (float16 weights, bfloat16 Adam moments, the step) and the same schedule. Its learning rates are
    the single run's exactly and its losses match it within the rounding of the carried state."""
    from nestgen.training import relay_state
    from nestgen.training.classifier_trainer import train_and_evaluate
    from nestgen.training.configs import load_config

    monkeypatch.setenv("NESTGEN_CACHE", str(cache))
    monkeypatch.chdir(ROOT)
    data = f"zip:{cache / SMALL_CIFAR}"
    config = load_config(f"{ROOT / 'configs' / 'classifier_cifar10.py'}:smoke",
                         ["async_checkpoints=False", "log_every_steps=1", "checkpoint_every_steps=10",
                          f"data.train={data}", f"data.eval={data}"])
    plan = (4, 40)

    class StopAfter(TimeBudget):
        calls = 0

        def must_stop(self):
            self.calls += 1
            return self.calls >= 20

    carried = {}
    train_and_evaluate(config, tmp_path / "one", planned_schedule=plan)
    train_and_evaluate(config, tmp_path / "w1", planned_schedule=plan, budget=StopAfter(deadline=1e12, fit=False),
                       on_checkpoint=lambda state, step, _: carried.update(arrays=relay_state.encode(state)))
    _, second = train_and_evaluate(config, tmp_path / "w2", planned_schedule=plan,
                                   start_from=lambda template: relay_state.decode(carried["arrays"], template))
    assert second["step"] == 40

    def curve(run, key):
        records = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r[key] for r in records if key in r}

    one, w1, w2 = (curve(run, "train/learning_rate") for run in ("one", "w1", "w2"))
    assert max(w1) == 20 and min(w2) == 21 and {**w1, **w2} == pytest.approx(one, rel=1e-6)
    one, w1, w2 = (curve(run, "train/loss") for run in ("one", "w1", "w2"))
    assert all(w1[s] == one[s] for s in w1)  # the first window is the single run itself
    gaps = [abs(w2[s] - one[s]) for s in w2]
    assert np.mean(gaps) < 0.02 * np.mean([one[s] for s in w2]), gaps
