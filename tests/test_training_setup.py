"""Optimizer, schedule, config loading and validation, metric log and checkpoint retention (no training)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.models.registry import init_params
from nestgen.training.checkpoints import TrainCheckpoints
from nestgen.training.classifier_trainer import validate
from nestgen.training.configs import load_config
from nestgen.training.metrics import MetricWriter
from nestgen.training.optim import create_optimizer, learning_rate_schedule, weight_decay_mask

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
CIFAR = str(ROOT / "configs" / "classifier_cifar10.py")


def test_schedule_scales_with_batch_warms_up_and_decays_to_zero():
    schedule = learning_rate_schedule(2.5e-4, global_batch=512, warmup_steps=10, total_steps=110)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(2.5e-4 * 2 / 2)
    assert float(schedule(10)) == pytest.approx(5e-4)
    assert float(schedule(60)) == pytest.approx(2.5e-4, rel=1e-3)  # half way down the cosine
    assert float(schedule(110)) == pytest.approx(0.0, abs=1e-12)


def test_position_embeddings_are_not_decayed():
    params = init_params(TINY, 0)
    mask = weight_decay_mask(params)
    assert mask["encoder"]["level_0"]["pos_embed"] is False
    assert mask["encoder"]["level_0"]["layer_0"]["attn"]["query"]["kernel"] is True
    # with zero gradients and lr 1, only decayed parameters move
    optimizer = create_optimizer(lambda step: 1.0, weight_decay=0.5)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zeros, optimizer.init(params), params)
    np.testing.assert_array_equal(updates["encoder"]["level_1"]["pos_embed"], 0.0)
    assert np.abs(np.asarray(updates["head"]["kernel"])).max() > 0


def test_configs_load_with_arguments_and_overrides():
    config = load_config(f"{CIFAR}:variant=nest_small_s16_32", ["optim.base_lr=1e-3", "num_steps=7"])
    assert config.model.variant == "nest_small_s16_32" and config.optim.base_lr == 1e-3 and config.num_steps == 7
    assert load_config(f"{CIFAR}:smoke").num_steps == 30
    assert load_config(f"{CIFAR}:bf16").dtype == "bfloat16"
    for name in ("classifier_cifar100.py", "classifier_imagenet.py"):
        validate(load_config(str(ROOT / "configs" / name)))
    with pytest.raises(KeyError, match="no field 'optim.base_learning_rate'"):
        load_config(CIFAR, ["optim.base_learning_rate=1"])


@pytest.mark.parametrize("override,message", [
    ("model.variant=nest_gigantic", "unknown model variant 'nest_gigantic'"),
    ("model.overrides={'num_classes': 10, 'image_size': 34}", "cannot hold"),
    ("input.image_size=64", "differs from the model"),
    ("data.train=zip:/nonexistent/cifar.zip", "does not exist"),
    ("dtype=float64", "config.dtype must be one of"),
    ("checkpoint_every_steps=7", "multiple of config.log_every_steps"),
    ("seed=4294967295", "config.seed 4294967295 with 2 images needs seeds up to 4294967296"),  # seed + 1 would wrap
    ("augment.randaugment_prob=2.0", "randaugment_prob is a probability"),
])
def test_bad_configs_fail_before_any_compute(override, message):
    config = load_config(f"{CIFAR}:smoke", [override])
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        validate(config)


def test_metric_log_is_cut_back_on_resume(tmp_path):
    writer = MetricWriter(tmp_path, tensorboard=False)
    for step in (5, 10, 15):
        writer.write(step, {"train/loss": 1.0 / step})
    resumed = MetricWriter(tmp_path, resume_step=10, tensorboard=False)
    assert [r["step"] for r in resumed.records()] == [5, 10]


def test_checkpoints_keep_the_last_k_and_the_best(tmp_path):
    checkpoints = TrainCheckpoints(tmp_path / "ckpt", keep=2, best_metric="eval/top1", asynchronous=False)
    state = {"w": jnp.arange(3.0)}
    for step, top1 in [(1, 0.5), (2, 0.9), (3, 0.4), (4, 0.3), (5, 0.2)]:
        checkpoints.save(step, {"w": state["w"] + step}, metrics={"eval/top1": top1})
    checkpoints.wait()
    assert checkpoints.all_steps() == [2, 4, 5]
    restored = checkpoints.restore(2, state)
    np.testing.assert_array_equal(restored["w"], np.arange(3.0) + 2)
    checkpoints.close()


def test_misspelt_mixing_setting_fails_before_any_compute():
    config = load_config(f"{CIFAR}:smoke")
    config.mixing.cutmix_alfa = 1.0
    with pytest.raises(ValueError, match="unknown mixing settings \\['cutmix_alfa'\\]"):
        validate(config)


def test_tensorboard_events_are_written_without_tensorflow(tmp_path):
    """The event file holds every finite scalar at its step, readable by TensorBoard's own loader; writing it
    imports no TensorFlow (checked in a fresh process where TensorFlow cannot be imported)."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "from nestgen.training.metrics import MetricWriter\n"
            f"w = MetricWriter({str(tmp_path)!r})\n"
            "w.write(5, {'train/loss': 1.5, 'train/nan': float('nan')}); w.write(10, {'train/loss': 0.5}); w.close()\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin"})
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert events.Tags()["scalars"] == ["train/loss"]
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(5, 1.5), (10, 0.5)]
