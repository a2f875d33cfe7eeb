"""Moved: `python scripts/benchmark.py startup` (nestgen/benchmarks/startup.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_startup.py", "python scripts/benchmark.py startup")
