r"""Turn a trained GAN (its EMA generator) into a release checkpoint with a model card and a sample grid.

  python scripts/package.py generator --export runs/gan-cpu/export \
      --output checkpoints/gan-cifar10-nest_gen_micro_32_cond --hardware "2-core x86_64 CPU" --train-time "..." \
      --train-command "python scripts/train_gan.py --config configs/gan_cifar10.py:cpu --workdir runs/gan-cpu"
  python scripts/package.py generator --relay gan --output checkpoints/gan-cifar10-nest_gen_micro_32_cond

`--relay JOB` packages the committed state of a CPU relay run (relay/JOB, scripts/relay.py): hardware, hours,
legs and the curve of FD_NesT, KD_NesT, precision and recall come from its record.

Measures FD_NesT (the Fréchet distance in the pooled features of the pinned classifier nestgen.shipped.FD_FEATURES,
spec.md §5's offline proxy; never called FID), KD_NesT and precision/recall of `--num` samples against the CIFAR-10
test images with float32 and with float16 weights, ships float16 when FD_NesT moves by less than 1%, measures how
much the coarse and the fine levels' seeds move the picture (sampling.level_mixing_effect, crossover 1), writes
`samples.png` (one row per class, seeds 0…9 in every row), the curve of the run (from its metrics.jsonl or relay
record) and README.md (the card).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from nestgen.release import add_source_arguments
from nestgen.shipped import FD_FEATURES
from nestgen.shipped import REPOSITORY as ROOT

DEFAULT_REFERENCE = "zip:../shared/data/cifar10-test.zip@test"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `scripts/package.py generator`."""
    add_source_arguments(parser, "the GAN trainer's export directory (EMA generator)",
                         "a CPU relay GAN job's committed state (relay/JOB)")
    parser.add_argument("--reference", default=DEFAULT_REFERENCE)
    parser.add_argument("--features", default=FD_FEATURES)
    parser.add_argument("--num", type=int, default=2000, help="samples for FD_NesT (the regression test uses 2,000)")
    parser.add_argument("--title", default="NesT GAN, class-conditional CIFAR-10")
    parser.add_argument("--note", default="")


def package(args: argparse.Namespace) -> dict:
    """Write the release checkpoint `args.output` with its model card; returns what the command prints."""
    from nestgen.metrics import fid  # torch before TensorFlow

    fid.backends()
    import numpy as np

    from nestgen.convert.checkpoint import load_checkpoint, save_checkpoint
    from nestgen.files import strip_machine_paths
    from nestgen.inference.sampling import GeneratorSampler, grid, level_mixing_effect, save_png
    from nestgen.release.relay import release_export

    export, curve = release_export(args, "generator", ROOT)
    if curve is None:
        curve = _curve(Path(args.export).parent)
    network = fid.load_features(args.features)

    def measure(checkpoint):
        result = fid.evaluate(GeneratorSampler(checkpoint, batch_size=100), args.reference, args.num,
                              features=network, kid=True, pr=True, batch_size=100)
        return result

    full = measure(export)
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp) / "half", export.config, export.params, class_names=export.class_names,
                        preprocess=export.preprocess, weights_dtype="float16", metadata=export.metadata)
        half = measure(load_checkpoint(Path(tmp) / "half"))
    fd32, fd16 = full.metrics["fd_nest"], half.metrics["fd_nest"]
    dtype = "float16" if abs(fd16 - fd32) < 0.01 * fd32 else "float32"
    shipped = half if dtype == "float16" else full
    card = {"metric": shipped.label, **shipped.metrics, "fd_nest_float32_weights": fd32,
            "fd_nest_float16_weights": fd16, "protocol": shipped.protocol, "hardware": args.hardware,
            "train_time": args.train_time, "train_command": args.train_command,
            "images_seen": export.metadata.get("images_seen"), "curve": curve,
            "level_mixing": level_mixing_effect(GeneratorSampler(export, batch_size=100), crossover=1)}
    metadata = dict(export.metadata, model_card=card)
    out = save_checkpoint(args.output, export.config, export.params, class_names=export.class_names,
                          preprocess=export.preprocess, weights_dtype=dtype, metadata=metadata)
    sampler = GeneratorSampler.from_directory(out, batch_size=100)
    rows = [sampler.sample(range(10), class_index=c) for c in range(max(export.config.num_classes, 1))]
    save_png(grid(np.concatenate(rows), columns=10), out / "samples.png")
    card_text = strip_machine_paths(_card(args, export, card, dtype, out))  # no folders of this machine
    (out / "README.md").write_text(card_text)
    return {"output": str(out), "weights_dtype": dtype, "metric": shipped.label, **shipped.metrics}


def _curve(workdir: Path) -> list[dict[str, float]]:
    """The run's periodic FD_NesT: [{"images": …, "fid/fd_nest": …}] from WORKDIR/metrics.jsonl."""
    path = workdir / "metrics.jsonl"
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_step = {}
    for r in records:
        by_step.setdefault(r["step"], {}).update(r)
    return [{"images": int(r["gan/images_seen"]), **{k: v for k, v in r.items() if k.startswith("fid/")}}
            for _, r in sorted(by_step.items()) if "fid/fd_nest" in r and "gan/images_seen" in r]


