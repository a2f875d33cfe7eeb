r"""Turn a trained model into a release checkpoint with its model card: one command, three sources.

  python scripts/package.py classifier --relay classifier --output checkpoints/classifier-cifar10-nest_mini_32
  python scripts/package.py classifier --export WORKDIR/export --output DIR --hardware … --train-time … \
      --train-command …
  python scripts/package.py generator --relay gan --output checkpoints/gan-cifar10-nest_gen_micro_32_cond
  python scripts/package.py campaign RETURNED --output checkpoints/gan-cifar10-nest_gen_32_cond  # a GPU window's
                                                                                                 # --out folder
`classifier` measures test accuracy (float32 and float16 weights), `generator` FD_NesT, KD_NesT, precision/recall,
level mixing and the sample grid (nestgen/release/classifier.py, generator.py); `campaign` joins a window's shards
(nestgen/release/window.py) and packages them as its run record says, taking the hardware, minutes, images seen and
command from the record; its other options (`--num`, `--data`, …) are the classifier's or generator's.
`python scripts/package.py KIND --help` lists a kind's options.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from nestgen.cli import entry_point
from nestgen.release import classifier, generator


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="{classifier,generator,campaign}")
    for name, module in (("classifier", classifier), ("generator", generator)):
        module.add_arguments(kinds.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__,
                                              formatter_class=argparse.RawDescriptionHelpFormatter))
    window = kinds.add_parser("campaign", help="a folder a GPU window brought back (scripts/campaign.py --out)")
    window.add_argument("returned", type=Path, help="the folder campaign.py wrote (--out)")
    window.add_argument("--output", required=True, help="the checkpoint directory to create, e.g. checkpoints/NAME")
    window.add_argument("--hardware", help="default: '1× <device kind the run saw>'")
    window.add_argument("--note", default="", help="a paragraph for the model card")
    args, passed_on = parser.parse_known_args(argv)
    if args.kind != "campaign":
        if passed_on:
            parser.error(f"unrecognized arguments: {' '.join(passed_on)}")
        module = classifier if args.kind == "classifier" else generator
        print(json.dumps(module.package(args)))
        return 0

    from nestgen.release.window import provenance, restore_export

    with tempfile.TemporaryDirectory() as tmp:
        export, run = restore_export(args.returned, Path(tmp))
        module = generator if run.get("job") == "gan" else classifier
        kind = argparse.ArgumentParser(prog=f"scripts/package.py campaign ({run.get('job', 'classifier')})")
        module.add_arguments(kind)
        options = kind.parse_args(["--export", str(export), "--output", args.output, *provenance(run, args.hardware),
                                   "--note", args.note, *passed_on])
        print(json.dumps(module.package(options)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
