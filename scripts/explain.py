"""Explain a classification with GradCAT (and Grad-CAM beside it) and save the picture.

  python scripts/explain.py [--checkpoint DIR] --image cat.png [--class cat] [--top-k 3] --out explanation.png [--json]

Without --class the predicted class is explained; --top-k explains the k most likely classes (one row each).
The picture shows the nested GradCAT boxes (root red → leaf), the score map of every level, and Grad-CAM from
level 0 (--gradcam-level). --json prints the path (level, block, pixel box, score) and score maps.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from PIL import Image

from nestgen.cli import entry_point


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="nestgen checkpoint directory (default: the shipped CIFAR-10 model)")
    parser.add_argument("--image", required=True)
    parser.add_argument("--class", dest="target", help="class name or index to explain (default: predicted)")
    parser.add_argument("--top-k", type=int, help="explain the k most likely classes")
    parser.add_argument("--score", default="magnitude", choices=["magnitude", "signed"],
                        help="GradCAT block score: Σ |A⊙G| (default, measured best) or spec.md §4's signed Σ A⊙G")
    parser.add_argument("--gradcam-level", type=int, default=0)
    parser.add_argument("--size", type=int, default=256, help="pixels per panel")
    parser.add_argument("--out", default="explanation.png")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    if not args.out.lower().endswith(".png"):  # before any work: the picture is a PNG
        print(f"error: --out {args.out!r}: give a file name ending in .png (e.g. --out explanation.png)",
              file=sys.stderr)
        return 2

    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.data.images import load_image, preprocess
    from nestgen.drawing.pictures import save_png
    from nestgen.explain.gradcat import GradCAT, grad_cam
    from nestgen.explain.overlay import render_explanation
    from nestgen.shipped import default_classifier

    checkpoint = load_checkpoint(args.checkpoint or default_classifier())
    spec = checkpoint.preprocess
    x = preprocess(load_image(args.image, target_size=int(spec["image_size"])), spec)[None]  # (1, S, S, 3)
    explainer = GradCAT(checkpoint.build(), checkpoint.params, checkpoint.class_names, int(spec["image_size"]),
                        score=args.score)
    if args.target is not None:
        explainer.resolve_class(args.target)
    if not 0 <= args.gradcam_level < checkpoint.config.num_levels:
        raise ValueError(f"--gradcam-level must be in 0..{checkpoint.config.num_levels - 1}")
    explanations = explainer.explain(x, target=args.target, top_k=args.top_k)[0]

    shown = Image.fromarray(np.clip((x[0] * np.asarray(spec["std"]) + np.asarray(spec["mean"])) * 255, 0, 255)
                            .round().astype(np.uint8))
    rows = []
    for explanation in explanations:
        cam = grad_cam(explainer.model, checkpoint.params, x, np.asarray([explanation.class_index]),
                       args.gradcam_level)[0]
        rows.append(render_explanation(shown, explanation, cam, args.size))
    picture = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    for i, row in enumerate(rows):
        picture.paste(row, (0, i * row.height))
    save_png(np.asarray(picture), args.out)  # a failed write keeps the previous file
    if args.json:
        print(json.dumps([e.to_dict() for e in explanations]))
    else:
        for e in explanations:
            print(f"{e.class_name} ({e.probability:.1%}): leaf block {e.leaf.block} of level 0, box {e.leaf.box}")
        print(f"wrote {args.out} ({picture.width}x{picture.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
