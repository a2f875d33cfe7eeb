"""Speed and quality benchmarks behind `scripts/benchmark.py`, and the timing helpers they share."""
