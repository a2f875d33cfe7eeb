"""The CPU relay: a whole train state in one small file, and legs that continue one run across machines."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from safetensors import SafetensorError
from safetensors.numpy import load_file

from nestgen.release import relay as relay_release
from nestgen.training import relay, relay_state
from nestgen.training.budget import TimeBudget

ROOT = Path(__file__).resolve().parents[1]


def _adam_state(seed=0):
    params = {"dense": {"kernel": jax.random.normal(jax.random.key(seed), (8, 4)), "bias": jnp.zeros(4)}}
    optimizer = optax.adamw(1e-3)
    opt_state = optimizer.init(params)
    grads = jax.tree_util.tree_map(lambda p: 1e-5 * jnp.ones_like(p), params)  # ν = 1e-11: below float16's range
    _, opt_state = optimizer.update(grads, opt_state, params)
    return {"params": params, "opt_state": opt_state, "step": jnp.asarray(7, jnp.int32)}


def test_state_round_trip_is_compact_and_keeps_small_second_moments(tmp_path):
    state = _adam_state()
    path = tmp_path / "state.safetensors"
    size = relay_state.save_state(path, state, {"job": "x", "step": 7})
    stored = load_file(str(path))
    assert all(v.dtype == np.float16 for k, v in stored.items() if k.startswith("params/"))
    assert {k for k in stored if "/mu/" in k or "/nu/" in k} == {k for k in stored if k.startswith("bf16:")}
    assert size < 4 * sum(np.size(x) for x in jax.tree_util.tree_leaves(state)) * 0.6 + 2000
    loaded, metadata = relay_state.load_state(path, jax.device_get(_adam_state(seed=1)))
    assert metadata == {"job": "x", "step": 7}
    assert int(loaded["step"]) == 7 and loaded["step"].dtype == np.int32
    np.testing.assert_allclose(loaded["params"]["dense"]["kernel"], state["params"]["dense"]["kernel"], rtol=1e-3)
    nu = loaded["opt_state"][0].nu["dense"]["kernel"]
    assert nu.dtype == np.float32 and np.all(nu > 0)  # a plain float16 ν would have flushed to zero
    np.testing.assert_allclose(nu, state["opt_state"][0].nu["dense"]["kernel"], rtol=2 ** -8)


def test_a_state_of_another_model_is_refused_by_name(tmp_path):
    path = tmp_path / "state.safetensors"
    relay_state.save_state(path, _adam_state(), {"step": 7})
    other = _adam_state()
    other["params"]["dense"]["kernel"] = jnp.zeros((8, 5))
    with pytest.raises(relay_state.RelayStateError, match=r"params/dense/kernel has shape \(8, 4\)"):
        relay_state.load_state(path, other)
    (tmp_path / "junk.safetensors").write_bytes(b"not a state")
    with pytest.raises(relay_state.RelayStateError, match="not a relay state file"):
        relay_state.read_metadata(tmp_path / "junk.safetensors")


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "state.safetensors"
    relay_state.save_state(path, _adam_state(), {"step": 7})
    before = path.read_bytes()
    with pytest.raises(SafetensorError, match="Unknown dtype"):
        relay_state.save_state(path, {"bad": object()}, {"step": 8})
    assert path.read_bytes() == before


def test_until_accepts_a_clock_time_or_minutes_and_refuses_too_little():
    import datetime as dt

    now = dt.datetime(2026, 12, 2, 9, 0)
    assert relay.parse_until("10:30", now) == 5400
    assert relay.parse_until("90m", now) == 5400
    with pytest.raises(relay.RelayError, match="HH:MM"):
        relay.parse_until("half past ten", now)
    with pytest.raises(relay.RelayError, match="at least 2"):
        relay.parse_until("09:01", now)
    with pytest.raises(relay.RelayError, match=r"that was 60 minutes ago \(it is now 09:00\)"):
        relay.parse_until("08:00", now)
    late = dt.datetime(2026, 12, 6, 23, 40)  # a session that starts before midnight and ends after it
    assert relay.parse_until("02:10", late) == 150 * 60


def test_a_budget_that_does_not_fit_keeps_the_schedule():
    budget = TimeBudget(deadline=1e12, fit=False)
    assert all(budget.time_steps(done, 0, lambda: None) is None for done in range(40))


@pytest.fixture()
def smoke_jobs(monkeypatch):
    jobs = {"classifier": relay.Job("classifier", "classifier", "configs/classifier_cifar10.py:relay,smoke", "t"),
            "gan": relay.Job("gan", "gan", "configs/gan_cifar10.py:relay,smoke", "t",
                             moments=relay.JOBS["gan"].moments)}
    monkeypatch.setattr(relay, "JOBS", jobs)
    return jobs


class _StopAfter(TimeBudget):
    """A budget whose deadline comes after `steps` training steps (the trainers ask `must_stop` once a step)."""

    steps = 10

    def must_stop(self) -> bool:
        self.calls = getattr(self, "calls", 0) + 1
        return self.calls >= self.steps


def _leg(job, tmp_path, *overrides):
    return relay.run_leg(job, 3600, root=ROOT, state_root=tmp_path / "relay", work_root=tmp_path / "runs",
                         reserve_seconds=5,
                         overrides=("async_checkpoints=False", *overrides))


def _optimizer_count(state_path):
    stored = load_file(str(state_path))
    return {int(v.reshape(())) for k, v in stored.items() if k.endswith("/count")}


@pytest.mark.parametrize("job,settings,batch,total", [
    ("classifier", ("num_steps=30", "checkpoint_every_steps=10", "eval_every_steps=10"), 32, 30),
    ("gan", ("fid.every_images=0",), 16, 20)])
def test_legs_add_up_to_one_run(smoke_jobs, tmp_path, monkeypatch, job, settings, batch, total):
    monkeypatch.chdir(ROOT)
    state_path, record_path = tmp_path / "relay" / job / "state.safetensors", tmp_path / "relay" / job / "record.json"
    with monkeypatch.context() as patch:  # the first leg's deadline comes after 10 steps
        patch.setattr(relay, "TimeBudget", _StopAfter)
        first = _leg(job, tmp_path, *settings)
    assert (first["from_step"], first["to_step"], first["to_images"]) == (0, 10, 10 * batch)
    assert relay_state.read_metadata(state_path) == {"job": job, "step": 10, "images": 10 * batch}
    # a later leg must continue the same run: other settings are refused before anything is touched
    with pytest.raises(relay.RelayError, match="other settings"):
        _leg(job, tmp_path, *settings, "seed=1")
    second = _leg(job, tmp_path, *settings)
    assert (second["from_step"], second["to_step"], second["to_images"]) == (10, total, total * batch)
    record = json.loads(record_path.read_text())
    assert [leg["leg"] for leg in record["legs"]] == [1, 2] and record["images_seen"] == total * batch
    assert record["legs"][1]["from_images"] == record["legs"][0]["to_images"]
    assert all(leg["machine"].endswith(jax.default_backend()) and leg["wall_seconds"] > 0 for leg in record["legs"])
    if smoke_jobs[job].moments:  # Adam went on counting: the moments travelled with the state
        assert _optimizer_count(state_path) == {total}
    else:  # the GAN's state leaves Adam's moments behind (measured not to matter): Adam restarted in the 2nd leg
        assert _optimizer_count(state_path) == {total - 10}
        assert not [name for name in load_file(str(state_path)) if "/mu/" in name or "/nu/" in name]
    if job == "classifier":  # the test split at every checkpoint, the stop included
        assert [point["step"] for point in record["curve"]] == [10, 20, 30]
        assert all("eval/top1" in point for point in record["curve"])
    status = {entry["job"]: entry for entry in relay.status(ROOT, tmp_path / "relay")}
    assert status[job]["images_seen"] == total * batch and status[job]["legs"] == 2
    if job == "gan":  # the release is made from the committed state alone (package.py generator --relay)
        _release_is_the_state_s_ema_generator(tmp_path, state_path, total * batch)
    else:
        _release_is_the_state_s_classifier(tmp_path, state_path, total)


def _package(kind: str, argv: list[str]) -> int:
    """Run `scripts/package.py KIND` in this process (the relay's jobs are the smoke ones here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("package", ROOT / "scripts" / "package.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.main([kind, *argv])


def _release_is_the_state_s_classifier(tmp_path, state_path, steps):
    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.convert.tree import flatten
    from nestgen.data.synthetic import write_image_folder

    record = relay_release.export_classifier("classifier", tmp_path / "export", root=ROOT,
                                             state_root=tmp_path / "relay")
    released, stored = load_checkpoint(tmp_path / "export"), load_file(str(state_path))
    weights = {k: v for k, v in stored.items() if k.startswith("params/")}
    assert {f"params/{k}" for k in flatten(released.params)} == weights.keys()
    assert all(np.array_equal(v, weights[f"params/{k}"]) for k, v in flatten(released.params).items())
    assert released.metadata["steps"] == steps and released.metadata["relay"]["planned_steps"] == steps
    assert released.metadata["metrics"]["eval/top1"] == record["curve"][-1]["eval/top1"]
    with pytest.raises(relay.RelayError, match="not a classifier relay job"):
        relay_release.export_classifier("gan", tmp_path / "no", root=ROOT, state_root=tmp_path / "relay")
    rng = np.random.default_rng(0)
    test = write_image_folder(tmp_path / "test", rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8),
                              np.arange(40) % 10, released.class_names, split="test")
    assert _package("classifier", ["--relay", "classifier", "--state-dir", str(tmp_path / "relay"),
                                           "--output", str(tmp_path / "shipped"), "--data", f"folder:{test}"]) == 0
    card = (tmp_path / "shipped" / "README.md").read_text()
    assert f"{record['images_seen']:,} images in 2 legs" in card and f"at step {steps:,} of its planned" in card
    assert "python scripts/package.py classifier --relay classifier" in card and "| images seen | top-1 |" in card
    assert card.count("\n| 320 |") + card.count("\n| 640 |") + card.count("\n| 960 |") == 3  # the curve
    assert "\n| 960 (this release) |" in card  # then what the card's headline measured
    shipped = load_checkpoint(tmp_path / "shipped")
    assert shipped.metadata["model_card"]["test_examples"] == 40 and len(shipped.metadata["model_card"]["curve"]) == 3


