"""NesT on CIFAR-100 with the official recipe, from tfds `cifar100` (or a local folder/zip via data.train=...).

  python scripts/train_classifier.py --config configs/classifier_cifar100.py:variant=nest_small_s16_32 --workdir DIR
"""

import ml_collections

from nestgen.training.configs import load_sibling, parse_config_arg

_cifar10 = load_sibling(__file__, "classifier_cifar10")

CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = parse_config_arg(arg)
    c = _cifar10.base_config(args.get("variant", "nest_tiny_s16_32"), num_classes=100, train="tfds:cifar100",
                             eval="tfds:cifar100", mean=CIFAR100_MEAN, std=CIFAR100_STD)
    if args.get("bf16"):
        c.dtype = "bfloat16"
    return _cifar10.smoke(c) if args.get("smoke") else c
