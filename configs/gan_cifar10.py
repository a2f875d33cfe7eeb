"""The class-conditional NesT GAN on CIFAR-10 (spec.md §3 recipe), from the shared JPEG archive.

  python scripts/train_gan.py --config configs/gan_cifar10.py --workdir runs/gan          # GPU
  python scripts/train_gan.py --config configs/gan_cifar10.py:smoke --workdir /tmp/gan    # CPU, ~1 min
  python scripts/train_gan.py --config configs/gan_cifar10.py:cpu --workdir runs/gan-cpu  # the CPU stand-in

  python scripts/campaign.py --job gan --minutes 8 --out OUT                   # one borrowed H200 window (:h200)

  python scripts/relay.py --job gan --until 08:40      # one leg of the long CPU run (:relay)

Arguments (comma separated): variant=<generator>, disc=<discriminator>, uncond, bf16, smoke, cpu, h200, relay,
arm=<r3gan|mixing|today> (with relay: one arm of the recipe comparison), shrink (with h200: its sizes shrunk for a
CPU rehearsal), skips (the generator with a to-RGB picture from every level, StyleGAN2's skip generator),
in_block (levels below the root share one position embedding among their blocks), root_positions (only the root
has a position embedding), coarse_positions (every level but the finest has one): so that the layout comes down the
tree (nestgen/models/generator.py, `positions`).
"""

import ml_collections

from nestgen.shipped import FD_FEATURES
from nestgen.training.configs import parse_config_arg


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = parse_config_arg(arg)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.generator = ml_collections.ConfigDict({"variant": args.get("variant", "nest_gen_32_cond"), "overrides": {}})
    # The discriminator's num_classes follows the generator's (projection conditioning).
    c.discriminator = ml_collections.ConfigDict({"variant": args.get("disc", "conv_disc_32"), "overrides": {}})
    c.dtype = "float32"  # compute dtype of G and D ("bfloat16" for mixed precision); parameters stay float32
    c.fused_attention = False  # jax.nn.dot_product_attention (cuDNN flash attention on GPUs); same function
    c.remat = False  # recompute transformer layers in the backward pass: less memory, ~1 more forward
    c.data = ml_collections.ConfigDict({
        "train": "zip:../shared/data/cifar10-train.zip", "train_split": "train", "data_dir": None,
        "cache_dir": None, "train_limit": None, "xflip": True})
    c.loss = ml_collections.ConfigDict({
        "kind": "non_saturating",  # or "hinge", or "relativistic" (R3GAN's pairing loss; add r2_gamma)
        "r1_gamma": 0.05, "r1_every": 16,  # lazy R1 on reals: every 16 D steps, weighted ×16
        "r2_gamma": 0.0,  # the same penalty on fakes (R2), on the R1 steps
        "level_mixing": 0.0,  # probability that a fake takes its fine levels from a second latent
        "diffaugment": "color,translation,cutout"})  # "" disables DiffAugment
    c.optim = ml_collections.ConfigDict({"g_lr": 2e-4, "d_lr": 2e-4, "b1": 0.0, "b2": 0.99, "eps": 1e-8})
    c.ema = ml_collections.ConfigDict({"half_life_images": 500_000, "rampup": 0.05})  # rampup: ≤ 5% of images seen
    c.w_avg_beta = 0.995  # tracked mean of w (per class when conditional) for truncation
    c.global_batch = 64
    c.total_images = 20_000_000
    c.log_every_images = 6_400
    c.sample_every_images = 256_000
    c.checkpoint_every_images = 256_000
    c.keep_checkpoints = 2
    c.async_checkpoints = True
    c.grid = ml_collections.ConfigDict({"rows": 10, "columns": 10, "seed": 0})  # one row per class
    # Periodic FID / FD_NesT of the EMA generator; 0 disables. features: "inception" or "nest:<classifier dir>".
    c.fid = ml_collections.ConfigDict({"every_images": 0, "num": 10_000, "reference": "cifar10:train",
                                       "features": "inception", "batch_size": 100, "kid": False, "pr": False,
                                       "level_mixing": False})  # level_mixing: also how far each seed moves pixels
    if args.get("uncond"):
        c.generator.variant = c.generator.variant.removesuffix("_cond")
    if args.get("bf16"):
        c.dtype = "bfloat16"
    if args.get("cpu"):
        cpu(c, args)
    if args.get("relay"):
        relay(c, args)
    if args.get("h200"):
        h200(c)
        if args.get("shrink"):
            shrink_h200(c)
    if args.get("smoke"):
        smoke(c)
    if args.get("skips"):  # after the presets, which may replace the generator's overrides
        c.generator.overrides.rgb_skips = True
    if args.get("in_block"):
        c.generator.overrides.positions = "in_block"
    if args.get("root_positions"):
        c.generator.overrides.positions = "root"
    if args.get("coarse_positions"):
        c.generator.overrides.positions = "coarse_levels"
    return c


