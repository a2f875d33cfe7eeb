"""The helpers under both training loops (loop.py) and the time budget's questions (budget.py)."""

import time

import jax.numpy as jnp
import numpy as np
import pytest

from nestgen.training.budget import TimeBudget
from nestgen.training.loop import Throughput, finite, itstime, mean_metrics


def test_itstime_in_steps_is_every_multiple_and_the_last_step():
    due = [done for done in range(1, 24) if itstime(done, 5, 23)]
    assert due == [5, 10, 15, 20, 23]
    assert not any(itstime(done, 0, 23) for done in range(1, 24))  # unset: never, not even at the end


def test_itstime_in_images_fires_when_a_multiple_is_passed():
    """The GAN counts images: a step of 48 images passes the multiples of 80 at 96, 192, 288 … (not exactly)."""
    due = [seen for seen in range(48, 481, 48) if itstime(seen, 80, 480, previous=seen - 48)]
    assert due == [96, 192, 240, 336, 432, 480]


def test_mean_metrics_in_name_order_averages_what_each_step_has():
    pending = [{"loss": jnp.float32(1.0), "acc": jnp.float32(0.5)},
               {"loss": jnp.float32(3.0), "acc": jnp.float32(0.7), "r1": jnp.float32(2.0)}]
    averaged = mean_metrics(pending)
    assert list(averaged) == ["acc", "loss", "r1"]
    assert averaged == pytest.approx({"loss": 2.0, "acc": 0.6, "r1": 2.0})
    assert all(type(v) is float for v in averaged.values())


def test_finite_checks_the_metrics_and_the_weights():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    assert finite({"loss": 1.0}, params, params)
    assert not finite({"loss": float("nan")}, params)
    assert not finite({"loss": 1.0}, params, {"w": jnp.array([1.0, np.inf])})


def test_throughput_leaves_out_excluded_seconds():
    throughput = Throughput()
    throughput.exclude(-100.0)  # as if 100 s of training had passed
    assert 0 < throughput.images_per_second(1000) <= 10.0
    assert throughput.images_per_second(10) > 10.0  # the count starts again


def test_the_budget_fits_with_the_evaluations_and_refits_when_slower():
    budget = TimeBudget(deadline=time.monotonic() + 100.0, reserve_seconds=10.0, calibration_steps=3,
                        eval_seconds=5.0)
    paces = [budget.seconds_per_step(done, 0, lambda: None, steps_between_evaluations=10) for done in range(1, 7)]
    assert paces[:4] == [None] * 4 and paces[5] is None
    assert paces[4] >= 0.5  # 5 s per evaluation every 10 steps: at least 0.5 s a step
    assert 5 + 40 <= budget.fitted_steps(5, 2.0) <= 5 + 43  # 85 s after the reserve and the last evaluation
    assert budget.refitted_steps(5, 10**6) is None  # no pace observed yet
    time.sleep(0.01)
    assert budget.refitted_steps(6, 10**9) < 10**9  # far too long for what is left: shortened
    assert budget.refitted_steps(6, 7) is None and budget.refitted_steps(7, 7) is None  # fits; the last step
