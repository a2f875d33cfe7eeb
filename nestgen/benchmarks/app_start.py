"""Start-up of the app: `python app.py` is started on a free port, asked for a classification through gradio_client
as soon as it answers, and timed from process start to the result (target ≤ 20 s): first with an empty persistent
compilation cache, then again with the one it filled. `--json` prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time

from nestgen.benchmarks.latency import EXAMPLE
from nestgen.shipped import REPOSITORY as ROOT


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
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the server")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = app_start(args.timeout)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for r in result["runs"]:
        print(f"app.py, {r['run']}: serving after {r['serving_s']:.1f} s, first classification after "
              f"{r['first_result_s']:.1f} s (target {result['target_s']:.0f} s)")
    return 0
