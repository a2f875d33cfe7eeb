"""Train a NesT classifier. Hyper-parameters live in config files; flags only name files and overrides.

  python scripts/train_classifier.py --config configs/classifier_cifar10.py:variant=nest_tiny_s16_32 --workdir runs/t
  python scripts/train_classifier.py --config configs/classifier_cifar10.py:smoke --workdir /tmp/smoke
  ... --set num_steps=1000 --set optim.base_lr=5e-4       # override any config field

Running the same command again resumes from the last checkpoint in --workdir. The final model is exported to
WORKDIR/export (config.json + model.safetensors) for scripts/classify.py, scripts/evaluate.py and the app.
Multi-host: set NESTGEN_COORDINATOR=host:port, NESTGEN_NUM_PROCESSES and NESTGEN_PROCESS_ID on every host.
"""

from __future__ import annotations

import argparse
import json
import sys

from nestgen.cli import entry_point


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="config file, optionally with :arg (e.g. :smoke)")
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics and the exported model go here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = parser.parse_args(argv)

    from nestgen.training.classifier_trainer import train_and_evaluate
    from nestgen.training.configs import load_config

    config = load_config(args.config, args.set)
    _, result = train_and_evaluate(config, args.workdir)
    print(json.dumps({k: (str(v) if not isinstance(v, (int, float)) else v) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    sys.exit(main())
