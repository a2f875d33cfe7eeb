"""The GPU-window rehearsal's pieces (nestgen/release/rehearsal.py, scripts/rehearse_window.py). The whole rehearsal
builds a Python 3.12 environment from the package index and trains for minutes, so it is run by hand (README "The
GPU window"); these tests check what it runs and what it refuses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nestgen.release import rehearsal

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_window_is_one_block_for_the_lease_machine():
    before, window = rehearsal.readme_blocks(ROOT / "README.md")
    assert "$OUT" in window and "--data .data/cifar10.tar.xz" in window and "--max-seconds" in window
    assert ".data/cifar10.tar.xz" in before and "-d .whl" in before
    for block in (before, window):  # that machine's interpreter is python3: no bare `python` or `pip` commands
        assert not re.search(r"(^|&&|;|\|)\s*(python|pip)\s", block, flags=re.M), block


def test_readme_blocks_refuse_a_readme_without_exactly_one_window(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# nothing here\n```bash\necho hi\n```\n")
    with pytest.raises(rehearsal.RehearsalError, match="0 'Before the window' and 0 window blocks"):
        rehearsal.readme_blocks(readme)


def test_only_a_python_3_12_is_taken(tmp_path):
    fake = tmp_path / "python3.11"
    fake.write_text("#!/bin/sh\necho 3 11\n")
    fake.chmod(0o755)
    with pytest.raises(rehearsal.RehearsalError, match="Python 3.11; the lease machine runs 3.12"):
        rehearsal.lease_python(str(fake))
    with pytest.raises(rehearsal.RehearsalError, match="no interpreter 'no-such-python3.12'"):
        rehearsal.lease_python("no-such-python3.12")
    fake.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2; exit 127\n")
    with pytest.raises(rehearsal.RehearsalError, match="does not run \\(pyenv: python3.12: command not found\\)"):
        rehearsal.lease_python(str(fake))
    fake.write_text("#!/bin/sh\necho 3 12\n")
    assert rehearsal.lease_python(str(fake)) == fake


def test_without_python3_12_on_path_pyenv_s_is_found_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.12 there
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(rehearsal.RehearsalError, match="install one \\(pyenv install 3.12"):
        rehearsal.lease_python(None)
    installed = tmp_path / ".pyenv" / "versions" / "3.12.9" / "bin" / "python3.12"
    installed.parent.mkdir(parents=True)
    installed.write_text("#!/bin/sh\necho 3 12\n")
    installed.chmod(0o755)
    assert rehearsal.lease_python(None) == installed
    with pytest.raises(rehearsal.RehearsalError, match=f"give --python {installed}"):
        rehearsal.lease_python("python3.12")


def test_the_copy_carries_what_a_device_call_carries(tmp_path):
    repo = tmp_path / "repo"
    for name, text in {"tracked.py": "a", ".gitignore": "/runs/\n/.data/\n/.whl/\n", "untracked.txt": "b",
                       "runs/ignored.log": "c", ".data/cifar10.tar.xz": "d", ".whl/x.whl": "e"}.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "tracked.py", ".gitignore"], cwd=repo, check=True)
    size = rehearsal.travelling_copy(repo, tmp_path / "copy")
    copied = sorted(str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert copied == [".data/cifar10.tar.xz", ".gitignore", ".whl/x.whl", "tracked.py", "untracked.txt"]
    assert size == sum((repo / name).stat().st_size for name in copied)


def test_returned_files_are_checked_against_the_lease_limits(tmp_path):
    for i in range(8):
        (tmp_path / f"f{i}").write_text("x")
    assert rehearsal.check_returned(tmp_path) == []
    with open(tmp_path / "f0", "wb") as big:
        big.truncate(16 * 2**20 + 1)  # sparse: no 16 MiB written
    (tmp_path / "f8").write_text("x")
    assert rehearsal.check_returned(tmp_path) == ["9 files (at most 8 come back)",
                                                  "f0: 16777217 bytes (over 16 MiB)"]


def test_the_shell_is_the_lease_s(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setenv("NESTGEN_CACHE", "/elsewhere")
    variables = rehearsal.shell_environment(tmp_path / "env", OUT="/out")
    assert variables["PATH"].split(os.pathsep)[0] == str(tmp_path / "env" / "bin")
    rest = variables["PATH"].split(os.pathsep)[1:]
    if sys.prefix != sys.base_prefix:  # run from a virtual environment: its bin is not the lease's
        assert str(Path(sys.prefix) / "bin") not in rest
    assert "/usr/bin" in rest or "/usr/bin" not in os.environ["PATH"].split(os.pathsep)  # the machine's tools stay
    assert "PYTHONPATH" not in variables and "NESTGEN_CACHE" not in variables and variables["OUT"] == "/out"


def test_a_folder_the_window_block_would_overwrite_is_refused(tmp_path, monkeypatch):
    target = tmp_path / "py"
    monkeypatch.setattr(rehearsal, "WHEEL_TARGET", target)
    rehearsal.claim_wheel_target()  # new: made and marked
    rehearsal.claim_wheel_target()  # marked by a rehearsal: taken again
    (target / rehearsal.MARKER).unlink()
    with pytest.raises(rehearsal.RehearsalError, match="was not made by a rehearsal"):
        rehearsal.claim_wheel_target()


def test_scripts_refuse_bad_rehearsal_values_in_one_line(tmp_path):
    for value in ("soon", "0", "", "nan"):
        env = {**os.environ, rehearsal.ENV_VARIABLE: value}
        result = subprocess.run([sys.executable, str(ROOT / "scripts" / "campaign.py"), "--job", "gan", "--minutes",
                                 "1", "--out", str(tmp_path / "o")], cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 2 and result.stderr.strip().splitlines() == [
            f"error: NESTGEN_WINDOW_REHEARSAL={value!r}: give the rehearsal's minutes (0 < minutes ≤ 600, e.g. 3), "
            "or unset it"]
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "rehearse_window.py"), "--python", sys.executable,
                             "--minutes", "9"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --minutes 9: give 0 < minutes ≤ 7 (the call has 570 s, the benchmark after the campaign included)"]
    readme = tmp_path / "README.md"
    readme.write_text("text")
    with pytest.raises(rehearsal.RehearsalError, match="is neither a virtual environment nor a new folder"):
        rehearsal.build_environment(Path(sys.executable), readme)


def test_ctrl_c_kills_the_whole_window(tmp_path):
    """The window runs in its own process group; an interrupt while it runs kills every process of it."""
    marker = tmp_path / "pid"
    block = f"sleep 300 & echo $! > {marker}; echo started; wait"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C, in this process
    try:
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            rehearsal.run_window(block, tmp_path, dict(os.environ), timeout=60)
        assert time.monotonic() - began < 30  # at once, not at the timeout
    finally:
        signal.signal(signal.SIGINT, previous)
    pid = int(marker.read_text())
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (killed, waiting for its parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_window_past_its_time_is_killed(tmp_path):
    lines, status, timed_out = rehearsal.run_window("echo one; sleep 30; echo two", tmp_path, dict(os.environ),
                                                    timeout=1.0)
    assert lines == ["one\n"] and timed_out and status == -9


def test_an_interpreter_without_venv_is_refused_in_one_line(tmp_path):
    python = tmp_path / "python3.12"
    python.write_text("#!/bin/sh\necho 'The virtual environment was not created successfully because ensurepip is "
                      "not available.'\nexit 1\n")
    python.chmod(0o755)
    with pytest.raises(rehearsal.RehearsalError, match=r"venv .* failed \(The virtual environment was not created "
                                                       r"successfully.*\): on Debian/Ubuntu install python3.12-venv"):
        rehearsal.build_environment(python, tmp_path / "env")
