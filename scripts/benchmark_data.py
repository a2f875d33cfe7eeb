"""Moved: `python scripts/benchmark.py data` (nestgen/benchmarks/data.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_data.py", "python scripts/benchmark.py data")
