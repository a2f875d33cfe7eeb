"""The GAN trainer: separate D and G steps, EMA, w tracking, exact resume, validation, and that it learns."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.convert.checkpoint import load_checkpoint
from nestgen.convert.tree import flatten
from nestgen.inference.sampling import GeneratorSampler
from nestgen.training import gan_steps, gan_trainer
from nestgen.training.configs import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "gan_cifar10.py"


def _smoke(*overrides):
    return load_config(f"{CONFIG}:smoke", ["async_checkpoints=False", *overrides])


def _steps(config):
    """A GAN config's jitted D and G steps and an initial state, on a random batch of 16×16 images."""
    g_cfg, d_cfg = gan_trainer.model_configs(config)
    g_opt, d_opt = gan_steps.create_optimizers(config)
    state = jax.jit(lambda r: gan_steps.init_state(g_cfg, d_cfg, g_opt, d_opt, r))(jax.random.key(0))
    d_step, g_step, _ = gan_steps.make_steps(g_cfg.build(), d_cfg.build(), g_opt, d_opt, config, g_cfg.latent_dim)
    batch = {"images": jax.random.uniform(jax.random.key(1), (8, 16, 16, 3), minval=-1, maxval=1),
             "labels": jnp.arange(8) % 10}
    return state, jax.jit(d_step, static_argnums=3), jax.jit(g_step), batch


@pytest.fixture(scope="module")
def steps():
    """The smoke GAN's steps (see _steps)."""
    return _steps(_smoke())


def _changed(a, b) -> set[str]:
    fa, fb = flatten(a), flatten(b)
    return {k for k in fa if not np.array_equal(np.asarray(fa[k]), np.asarray(fb[k]))}


@pytest.mark.parametrize("r1", [False, True])
def test_discriminator_step_changes_only_the_discriminator(steps, r1):
    state, d_step, _, batch = steps
    new, metrics = d_step(state, batch, jax.random.key(2), r1)
    assert len(_changed(state.d_params, new.d_params)) == len(flatten(state.d_params))  # every D parameter moved
    assert not _changed(state.g_params, new.g_params) and not _changed(state.g_ema, new.g_ema)
    np.testing.assert_array_equal(state.w_avg, new.w_avg)
    assert ("gan/D/r1" in metrics) == r1 and np.isfinite(float(metrics["gan/D/loss"]))
    if r1:
        assert float(metrics["gan/D/r1"]) > 0


def test_r3gan_loss_with_r2_and_level_mixing_steps():
    """The relativistic pairing loss with R1 and R2, with every fake level-mixed: D's step reports both penalties
    and moves only D; G's step moves only G (test_generator.py checks what mixing does to an image)."""
    state, d_step, g_step, batch = _steps(_smoke("loss.kind=relativistic", "loss.r2_gamma=0.05",
                                                 "loss.level_mixing=1.0"))
    new, metrics = d_step(state, batch, jax.random.key(2), True)
    assert float(metrics["gan/D/r1"]) > 0 and float(metrics["gan/D/r2"]) > 0
    assert not _changed(state.g_params, new.g_params) and _changed(state.d_params, new.d_params)
    after, g_metrics = g_step(new, batch, jax.random.key(3))
    assert np.isfinite(float(g_metrics["gan/G/loss"])) and not _changed(new.d_params, after.d_params)
    assert "synthesis/to_rgb/kernel" in _changed(new.g_params, after.g_params)


def test_generator_step_changes_only_the_generator(steps):
    state, _, g_step, batch = steps
    new, metrics = g_step(state, batch, jax.random.key(3))
    assert not _changed(state.d_params, new.d_params) and not _changed(state.g_ema, new.g_ema)
    moved = _changed(state.g_params, new.g_params)
    assert "synthesis/to_rgb/kernel" in moved and "mapping/fc0/kernel" in moved
    assert not np.array_equal(state.w_avg, new.w_avg)  # the tracked mean of w follows the generator step


def test_ema_follows_its_formula():
    ema, params = {"a": jnp.array([1.0, 3.0])}, {"a": jnp.array([5.0, -1.0])}
    beta = gan_steps.ema_beta(10**9, 64, half_life_images=640, rampup=None)
    np.testing.assert_allclose(float(beta), 0.5 ** (64 / 640), rtol=1e-6)
    np.testing.assert_allclose(beta ** 10, 0.5, rtol=1e-5)  # 640 images later, old weights count half
    out = gan_steps.ema_update(ema, params, beta)
    np.testing.assert_allclose(out["a"], params["a"] + float(beta) * (ema["a"] - params["a"]), rtol=1e-6)
    # ramp-up: the half-life is at most 5% of the images seen so far
    early = gan_steps.ema_beta(1280, 64, half_life_images=10**6, rampup=0.05)
    np.testing.assert_allclose(float(early), 0.5 ** (64 / 64), rtol=1e-6)


