"""Unpack a zip archive of an image folder once, safely, into a cache directory keyed by the archive's SHA-256.

Every entry is checked before anything is written: no absolute paths, drive letters, `..` components, symlinks
or other non-regular entries, duplicate names, encrypted entries, or zip bombs (limits on total size, entry
count and per-entry compression ratio). While copying, an entry that yields more bytes than it declares or fails
its CRC aborts the unpacking. The archive is unpacked into a temporary sibling directory that gets a marker file
last and is then renamed into place, so a crash never leaves a half-unpacked directory that looks complete.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

GIB = 1 << 30
MARKER = ".complete.json"
_CHUNK = 1 << 20
_RATIO_MIN_BYTES = 1 << 20  # small entries may compress well without being a bomb; the total limit covers them
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(ValueError):
    """A zip archive is unreadable, hostile or too large. The message names the archive and the entry."""


def default_cache_dir() -> Path:
    """`$NESTGEN_CACHE`, else `~/.cache/nestgen`."""
    return Path(os.environ.get("NESTGEN_CACHE") or Path.home() / ".cache" / "nestgen").expanduser()


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def archive_sha256(zip_path: str | Path) -> str:
    """Hex SHA-256 of a file (memoised per path, size and modification time)."""
    path = Path(zip_path)
    try:
        info = path.stat()
    except OSError as error:
        raise ArchiveError(f"{path}: cannot read the archive ({error.strerror or error})") from error
    if not path.is_file():
        raise ArchiveError(f"{path}: not a file")
    return _sha256(str(path.resolve()), info.st_size, info.st_mtime_ns)


def _safe_name(archive: Path, info: zipfile.ZipInfo) -> str:
    """The entry's relative path ('a/b/c'), or ArchiveError if it could escape the target directory."""
    name = info.filename
    where = f"{archive}: entry {name!r}"
    if "\0" in name or "\\" in name:
        raise ArchiveError(f"{where} contains a NUL or backslash; zip entries must use '/' separators")
    if name.startswith("/") or _DRIVE.match(name):
        raise ArchiveError(f"{where} is an absolute path; refusing to unpack outside the cache directory")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{where} contains '..'; refusing to unpack outside the cache directory")
    if not parts:
        raise ArchiveError(f"{where} has an empty path")
    return "/".join(parts)


