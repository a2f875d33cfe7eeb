"""The nestgen web app: sample the NesT generator (class × seed grids, interpolation, level mixing, projection of
an upload), classify images and explain them with GradCAT, generated samples included.

  python app.py [--classifier DIR] [--generator DIR] [--discriminator DIR] [--host 127.0.0.1] [--port 7860]

Without flags it serves the checkpoints this repository ships (checkpoints/); a shipped model that is missing
is not replaced by an untrained one: its tabs name the command that trains it. Any nestgen checkpoint directory
works, including official or timm NesT classifiers converted first with scripts/convert.py (for example
`--classifier ckpts/nest-b-in1k`). `--discriminator` takes a NesT discriminator (the GAN trainer's
`export_discriminator`) for the "Explain the discriminator" tab.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "examples" / "cifar10"


def build_parser() -> argparse.ArgumentParser:
    """The app's flags (README.md's table lists them with these defaults; a test compares the two)."""
    from nestgen.explain.gradcat import DEFAULT_SCORE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", help="classifier checkpoint directory (default: the shipped CIFAR-10 NesT)")
    parser.add_argument("--generator", help="generator checkpoint directory (default: the shipped CIFAR-10 GAN)")
    parser.add_argument("--discriminator", help="NesT discriminator checkpoint directory (default: the one "
                                                "exported beside the generator, if any)")
    parser.add_argument("--score", default=DEFAULT_SCORE,
                        help="GradCAT block score of the classifier: magnitude Σ |A⊙G| (default, measured best) "
                             "or signed Σ A⊙G (spec.md §4)")
    parser.add_argument("--examples", default=str(EXAMPLES), help="folder of example images for the Classify tab")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve the local network")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--concurrency", type=int, default=2, help="requests computed at once")
    parser.add_argument("--queue-size", type=int, default=64, help="requests waiting at most; more are refused")
    parser.add_argument("--compilation-cache", default=None,
                        help="persistent XLA compilation cache, so a restart skips compiling (default: "
                             "$NESTGEN_CACHE/jax or ~/.cache/nestgen/jax; '' disables it)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    import jax

    from nestgen.convert.checkpoint import CheckpointError
    from nestgen.data.archive import default_cache_dir
    from nestgen.serving import Predictor, require_gradio

    cache = default_cache_dir() / "jax" if args.compilation_cache is None else args.compilation_cache
    if cache:  # a restart loads the compiled programs instead of compiling them again
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    try:
        require_gradio()
        predictor = Predictor.load(args.classifier, args.generator, args.discriminator, score=args.score)
    except (ImportError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for message in predictor.missing.values():
        print(f"note: {message}", file=sys.stderr)

    from nestgen.data.listing import is_ignored, is_image
    from nestgen.serving.ui import build_app, launch

    folder = Path(args.examples)  # the images in it, by the listing rule of the data (README.md is no example)
    examples = sorted(p for p in folder.iterdir() if p.is_file() and not is_ignored(p.name) and is_image(p.name)
                      ) if folder.is_dir() else []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean exit removes the app's temporary files
    # the page first, then the compilation: requests that come early wait for what they need, saying so
    predictor.warmth.plan([name for name, _ in predictor.warm_steps()])
    demo = build_app(predictor, examples)
    launch(demo, predictor, host=args.host, port=args.port, concurrency=args.concurrency,
           queue_size=args.queue_size, prevent_thread_lock=True)
    print(f"warming up: compiling the models (a restart loads them from the compilation cache {cache})" if cache
          else "warming up: compiling the models (no compilation cache)", flush=True)
    print("the page already answers; a request that comes early waits for the model it needs", flush=True)

    def report(name, seconds, error):
        print(f"  {name}: {seconds:.1f} s" + (f" (failed: {error}; its requests will compile it)" if error else ""),
              flush=True)

    seconds = predictor.warm_up(report)
    print(f"ready: everything compiled and warmed up in {sum(seconds.values()):.1f} s", flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    sys.exit(main())
