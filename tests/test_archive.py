"""Zip archives unpack once into the cache; hostile entries are refused before anything is written."""

from __future__ import annotations

import io
import json
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from nestgen.data import archive
from nestgen.data.archive import MARKER, ArchiveError, extract_archive


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (value, value, value)).save(buffer, "PNG")
    return buffer.getvalue()


def _zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], method=zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name"
        with zipfile.ZipFile(path, "w", method) as zf:
            for info, data in entries:
                zf.writestr(info, data)
    return path


def _info(name: str, mode: int | None = None) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    if mode is not None:
        info.create_system = 3  # Unix: the high 16 bits of external_attr are st_mode
        info.external_attr = mode << 16
    return info


def _good_entries() -> list[tuple[str, bytes]]:
    return [(f"{split}/{label}/{i}.png", _png(40 * c + 10 * i)) for split in ("train", "test")
            for c, label in enumerate(("cat", "dog")) for i in range(3)]


@pytest.fixture()
def dirs(tmp_path):
    (tmp_path / "in").mkdir()
    return tmp_path / "in", tmp_path / "cache"


def _assert_nothing_written(tmp_path: Path, cache: Path):
    assert not any(p.is_file() for p in cache.rglob("*")) if cache.exists() else True
    assert sorted(p.name for p in tmp_path.iterdir()) in (["in"], ["cache", "in"])
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/nestgen-evil.txt").exists()


@pytest.mark.parametrize("entry,words", [
    (_info("/tmp/nestgen-evil.txt"), "absolute path"),
    (_info("C:/evil.txt"), "absolute path"),
    (_info("train/../../evil.txt"), "'..'"),
    (_info("..\\evil.txt"), "backslash"),
    (_info("train/cat/link.png", stat.S_IFLNK | 0o777), "symbolic link"),
    (_info("train/cat/fifo.png", stat.S_IFIFO | 0o644), "not a regular file"),
])
def test_hostile_paths_and_types_are_refused_before_writing(tmp_path, dirs, entry, words):
    source, cache = dirs
    zpath = _zip(source / "bad.zip", [("train/cat/0.png", _png(1)), (entry, b"/etc/passwd")])
    with pytest.raises(ArchiveError, match=words) as caught:
        extract_archive(zpath, cache)
    assert str(zpath) in str(caught.value) and repr(entry.filename) in str(caught.value)
    _assert_nothing_written(tmp_path, cache)


def test_duplicate_names_and_file_folder_clash_are_refused(tmp_path, dirs):
    source, cache = dirs
    twice = _zip(source / "twice.zip", [("train/cat/0.png", _png(1)), ("train/cat/0.png", _png(2))])
    with pytest.raises(ArchiveError, match="'train/cat/0.png' appears twice"):
        extract_archive(twice, cache)
    clash = _zip(source / "clash.zip", [("train/cat", b"x"), ("train/cat/0.png", _png(2))])
    with pytest.raises(ArchiveError, match="both a file and a folder"):
        extract_archive(clash, cache)
    _assert_nothing_written(tmp_path, cache)


def test_encrypted_entries_are_refused(tmp_path, dirs):
    source, cache = dirs
    zpath = _zip(source / "enc.zip", [("train/cat/0.png", _png(1))])
    data = bytearray(zpath.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        at = data.index(signature) + flag_offset
        data[at] |= 0x1
    zpath.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="'train/cat/0.png' is encrypted"):
        extract_archive(zpath, cache)
    _assert_nothing_written(tmp_path, cache)


def test_zip_bombs_are_refused_by_ratio_size_and_count(tmp_path, dirs):
    source, cache = dirs
    bomb = _zip(source / "bomb.zip", [("train/cat/big.png", bytes(16 << 20))])  # 16 MiB of zeros → ~16 KB
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ArchiveError, match=r"'train/cat/big.png' expands .*zip bomb"):
        extract_archive(bomb, cache)
    with pytest.raises(ArchiveError, match="more than 1,000 bytes"):
        extract_archive(bomb, cache, max_ratio=1e9, max_total_bytes=1000)
    many = _zip(source / "many.zip", _good_entries())
    with pytest.raises(ArchiveError, match="12 entries, more than the limit of 5"):
        extract_archive(many, cache, max_entries=5)
    _assert_nothing_written(tmp_path, cache)