def cpu(c: ml_collections.ConfigDict, args: dict) -> None:
    """What 2 CPU cores can train in a few hours: the micro generator and discriminator, batch 32."""
    c.generator.variant = args.get("variant", "nest_gen_micro_32_cond")
    c.discriminator.variant = args.get("disc", "conv_disc_micro_32")
    c.global_batch = 32
    c.optim.g_lr = c.optim.d_lr = 1e-3
    c.ema.half_life_images = 20_000
    c.total_images = 1_000_000
    c.log_every_images, c.sample_every_images, c.checkpoint_every_images = 3_200, 64_000, 32_000
    # FD_NesT (offline, no Inception download) in the pinned features (nestgen.shipped) against the test images
    c.fid.update({"every_images": 64_000, "num": 2_000, "reference": "zip:../shared/data/cifar10-test.zip@test",
                  "features": FD_FEATURES, "batch_size": 100})


ARMS = {"r3gan": ("relativistic", 0.0), "mixing": ("non_saturating", 0.9), "today": ("non_saturating", 0.0)}


def relay(c: ml_collections.ConfigDict, args: dict) -> None:
    """The long CPU run carried from session to session (scripts/relay.py --job gan): the micro GAN of `cpu` with
    R3GAN's relativistic loss (R1 + R2, γ 0.05 each) and level mixing 0.9, to 1.5 M images. FD_NesT, KD_NesT,
    precision and recall of 2,000 EMA samples every 32,000 images, always with the same features
    (nestgen.shipped.FD_FEATURES: the classifier first shipped, `classifier-cifar10-nest_micro_32`), against the
    CIFAR-10 test images, and how far the coarse and the fine seed move the picture (level mixing at crossover 1).
    A checkpoint (and the relay state) every 6,400 images. `arm=` makes one 256,000-image
    arm of the recipe comparison that differs only in the loss: r3gan (no level mixing), mixing (non-saturating
    loss), today (neither)."""
    cpu(c, args)
    arm = args.get("arm")
    if arm is not None and arm not in ARMS:
        raise ValueError(f"arm={arm!r}: known arms are {', '.join(ARMS)}")
    kind, mixing = ARMS[arm] if arm else ("relativistic", 0.9)
    c.loss.kind, c.loss.level_mixing = kind, mixing
    c.loss.r2_gamma = c.loss.r1_gamma if kind == "relativistic" else 0.0
    c.total_images = 256_000 if arm else 1_500_000
    c.log_every_images, c.sample_every_images, c.checkpoint_every_images = 3_200, 64_000, 6_400
    c.keep_checkpoints = 2
    c.fid.update({"every_images": 32_000, "kid": True, "pr": True, "level_mixing": True})


