"""Moved: `python scripts/benchmark.py classifier` (nestgen/benchmarks/classifier.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_classifier.py", "python scripts/benchmark.py classifier")