def _check_entries(archive: Path, infos: list[zipfile.ZipInfo], *, max_total_bytes: int, max_entries: int,
                   max_ratio: float) -> tuple[dict[str, zipfile.ZipInfo], int]:
    """Validate every entry before anything is written; returns {relative path: info} of the files, total bytes."""
    if len(infos) > max_entries:
        raise ArchiveError(f"{archive}: {len(infos):,} entries, more than the limit of {max_entries:,} "
                           "(pass a larger max_entries if the archive is trusted)")
    files: dict[str, zipfile.ZipInfo] = {}
    directories: set[str] = set()
    total = 0
    for info in infos:
        name = _safe_name(archive, info)
        where = f"{archive}: entry {info.filename!r}"
        mode = info.external_attr >> 16 if info.create_system == 3 else 0  # file type bits: Unix zips only
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"{where} is a symbolic link; only regular files and folders are unpacked")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ArchiveError(f"{where} is not a regular file (mode {oct(mode)})")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{where} is encrypted; unpack it yourself and use the folder")
        if name in files or name in directories:
            raise ArchiveError(f"{where} appears twice in the archive")
        if info.is_dir():
            directories.add(name)
            continue
        files[name] = info
        total += info.file_size
        if total > max_total_bytes:
            raise ArchiveError(f"{where}: the archive unpacks to more than {max_total_bytes:,} bytes "
                               "(pass a larger max_total_bytes if the archive is trusted)")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_MIN_BYTES and ratio > max_ratio:
            raise ArchiveError(f"{where} expands {ratio:,.0f}x ({info.compress_size:,} → {info.file_size:,} bytes), "
                               f"more than the limit of {max_ratio:g}x: a possible zip bomb")
    parents = {"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)}
    if clash := sorted(parents & files.keys()):
        raise ArchiveError(f"{archive}: entry {clash[0]!r} is both a file and a folder")
    return files, total


def _marker_ok(directory: Path, sha256: str) -> bool:
    """True if `directory` holds a complete unpacking of the archive: marker present and matching the files."""
    try:
        record = json.loads((directory / MARKER).read_text())
        if record.get("sha256") != sha256:
            return False
        count = size = 0
        for root, _, names in os.walk(directory):
            for name in names:
                if root == str(directory) and name == MARKER:
                    continue
                count += 1
                size += os.lstat(os.path.join(root, name)).st_size
        return count == record["files"] and size == record["bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _unpack(archive: Path, zf: zipfile.ZipFile, files: dict[str, zipfile.ZipInfo], staging: Path) -> None:
    """Copy every checked file into `staging`, never trusting the declared sizes."""
    for name, info in files.items():
        target = staging.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with zf.open(info) as source, open(target, "xb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > info.file_size:
                        raise ArchiveError(f"{archive}: entry {info.filename!r} holds more than the "
                                           f"{info.file_size:,} bytes it declares")
                    sink.write(chunk)
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
            raise ArchiveError(f"{archive}: entry {info.filename!r} is corrupt ({error})") from error
        except NotImplementedError as error:
            raise ArchiveError(f"{archive}: entry {info.filename!r} uses an unsupported compression "
                               f"({error})") from error
        if written != info.file_size:
            raise ArchiveError(f"{archive}: entry {info.filename!r} holds {written:,} bytes, not the "
                               f"{info.file_size:,} it declares")


def extract_archive(zip_path: str | Path, cache_dir: str | Path | None = None, *, max_total_bytes: int = 20 * GIB,
                    max_entries: int = 2_000_000, max_ratio: float = 200.0) -> Path:
    """Unpack `zip_path` once into `<cache_dir>/archives/<sha256[:16]>` and return that directory.

    A later call with the same archive (same content) reuses the directory after checking its marker file.
    """
    archive = Path(zip_path).expanduser()
    sha256 = archive_sha256(archive)
    final = Path(cache_dir or default_cache_dir()).expanduser() / "archives" / sha256[:16]
    if _marker_ok(final, sha256):
        return final
    try:
        with zipfile.ZipFile(archive) as zf:
            files, total = _check_entries(archive, zf.infolist(), max_total_bytes=max_total_bytes,
                                          max_entries=max_entries, max_ratio=max_ratio)
            final.parent.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(final.parent).free
            if total > free:
                raise ArchiveError(f"{archive}: unpacking needs {total / GIB:.1f} GiB but {final.parent} has only "
                                   f"{free / GIB:.1f} GiB free; set NESTGEN_CACHE or pass cache_dir elsewhere")
            staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
            try:
                staging.chmod(0o755)  # mkdtemp makes it private; the cache is as readable as any unpacked folder
                _unpack(archive, zf, files, staging)
                record = {"sha256": sha256, "files": len(files), "bytes": total, "archive": str(archive)}
                (staging / MARKER).write_text(json.dumps(record, indent=2) + "\n")  # written last
                _swap_in(staging, final, sha256)
            finally:
                shutil.rmtree(staging, ignore_errors=True)  # gone already unless something failed
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{archive}: not a readable zip archive ({error})") from error
    return final


def _swap_in(staging: Path, final: Path, sha256: str) -> None:
    """Rename `staging` to `final`; an incomplete `final` is replaced, a complete one (another process) is kept."""
    try:
        staging.rename(final)
        return
    except OSError:
        if not final.exists():
            raise
        if _marker_ok(final, sha256):
            return  # another process finished the same archive first
    stale = final.with_name(f".{final.name}.stale-{os.getpid()}")
    final.rename(stale)
    shutil.rmtree(stale, ignore_errors=True)
    staging.rename(final)
