r"""Turn a trained classifier export into a release checkpoint with a model card.

  python scripts/package.py classifier --export runs/cpu-micro/export \
      --output checkpoints/classifier-cifar10-nest_micro_32 --hardware "2-core x86_64 CPU" --train-time "38 min" \
      --train-command "python scripts/train_classifier.py --config configs/classifier_cifar10.py:cpu --workdir ..."
  python scripts/package.py classifier --relay classifier --output checkpoints/classifier-cifar10-nest_mini_32

`--relay JOB` packages the committed state of a CPU relay run (relay/JOB, scripts/relay.py): its weights at the
last checkpoint, wherever the run is in its schedule; hardware, hours, legs and the curve of test accuracy come
from its record.

Evaluates the export on the full test split with float32 and with float16 weights, ships float16 when the test
accuracy is unchanged, records top-1/top-5 on the full split and on its first 1,000 images (the regression test's
slice) in config.json, and writes README.md (the model card).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from nestgen.release import add_source_arguments
from nestgen.shipped import REPOSITORY as ROOT

JPEG_NOTE = "on the shared JPEG-compressed CIFAR-10 test images, not the original binary release"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `scripts/package.py classifier`."""
    add_source_arguments(parser, "the trainer's export directory",
                         "a CPU relay classifier job's committed state (relay/JOB)")
    parser.add_argument("--data", default="zip:../shared/data/cifar10-test.zip")
    parser.add_argument("--split", default="test")
    parser.add_argument("--title", default="NesT CIFAR-10 classifier")
    parser.add_argument("--note", default="", help="a paragraph for the card (e.g. 'CPU-trained stand-in')")


def package(args: argparse.Namespace) -> dict:
    """Write the release checkpoint `args.output` with its model card; returns what the command prints."""
    from nestgen.convert.checkpoint import load_checkpoint, save_checkpoint
    from nestgen.files import strip_machine_paths
    from nestgen.metrics.accuracy import evaluate_checkpoint
    from nestgen.release.relay import release_export

    export, curve = release_export(args, "classifier", ROOT)
    curve = curve or []
    full32 = evaluate_checkpoint(export, args.data, args.split)
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp) / "half", export.config, export.params, class_names=export.class_names,
                        preprocess=export.preprocess, weights_dtype="float16", metadata=export.metadata)
        half = load_checkpoint(Path(tmp) / "half")
        full16 = evaluate_checkpoint(half, args.data, args.split)
    dtype = "float16" if full16["top1"] == full32["top1"] else "float32"
    shipped = half if dtype == "float16" else export
    full = full16 if dtype == "float16" else full32
    first = evaluate_checkpoint(shipped, args.data, args.split, limit=1000)
    card = {"test_top1": full["top1"], "test_top5": full["top5"], "test_loss": full["loss"],
            "test_examples": int(full["count"]), "test_top1_first_1000": first["top1"],
            "test_top1_float32_weights": full32["top1"], "test_top1_float16_weights": full16["top1"],
            "test_data": full["data"], "jpeg_note": JPEG_NOTE, "hardware": args.hardware,
            "train_time": args.train_time, "train_command": args.train_command,
            "images_seen": export.metadata.get("images_seen"), "curve": curve}
    metadata = dict(export.metadata, model_card=card)
    out = save_checkpoint(args.output, export.config, export.params, class_names=export.class_names,
                          preprocess=export.preprocess, weights_dtype=dtype, metadata=metadata)
    card_text = strip_machine_paths(_card(args, export, card, dtype))  # no folders of this machine
    (out / "README.md").write_text(card_text)
    return {"output": str(out), "weights_dtype": dtype,
            **{k: v for k, v in card.items() if isinstance(v, (int, float))}}