def _release_is_the_state_s_ema_generator(tmp_path, state_path, images):
    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.convert.tree import flatten
    from nestgen.inference.sampling import GeneratorSampler

    record = relay_release.export_generator("gan", tmp_path / "export", root=ROOT, state_root=tmp_path / "relay")
    released, stored = load_checkpoint(tmp_path / "export"), load_file(str(state_path))
    ema = {k.removeprefix("g_ema/"): v for k, v in stored.items() if k.startswith("g_ema/")}
    weights = flatten(released.params)
    assert weights.keys() == ema.keys() and all(np.array_equal(weights[k], ema[k]) for k in ema)
    np.testing.assert_array_equal(np.asarray(released.metadata["w_avg"], np.float32),
                                  stored["w_avg"].astype(np.float32))
    assert released.metadata["images_seen"] == record["images_seen"] == images
    assert [leg["leg"] for leg in released.metadata["relay"]["legs"]] == [1, 2]
    assert load_checkpoint(tmp_path / "export_discriminator").config.kind != "generator"
    assert GeneratorSampler(released).sample([0, 1], 3).shape[0] == 2
    with pytest.raises(relay.RelayError, match="not a GAN relay job"):
        relay_release.export_generator("classifier", tmp_path / "no", root=ROOT, state_root=tmp_path / "relay")
    # the release with its card, from the state alone
    from nestgen.data.synthetic import write_image_folder

    rng = np.random.default_rng(0)
    reference = write_image_folder(tmp_path / "reference", rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8),
                                   np.arange(40) % 10, released.class_names, split="test")
    argv = ["--relay", "gan", "--state-dir", str(tmp_path / "relay"), "--output", str(tmp_path / "shipped"),
            "--num", "40", "--reference", f"folder:{reference}@test"]
    assert _package("generator", argv) == 0
    card = (tmp_path / "shipped" / "README.md").read_text()
    assert f"{images:,} images in 2 legs" in card and "python scripts/package.py generator --relay gan" in card
    assert "Level mixing (crossover 1" in card and "| images seen | FD_NesT | KD_NesT | precision | recall |" in card
    shipped = load_checkpoint(tmp_path / "shipped")
    assert shipped.metadata["model_card"]["level_mixing"]["fine"] > 0


