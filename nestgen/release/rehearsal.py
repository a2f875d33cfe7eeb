"""A rehearsal of the GPU window on this machine, in the lease machine's environment (README "The GPU window").

`scripts/rehearse_window.py` builds what the borrowed H200 has — Python 3.12 with the versions of `LEASE_PACKAGES`,
and nothing of TensorFlow, torch or Gradio — copies what travels (the files git tracks or would track, plus the
carried `.data` and `.whl`, built by the README's "Before the window" block where missing) into a fresh folder,
and runs the README's window block there **as written**, with `$OUT` set, `python3` meaning the 3.12 environment
and `NESTGEN_WINDOW_REHEARSAL` set to the campaign's minutes: with it the campaign trains the H200 preset shrunk
(`--rehearse`, `:h200,shrink`) and the benchmark the micro rows in float32 (`--small`), so the whole window
fits a CPU. Then it checks what came back against the lease's limits (at most 8 files of at most 16 MiB).

What it proves: the command, the interpreter, the versions, the carried wheels and data, the code path and the
outputs. What only a real window measures: the speed, the compile times on the GPU, the recipe at batch 256, and
FD_NesT in the loop unless `--torch` installs the lease's torch (about 3 GB; blocked by default).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# What the lease machine's python3 has (the device notes' pip list, rehearsed 2026-12-02; engineering.md); torch,
# torchvision and timm are there too, left out here like TensorFlow and Gradio.
LEASE_PYTHON = (3, 12)
LEASE_PACKAGES = ("jax==0.11.2", "jaxlib==0.11.2", "flax==0.12.12", "optax==0.2.8", "orbax-checkpoint==0.12.8",
                  "numpy==2.5.2", "scipy==1.18.1", "pillow", "safetensors", "msgpack", "absl-py", "pyyaml", "tqdm",
                  "requests", "tensorboard", "tensorstore", "chex")
LEASE_TORCH = ("torch==2.11.0", "torchvision==0.26.0")  # --torch: FD_NesT in the loop as there (about 3 GB)
BLOCKED = ("tensorflow", "tensorflow_datasets", "torch", "gradio", "ml_collections", "clean_fid")
CARRIED = (".data", ".whl")
ENV_VARIABLE = "NESTGEN_WINDOW_REHEARSAL"  # the campaign's minutes in a rehearsal (scripts/campaign.py)
WHEEL_TARGET = Path("/tmp/py")  # where the README's window block installs the carried wheels
MARKER = ".nestgen-rehearsal"
MAX_FILES, MAX_FILE_BYTES, MAX_CARRIED_BYTES = 8, 16 * 2**20, 64 * 2**20


class RehearsalError(ValueError):
    """Something the rehearsal needs is missing; the message says what to do."""


def readme_blocks(readme: Path) -> tuple[str, str]:
    """(the "Before the window" block, the window block) of the README's bash blocks, dedented, as written.
    Raises RehearsalError unless exactly one block of each kind is there."""
    blocks = [re.sub(r"^ {0,3}", "", block, flags=re.M)
              for block in re.findall(r"^ *```bash\n(.*?)^ *```", readme.read_text(), flags=re.M | re.S)]
    before = [b for b in blocks if ".data/cifar10.tar.xz" in b and "pip download" in b]
    window = [b for b in blocks if "scripts/campaign.py" in b and "benchmark.py window" in b and "$OUT" in b]
    if len(before) != 1 or len(window) != 1:
        raise RehearsalError(f"{readme}: found {len(before)} 'Before the window' and {len(window)} window blocks "
                             "(one of each expected)")
    return before[0], window[0]


def lease_python(python: str | None) -> Path:
    """The interpreter to build the environment with: `python`, or (None) the first of python3.12 on PATH and
    pyenv's 3.12 that runs. RehearsalError unless it runs and is Python 3.12 (the message names a 3.12 that pyenv
    installed here, if any)."""
    installed = sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    if python is None:
        for candidate in ("python3.12", *map(str, reversed(installed))):
            try:
                return lease_python(candidate)
            except RehearsalError:
                pass
        python = "python3.12"
    advice = (f"give --python {installed[-1]}" if installed else
              "install one (pyenv install 3.12, or your system's python3.12 package) and give --python PATH")
    found = shutil.which(python)
    if not found:
        raise RehearsalError(f"no interpreter {python!r} here (the lease machine runs Python 3.12): {advice}")
    probe = subprocess.run([found, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
    if probe.returncode:
        reason = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[0]
        raise RehearsalError(f"{found} does not run ({reason}): {advice}")
    version = probe.stdout.split()
    if tuple(map(int, version)) != LEASE_PYTHON:
        raise RehearsalError(f"{found} is Python {'.'.join(version)}; the lease machine runs 3.12: {advice}")
    return Path(found)


def build_environment(python: Path, env: Path, torch: bool = False) -> dict:
    """A virtual environment at `env` with LEASE_PACKAGES (and LEASE_TORCH with `torch`; pip installs nothing
    already there), checked: the pinned versions import, and nothing in BLOCKED does (torch excepted with `torch`).
    Returns {"seconds", "versions"}."""
    packages, blocked = (*LEASE_PACKAGES, *LEASE_TORCH) if torch else LEASE_PACKAGES, \
        tuple(n for n in BLOCKED if not (torch and n == "torch"))
    if env.exists() and not (env / "pyvenv.cfg").is_file() and (not env.is_dir() or any(env.iterdir())):
        raise RehearsalError(f"--env {env} is neither a virtual environment nor a new folder: give a new folder")
    began = time.perf_counter()
    if not (env / "bin" / "python3").exists():
        made = subprocess.run([str(python), "-m", "venv", str(env)], capture_output=True, text=True)
        if made.returncode:
            reason = (made.stdout + made.stderr).strip().splitlines() or [f"exit status {made.returncode}"]
            raise RehearsalError(f"{python} -m venv {env} failed ({reason[0]}): on Debian/Ubuntu install "
                                 "python3.12-venv, or give another --python")
    installed = subprocess.run([str(env / "bin" / "python3"), "-m", "pip", "install", "-q",
                                "--disable-pip-version-check", *packages])
    if installed.returncode:
        raise RehearsalError(f"pip could not install the lease's packages into {env} (its message is above): "
                             "check the network to the package index, or give a new --env")
    probe = ("import importlib.metadata as m, importlib.util as u, json, sys; "
             f"print(json.dumps({{'python': sys.version.split()[0], "
             f"**{{n.split('==')[0]: m.version(n.split('==')[0]) for n in {packages!r} if '==' in n}}, "
             f"'importable': [n for n in {blocked!r} if u.find_spec(n)]}}))")
    versions = json.loads(subprocess.run([str(env / "bin" / "python3"), "-c", probe], capture_output=True,
                                         text=True, check=True).stdout)
    if versions.pop("importable"):
        raise RehearsalError(f"{env} can import a package the rehearsal blocks ({', '.join(blocked)}): "
                             "give a new --env")
    return {"seconds": round(time.perf_counter() - began, 1), "versions": versions}


def before_the_window(block: str, root: Path, env: dict[str, str]) -> float:
    """Run the README's "Before the window" block in `root` (it builds .data and .whl): its seconds."""
    began = time.perf_counter()
    if subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=root, env=env).returncode:
        raise RehearsalError("the README's 'Before the window' block failed (its message is above)")
    return round(time.perf_counter() - began, 1)