def _card(args, export, card: dict, dtype: str) -> str:
    cfg = export.config
    meta = export.metadata
    size_kb = (Path(args.output) / "model.safetensors").stat().st_size / 1024
    config = meta.get("config", {})
    return f"""# {args.title}: `{Path(args.output).name}`

{args.note}

| item | details |
|---|---|
| model | `{config.get('model', {}).get('variant', '?')}`: {cfg.num_levels} levels, dims {list(cfg.dims)}, \
heads {list(cfg.heads)}, depths {list(cfg.depths)}, {cfg.attention.replace('_', '-')} attention, \
{cfg.image_size}×{cfg.image_size} input, {cfg.patch_size}×{cfg.patch_size} patches, blocks of \
{cfg.block_size}×{cfg.block_size} tokens |
| weights | `model.safetensors`, {dtype} ({size_kb:.0f} KiB); float16 is used only when it leaves the test top-1 \
unchanged (float32 {card['test_top1_float32_weights']:.2%}, float16 {card['test_top1_float16_weights']:.2%}) |
| classes | {', '.join(export.class_names)} |
| preprocessing | resize to {export.preprocess['image_size']}, mean {export.preprocess['mean']}, std \
{export.preprocess['std']} |
| training data | {meta.get('train_data')} (JPEG-compressed CIFAR-10) |
| recipe | {meta.get('steps')} steps of global batch {meta.get('global_batch')}, AdamW (base lr \
{config.get('optim', {}).get('base_lr')}, weight decay {config.get('optim', {}).get('weight_decay')}), \
warm-up {config.get('optim', {}).get('warmup_epochs')} epochs + cosine, augmentation {config.get('augment')}, \
mixing probability {config.get('mixing', {}).get('prob')}, label smoothing \
{config.get('mixing', {}).get('label_smoothing')}, compute {config.get('dtype')} |
| hardware, time | {args.hardware}; {args.train_time} |
{_schedule(meta)}
## Measured

- Test top-1 **{card['test_top1']:.2%}**, top-5 {card['test_top5']:.2%}, loss {card['test_loss']:.4f} on all \
{card['test_examples']:,} test images ({JPEG_NOTE}).
- Top-1 on the first 1,000 test images in the loader's fixed order (the regression test's slice): \
{card['test_top1_first_1000']:.2%} ({JPEG_NOTE}).

{_curve(card['curve'], card)}Reproduce the evaluation:

```bash
python scripts/evaluate.py --checkpoint {args.output} --data {args.data}
```

Reproduce the model:

```bash
{args.train_command}
{_package_command(args)}
```
"""


def _schedule(meta: dict) -> str:
    """A relay snapshot's place in its run: the weights of a run that goes on, not of a finished one."""
    relay = meta.get("relay")
    if not relay:
        return ""
    return (f"| schedule | a snapshot of the relay run `{relay['job']}` at step {meta.get('steps'):,} of its planned "
            f"{relay['planned_steps']:,} ({meta.get('steps') / relay['planned_steps']:.0%}): the learning rate is "
            "still on its cosine and later legs go on from these weights |\n")


def _curve(curve: list[dict], card: dict) -> str:
    """The run's periodic test accuracy as a table, ending with this release's own measurement (relay runs; empty
    otherwise)."""
    if not curve:
        return ""
    rows = "\n".join(f"| {p['images']:,} | {p['eval/top1']:.2%} | {p['eval/top5']:.2%} | {p['eval/loss']:.4f} |"
                     for p in curve if "eval/top1" in p)
    rows += (f"\n| {card['images_seen']:,} (this release) | {card['test_top1']:.2%} | {card['test_top5']:.2%} | "
             f"{card['test_loss']:.4f} |")
    return ("Measured during training (the trainer's periodic evaluation on the same test images):\n\n"
            f"| images seen | top-1 | top-5 | loss |\n|---|---|---|---|\n{rows}\n\n")


def _package_command(args) -> str:
    if args.relay:
        return f"python scripts/package.py classifier --relay {args.relay} --output {args.output}"
    return (f"python scripts/package.py classifier --export WORKDIR/export --output {args.output} \\\n"
            '    --hardware "..." --train-time "..." --train-command "..."')
