"""Speed benchmarks, one subcommand per component; every ratio compares measurements taken in this one run.

  python scripts/benchmark.py classifier [--variant nest_tiny_s16_32 --batch 64 --rounds 3]  # nestgen vs timm NesT
  python scripts/benchmark.py generator [--variants nest_gen_32 nest_gen_64 nest_gen_128]   # img/s, cost vs pixels
  python scripts/benchmark.py data [--against nest_tiny_s16_32]  # input pipeline images/s vs the train step.s
  python scripts/benchmark.py latency [--repeats 20]   # the app's targets on the shipped models, after warm-up
  python scripts/benchmark.py app                      # `python app.py` start → first classification, twice

`classifier`, `generator` and `data` run scripts/benchmark_classifier.py, benchmark_generator.py and
benchmark_data.py (their own `--help` lists the options). `latency` measures, with the shipped models: GradCAT on
one 32×32 image (target ≤ 100 ms) against one classifier forward pass of the same image, and 16 generator samples
(target ≤ 1 s) against one sample; median of `--repeats` calls. `app` starts the app on a free port, asks for a
classification through gradio_client as soon as it answers and reports the seconds from process start to the
result (target ≤ 20 s): first with an empty persistent compilation cache, then again with the one it filled.
`--json` prints one JSON object instead of the table; peak memory is the process's maximum resident set.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nestgen.runtime import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cifar10" / "airplane.jpg"
DELEGATED = {"classifier": "benchmark_classifier", "generator": "benchmark_generator", "data": "benchmark_data"}


def _median_ms(call, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


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
    forward_ms = _median_ms(lambda: forward(classifier.params, x).block_until_ready(), repeats)
    gradcat_ms = _median_ms(lambda: explainer.explain(np.asarray(x)), repeats)

    sampler = GeneratorSampler.from_directory(default_generator(), batch_size=16)
    one_ms = _median_ms(lambda: sampler.sample([0], class_index=0), repeats)
    sixteen_ms = _median_ms(lambda: sampler.sample(range(16), class_index=0), repeats)
    return {"machine": machine(), "classifier": str(default_classifier().name),
            "generator": str(default_generator().name), "repeats": repeats,
            "rows": [{"what": "GradCAT, one 32x32 image", "ms": gradcat_ms, "target_ms": 100.0,
                      "reference": "classifier forward", "reference_ms": forward_ms},
                     {"what": "16 generator samples", "ms": sixteen_ms, "target_ms": 1000.0,
                      "reference": "1 sample", "reference_ms": one_ms}],
            "peak_memory_mib": peak_memory_mib()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_start(timeout: float) -> dict:
    from gradio_client import Client, handle_file

    from nestgen.serving.classifier_service import PREDICTED

    runs = []
    with tempfile.TemporaryDirectory() as cache:
        for label in ("empty compilation cache", "warm compilation cache"):
            port = _free_port()
            start = time.perf_counter()
            process = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port),
                                        "--compilation-cache", cache], cwd=ROOT, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            try:
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"app.py exited with status {process.returncode} before serving")
                    if time.perf_counter() - start > timeout:
                        raise TimeoutError(f"app.py did not serve within {timeout:.0f} s")
                    try:
                        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                        break
                    except Exception:  # not listening yet
                        time.sleep(0.2)
                serving = time.perf_counter() - start
                client.predict(handle_file(str(EXAMPLE)), PREDICTED, api_name="/classify")
                runs.append({"run": label, "serving_s": serving, "first_result_s": time.perf_counter() - start})
            finally:
                process.terminate()
                process.wait(timeout=60)
    return {"target_s": 20.0, "runs": runs}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("component", choices=[*DELEGATED, "latency", "app"])
    parser.add_argument("--repeats", type=int, default=20, help="latency: calls per measurement")
    parser.add_argument("--timeout", type=float, default=300.0, help="app: seconds to wait for the server")
    parser.add_argument("--json", action="store_true")
    if argv and argv[0] in DELEGATED:
        sys.path.insert(0, str(ROOT / "scripts"))
        return __import__(DELEGATED[argv[0]]).main(argv[1:])
    args = parser.parse_args(argv)
    result = latency(args.repeats) if args.component == "latency" else app_start(args.timeout)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.component == "latency":
        m = result["machine"]
        print(f"machine: {m['cpus']} CPUs, {m['processor']}, jax {m['jax']} on {m['device']}; "
              f"{result['classifier']}, {result['generator']}; median of {result['repeats']} calls after warm-up")
        print(f"{'':<26} {'ms':>8} {'target':>8} {'reference':<20} {'ms':>8} {'ratio':>7}")
        for r in result["rows"]:
            print(f"{r['what']:<26} {r['ms']:>8.1f} {r['target_ms']:>8.0f} {r['reference']:<20} "
                  f"{r['reference_ms']:>8.1f} {r['ms'] / r['reference_ms']:>6.1f}x")
        print(f"peak memory {result['peak_memory_mib']:.0f} MiB")
    else:
        for r in result["runs"]:
            print(f"app.py, {r['run']}: serving after {r['serving_s']:.1f} s, first classification after "
                  f"{r['first_result_s']:.1f} s (target {result['target_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    raise SystemExit(main())