def test_w_avg_tracks_each_class_present_in_the_batch():
    w_avg = jnp.zeros((3, 2))
    w = jnp.array([[2.0, 2.0], [4.0, 0.0], [10.0, 10.0]])
    out = gan_steps.track_w_avg(w_avg, w, jnp.array([0, 0, 2]), beta=0.5)
    np.testing.assert_allclose(out, [[1.5, 0.5], [0.0, 0.0], [5.0, 5.0]])


@pytest.mark.parametrize("override, message", [
    (["loss.kind=wasserstein"], "loss.kind"),
    (["loss.diffaugment=color,blur"], "unknown operations"),
    (["discriminator.overrides.image_size=32", "discriminator.overrides.channels=(8, 8, 8, 8)"],
     "discriminator takes 32px"),
    (["generator.variant=nest_tiny_s16_32", "generator.overrides={}"], "not a generator"),
    (["checkpoint_every_images=120"], "multiple of config.log_every_images"),
    (["grid.seed=4294967290"], "config.grid.seed 4294967290 with 40 images needs seeds up to 4294967329"),
])
def test_bad_configs_fail_before_training(override, message):
    with pytest.raises(ValueError, match=message):
        gan_trainer.validate(_smoke(*override))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The smoke GAN, 20 iterations uninterrupted on one device: the reference trajectory."""
    workdir = tmp_path_factory.mktemp("full")
    return workdir, gan_trainer.train_and_evaluate(_smoke(), workdir)[1]


def _metrics(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "gan/images_per_second"}
            for line in path.read_text().splitlines()]


def test_resume_matches_an_uninterrupted_run(full_run, tmp_path):
    """20 iterations straight vs 10, stop, then resume to 20: bit-identical G, EMA, D and logged metrics."""
    full_dir, full = full_run
    gan_trainer.train_and_evaluate(_smoke("total_images=160"), tmp_path / "resumed")
    _, resumed = gan_trainer.train_and_evaluate(_smoke(), tmp_path / "resumed")
    assert resumed["images_seen"] == full["images_seen"] == 320
    assert resumed["g_ema_sha256"] == full["g_ema_sha256"] and resumed["d_sha256"] == full["d_sha256"]
    assert (full_dir / "metrics.jsonl").read_text().count("\n") == 4
    assert _metrics(tmp_path / "resumed/metrics.jsonl") == _metrics(full_dir / "metrics.jsonl")

    # what a run leaves behind: grids, the EMA generator and the discriminator as release checkpoints
    samples = sorted(p.name for p in (full_dir / "samples").iterdir())
    assert samples == ["fakes_000000160.png", "fakes_000000320.png", "fakes_init.png", "reals.png"]
    generator = load_checkpoint(full_dir / "export")
    assert generator.config.kind == "generator" and generator.metadata["images_seen"] == 320
    assert np.asarray(generator.metadata["w_avg"]).shape == (10, generator.config.w_dim)
    assert load_checkpoint(full_dir / "export_discriminator").config.kind == "conv_discriminator"
    assert GeneratorSampler(generator).sample([0, 1], 7, truncation=0.7).shape == (2, 16, 16, 3)
    records = [json.loads(line) for line in (full_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"gan/D/loss", "gan/G/loss", "gan/D/r1", "gan/D/real_score", "gan/D/fake_score",
            "gan/images_per_second", "gan/images_seen"} <= set(records[-1])


@pytest.fixture(scope="module")
def run_160(tmp_path_factory) -> Path:
    """The smoke GAN stopped after 160 images at batch 16 (10 iterations, one checkpoint, one sample grid)."""
    workdir = tmp_path_factory.mktemp("run160") / "run"
    gan_trainer.train_and_evaluate(_smoke("total_images=160"), workdir)
    return workdir


def _script(workdir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts/train_gan.py"), "--config", f"{CONFIG}:smoke",
                           "--workdir", str(workdir), "--set", "async_checkpoints=False",
                           *(a for o in overrides for a in ("--set", o))],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env=os.environ)


def _files(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_resume_may_change_the_batch_and_the_compute_dtype_and_images_seen_stay_exact(run_160, tmp_path):
    """The issue's case: 160 images at batch 16, then the same workdir at batch 8 to 400 images; the resumed part
    computes in bfloat16 (mixed precision switched on mid-run), the parameters staying float32."""
    workdir = tmp_path / "run"
    shutil.copytree(run_160, workdir)
    samples = _files(workdir / "samples")
    assert "fakes_000000160.png" in samples
    out = _script(workdir, "global_batch=8", "total_images=400", "dtype=bfloat16")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["images_seen"] == 400
    assert [line for line in out.stderr.splitlines() if line.startswith("resuming ")] == [
        f"resuming {workdir} with global_batch 16 → 8"]
    seen = [r["gan/images_seen"] for r in _metrics(workdir / "metrics.jsonl") if "gan/images_seen" in r]
    assert seen == [80, 160, 240, 320, 400]  # strictly increasing, and exact across the change of batch
    exported = load_checkpoint(workdir / "export")
    assert exported.metadata["images_seen"] == 400
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(exported.params))
    assert all(np.isfinite(r["gan/D/loss"]) for r in _metrics(workdir / "metrics.jsonl") if "gan/D/loss" in r)
    assert json.loads((workdir / "run.json").read_text())["global_batch"] == 8
    after = _files(workdir / "samples")
    assert {name: after[name] for name in samples} == samples  # nothing written before was written again
    assert sorted(set(after) - set(samples)) == ["fakes_000000320.png", "fakes_000000400.png"]


def test_a_resume_may_not_change_the_seed_or_the_data(run_160, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(run_160, workdir)
    before = _files(workdir)
    out = _script(workdir, "seed=1", "data.train_limit=128", "total_images=320")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out.stderr[-3000:]
    for part in ("data.limit 256 → 128", "data.num_examples 256 → 128", "seed 0 → 1",
                 "use a new --workdir, or put the old values back"):
        assert part in errors[0]
    assert _files(workdir) == before  # checkpoints, samples, metrics and run.json untouched

    # a workdir from before run.json: resumed unchecked, and recorded
    (workdir / "run.json").unlink()
    out = _script(workdir, "total_images=160")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((workdir / "run.json").read_text())["seed"] == 0


def test_four_devices_follow_the_single_device_trajectory(full_run, tmp_path):
    """Data parallel over 4 (simulated) devices: the same losses as one device, up to reduction order."""
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"}
    out = subprocess.run([sys.executable, str(ROOT / "scripts/train_gan.py"), "--config", f"{CONFIG}:smoke",
                          "--workdir", str(tmp_path), "--set", "async_checkpoints=False"],
                         capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["devices"] == 4
    one, four = _metrics(full_run[0] / "metrics.jsonl"), _metrics(tmp_path / "metrics.jsonl")
    for key in ("gan/D/loss", "gan/G/loss", "gan/D/r1"):
        np.testing.assert_allclose([r[key] for r in four], [r[key] for r in one], rtol=2e-3, atol=1e-5)


def test_divergence_stops_with_a_clear_message(tmp_path):
    with pytest.raises(gan_trainer.TrainingDiverged, match="diverged by step .* last good checkpoint"):
        gan_trainer.train_and_evaluate(_smoke("optim.g_lr=1e12", "optim.d_lr=1e12"), tmp_path)
    assert not (tmp_path / "export").exists()  # nothing past the last good step was exported


def test_nest_discriminator_hinge_and_the_fid_hook(tmp_path):
    """The NesT discriminator with the hinge loss trains; the FID hook sees the EMA generator every 32 images
    and the checkpoint with the lowest value is kept as the best."""
    values, seen = iter([5.0, 3.0, 4.0, 6.0]), []

    def fid_fn(checkpoint):
        seen.append((checkpoint.config.kind, checkpoint.metadata["images_seen"], len(checkpoint.metadata["w_avg"])))
        return {"fid/fd_nest": next(values)}

    config = load_config(f"{CONFIG}:smoke,disc=nest_disc_micro_32", [
        "loss.kind=hinge", "total_images=128", "log_every_images=32", "checkpoint_every_images=32",
        "fid.every_images=32", "keep_checkpoints=1", "async_checkpoints=False"])
    _, result = gan_trainer.train_and_evaluate(config, tmp_path, fid_fn=fid_fn)
    assert result["images_seen"] == 128 and result["fid/fd_nest"] == 6.0
    assert seen == [("generator", 32, 10), ("generator", 64, 10), ("generator", 96, 10), ("generator", 128, 10)]
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [4, 8]  # best, last
    records = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "fid/fd_nest" in r]
    assert [r["fid/fd_nest"] for r in records] == [5.0, 3.0, 4.0, 6.0]
    assert all(r["gan/fid_seconds"] >= 0 for r in records)  # each evaluation's own time, beside its value
    assert load_checkpoint(tmp_path / "export_discriminator").config.kind == "nest_discriminator"


def test_it_learns_coloured_shapes(tmp_path):
    """The tiny GAN, 200 iterations on 16×16 coloured shapes, cuts the colour-histogram distance of its samples
    to held-out data to a fraction of the initial one. Measured with scripts/benchmark.py gan_toy --steps 200
    over seeds 0-4: ratios 0.17 … (see README); the threshold leaves a wide margin."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts/benchmark.py"), "gan_toy", "--seeds", "1", "--steps",
                          "200"], capture_output=True, text=True, timeout=1800, cwd=ROOT,
                         env={**os.environ, "NESTGEN_CACHE": str(tmp_path / "cache")})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["initial"] > 1.0 and result["ratio"] < 0.4, result
