"""Classify image files with a nestgen checkpoint and print the top-k classes.

  python scripts/classify.py cat.png dog.jpg [--checkpoint DIR] [--top-k 5] [--json]

Without --checkpoint the shipped CIFAR-10 classifier (nestgen.shipped.DEFAULT_CLASSIFIER) is used.

Any image Pillow reads is converted and resized per the checkpoint's config. An unreadable file prints a
one-line error naming it; the other images are still classified (exit status 1 if any failed).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from nestgen.cli import entry_point
from nestgen.data.images import ImageError
from nestgen.inference.predict import ClassifierPredictor
from nestgen.shipped import default_classifier


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="nestgen checkpoint directory (default: the shipped CIFAR-10 model)")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object per image, with raw logits")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")

    predictor = ClassifierPredictor.from_directory(args.checkpoint or default_classifier())

    inputs, names, failed = [], [], 0
    for path in args.images:
        try:
            inputs.append(predictor.inputs(path))
            names.append(path)
        except ImageError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
    predictions = predictor.predict(np.stack(inputs), args.top_k) if inputs else []
    for path, prediction in zip(names, predictions, strict=True):
        if args.json:
            print(json.dumps({"image": path,
                              "top_k": [{"class": c, "index": i, "probability": p} for c, i, p in prediction.top_k],
                              "logits": [float(v) for v in prediction.logits]}))
        else:
            print(path)
            for rank, (label, index, prob) in enumerate(prediction.top_k, 1):
                print(f"  {rank}. {label:<24} {prob:7.2%}  (class {index})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
