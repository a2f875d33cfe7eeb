"""Moved: `python scripts/benchmark.py gan_configs` (nestgen/benchmarks/gan_configs.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_gan_configs.py", "python scripts/benchmark.py gan_configs")
