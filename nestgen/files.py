"""Writing a file so that a failure never destroys what was there: write a temporary sibling, then rename it over.

A full disk, a Ctrl-C or an encoder error in the middle of a write leaves the previous file exactly as it was and
no partial file behind; readers only ever see a whole old file or a whole new one (`os.replace` is atomic on one
file system). Checkpoint directories use the same idea one level up (`nestgen.convert.checkpoint`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that choose a format by it still do); when
    the block succeeds it becomes `path` (mode 0644), when it fails it is removed and `path` is untouched. The
    folder is created if needed. Raises what the block or the file system raises (OSError: full disk, …)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        temporary.chmod(0o644)  # readable like any other output, not mkstemp's owner-only mode
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """`path.write_text(text)`, atomically (see `replacing`)."""
    with replacing(path) as temporary:
        temporary.write_text(text)
    return Path(path)
