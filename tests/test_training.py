"""The classifier trainer end to end on a slice of the shared CIFAR-10: learning, exact resume after a kill,
8 simulated devices, and two processes joined by jax.distributed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nestgen.convert.checkpoint import load_checkpoint
from nestgen.convert.tree import flatten

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "configs/classifier_cifar10.py:smoke"


def _train_command(workdir: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "train_classifier.py"), "--config", SMOKE, "--workdir",
            str(workdir), "--set", f"data.cache_dir={cache}", *extra]


def _env(**extra: str) -> dict[str, str]:
    """The scripts' environment: none of the user's XLA flags, but the tests' (conftest), so that a script's
    numbers can be compared with this process's."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env["XLA_FLAGS"] = " ".join([os.environ.get("NESTGEN_TEST_XLA_FLAGS", ""), env.get("XLA_FLAGS", "")]).strip()
    return env


def _run(command: list[str], env=None, timeout: int = 600) -> dict:
    result = subprocess.run(command, cwd=ROOT, env=env or _env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _records(workdir: Path, prefix: str = "train/loss") -> dict[int, float]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[prefix] for r in rows if prefix in r}


def _params(workdir: Path) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in flatten(load_checkpoint(workdir / "export").params).items()}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nestgen-cache")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, cache) -> Path:
    """One uninterrupted smoke run (30 steps, 512 CIFAR-10 training images, a 2-level NesT) on 1 device."""
    workdir = tmp_path_factory.mktemp("reference")
    _run(_train_command(workdir, cache))
    return workdir


def test_short_training_run_learns_checkpoints_and_exports(reference_run, cache):
    losses = _records(reference_run)
    assert sorted(losses) == [5, 10, 15, 20, 25, 30]
    assert losses[30] < losses[5] - 0.1, losses  # the training loss goes down
    steps = sorted(int(p.name) for p in (reference_run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 30 and len(steps) <= 4  # keep the last 3 and the best
    assert (reference_run / "tensorboard").is_dir() and any((reference_run / "tensorboard").iterdir())

    exported = load_checkpoint(reference_run / "export")
    assert exported.class_names[:2] == ["airplane", "automobile"]
    assert exported.metadata["steps"] == 30

    command = [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--checkpoint", str(reference_run / "export"),
               "--data", "zip:../shared/data/cifar10-test.zip", "--limit", "256", "--batch-size", "128"]
    result = subprocess.run(command, cwd=ROOT, env=_env(NESTGEN_CACHE=str(cache)), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    evaluation = json.loads(result.stdout)
    assert evaluation["count"] == 256 and 0.0 <= evaluation["top1"] <= evaluation["top5"] <= 1.0
    # the trainer's last evaluation used the same 256 test images and preprocessing
    assert evaluation["top1"] == pytest.approx(_records(reference_run, "eval/top1")[30], abs=1e-6)


def test_killed_run_resumes_exactly(reference_run, cache, tmp_path):
    workdir = tmp_path / "killed"
    process = subprocess.Popen(_train_command(workdir, cache), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (workdir / "checkpoints" / "10").is_dir():
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (workdir / "checkpoints" / "10").is_dir(), "the run never wrote its step-10 checkpoint"
    assert load_checkpoint(workdir / "export").metadata["steps"] >= 10  # the export follows every checkpoint

    _run(_train_command(workdir, cache))  # the same command again resumes
    assert _records(workdir) == _records(reference_run)  # bitwise: same data order, rngs and arithmetic
    assert _records(workdir, "eval/top1") == _records(reference_run, "eval/top1")
    ours, ref = _params(workdir), _params(reference_run)
    assert all(np.array_equal(ours[k], ref[k]) for k in ref)


def test_eight_devices_follow_the_single_device_trajectory(reference_run, cache, tmp_path):
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=8")
    _run(_train_command(tmp_path / "eight", cache), env=env)
    eight, one = _records(tmp_path / "eight"), _records(reference_run)
    assert eight.keys() == one.keys()
    # Same global batches and rngs; only the order of the cross-device reductions differs.
    np.testing.assert_allclose([eight[s] for s in sorted(one)], [one[s] for s in sorted(one)], rtol=2e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_together_and_agree(reference_run, cache, tmp_path):
    port = _free_port()
    workdir = tmp_path / "two"
    processes = [
        subprocess.Popen(_train_command(workdir, cache, "--set", "num_steps=10"), cwd=ROOT,
                         env=_env(NESTGEN_COORDINATOR=f"127.0.0.1:{port}", NESTGEN_NUM_PROCESSES="2",
                                  NESTGEN_PROCESS_ID=str(i)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert results[0]["devices"] == 2 and results[0]["processes"] == 2
    assert results[0]["params_sha256"] == results[1]["params_sha256"]  # replicated parameters agree bitwise
    assert (workdir / "export" / "model.safetensors").is_file()


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(cache, tmp_path):
    workdir = tmp_path / "diverge"
    _run(_train_command(workdir, cache, "--set", "num_steps=10"))
    result = subprocess.run(_train_command(workdir, cache, "--set", "num_steps=20", "--set", "optim.base_lr=1e30"),
                            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert "training diverged by step 15" in message and "step 10, the last good checkpoint" in message
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["10"]
    assert load_checkpoint(workdir / "export").metadata["steps"] == 10  # the earlier export is untouched


def test_a_resume_with_another_model_or_batch_is_refused_before_orbax_reads_a_checkpoint(cache, tmp_path):
    workdir = tmp_path / "run"
    _run(_train_command(workdir, cache, "--set", "num_steps=10"))
    record = json.loads((workdir / "run.json").read_text())
    assert record["model"]["dims"] == [32, 64] and record["data"]["num_examples"] == 512
    checkpoints = {str(p.relative_to(workdir)): (p.read_bytes(), p.stat().st_mtime_ns)
                   for p in sorted((workdir / "checkpoints").rglob("*")) if p.is_file()}
    result = subprocess.run(_train_command(workdir, cache, "--set", "num_steps=20", "--set",
                                           "model.overrides.dims=(16,64)", "--set", "global_batch=16"),
                            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for part in ("model.dims [32, 64] → [16, 64]", "global_batch 32 → 16",
                 "use a new --workdir, or put the old values back"):
        assert part in errors[0]
    assert {str(p.relative_to(workdir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted((workdir / "checkpoints").rglob("*")) if p.is_file()} == checkpoints


def test_bfloat16_streaming_run(cache, tmp_path):
    workdir = tmp_path / "bf16"
    result = _run(_train_command(workdir, cache, "--set", "dtype=bfloat16", "--set", "data.streaming=True",
                                 "--set", "num_steps=10"))
    losses = _records(workdir)
    assert all(np.isfinite(v) for v in losses.values()) and result["step"] == 10
    exported = load_checkpoint(workdir / "export")
    assert all(v.dtype == np.float32 for v in flatten(exported.params).values())
    assert "(streamed)" in exported.metadata["train_data"] and exported.metadata["config"]["dtype"] == "bfloat16"


def test_global_batch_not_divisible_by_devices_fails_before_compute(cache, tmp_path):
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=8")
    result = subprocess.run(_train_command(tmp_path / "bad", cache, "--set", "global_batch=12"), cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "config.global_batch 12 is not divisible by the 8 devices" in result.stderr
    assert not (tmp_path / "bad" / "checkpoints").exists()
