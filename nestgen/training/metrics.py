"""Metrics to TensorBoard event files, a JSONL log and the console; only process 0 writes.

On resume the JSONL log is cut back to the restored step, so it reads exactly like a run that never stopped.
Event files are written with the `tensorboard` package's own writer and protos: no TensorFlow needed.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

import jax


class MetricWriter:
    def __init__(self, workdir: str | Path, *, resume_step: int = 0, tensorboard: bool = True):
        self.enabled = jax.process_index() == 0
        self.path = Path(workdir) / "metrics.jsonl"
        self._tb = None
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # drop records from beyond the checkpoint we resume from
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        if tensorboard:
            self._tb = _event_file(Path(workdir) / "tensorboard")

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        values = {k: float(v) for k, v in metrics.items()}
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self._tb is not None:
            from tensorboard.compat.proto import event_pb2, summary_pb2

            scalars = [summary_pb2.Summary.Value(tag=name, simple_value=value)
                       for name, value in values.items() if math.isfinite(value)]
            event = event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=scalars))
            self._tb.write(event.SerializeToString())
            self._tb.flush()

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _event_file(directory: Path):
    """A TensorBoard event file (TFRecord framing, an `Event` proto per record) opened for appending, or None
    without the `tensorboard` package. Its record writer and protos need no TensorFlow; its EventFileWriter
    would import TensorFlow when installed (for tf.io.gfile), so it is not used."""
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:  # the `train` extra brings it; JSONL and the console still work without
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}"
    writer = RecordWriter(open(path, "ab"))  # noqa: SIM115 (closed by MetricWriter.close)
    writer.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    return writer
