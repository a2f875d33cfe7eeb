"""Moved: `python scripts/benchmark.py projection` (nestgen/benchmarks/projection.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_projection.py", "python scripts/benchmark.py projection")