def h200(c: ml_collections.ConfigDict) -> None:
    """One borrowed H200 window (scripts/campaign.py fits total_images to the minutes it is given): bfloat16,
    batch 256, a generator sized so that the EMA generator (release) and the generator + discriminator (resume
    state) come back in float16 within the window's 8 files of 16 MiB (11.2 M + 4.6 M parameters: the root
    level 384 wide instead of nest_gen_32's 512). FD_NesT with the shipped classifier, and a checkpoint, every
    1 M images, the best EMA generator kept. The loss is R3GAN's relativistic pairing loss with R1 and R2: the
    best of four recipes compared at micro scale at equal images seen (`scripts/benchmark.py gan_configs`, README
    "Choosing the GPU recipe")."""
    c.dtype = "bfloat16"
    c.generator.overrides = {"dims": (128, 256, 256, 384)}
    c.loss.kind, c.loss.r2_gamma = "relativistic", c.loss.r1_gamma
    c.global_batch = 256
    # 2e-4 (R3GAN's and StyleGAN2's rate): at 1e-3, the rate of the micro CPU recipe, these networks diverged on the
    # CPU within 76 steps at batch 8 and 72 at batch 32 (D loss 27,000 / 291,000); at 2e-4 they stayed bounded
    # (README "Choosing the GPU recipe")
    c.optim.g_lr = c.optim.d_lr = 2e-4
    c.ema.half_life_images = 250_000
    c.total_images = 100_000_000  # an upper bound; the campaign's budget decides
    # a checkpoint at every FD_NesT: the campaign rewrites the release and resume files into --out each time
    c.log_every_images, c.sample_every_images, c.checkpoint_every_images = 51_200, 10_240_000, 1_024_000
    c.async_checkpoints = False
    c.fid.update({"every_images": 1_024_000, "num": 2_000, "reference": "zip:../shared/data/cifar10-test.zip@test",
                  "features": FD_FEATURES, "batch_size": 500})


def shrink_h200(c: ml_collections.ConfigDict) -> None:
    """The H200 preset with only its sizes shrunk, for rehearsing a window on a CPU (scripts/campaign.py
    --rehearse): the same architecture families, bfloat16, relativistic loss with lazy R1 + R2, DiffAugment, EMA,
    FD_NesT in the loop with a checkpoint at each, the 8-file output; networks 8× narrower, batch 16, 2,048
    training images, an evaluation every 512 images on 256 samples."""
    c.generator.overrides = {"dims": (16, 32, 32, 48), "heads": (1, 2, 2, 2), "latent_dim": 32, "w_dim": 64}
    c.discriminator.overrides = {"channels": (16, 32, 32, 32)}
    c.data.train_limit = 2048
    c.global_batch = 16
    c.log_every_images, c.checkpoint_every_images = 64, 512
    c.fid.update({"every_images": 512, "num": 256, "batch_size": 64})


def smoke(c: ml_collections.ConfigDict) -> None:
    """A 16×16 micro GAN on 256 training images for 20 steps: the whole trainer end to end on a CPU."""
    c.generator.overrides = {"image_size": 16, "num_levels": 3, "dims": (16, 32, 32), "heads": (1, 2, 2),
                             "depths": (1, 1, 1), "latent_dim": 16, "w_dim": 32}
    c.generator.variant = "nest_gen_micro_32_cond" if c.generator.variant.endswith("_cond") else "nest_gen_micro_32"
    if c.discriminator.variant.startswith("nest"):
        c.discriminator.variant = "nest_disc_micro_32"
        c.discriminator.overrides = {"image_size": 16, "dims": (16, 32, 32), "heads": (1, 2, 2)}
    else:
        c.discriminator.variant = "conv_disc_micro_32"
        c.discriminator.overrides = {"image_size": 16, "channels": (16, 32, 32)}
    c.data.train_limit = 256
    c.global_batch = 16
    c.loss.r1_every = 4
    c.total_images = 320
    c.log_every_images, c.sample_every_images, c.checkpoint_every_images = 80, 160, 160
    c.ema.half_life_images = 1_000
    c.grid.rows, c.grid.columns = 10, 4
    c.fid.num = 64
