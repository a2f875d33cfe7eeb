"""NesT-T/S/B on ImageNet-1k at 224x224 with the official recipe (tfds `imagenet2012`, prepared manually).

  python scripts/train_classifier.py --config configs/classifier_imagenet.py:variant=nest_base_s196_224 --workdir DIR

Differences from CIFAR: 4x4 patches and 14x14-token blocks (the variant), inception crop + RandAugment, 20 warm-up
epochs, ImageNet statistics, evaluation at 224 after resizing to 256 (crop_pct 0.875). The official colour jitter
(strength 0.3) is not implemented.
"""

import ml_collections

from nestgen.training.configs import load_sibling, parse_config_arg

_cifar10 = load_sibling(__file__, "classifier_cifar10")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = parse_config_arg(arg)
    c = _cifar10.base_config(args.get("variant", "nest_tiny_s196_224"), num_classes=1000,
                             train="tfds:imagenet2012", eval="tfds:imagenet2012", mean=IMAGENET_MEAN,
                             std=IMAGENET_STD)
    c.data.eval_split = "validation"
    c.data.streaming = True  # 1.28M images of varying size: streamed, not held in memory
    c.input.image_size, c.input.crop_pct = 224, 0.875
    c.augment.recipe = "imagenet"
    c.optim.warmup_epochs = 20.0
    c.global_batch, c.eval_batch = 1024, 1000
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 500, 12500, 5000
    if args.get("bf16"):
        c.dtype = "bfloat16"
    return _cifar10.smoke(c) if args.get("smoke") else c
