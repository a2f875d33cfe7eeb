"""Moved: `python scripts/benchmark.py gradcat` (nestgen/benchmarks/gradcat.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_gradcat.py", "python scripts/benchmark.py gradcat")
