"""Moved: `python scripts/benchmark.py window` (nestgen/benchmarks/window.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_window.py", "python scripts/benchmark.py window")
