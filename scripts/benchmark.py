"""Speed and quality benchmarks, one subcommand each (the code is nestgen/benchmarks/NAME.py); every ratio compares
measurements taken in one run, so a shared, noisy machine still gives comparable numbers.

  python scripts/benchmark.py classifier [--variant nest_tiny_s16_32 --batch 64 --rounds 3]  # nestgen vs timm NesT
  python scripts/benchmark.py generator [--variants nest_gen_32 nest_gen_64 nest_gen_128]   # img/s, cost vs pixels
  python scripts/benchmark.py data [--against nest_tiny_s16_32]  # input pipeline images/s vs the train step
  python scripts/benchmark.py latency [--repeats 20]   # the app's targets on the shipped models, after warm-up
  python scripts/benchmark.py app                      # `python app.py` start → first classification, twice
  python scripts/benchmark.py NAME --help              # a benchmark's own options

"""

from __future__ import annotations

import argparse
import importlib
import sys

from nestgen.cli import entry_point
from nestgen.runtime import keep_freed_memory

BENCHMARKS = {  # name → what it measures, in the order of --help
    "classifier": "NesT forward and train-step throughput against timm's PyTorch NesT",
    "generator": "generator images/s at 32 and 64 px, cost per image vs pixels, FLOPs, a G+D step",
    "data": "augmented training images/s, in memory and streamed, against the train step",
    "latency": "GradCAT (≤ 100 ms) and 16 samples (≤ 1 s) on the shipped models, against one forward / one sample",
    "app": "app.py from process start to the first classification (≤ 20 s), empty then warm compilation cache",
    "startup": "app.py's page, generator and ready times, cold and restarted",
    "projection": "projection quality and speed on generated and real images",
    "gradcat": "GradCAT localisation: does the leaf box land on the object that decides the class?",
    "gradcat_scores": "which GradCAT block score finds a planted pattern (spec.md §4)",
    "gan_toy": "does the 16×16 GAN learn coloured shapes?",
    "gan_configs": "GAN recipes at micro scale and equal images, for choosing the GPU recipe",
    "level_positions": "which levels of a generator place the picture (position embeddings, level mixing)",
    "relay_state": "does the relay's compact state cost anything? (K steps three ways from one checkpoint)",
    "window": "the GPU window's benchmark rows, one JSON file rewritten after every row",
}
MODULES = {"app": "app_start"}  # subcommand → module of nestgen/benchmarks where the two differ


@entry_point
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    listing = "\n".join(f"  {name:<15} {what}" for name, what in BENCHMARKS.items())
    parser = argparse.ArgumentParser(description=f"{__doc__}\nbenchmarks:\n{listing}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=BENCHMARKS, help="which benchmark (its own --help lists its options)")
    parser.parse_args(argv[:1])  # --help; none or an unknown benchmark: argparse's usage error (exit 2)
    module = importlib.import_module(f"nestgen.benchmarks.{MODULES.get(argv[0], argv[0])}")
    return module.main(argv[1:])


if __name__ == "__main__":
    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    raise SystemExit(main())