def _card(args, export, card: dict, dtype: str, out: Path) -> str:
    cfg, meta = export.config, export.metadata
    config = meta.get("config", {})
    disc = meta.get("discriminator", {})
    disc_text = f"{disc.get('kind', '?')} " + ", ".join(f"{k}={v}" for k, v in disc.items() if k != "kind")
    optim, loss = config.get("optim", {}), config.get("loss", {})
    size_kb = (out / "model.safetensors").stat().st_size / 1024
    curve = "\n".join(f"| {p['images']:,} | {p['fid/fd_nest']:.3f} | {_number(p, 'fid/kd_nest', 4)} | "
                      f"{_number(p, 'fid/precision', 3)} | {_number(p, 'fid/recall', 3)} | "
                      f"{_number(p, 'fid/mixing_coarse', 1)} / {_number(p, 'fid/mixing_fine', 1)} |"
                      for p in card["curve"]) or "| – | – | – | – | – | – |"
    shape = "".join(text for flag, text in (
        (cfg.rgb_skips, ", a to-RGB picture from every level (skips)"),
        (cfg.positions == "in_block", ", in-block position embeddings below the root"),
        (cfg.positions == "root", ", a position embedding at the root only"),
        (cfg.positions == "coarse_levels", ", no position embedding at the finest level")) if flag)
    mixing = card["level_mixing"]
    p = card["protocol"]
    return f"""# {args.title}: `{out.name}`

{args.note}

![samples: one row per class, seeds 0-9](samples.png)

| item | details |
|---|---|
| generator | `{config.get('generator', {}).get('variant', '?')}`: {cfg.image_size}×{cfg.image_size}, blocks of \
{cfg.block_size}×{cfg.block_size} pixels, {cfg.num_levels} levels, dims {list(cfg.dims)} (finest first), heads \
{list(cfg.heads)}, depths {list(cfg.depths)}, z {cfg.latent_dim}, w {cfg.w_dim}, {cfg.num_classes} classes{shape} |
| discriminator (training only) | {disc_text} |
| weights | `model.safetensors`, {dtype} ({size_kb:.0f} KiB), the EMA generator; float16 only when FD_NesT moves < 1% \
(float32 {card['fd_nest_float32_weights']:.3f}, float16 {card['fd_nest_float16_weights']:.3f}) |
| truncation | `config.json` metadata `w_avg`: the tracked mean of w per class |
| classes | {', '.join(export.class_names)} |
| training data | {meta.get('train_data')} (JPEG-compressed CIFAR-10), x-flips |
| recipe | {loss.get('kind')} loss, R1 γ {loss.get('r1_gamma')}{_r2(loss)} every {loss.get('r1_every')} steps, \
level mixing {loss.get('level_mixing', 0.0)} (fraction of fakes with a second seed's fine levels), DiffAugment \
{loss.get('diffaugment')}, Adam β ({optim.get('b1')}, {optim.get('b2')}), lr G {optim.get('g_lr')} / D \
{optim.get('d_lr')}, batch {meta.get('global_batch')}, EMA half-life \
{config.get('ema', {}).get('half_life_images')} images, compute {config.get('dtype')} |
| trained | {meta.get('images_seen', 0):,} images ({meta.get('steps')} iterations); {args.hardware}; {args.train_time} |

## Measured

- **{card['metric']} = {card['fd_nest']:.3f}** ({p['num_samples']:,} samples, seeds {p['seeds']}, \
{p['class_mix']}), KD_NesT {card.get('kd_nest', float('nan')):.4f}, precision {card['precision']:.3f}, recall \
{card['recall']:.3f} (k = 3), against {p['reference']}; features: {p['features']}.
- FD_NesT is the Fréchet distance in the pooled features of a NesT classifier, nestgen's offline proxy (here the
  pinned feature network `nestgen.shipped.FD_FEATURES`, the first shipped classifier, not today's default one):
  it is **not FID** and not comparable with published FIDs (spec.md §5: StyleGAN2-ADA 2.42 conditional, ViTGAN 6.66,
  TransGAN 9.26, all clean/legacy Inception FID with 50k samples). For reference on the same scale: the first
  10,000 CIFAR-10 training images score 0.048 and a randomly initialised `nest_gen_micro_32_cond` 112.9.
- No FID: clean-fid's Inception weights cannot be downloaded on the machine that trained this model.
- Level mixing (crossover {mixing['crossover']}, seeds 0…7, every class): changing the coarse levels' seed moves
  pixels by {mixing['coarse']:.1f} / 255 on average, the fine levels' seed by {mixing['fine']:.1f} / 255.

Measured during training (the trainer's periodic evaluation, EMA samples, the same features):

| images seen | FD_NesT | KD_NesT | precision | recall | level mixing: coarse / fine seed (pixels /255) |
|---|---|---|---|---|---|
{curve}

Reproduce the measurement:

```bash
python scripts/evaluate_fid.py --checkpoint {out} --num {args.num} --ref {args.reference} \\
    --features {args.features} --kid --pr
```

Reproduce the model:

```bash
{args.train_command}
{_package_command(args, out)}
```
"""


def _r2(loss: dict) -> str:
    return f" and R2 γ {loss['r2_gamma']}" if loss.get("r2_gamma") else ""


def _number(point: dict, key: str, digits: int) -> str:
    return f"{point[key]:.{digits}f}" if key in point else "–"


def _package_command(args, out: Path) -> str:
    if args.relay:
        return f"python scripts/package.py generator --relay {args.relay} --output {out}"
    return (f"python scripts/package.py generator --export WORKDIR/export --output {out} --hardware \"...\" "
            '--train-time "..." \\\n    --train-command "..."')
