"""NesT on CIFAR-10 with the official recipe (spec.md §2), from the shared JPEG archives.

  python scripts/train_classifier.py --config configs/classifier_cifar10.py:variant=nest_tiny_s16_32 --workdir DIR
  python scripts/train_classifier.py --config configs/classifier_cifar10.py:smoke --workdir DIR   # CPU, ~1 min

  python scripts/campaign.py --job classifier --minutes 8 --out OUT    # one borrowed H200 window (:h200)
  python scripts/relay.py --job classifier --until 11:30                # one leg of the long CPU run (:relay)

Arguments (comma separated): variant=<registry name>, smoke, bf16, cpu (a short CPU schedule), relay (the long
CPU run carried from session to session), h200 (NesT-T in bfloat16 for a time-budgeted GPU window), shrink (with
h200: its sizes shrunk for a CPU rehearsal).
"""

import ml_collections

from nestgen.training.configs import parse_config_arg

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)


def base_config(variant: str, *, num_classes: int, train: str, eval: str, mean, std) -> ml_collections.ConfigDict:
    """The official CIFAR recipe; shared by the CIFAR-10 and CIFAR-100 configs."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.model = ml_collections.ConfigDict({"variant": variant, "overrides": {"num_classes": num_classes}})
    c.dtype = "float32"  # compute dtype; parameters stay float32
    c.fused_attention = False  # jax.nn.dot_product_attention (cuDNN flash attention on GPUs); same function
    c.remat = False  # recompute transformer layers in the backward pass: less memory, ~1 more forward
    c.data = ml_collections.ConfigDict({
        "train": train, "train_split": "train", "eval": eval, "eval_split": "test",
        "data_dir": None, "cache_dir": None, "train_limit": None, "eval_limit": None,
        "streaming": False, "shuffle_buffer": 10_000})  # streaming: for splits too large for memory
    c.input = ml_collections.ConfigDict({"image_size": 32, "crop_pct": 1.0, "mean": mean, "std": std})
    c.augment = ml_collections.ConfigDict({
        "recipe": "cifar", "pad": 4, "randaugment_layers": 2, "randaugment_magnitude": 9.0,
        "randaugment_magnitude_std": 0.5, "randaugment_prob": 0.5, "random_erasing": 0.25})
    c.mixing = ml_collections.ConfigDict({
        "mixup_alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5, "prob": 1.0, "label_smoothing": 0.1})
    c.optim = ml_collections.ConfigDict({
        "base_lr": 2.5e-4, "reference_batch": 256, "weight_decay": 0.05, "b1": 0.9, "b2": 0.999, "eps": 1e-8,
        "warmup_epochs": 5.0, "grad_clip_norm": None})
    c.global_batch = 192
    c.eval_batch = 500
    c.num_epochs = 300
    c.num_steps = None  # overrides num_epochs when set
    c.log_every_steps = 50
    c.eval_every_steps = 2600  # about 10 epochs at batch 192
    c.checkpoint_every_steps = 1300
    c.keep_checkpoints = 3
    c.async_checkpoints = True
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A tiny NesT on 512 training / 256 test images, 30 steps: the whole trainer end to end on a CPU."""
    c.model.variant = "nest_micro_32"
    c.model.overrides = {"num_classes": c.model.overrides["num_classes"], "dims": (32, 64), "heads": (2, 2),
                         "depths": (1, 1)}
    c.data.train_limit, c.data.eval_limit = 512, 256
    c.augment.randaugment_layers, c.augment.random_erasing = 0, 0.0  # pad-crop-flip only: a readable loss in
    c.mixing.prob = 0.0                                                  # 30 steps (the full recipe has unit tests)
    c.optim.base_lr, c.optim.warmup_epochs = 2e-2, 0.5
    c.global_batch, c.eval_batch = 32, 128
    c.num_steps = 30
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 5, 15, 10
    return c


def cpu(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A short schedule that 2 CPU cores finish in about 40 minutes (the CPU-trained stand-in model):
    nest_micro_32, 6 epochs, light augmentation (a short run under-fits; the official regularisers hurt it)."""
    c.model.variant = "nest_micro_32"
    c.augment.randaugment_layers, c.augment.random_erasing = 0, 0.0
    c.mixing.prob = 0.0
    c.optim.base_lr, c.optim.warmup_epochs = 2e-3, 1.0
    c.global_batch, c.eval_batch = 128, 500
    c.num_epochs = 6
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 50, 780, 200
    return c


def relay(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The long CPU run carried from session to session (scripts/relay.py --job classifier): nest_mini_32 (3
    levels, 1.3 M parameters, ~66 training images/s on 2 CPU cores) with the full official recipe (RandAugment,
    random erasing, mixup/cutmix, label smoothing, stochastic depth 0.1) for 100 epochs at batch 128, about 21 hours
    in legs. A checkpoint (and the relay state) every half epoch, the test split every 2 epochs."""
    c.model.variant = "nest_mini_32"
    c.optim.base_lr, c.optim.warmup_epochs = 2e-3, 5.0
    c.global_batch, c.eval_batch = 128, 500
    c.num_epochs = 100
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 65, 780, 195
    c.keep_checkpoints = 2
    return c


def h200(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """NesT-T, the official recipe, in bfloat16 at batch 512 for one borrowed H200 window (scripts/campaign.py):
    the campaign fits the number of steps and the cosine schedule to the minutes it is given (warm-up at most
    10% of the run); 300 epochs is only the upper bound. Evaluated on the test split, and saved, about every 10
    epochs (about every 25 s at the expected 20,000 images/s)."""
    c.model.variant = "nest_tiny_s16_32"
    c.dtype = "bfloat16"
    c.global_batch, c.eval_batch = 512, 1000
    # a checkpoint at every evaluation: the campaign rewrites the release and resume files into --out each time
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 25, 975, 975
    c.async_checkpoints = False
    return c


def shrink_h200(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The H200 preset with only its sizes shrunk, for rehearsing a window on a CPU (scripts/campaign.py
    --rehearse): NesT-T's block tree, multi-query attention, bfloat16 and the full recipe, 8× narrower (24 wide),
    batch 32 on 2,048 training images, an evaluation and a checkpoint every 16 steps on 512 test images."""
    c.model.overrides = {**c.model.overrides, "dims": (24,) * 4, "heads": (3,) * 4}
    c.data.train_limit, c.data.eval_limit = 2048, 512
    c.global_batch, c.eval_batch = 32, 256
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 4, 16, 16
    return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = parse_config_arg(arg)
    c = base_config(args.get("variant", "nest_tiny_s16_32"), num_classes=10,
                    train="zip:../shared/data/cifar10-train.zip", eval="zip:../shared/data/cifar10-test.zip",
                    mean=CIFAR10_MEAN, std=CIFAR10_STD)
    if args.get("bf16"):
        c.dtype = "bfloat16"
    if args.get("cpu"):
        c = cpu(c)
        c.model.variant = args.get("variant", c.model.variant)
    if args.get("relay"):
        c = relay(c)
    if args.get("h200"):
        c = h200(c)
        if args.get("shrink"):
            c = shrink_h200(c)
    return smoke(c) if args.get("smoke") else c