def shell_environment(env: Path, **extra: str) -> dict[str, str]:
    """The variables of a lease-like shell: `python3` and pip from `env` first on PATH, no PYTHONPATH, no
    virtual environment of this machine, the tests' XLA flags gone."""
    variables = {k: v for k, v in os.environ.items()
                 if k not in ("PYTHONPATH", "VIRTUAL_ENV", "XLA_FLAGS", "PYTHONHOME") and not k.startswith("NESTGEN_")}
    own = str(Path(sys.prefix) / "bin") if sys.prefix != sys.base_prefix else None  # this machine's venv
    path = [p for p in variables.get("PATH", "").split(os.pathsep) if p and p != own]
    variables["PATH"] = os.pathsep.join([str(env / "bin"), *path])
    return {**variables, **extra}


def travelling_copy(root: Path, into: Path) -> int:
    """Copy what a device call carries: the files git tracks or would track, and CARRIED. Returns its bytes."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")
    size = 0
    for name in filter(None, listed):
        source = root / name
        if source.is_file():  # a file deleted but not yet staged does not travel
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
            size += source.stat().st_size
    for name in CARRIED:
        shutil.copytree(root / name, into / name)
        size += sum(p.stat().st_size for p in (root / name).rglob("*") if p.is_file())
    return size


def run_window(block: str, checkout: Path, variables: dict[str, str], timeout: float) -> tuple[list[str], int, bool]:
    """Run the window block in `checkout` as one process group, its output passed on to stderr as it comes:
    (its stdout lines, exit status, whether it ran past `timeout` seconds and was killed, like the device's
    timeout_s). Ctrl-C kills the whole group before it returns."""
    timed_out = threading.Event()
    with subprocess.Popen(["bash", "-c", block], cwd=checkout, env=variables, stdout=subprocess.PIPE, text=True,
                          start_new_session=True) as call:
        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(call.pid, signal.SIGKILL)

        def time_out() -> None:
            timed_out.set()
            kill()

        timer = threading.Timer(timeout, time_out)
        timer.daemon = True
        timer.start()
        lines = []
        try:
            for line in call.stdout:  # the campaign's summary is one JSON line of it
                print(line, end="", file=sys.stderr, flush=True)
                lines.append(line)
            call.wait()
        except BaseException:  # Ctrl-C: no window left running in a folder about to be deleted
            kill()
            raise
        finally:
            timer.cancel()
    return lines, call.returncode, timed_out.is_set()


def check_carried(size: int) -> list[str]:
    """The lease's limit on what a call carries in (the working tree, .data and .whl together)."""
    return [f"{size} bytes carried (at most 64 MiB travel)"] if size > MAX_CARRIED_BYTES else []


def check_returned(out: Path) -> list[str]:
    """What breaks the lease's limits in `out`: more than MAX_FILES files, a file over MAX_FILE_BYTES, a folder."""
    entries = sorted(out.iterdir())
    problems = [f"{len(entries)} files (at most {MAX_FILES} come back)"] if len(entries) > MAX_FILES else []
    problems += [f"{p.name}: not a plain file" for p in entries if not p.is_file()]
    problems += [f"{p.name}: {p.stat().st_size} bytes (over 16 MiB)" for p in entries
                 if p.is_file() and p.stat().st_size > MAX_FILE_BYTES]
    return problems


def claim_wheel_target() -> None:
    """The window block installs its wheels into /tmp/py; a folder there that no rehearsal made is not ours to
    overwrite."""
    if WHEEL_TARGET.exists() and not (WHEEL_TARGET / MARKER).exists():
        raise RehearsalError(f"{WHEEL_TARGET} exists and was not made by a rehearsal: the window block installs "
                             f"its wheels there; move it away and run again")
    WHEEL_TARGET.mkdir(parents=True, exist_ok=True)
    (WHEEL_TARGET / MARKER).touch()
