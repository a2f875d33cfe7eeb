"""The base pieces of FID, under every other FID module: its error, clean-fid's and torch's modules (imported
once, here and nowhere else), and the files clean-fid needs (found, or fetched if the network answers, else named
in the error). Imports nothing of nestgen.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

DOWNLOAD_TIMEOUT_S = 10.0


class FIDError(ValueError):
    """A reference, feature network or file needed for FID is unknown or missing; the message says what to do."""


@functools.cache
def backends():
    """torch and clean-fid's modules, imported once (before TensorFlow, or torchvision aborts the process)."""
    if sys.modules.get("tensorflow") is not None and "torchvision" not in sys.modules:  # None: blocked
        raise FIDError("torchvision (clean-fid's dependency) aborts the process when imported after TensorFlow: "
                       "call nestgen.metrics.fid.backends() (or import torch, torchvision) before TensorFlow")
    try:
        import cleanfid.features
        import cleanfid.fid
        import cleanfid.inception_torchscript
        import cleanfid.resize
        import torch
    except ImportError as error:
        raise ImportError(f'FID needs torch and clean-fid ({error}): pip install -e ".[fid]"') from error
    return dataclasses.make_dataclass("Backends", ["torch", "fid", "features", "resize", "inception"])(
        torch, cleanfid.fid, cleanfid.features, cleanfid.resize, cleanfid.inception_torchscript)


# ---- files clean-fid needs -------------------------------------------------------------------------------------

def download(url: str, path: Path) -> str | None:
    """Fetch url to path (atomically); None on success, else why not."""
    staging = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(response, out)
        os.replace(staging, path)
        return None
    except OSError as error:  # urllib.error.URLError, timeouts, unwritable folders
        if staging:
            Path(staging).unlink(missing_ok=True)
        return f"{type(error).__name__}: {getattr(error, 'reason', None) or error}"


def require_file(path: Path, url: str, what: str, hint: str = "", alternatives: tuple[Path, ...] = ()) -> Path:
    """An existing copy of a file clean-fid needs (downloaded if the network answers), else a FIDError."""
    for candidate in (path, *alternatives):
        if candidate.is_file():
            return candidate
    reason = download(url, path)
    if reason is None:
        return path
    elsewhere = f" (or in {', '.join(str(p.parent) for p in alternatives)})" if alternatives else ""
    raise FIDError(f"{what} is missing: {path} does not exist and could not be downloaded from {url} ({reason}). "
                   f"Download {path.name} on a machine with network and put it at {path}{elsewhere}{hint}.")


def read_npz(path: Path, *keys: str) -> dict[str, Any] | None:
    """The arrays `keys` of an .npz file; None if it is missing, unreadable or lacks one."""
    try:
        with np.load(path) as arrays:
            return {key: arrays[key] for key in keys}
    except (OSError, KeyError, ValueError):
        return None


def write_npz(path: Path, **arrays) -> None:
    """Write an .npz file atomically (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
