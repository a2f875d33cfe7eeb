"""Moved: `python scripts/benchmark.py gradcat_scores` (nestgen/benchmarks/gradcat_scores.py)."""

from nestgen.cli import moved

moved("scripts/benchmark_gradcat_scores.py", "python scripts/benchmark.py gradcat_scores")