def test_a_leg_resumes_only_its_own_state_folder_s_checkpoints(tmp_path):
    runs = tmp_path / "runs"
    mine = relay.leg_workdir(runs, "gan", tmp_path / "relay" / "gan", 1062)
    assert mine == relay.leg_workdir(runs, "gan", tmp_path / "relay" / ".." / "relay" / "gan", 1062)  # same folder
    assert mine.parent == runs / "gan" and mine.name.startswith("from-00001062-")
    others = {relay.leg_workdir(runs, "gan", tmp_path / "elsewhere" / "gan", 1062),  # another state folder
              relay.leg_workdir(runs, "gan", tmp_path / "relay" / "gan", 1063)}  # another step
    assert mine not in others and len(others) == 2


def test_script_reports_bad_arguments_in_one_line(tmp_path):
    for argv, expected in ((["--job", "gan"], "give --job and --until"),
                           (["--job", "nope", "--until", "90m"], "unknown job 'nope'"),
                           (["--job", "gan", "--until", "soon"], "HH:MM")):
        out = subprocess.run([sys.executable, str(ROOT / "scripts/relay.py"), *argv, "--state-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2, out.stderr
        assert expected in out.stderr and "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1


def test_the_help_names_every_job():
    out = subprocess.run([sys.executable, str(ROOT / "scripts/relay.py"), "--help"], capture_output=True, text=True,
                         timeout=300)
    listed = next(line for line in out.stdout.splitlines() if line.startswith("Jobs:"))
    assert listed == "Jobs: " + ", ".join(relay.JOBS) + "."


def test_a_state_without_moments_restarts_adam_but_not_the_schedule(tmp_path):
    params = {"w": jnp.ones((3,))}
    optimizer = optax.adamw(optax.cosine_decay_schedule(1e-3, 100))  # the schedule counts in its own state
    opt_state = optimizer.init(params)
    for _ in range(5):
        _, opt_state = optimizer.update({"w": jnp.full((3,), 0.1)}, opt_state, params)
    state = {"params": params, "opt_state": opt_state}
    path = tmp_path / "state.safetensors"
    small = relay_state.save_state(path, state, {}, moments=False)
    assert small < relay_state.save_state(tmp_path / "full.safetensors", state, {})
    loaded, _ = relay_state.load_state(path, jax.device_get({"params": params, "opt_state": optimizer.init(params)}))
    names = relay_state.leaves_by_name(loaded)
    counts = {k: int(v) for k, v in names.items() if k.endswith("count")}
    adam = [k for k in counts if relay_state._adam_state(next(n for n in names if "/mu/" in n)) + "/count" == k]
    assert adam and all(counts[k] == 0 for k in adam)  # Adam's bias correction starts again
    assert any(v == 5 for k, v in counts.items() if k not in adam)  # the learning-rate schedule goes on
    assert all(not np.any(v) for k, v in names.items() if "/mu/" in k or "/nu/" in k)


@pytest.mark.parametrize("name", sorted(p.parent.name for p in (ROOT / "relay").glob("*/record.json")))
def test_every_committed_run_continues_under_today_s_config(name):
    """A change to a config file that altered how a committed relay run trains would strand it (the next leg
    refuses); what is only measured (fid.level_mixing) or where the data are may change."""
    from nestgen.training.configs import load_config

    job = relay.JOBS[name]
    record = relay._read_record(ROOT / "relay" / name / "record.json", job, load_config(str(ROOT / job.config), []))
    assert record["job"] == name and record["legs"]
    metadata = relay_state.read_metadata(ROOT / "relay" / name / "state.safetensors")
    assert (metadata["step"], metadata["images"]) == (record["legs"][-1]["to_step"], record["legs"][-1]["to_images"])


def test_compare_puts_gan_jobs_side_by_side_at_equal_images(tmp_path):
    for name, curve in (("gan-r3gan", [{"images": 32_000, "fid/fd_nest": 17.7, "fid/recall": 0.14},
                                       {"images": 40_000, "fid/fd_nest": 9.0},  # a leg's end: off the grid
                                       {"images": 64_000, "fid/fd_nest": 8.25, "fid/mixing_coarse": 3.25,
                                        "fid/mixing_fine": 50.0}]),
                        ("gan-today", [{"images": 32_000, "fid/fd_nest": 36.5}])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "record.json").write_text(json.dumps({"curve": curve, "legs": []}))
    table = relay.compare(ROOT, ["gan-r3gan", "gan-today"], state_root=tmp_path).splitlines()
    assert table[2:] == ["| 32,000 | gan-r3gan | 17.70 | – | – | 0.140 | – / – |",
                         "| 32,000 | gan-today | 36.50 | – | – | – | – / – |",
                         "| 64,000 | gan-r3gan | 8.25 | – | – | – | 3.2 / 50.0 |",
                         "| 64,000 | gan-today | – | – | – | – | – / – |"]
    for jobs, message in ((["gan-mixing"], "has no record yet"), (["classifier"], "not a GAN job"),
                          (["nope"], "unknown relay job"), ([], "name the GAN jobs")):
        with pytest.raises(relay.RelayError, match=message):
            relay.compare(ROOT, jobs, state_root=tmp_path)
    with pytest.raises(relay.RelayError, match="--every 0"):
        relay.compare(ROOT, ["gan-today"], every=0, state_root=tmp_path)
    out = subprocess.run([sys.executable, str(ROOT / "scripts/relay.py"), "--compare", "gan-today",
                          "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "| 32,000 | gan-today | 36.50 |" in out.stdout, out.stderr
