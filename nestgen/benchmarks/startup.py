"""How fast the app starts: cold (an empty compilation cache) and restarted (the cache the cold start filled).

  python scripts/benchmark.py startup [--restarts 2] [--port 7870] [app.py flags, e.g. --generator DIR]

Each start runs `app.py` in a process of its own and measures, in seconds from the command: the page answering
(HTTP 200 on /), the generator compiled (its warm-up line) and everything compiled (the "ready" line); then stops
it (SIGTERM). The cache is a fresh temporary folder, deleted at the end. Prints one JSON line with every start and
the restart-to-cold ratios (machines are shared and noisy: compare the ratios, not the seconds).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from nestgen.shipped import REPOSITORY as ROOT  # benchmarks run in a checkout


def one_start(cache: str, port: int, flags: list[str], timeout_s: float = 600.0) -> dict[str, float]:
    """One start of app.py → seconds to 'page', 'generator' and 'ready' (each None if it never came)."""
    command = [sys.executable, str(ROOT / "app.py"), "--compilation-cache", cache, "--port", str(port), *flags]
    start, seen = time.perf_counter(), {}
    app = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)

    def read():  # the terminal's warm-up lines, timed as they come
        for line in app.stdout:
            if line.strip().startswith("generator:"):
                seen.setdefault("generator", time.perf_counter() - start)
            elif line.startswith("ready:"):
                seen.setdefault("ready", time.perf_counter() - start)
            elif line.startswith("error:"):
                seen["error"] = line.strip()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while "ready" not in seen and "error" not in seen and time.perf_counter() - start < timeout_s:
            if "page" not in seen:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
                        if answer.status == 200:
                            seen["page"] = time.perf_counter() - start
                except OSError:
                    pass
            if app.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(timeout=60)
    if "error" in seen:
        raise SystemExit(f"app.py failed: {seen['error']}")
    return {key: round(seen[key], 2) if key in seen else None for key in ("page", "generator", "ready")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restarts", type=int, default=2, help="starts after the cold one (default 2)")
    parser.add_argument("--port", type=int, default=7870, help="port the measured app listens on")
    args, flags = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="nestgen-startup-cache-") as cache:
        cold = one_start(cache, args.port, flags)
        restarts = [one_start(cache, args.port, flags) for _ in range(args.restarts)]
    ratios = {key: [round(r[key] / cold[key], 2) if r[key] and cold[key] else None for r in restarts]
              for key in ("page", "generator", "ready")}
    print(json.dumps({"cold": cold, "restarts": restarts, "restart_to_cold": ratios}))
    return 0
