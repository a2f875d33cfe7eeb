"""Warming the app up behind an open door: the page answers within seconds of `python app.py` while each model
function compiles in the background (XLA; a restart with the persistent compilation cache mostly loads them). A
request that needs a function still compiling waits for it and says so on its tab's status line; the terminal
prints each step as it ends and the page shows a progress banner until all are done.

Steps are named after what they compile ("generator", "classifier", "level mixing", "projection", "range of w",
"discriminator") and run in the order the first clicks need them: the page's first view generates samples.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence


class WarmUp:
    """The warm-up's progress, shared by the thread that runs it and the request threads that wait for it.

    `plan(names)` before the app serves; `run(steps)` compiles them in order (one thread); `wait(name)` blocks a
    request until that step is done (at once when it is, or when no such step was planned); `banner()` is the
    page's one-line progress, empty once everything is warm. A step that fails is reported and counted as done:
    its requests then compile for themselves, and fail with their own message if the model itself is broken.
    """

    def __init__(self) -> None:
        self._done: dict[str, threading.Event] = {}
        self.seconds: dict[str, float] = {}  # step → seconds it took (wall clock)
        self.failures: dict[str, str] = {}  # step → its error, one line
        self.current: str | None = None
        self.started = time.perf_counter()

    def plan(self, names: Sequence[str]) -> None:
        self._done = {name: threading.Event() for name in names}
        self.started = time.perf_counter()

    @property
    def planned(self) -> bool:
        return bool(self._done)

    @property
    def ready(self) -> bool:
        return all(event.is_set() for event in self._done.values())

    def run(self, steps: Sequence[tuple[str, Callable[[], object]]],
            report: Callable[[str, float, str | None], None] | None = None) -> dict[str, float]:
        """Compile each (name, call) in turn → seconds per step; report(name, seconds, error or None) after each."""
        if not self.planned:
            self.plan([name for name, _ in steps])
        for name, call in steps:
            self.current, start, error = name, time.perf_counter(), None
            try:
                call()
            except Exception as failure:  # noqa: BLE001 - reported; the requests then meet the error themselves
                first_line = (str(failure).splitlines() or [""])[0]
                error = self.failures[name] = f"{type(failure).__name__}: {first_line}"
            self.seconds[name] = time.perf_counter() - start
            self._done[name].set()
            if report:
                report(name, self.seconds[name], error)
        self.current = None
        return dict(self.seconds)

    def wait(self, name: str, progress: Callable[..., object] | None = None) -> None:
        """Block until step `name` is done; progress(0, desc=...) says what the request waits for first."""
        event = self._done.get(name)
        if event is None or event.is_set():
            return
        if progress is not None:
            progress(0, desc=f"the app is warming up (compiling the {self.current or name}; the first start takes "
                             "longest): this request runs as soon as the " + name + " is ready")
        event.wait()

    def banner(self) -> str:
        """'' when warm; otherwise one line: what is compiling, what is done, seconds so far."""
        if self.ready:
            return ""
        done = [name for name in self._done if name in self.seconds]
        waiting = [name for name in self._done if name not in self.seconds]
        return (f"Warming up ({time.perf_counter() - self.started:.0f} s): compiling the "
                f"{self.current or waiting[0]}" + (f"; done: {', '.join(done)}" if done else "")
                + f"; still to come: {', '.join(waiting[1:]) or 'nothing'}. Requests wait for what they need.")
