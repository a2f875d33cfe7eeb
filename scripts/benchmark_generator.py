"""Moved: `python scripts/benchmark.py generator` (nestgen/benchmarks/generator.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_generator.py", "python scripts/benchmark.py generator")
