"""Top-1, top-5 and loss of a nestgen checkpoint (trained or converted) on a data split.

  python scripts/evaluate.py --checkpoint DIR --data zip:../shared/data/cifar10-test.zip [--split test] [--limit N]

--data is a tfds name (cifar10, tfds:imagenet2012), folder:PATH (<split>/<class>/<image>) or zip:PATH.zip.
The checkpoint's own preprocessing (size, crop, normalisation) is used. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys

from nestgen.cli import entry_point


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--data-dir", help="tfds data directory")
    parser.add_argument("--limit", type=int, help="evaluate the first N examples only")
    parser.add_argument("--batch-size", type=int, default=250)
    args = parser.parse_args(argv)

    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.metrics.accuracy import evaluate_checkpoint

    checkpoint = load_checkpoint(args.checkpoint)
    result = evaluate_checkpoint(checkpoint, args.data, args.split, batch_size=args.batch_size,
                                 data_dir=args.data_dir, limit=args.limit)
    print(json.dumps({"checkpoint": args.checkpoint, "split": args.split, **result}))
    return 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    sys.exit(main())
