"""Rehearse the GPU window on this machine: the README's window block, as written, in the lease machine's
environment (Python 3.12, its library versions, the carried wheels and data; no TensorFlow, torch or Gradio),
with the campaign and the benchmark at CPU size (nestgen/release/rehearsal.py says what it proves and what not).

  python scripts/rehearse_window.py                                     # python3.12 (PATH, pyenv), 3 minutes
  python scripts/rehearse_window.py --python ~/.pyenv/versions/3.12.1/bin/python3.12 --minutes 2 --out /tmp/w

Builds (once) a virtual environment at --env, the README's `.data` and `.whl` where missing, a copy of what a
device call carries, runs the window block there with $OUT = --out, and prints a JSON summary: the seconds of every
stage, the versions, the campaign's summary (seconds to the first compiled steps, compilations), its evaluations
(FD_NesT with its seconds), the benchmark's rows and any breach of the lease's limits. Exit 0 when the window
ran and its files fit, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from nestgen.cli import entry_point
from nestgen.files import process_scratch

ROOT = Path(__file__).resolve().parent.parent
WINDOW_TIMEOUT = 570  # the README's timeout_s for the call
MAX_MINUTES = 7  # the campaign's; the benchmark after it takes up to 2 minutes on 2 CPU cores


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", help="a Python 3.12 interpreter (default: python3.12 on PATH, else pyenv's 3.12)")
    parser.add_argument("--env", type=Path, help="the lease-like virtual environment, built once (default "
                                                 "~/.cache/nestgen/lease-env-3.12, or lease-env-3.12-torch)")
    parser.add_argument("--minutes", type=float, default=3.0, help="the campaign's minutes (default 3, at most 7)")
    parser.add_argument("--torch", action="store_true",
                        help="install the lease machine's torch 2.11 too (about 3 GB): FD_NesT runs in the loop")
    parser.add_argument("--out", type=Path, help="the folder that plays $OUT, kept (new or empty; default: a "
                                                 "temporary one, deleted at the end)")
    args = parser.parse_args(argv)

    from nestgen.release import rehearsal

    env = (args.env or Path.home() / ".cache" / "nestgen" / f"lease-env-3.12{'-torch' if args.torch else ''}")
    env = env.expanduser()
    if not 0 < args.minutes <= MAX_MINUTES:
        raise rehearsal.RehearsalError(f"--minutes {args.minutes:g}: give 0 < minutes ≤ {MAX_MINUTES} (the call has "
                                       f"{WINDOW_TIMEOUT} s, the benchmark after the campaign included)")
    if args.out and args.out.exists() and any(args.out.iterdir()):
        raise rehearsal.RehearsalError(f"--out {args.out} is not empty; give a new folder")
    python = rehearsal.lease_python(args.python)
    before, window = rehearsal.readme_blocks(ROOT / "README.md")
    rehearsal.claim_wheel_target()
    summary: dict = {"environment": rehearsal.build_environment(python, env, args.torch)}
    shell = rehearsal.shell_environment(env)
    if not (ROOT / ".data" / "cifar10.tar.xz").is_file() or not list((ROOT / ".whl").glob("*.whl")):
        summary["before_the_window_seconds"] = rehearsal.before_the_window(before, ROOT, shell)

    scratch = process_scratch("nestgen-lease-")  # and the copies of killed rehearsals removed
    try:
        checkout = scratch / "checkout"
        out = (args.out or scratch / "out").resolve()
        out.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        summary["carried_bytes"] = rehearsal.travelling_copy(ROOT, checkout)
        summary["copy_seconds"] = round(time.perf_counter() - began, 1)
        variables = {**shell, "OUT": str(out), rehearsal.ENV_VARIABLE: f"{args.minutes:g}"}
        began = time.perf_counter()
        lines, status, timed_out = rehearsal.run_window(window, checkout, variables, WINDOW_TIMEOUT)
        summary["window_seconds"] = round(time.perf_counter() - began, 1)
        summary["window_exit_status"] = status
        campaign = next((json.loads(line) for line in reversed(lines)
                         if line.startswith("{") and '"out":' in line), None)
        summary["campaign"] = campaign and {k: campaign.get(k) for k in (
            "job", "steps", "images_seen", "wall_seconds", "seconds_to_first_steps", "compilations", "release",
            "files", "problems") if k in campaign} | {k: v for k, v in campaign.items() if k.startswith("fid/")}
        log = out / "metrics.jsonl"
        summary["evaluations"] = [{k: v for k, v in record.items() if k.startswith(("fid/", "eval/"))}
                                  | {"seconds": record.get("gan/fid_seconds"), "step": record["step"]}
                                  for record in map(json.loads, log.read_text().splitlines() if log.is_file() else [])
                                  if any(k.startswith(("fid/", "eval/")) for k in record)]
        benchmark = json.loads((out / "benchmark.json").read_text()) if (out / "benchmark.json").is_file() else None
        summary["benchmark"] = benchmark and {"rows": [r["row"] + (f" {r['variant']}" if "variant" in r else "")
                                                       for r in benchmark["rows"]],
                                              "errors": benchmark["errors"], "skipped": benchmark["skipped"],
                                              "seconds": benchmark["seconds"]}
        summary["returned"] = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
        problems = rehearsal.check_carried(summary["carried_bytes"]) + rehearsal.check_returned(out)
        problems += campaign.get("problems", []) if campaign else ["the campaign printed no summary"]
        problems += [] if benchmark else ["no benchmark.json"]
        problems += [f"the call ran past {WINDOW_TIMEOUT} s and was killed"] if timed_out else []
        summary["problems"] = problems
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(summary, indent=1))
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
