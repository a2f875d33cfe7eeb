"""Choose the GAN recipe for a GPU window by measurement: candidate recipes at micro scale, equal images seen.

  python scripts/benchmark.py gan_configs --images 32000 --parallel 2 --out runs/gan-configs

Every candidate trains configs/gan_cifar10.py:cpu (nest_gen_micro_32_cond + conv_disc_micro_32 on the shared
CIFAR-10 training zip) for the same number of images from the same seed, changing only what matters at a large
batch; then scripts/evaluate_fid.py measures FD_NesT (the pinned features nestgen.shipped.FD_FEATURES; not FID),
precision and recall (k = 3) of `--num` EMA samples against the CIFAR-10 test images. One JSON line per candidate,
then a table. Candidates (`--only` picks some):
  today        the spec §3 recipe as configured: batch 32, non-saturating loss, lazy R1 γ 0.05, lr 1e-3
  batch4x      batch 128 with the learning rates ×2 (square-root scaling), the EMA half-life kept in images
  r3gan        R3GAN's relativistic pairing loss with R1 and R2 (γ 0.05 each)
  mixing       level mixing of w (probability 0.9), which the app's level-mixing feature relies on
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nestgen.shipped import FD_FEATURES
from nestgen.shipped import REPOSITORY as ROOT  # benchmarks run in a checkout

CANDIDATES = {
    "today": [],
    "batch4x": ["global_batch=128", "optim.g_lr=0.002", "optim.d_lr=0.002"],
    "r3gan": ["loss.kind=relativistic", "loss.r2_gamma=0.05"],
    "mixing": ["loss.level_mixing=0.9"],
}
REFERENCE = "zip:../shared/data/cifar10-test.zip@test"


def run(name: str, args) -> dict:
    workdir = args.out / name
    every = args.images // 2
    overrides = [f"total_images={args.images}", f"seed={args.seed}", f"fid.every_images={every}",
                 f"checkpoint_every_images={every}", f"log_every_images={every // 5}", f"sample_every_images={every}",
                 *CANDIDATES[name]]
    command = [sys.executable, str(ROOT / "scripts" / "train_gan.py"), "--config", "configs/gan_cifar10.py:cpu",
               "--workdir", str(workdir)] + [x for o in overrides for x in ("--set", o)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    began = time.perf_counter()
    with open(args.out / f"{name}.log", "w") as log:
        trained = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    if trained.returncode:
        return {"candidate": name, "error": f"training failed, see {args.out / (name + '.log')}"}
    seconds = time.perf_counter() - began
    measured = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate_fid.py"), "--checkpoint",
                               str(workdir / "export"), "--num", str(args.num), "--ref", REFERENCE, "--features",
                               FD_FEATURES, "--pr", "--pr-samples", str(args.num), "--batch-size", "100", "--quiet"],
                              cwd=ROOT, capture_output=True, text=True)
    if measured.returncode:
        return {"candidate": name, "error": measured.stderr.strip().splitlines()[-1]}
    record = json.loads(measured.stdout.strip().splitlines()[-1])
    curve = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["gan/images_seen"], round(r["fid/fd_nest"], 3)) for r in curve if "fid/fd_nest" in r]
    metrics = record.get("metrics", record)
    return {"candidate": name, "overrides": CANDIDATES[name], "images": args.images, "train_seconds": round(seconds),
            "fd_nest": metrics.get("fd_nest"), "precision": metrics.get("precision"), "recall": metrics.get("recall"),
            "fd_nest_curve": curve}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py gan_configs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32_000, help="images seen by every candidate")
    parser.add_argument("--num", type=int, default=2_000, help="samples for FD_NesT and precision/recall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=sorted(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--parallel", type=int, default=1, help="candidates trained at once")
    parser.add_argument("--out", type=Path, default=Path("runs/gan-configs"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda name: run(name, args), args.only))
    for result in results:
        print(json.dumps(result))
    print("| candidate | FD_NesT | precision | recall | train s |\n|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['candidate']} | {r['error']} | | | |")
        else:
            print(f"| {r['candidate']} | {r['fd_nest']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                  f"{r['train_seconds']} |")
    return 1 if any("error" in r for r in results) else 0
