"""Moved: `python scripts/benchmark.py gan_toy` (nestgen/benchmarks/gan_toy.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_gan_toy.py", "python scripts/benchmark.py gan_toy")
