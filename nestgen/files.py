"""Writing a file so that a failure never destroys what was there: write a temporary sibling, then rename it over.

A full disk, a Ctrl-C or an encoder error in the middle of a write leaves the previous file exactly as it was and
no partial file behind; readers only ever see a whole old file or a whole new one (`os.replace` is atomic on one
file system). Checkpoint directories use the same idea one level up (`nestgen.convert.checkpoint`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that choose a format by it still do); when
    the block succeeds it becomes `path` (mode 0644), when it fails it is removed and `path` is untouched. The
    folder is created if needed. Raises what the block or the file system raises (OSError: full disk, …)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    except OSError as error:  # name the file the user asked for, not a temporary name
        raise OSError(error.errno, error.strerror, str(path)) from error
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        temporary.chmod(0o644)  # readable like any other output, not mkstemp's owner-only mode
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename in (None, name, str(temporary)):
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """`path.write_text(text)`, atomically (see `replacing`)."""
    with replacing(path) as temporary:
        temporary.write_text(text)
    return Path(path)


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def save_safetensors(path: str | Path, arrays: dict, metadata: dict[str, str] | None = None) -> Path:
    """safetensors.numpy.save_file, atomically (see `replacing`), with the file system's failures (a full disk, a
    read-only folder), which safetensors reports as a SafetensorError, raised as OSError naming `path`."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    with replacing(path) as temporary:
        try:
            save_file(arrays, str(temporary), metadata=metadata)
        except SafetensorError as error:
            code = _OS_ERROR.search(str(error))
            if code is None:
                raise
            number = int(code.group(1))
            raise OSError(number, os.strerror(number) if number in errno.errorcode else str(error),
                          str(path)) from error
    return Path(path)


_MACHINE_PATH = re.compile(r"(?<![\w./~])/(?!/)(?:[^\s/`'\"()\[\]|]+/)+([^\s/`'\"()\[\]|]+)")


def strip_machine_paths(text: str) -> str:
    """Absolute paths of the machine that made a checkpoint (`/work/shared/data/x.zip`, `/root/.cache/…/y.npz`)
    → their file names: a model card should not show another machine's folders. Relative paths and URLs stay."""
    return _MACHINE_PATH.sub(lambda m: m[1], text)


def process_scratch(prefix: str, root: str | Path | None = None) -> Path:
    """A new scratch folder `root/<prefix><pid>-<random>` (root: the system's temporary folder), after removing
    the scratch folders of `prefix` whose process is gone: a process killed outright (SIGKILL, a lease's end)
    cannot remove its own, and on a tmpfs they hold memory."""
    root = Path(root or tempfile.gettempdir())
    for folder in root.glob(f"{prefix}*-*"):
        pid = folder.name[len(prefix):].split("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root))
