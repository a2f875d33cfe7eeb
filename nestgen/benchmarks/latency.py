"""Latency of the app's two interactive targets on the shipped models, after warm-up: GradCAT on one 32×32 image
(target ≤ 100 ms) against one classifier forward pass of the same image, and 16 generator samples (target ≤ 1 s)
against one sample; the median of `--repeats` calls. `--json` prints one JSON object instead of the table; peak
memory is the process's maximum resident set.
"""

from __future__ import annotations

import argparse
import json

from nestgen.benchmarks.timing import median_ms, peak_memory_mib
from nestgen.shipped import REPOSITORY

EXAMPLE = REPOSITORY / "examples" / "cifar10" / "airplane.jpg"


def latency(repeats: int) -> dict:
    import jax
    import numpy as np

    from nestgen.benchmarks.timing import machine
    from nestgen.convert.checkpoint import load_checkpoint
    from nestgen.data.images import load_image, preprocess
    from nestgen.explain.gradcat import GradCAT
    from nestgen.inference.sampling import GeneratorSampler
    from nestgen.shipped import default_classifier, default_generator

    classifier = load_checkpoint(default_classifier())
    spec = classifier.preprocess
    x = preprocess(load_image(str(EXAMPLE), target_size=int(spec["image_size"])), spec)[None]  # (1, S, S, 3)
    model = classifier.build()
    forward = jax.jit(lambda p, x: model.apply({"params": p}, x)[0])
    explainer = GradCAT(model, classifier.params, classifier.class_names, int(spec["image_size"]))
    forward_ms = median_ms(lambda: forward(classifier.params, x).block_until_ready(), repeats)
    gradcat_ms = median_ms(lambda: explainer.explain(np.asarray(x)), repeats)

    sampler = GeneratorSampler.from_directory(default_generator(), batch_size=16)
    one_ms = median_ms(lambda: sampler.sample([0], class_index=0), repeats)
    sixteen_ms = median_ms(lambda: sampler.sample(range(16), class_index=0), repeats)
    return {"machine": machine(), "classifier": str(default_classifier().name),
            "generator": str(default_generator().name), "repeats": repeats,
            "rows": [{"what": "GradCAT, one 32x32 image", "ms": gradcat_ms, "target_ms": 100.0,
                      "reference": "classifier forward", "reference_ms": forward_ms},
                     {"what": "16 generator samples", "ms": sixteen_ms, "target_ms": 1000.0,
                      "reference": "1 sample", "reference_ms": one_ms}],
            "peak_memory_mib": peak_memory_mib()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20, help="calls per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    result = latency(args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m = result["machine"]
    print(f"machine: {m['cpus']} CPUs, {m['processor']}, jax {m['jax']} on {m['device']}; "
          f"{result['classifier']}, {result['generator']}; median of {result['repeats']} calls after warm-up")
    print(f"{'':<26} {'ms':>8} {'target':>8} {'reference':<20} {'ms':>8} {'ratio':>7}")
    for r in result["rows"]:
        print(f"{r['what']:<26} {r['ms']:>8.1f} {r['target_ms']:>8.0f} {r['reference']:<20} "
              f"{r['reference_ms']:>8.1f} {r['ms'] / r['reference_ms']:>6.1f}x")
    print(f"peak memory {result['peak_memory_mib']:.0f} MiB")
    return 0