def test_crc_errors_and_understated_sizes_are_refused_and_leave_no_cache(tmp_path, dirs):
    source, cache = dirs
    payload = b"0123456789abcdef" * 64
    corrupt = _zip(source / "crc.zip", [("train/cat/0.png", _png(1)), ("train/cat/1.png", payload)],
                   zipfile.ZIP_STORED)
    data = corrupt.read_bytes()
    corrupt.write_bytes(data.replace(payload, payload[:-1] + b"!"))  # stored bytes changed, CRC kept
    with pytest.raises(ArchiveError, match="'train/cat/1.png' is corrupt.*CRC"):
        extract_archive(corrupt, cache)

    liar = _zip(source / "liar.zip", [("train/cat/1.png", payload)])
    data = bytearray(liar.read_bytes())
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size fields
        at = data.index(signature) + size_offset
        data[at:at + 4] = struct.pack("<I", 10)  # declares 10 bytes, inflates to 1,024
    liar.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="'train/cat/1.png'"):
        extract_archive(liar, cache)
    assert not (cache / "archives").exists() or not any((cache / "archives").iterdir())  # no staging left over
    _assert_nothing_written(tmp_path, cache)


def test_not_a_zip_is_refused(dirs):
    source, cache = dirs
    (source / "fake.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ArchiveError, match="fake.zip: not a readable zip archive"):
        extract_archive(source / "fake.zip", cache)
    with pytest.raises(ArchiveError, match="cannot read the archive"):
        extract_archive(source / "missing.zip", cache)


def test_good_archive_unpacks_once_and_is_reused(dirs, monkeypatch):
    source, cache = dirs
    zpath = _zip(source / "good.zip", [(_info("train/"), b"")] + _good_entries())
    root = extract_archive(zpath, cache)
    assert root.parent == cache / "archives" and len(root.name) == 16
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))[:2] == ["test/cat/0.png",
                                                                                      "test/cat/1.png"]
    assert (root / "train" / "dog" / "2.png").read_bytes() == _png(60)
    record = json.loads((root / MARKER).read_text())
    assert record["files"] == 12 and record["sha256"].startswith(root.name)

    def must_not_run(*args):
        raise AssertionError("unpacked a second time")

    monkeypatch.setattr(archive, "_unpack", must_not_run)
    mtime = (root / MARKER).stat().st_mtime_ns
    assert extract_archive(zpath, cache) == root
    assert (root / MARKER).stat().st_mtime_ns == mtime
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary directories left


def test_damaged_cache_is_unpacked_again(dirs):
    source, cache = dirs
    zpath = _zip(source / "good.zip", _good_entries())
    root = extract_archive(zpath, cache)
    (root / "train" / "cat" / "0.png").unlink()  # files missing: the marker no longer matches
    assert extract_archive(zpath, cache) == root
    assert (root / "train" / "cat" / "0.png").is_file()


def test_crash_while_unpacking_leaves_nothing_that_looks_complete(dirs, monkeypatch):
    source, cache = dirs
    zpath = _zip(source / "good.zip", _good_entries())
    real_unpack = archive._unpack

    def crash(archive_path, zf, files, staging):
        real_unpack(archive_path, zf, dict(list(files.items())[:3]), staging)
        raise KeyboardInterrupt

    monkeypatch.setattr(archive, "_unpack", crash)
    with pytest.raises(KeyboardInterrupt):
        extract_archive(zpath, cache)
    assert list((cache / "archives").iterdir()) == []
    monkeypatch.setattr(archive, "_unpack", real_unpack)
    root = extract_archive(zpath, cache)
    assert len(list(root.rglob("*.png"))) == 12


@given(st.text(alphabet=st.sampled_from("ab./\\:C"), min_size=1, max_size=12))
def test_accepted_names_never_leave_the_target(name):
    try:
        safe = archive._safe_name(Path("x.zip"), zipfile.ZipInfo(name))
    except ArchiveError:
        return
    root = Path("/cache/root")
    assert (root / safe).resolve().is_relative_to(root) and (root / safe) != root
