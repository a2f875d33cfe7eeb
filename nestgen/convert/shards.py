"""safetensors files cut into shards of bounded size, for moving weights through size-limited channels.

A borrowed accelerator returns at most 8 files of ≤ 16 MiB (scripts/campaign.py): a 14.8 M-parameter generator in
float16 is 29.7 MB. `write_sharded` packs named arrays greedily into `<stem>-00001-of-00002.safetensors`, … (one
file `<stem>.safetensors` when it fits); `read_sharded` checks that every shard is there and joins them. The
metadata (a str → str dict) is stored in every shard. Every shard is written to a temporary file and renamed, so a
folder rewritten at every evaluation (a GPU window's outputs) always holds complete files. Plain safetensors
throughout: no pickles.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

MAX_SHARD_BYTES = 15 * 2**20  # under the 16 MiB per returned file, with room for the safetensors header
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.safetensors$")


class ShardError(ValueError):
    """Shards are missing, duplicated or inconsistent; the message names them."""


def write_sharded(directory: str | Path, stem: str, arrays: dict[str, np.ndarray], *,
                  metadata: dict[str, str] | None = None, max_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """Write `arrays` as one or more safetensors files of at most `max_bytes` of tensor data each.

    Raises ShardError if a single array is larger than `max_bytes` (it cannot be split without changing names)."""
    from nestgen.files import save_safetensors

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        if array.nbytes > max_bytes:
            raise ShardError(f"{name} holds {array.nbytes:,} bytes, more than one shard's {max_bytes:,}")
        if size + array.nbytes > max_bytes and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = array
        size += array.nbytes
    paths = []
    for index, shard in enumerate(shards, start=1):  # each shard complete or not there: temporary file, rename
        name = f"{stem}.safetensors" if len(shards) == 1 else f"{stem}-{index:05d}-of-{len(shards):05d}.safetensors"
        save_safetensors(directory / name, shard, dict(metadata or {}))
        paths.append(directory / name)
    for stale in directory.glob(f"{stem}*.safetensors"):  # an earlier, differently cut save
        if stale not in paths and (stale.name == f"{stem}.safetensors" or _SHARD.match(stale.name)):
            stale.unlink()
    return paths


def shard_paths(directory: str | Path, stem: str) -> list[Path]:
    """The files of `stem` in `directory`, in order; ShardError if none, or if shards are missing."""
    directory = Path(directory)
    single = directory / f"{stem}.safetensors"
    found = sorted(p for p in directory.glob(f"{stem}-*-of-*.safetensors")
                   if (m := _SHARD.match(p.name)) and m["stem"] == stem)
    if single.is_file() and not found:
        return [single]
    if not found:
        raise ShardError(f"{directory} holds no {stem}.safetensors and no {stem}-NNNNN-of-NNNNN.safetensors shards")
    counts = {int(_SHARD.match(p.name)["count"]) for p in found}
    indices = [int(_SHARD.match(p.name)["index"]) for p in found]
    if len(counts) != 1 or sorted(indices) != list(range(1, next(iter(counts)) + 1)):
        raise ShardError(f"{directory}: the {stem} shards are incomplete or mixed: {[p.name for p in found]}")
    return found


def read_sharded(directory: str | Path, stem: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Join the shards of `stem`: (arrays, their metadata). Shards of two different saves (a save rewritten shard
    by shard and interrupted) have different metadata and raise ShardError."""
    from safetensors import safe_open

    arrays: dict[str, np.ndarray] = {}
    metadata: dict[str, str] | None = None
    for path in shard_paths(directory, stem):
        with safe_open(str(path), framework="numpy") as file:
            if metadata is not None and dict(file.metadata() or {}) != metadata:
                raise ShardError(f"{path} belongs to another save than the first {stem} shard (an interrupted "
                                 "rewrite); use the folder's other copy or the previous window's")
            metadata = dict(file.metadata() or {})
            for name in file.keys():
                if name in arrays:
                    raise ShardError(f"{name} appears in more than one {stem} shard ({path.name})")
                arrays[name] = file.get_tensor(name)
    return arrays, metadata or {}
