"""Train for a wall-clock budget: measure the step time in the first steps, then fix the run's length to it.

A borrowed accelerator comes for minutes, not epochs (scripts/campaign.py). The trainers take a `TimeBudget`:
they run `calibration_steps` steps after compilation, time them, and set the number of steps (and with it the
learning-rate schedule, whose length is an argument of the compiled train step, so nothing compiles again) so
that training, the evaluations and the final save all end before the deadline (never longer than the config's own
length). If the machine slows down, the trainers stop early at the last moment that still leaves
`reserve_seconds`, and save. A budget with `fit=False` (a leg of the CPU relay, scripts/relay.py) keeps the run's
own schedule and only stops and saves at the deadline, so that legs add up to one run.

The arithmetic lives here; a training loop only asks, after every step:
  `seconds_per_step(...)` — the calibrated pace, once (then `fitted_steps` gives the run's length);
  `refitted_steps(done, total)` — a shorter length when the pace observed since is slower;
  `must_stop()` — only the reserve is left: save now.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable


@dataclasses.dataclass
class TimeBudget:
    """`deadline` is a time.monotonic() value; `reserve_seconds` is kept for the final evaluation, export and save."""

    deadline: float
    reserve_seconds: float = 30.0
    calibration_steps: int = 20
    eval_seconds: float = 3.0  # expected cost of one periodic evaluation, reserved for each
    fit: bool = True  # False: keep the run's own length and schedule, only stop (and save) at the deadline
    plan_windows: int = 1  # fit a schedule K times what this budget holds; the run stops at this deadline and
    #                        later windows continue it (scripts/campaign.py --windows)
    _clock: tuple[int, float] | None = dataclasses.field(default=None, init=False, repr=False)
    first_steps_at: float | None = dataclasses.field(default=None, init=False)  # monotonic time, compiled

    @classmethod
    def from_minutes(cls, minutes: float, *, started: float | None = None, **kwargs) -> TimeBudget:
        """A budget of `minutes` counted from `started` (time.monotonic(), default now): compile time included."""
        if not minutes > 0:
            raise ValueError(f"a time budget must be positive, got {minutes} minutes")
        return cls(deadline=(time.monotonic() if started is None else started) + 60.0 * minutes, **kwargs)

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once it has passed)."""
        return self.deadline - time.monotonic()

    def fit_steps(self, done: int, seconds_per_step: float, overhead_seconds: float = 0.0) -> int:
        """The total step count that ends `reserve_seconds + overhead_seconds` before the deadline (≥ done + 1);
        with `plan_windows` K, K times the steps from 0 to there: a schedule for K windows like this one."""
        if not seconds_per_step > 0:
            raise ValueError(f"seconds per step must be positive, got {seconds_per_step}")
        left = self.remaining() - self.reserve_seconds - overhead_seconds
        this_window = done + max(1, math.floor(left / seconds_per_step))
        return this_window if self.plan_windows == 1 else self.plan_windows * this_window

    def time_steps(self, done: int, first: int, wait: Callable[[], object]) -> float | None:
        """Call after every step of a run that began at step `first` (`done` steps so far). Two steps after the
        start (compilation over) it notes the time (`first_steps_at`) and starts the clock; `calibration_steps`
        later it returns the seconds per step, once; otherwise None (always None when the budget does not `fit`).
        `wait()` blocks until the device has finished the steps dispatched so far."""
        if done == first + 2 and self.first_steps_at is None:
            wait()
            self.first_steps_at = time.monotonic()  # compilation and the first two steps are over
        if not self.fit:
            return None
        if done == first + 2:
            self._clock = (done, time.perf_counter())
        elif self._clock and done == self._clock[0] + self.calibration_steps:
            wait()
            return (time.perf_counter() - self._clock[1]) / self.calibration_steps
        return None

    def seconds_per_step(self, done: int, first: int, wait: Callable[[], object], *,
                         steps_between_evaluations: float = 0.0) -> float | None:
        """`time_steps` plus the periodic evaluations' cost: `eval_seconds` spread over the
        `steps_between_evaluations` steps from one evaluation to the next (0: the run evaluates nothing on the way).
        The pace in seconds per step that `fitted_steps` plans with, returned once; None at every other step."""
        per_step = self.time_steps(done, first, wait)
        if per_step and steps_between_evaluations:
            per_step += self.eval_seconds / steps_between_evaluations
        return per_step

    def fitted_steps(self, done: int, seconds_per_step: float) -> int:
        """`fit_steps` with one more evaluation's `eval_seconds` kept back (the last one, after the last step).

        `done` is the steps the count includes: the classifier's schedule counts from step 0 (its steps done so
        far), the GAN's length in images counts from where it is (0). Raises ValueError unless seconds_per_step > 0."""
        return self.fit_steps(done, seconds_per_step, overhead_seconds=self.eval_seconds)

    def refitted_steps(self, done: int, total: int) -> int | None:
        """A shorter total step count when the pace observed since the calibration (evaluations, logging and a
        busy machine included) would end `total` steps too late; None when `total` still fits, before the
        calibration is over, and at the last step (`done` ≥ `total`)."""
        observed = self.observed_seconds_per_step(done) if done < total else None
        if not observed:
            return None
        fitted = self.fit_steps(done, observed)
        return fitted if fitted < total else None

    def observed_seconds_per_step(self, done: int) -> float | None:
        """Wall seconds per step since the clock started, evaluations and logging included (None before)."""
        if not self._clock or done <= self._clock[0] + self.calibration_steps:
            return None
        return (time.perf_counter() - self._clock[1]) / (done - self._clock[0])

    def must_stop(self) -> bool:
        """True once only the reserve is left: save now."""
        return self.remaining() <= self.reserve_seconds
