"""FID (clean-fid, clean mode) of a generator checkpoint, or FD_NesT in a nestgen classifier's features.

  python scripts/evaluate_fid.py --checkpoint DIR --num 50000 --ref cifar10:train [--kid] [--pr]
  python scripts/evaluate_fid.py --checkpoint DIR --ref zip:../shared/data/cifar10-test.zip@test --features nest:CLS

--ref: cifar10:train, cifar10:test or another of clean-fid's precomputed sets (NAME:SPLIT[:RES]); zip:PATH.zip@SPLIT,
folder:PATH@SPLIT or tfds:NAME@SPLIT (statistics built once and cached under $NESTGEN_CACHE/fid); images:PATH (a
folder or .zip of images). --features nest:CLS reports FD_NesT[<classifier id>], never FID. Image i comes from seed
--seed + i (seeds from 0 to 2**32 - 1) with class i mod num_classes. Offline, clean-fid's Inception network must be at
/tmp/inception-2015-12-05.pt (or --inception-weights PATH). Prints one JSON line with the protocol spelled out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from nestgen.cli import entry_point


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="generator checkpoint directory")
    parser.add_argument("--num", type=int, default=50_000, help="number of generated images")
    parser.add_argument("--ref", default="cifar10:train", help="reference statistics or images")
    parser.add_argument("--features", default="inception", help="inception or nest:CLASSIFIER_CHECKPOINT_DIR")
    parser.add_argument("--mode", default="clean", choices=("clean", "legacy_tensorflow", "legacy_pytorch"))
    parser.add_argument("--kid", action="store_true", help="also the kernel distance (KID)")
    parser.add_argument("--pr", action="store_true", help="also precision and recall (k=3)")
    parser.add_argument("--pr-samples", type=int, default=10_000, help="images of each set for --pr (50000 on a GPU)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="seed of image 0; image i uses seed + i")
    parser.add_argument("--truncation", type=float, default=1.0, help="truncation ψ (1 = none, the FID protocol)")
    parser.add_argument("--inception-weights", help="a local copy of inception-2015-12-05.pt")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="torch device (default: cuda when available)")
    parser.add_argument("--cache-dir", help="where built reference statistics are cached (default $NESTGEN_CACHE)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    from nestgen.inference.sampling import check_seeds
    from nestgen.metrics import fid

    check_seeds(args.seed, args.num, flag="--seed")  # before torch, Inception and the reference statistics
    fid.backends()  # torch before anything imports TensorFlow
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON line only
        record = fid.evaluate_checkpoint(
            args.checkpoint, args.ref, args.num, features=args.features, mode=args.mode, kid=args.kid,
            pr=args.pr, pr_samples=args.pr_samples, seed=args.seed, batch_size=args.batch_size,
            truncation=args.truncation, device=args.device, inception_weights=args.inception_weights,
            cache_dir=args.cache_dir, verbose=not args.quiet)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
