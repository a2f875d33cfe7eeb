"""Moved: `python scripts/benchmark.py relay_state` (nestgen/benchmarks/relay_state.py). This old name only says so."""

from nestgen.cli import moved

moved("scripts/benchmark_relay_state.py", "python scripts/benchmark.py relay_state")
