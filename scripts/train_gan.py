"""Train the NesT GAN. Hyper-parameters live in config files; flags only name files and overrides.

  python scripts/train_gan.py --config configs/gan_cifar10.py --workdir runs/gan
  python scripts/train_gan.py --config configs/gan_cifar10.py:smoke --workdir /tmp/gan-smoke
  ... --set total_images=1000000 --set loss.r1_gamma=0.1     # override any config field

Running the same command again resumes from the last checkpoint in --workdir. WORKDIR/export holds the EMA
generator (config.json + model.safetensors) for scripts/sample.py and the app; WORKDIR/samples the image grids;
WORKDIR/metrics.jsonl and WORKDIR/tensorboard the curves. Multi-host: as scripts/train_classifier.py.
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
    parser.add_argument("--workdir", required=True, help="checkpoints, metrics, samples and the export go here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = parser.parse_args(argv)

    from nestgen.training.configs import load_config
    from nestgen.training.gan_trainer import train_and_evaluate

    config = load_config(args.config, args.set)
    _, result = train_and_evaluate(config, args.workdir)
    print(json.dumps({k: (str(v) if not isinstance(v, (int, float)) else v) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    sys.exit(main())
