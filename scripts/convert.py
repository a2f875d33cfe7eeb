"""Convert NesT weights between the official Flax checkpoints, timm, and nestgen's checkpoint directory.

  python scripts/convert.py official --variant nest_tiny_s16_32 --input ckpt-39.flax --output DIR
  python scripts/convert.py timm --variant nest_tiny_s196_224 --input model.safetensors --output DIR
  python scripts/convert.py to-timm --checkpoint DIR --output model.safetensors
  python scripts/convert.py to-official --checkpoint DIR --output ckpt.flax
  python scripts/convert.py repack --checkpoint DIR --output DIR2 --weights-dtype float16   # e.g. for release
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import sys
from pathlib import Path

from nestgen.cli import entry_point
from nestgen.convert import checkpoint as ckpt
from nestgen.convert import official, timm
from nestgen.convert.tree import flatten, unflatten
from nestgen.models.registry import VARIANTS, get_config


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _class_names(args, config):
    if args.class_names:
        names = [line.strip() for line in Path(args.class_names).read_text().splitlines() if line.strip()]
        return names
    return ckpt.default_class_names(config.num_classes)


def _import(args, reader, **config_overrides) -> None:
    config = get_config(args.variant, **config_overrides)
    if args.num_classes:
        config = dataclasses.replace(config, num_classes=args.num_classes)
    flat = reader(args.input, config)
    source = {"type": args.command, "variant": args.variant, "file": Path(args.input).name,
              "sha256": _sha256(Path(args.input))}
    out = ckpt.save_checkpoint(args.output, config, unflatten(flat), class_names=_class_names(args, config),
                               weights_dtype=args.weights_dtype, metadata={"source": source})
    print(f"wrote {out} ({args.variant}, {config.num_classes} classes, weights {args.weights_dtype})")


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("official", "official Flax msgpack checkpoint → nestgen"),
                            ("timm", "timm NesT weights (.safetensors or torch.save .pth/.bin) → nestgen")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--variant", required=True, choices=sorted(VARIANTS))
        p.add_argument("--input", required=True)
        p.add_argument("--output", required=True, help="checkpoint directory to write")
        p.add_argument("--num-classes", type=int, help="override the variant's number of classes")
        p.add_argument("--class-names", help="text file with one class name per line")
        p.add_argument("--weights-dtype", default="float32", choices=sorted(ckpt.WEIGHT_DTYPES))
    sub.choices["timm"].add_argument("--pool-padding", default="same", choices=["same", "symmetric"],
                                     help="'same' for timm's *_jx (official) models, 'symmetric' for timm's own")
    sub.choices["timm"].add_argument("--entry", help="which weights of a timm train.py checkpoint (default: "
                                                     "state_dict_ema if present, else state_dict, as timm loads them)")
    for name, help_text in (("to-timm", "nestgen checkpoint → timm safetensors"),
                            ("to-official", "nestgen checkpoint → official-style Flax msgpack")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--output", required=True)
    repack = sub.add_parser("repack", help="rewrite a nestgen checkpoint, e.g. with float16 weights")
    repack.add_argument("--checkpoint", required=True)
    repack.add_argument("--output", required=True)
    repack.add_argument("--weights-dtype", default="float16", choices=sorted(ckpt.WEIGHT_DTYPES))
    args = parser.parse_args(argv)

    if args.command == "official":
        _import(args, official.load_official)
    elif args.command == "timm":
        _import(args, functools.partial(timm.load_timm, entry=args.entry), activation="gelu",
                pool_padding=args.pool_padding)
    else:
        loaded = ckpt.load_checkpoint(args.checkpoint)
        if args.command == "repack":
            ckpt.save_checkpoint(args.output, loaded.config, loaded.params, class_names=loaded.class_names,
                                 preprocess=loaded.preprocess, weights_dtype=args.weights_dtype,
                                 metadata=loaded.metadata)
            print(f"wrote {args.output} (weights {args.weights_dtype})")
        elif args.command == "to-timm":
            if loaded.config.activation != "gelu":
                print("note: this model uses the tanh GELU of the official code; timm runs the exact GELU, so "
                      "logits differ slightly", file=sys.stderr)
            kwargs = timm.save_timm(args.output, flatten(loaded.params), loaded.config)
            print(f"wrote {args.output}; build it with timm.models.nest.Nest(**{json.dumps(kwargs)})")
        else:
            official.save_official(args.output, flatten(loaded.params), loaded.config)
            print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
