"""Where images come from: local `<split>/<class>/<image>` folders, zip archives of such folders, or tfds builders.

A data spec names the source (`folder:/data/pets`, `zip:../shared/data/cifar10-train.zip`, `tfds:cifar10`, or the
bare path/name). Folders and archives are listed by the one rule of `nestgen.data.listing` (sorted visible class
folders, every file Pillow reads is an image, hidden files and OS metadata ignored, other files skipped and
reported) and decoded by `nestgen.data.images.decode_image`, in threads, with Pillow and numpy alone: reading a
folder or zip split into memory (`load_split`) never imports TensorFlow. Archives are unpacked once, safely, by
`nestgen.data.archive`. tfds builders, and streaming any source with tf.data (`tf_dataset`), go through
`nestgen.data.tf_sources`, which imports TensorFlow on first use.

Example order of a folder/zip split: the sorted file list permuted by a numpy Generator seeded from a hash of the
split name: the same on every call and machine, classes mixed, so the first `limit` examples are a mixed sample.
Class names travel with the data so that trainers can write them into checkpoints. Decoded splits are cached as
`.npz` under the cache directory (`$NESTGEN_CACHE` or `~/.cache/nestgen`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nestgen.data.archive import archive_sha256, default_cache_dir, extract_archive
from nestgen.data.classes import label_mapping
from nestgen.data.images import decode_images, resize_and_crop
from nestgen.data.listing import DataError, ImageListing, NoImagesError, list_split, visible_folders, warn

__all__ = ["CACHE_VERSION", "KINDS", "DataError", "DataSpec", "SplitData", "example_order", "list_source_split",
           "load_split", "parse_data_spec", "tf_dataset"]

KINDS = ("tfds", "folder", "zip")
CACHE_VERSION = 2  # 2: Pillow decoding, listing rule, example order by split-name hash, image_size in the key
_TFDS_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.+-]+)?(:[0-9*]+\.[0-9*]+\.[0-9*]+)?$")
_CHUNK = 4096  # images decoded per round: bounds the memory beyond the output array


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A parsed data source: `kind` is "tfds" (target: builder name, optionally ":version") or "folder"/"zip"."""

    kind: str
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclasses.dataclass
class SplitData:
    """One split in memory: uint8 images (N, H, W, 3), int32 labels (N,) and the class names labels index.

    `skipped`: files of the split folder that are not images (relative paths), reported when the split loads."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    description: str
    skipped: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def with_classes(self, class_names: Sequence[str]) -> SplitData:
        """This split with its labels matched by name onto `class_names` (a model's, or the training split's):
        a test folder that lacks a class keeps its labels right (`nestgen.data.classes.label_mapping`)."""
        mapping = label_mapping(self.class_names, class_names, self.description)
        if mapping is None:
            return self if list(self.class_names) == list(class_names) else dataclasses.replace(
                self, class_names=list(class_names))
        labels = mapping[self.labels] if self.labels.size else self.labels
        return dataclasses.replace(self, labels=labels.astype(np.int32), class_names=list(class_names))


def parse_data_spec(text: str | DataSpec) -> DataSpec:
    """`tfds:NAME[:VERSION]`, `folder:PATH`, `zip:PATH`, or bare: an existing folder, a `.zip` path, a tfds name."""
    if isinstance(text, DataSpec):
        return text
    text = str(text).strip()
    kind, sep, target = text.partition(":")
    if sep and kind in KINDS:
        if not target:
            raise DataError(f"data spec {text!r} names no {'dataset' if kind == 'tfds' else 'path'} after '{kind}:'")
        return DataSpec(kind, target if kind == "tfds" else os.path.abspath(os.path.expanduser(target)))
    path = os.path.expanduser(text)
    if text.lower().endswith(".zip"):
        return DataSpec("zip", os.path.abspath(path))
    if text and os.path.isdir(path):
        return DataSpec("folder", os.path.abspath(path))
    if _TFDS_NAME.match(text):
        return DataSpec("tfds", text)
    raise DataError(f"cannot tell what data {text!r} is: not an existing folder, not a .zip path, not a tfds name; "
                    "write folder:PATH, zip:PATH.zip or tfds:NAME")


def _tensorflow():
    """(tf, tfds), imported once with GPUs hidden from TensorFlow (see `tf_sources.tensorflow`)."""
    from nestgen.data.tf_sources import tensorflow

    return tensorflow()


# ---- folders and archives --------------------------------------------------------------------------------------

def _split_root(spec: DataSpec, split: str, cache_dir) -> Path:
    """The folder holding `<split>/`: the folder itself or the unpacked archive (one wrapping folder allowed)."""
    if spec.kind == "zip":
        if not os.path.isfile(spec.target):
            raise DataError(f"{spec}: no such zip file")
        root = extract_archive(spec.target, cache_dir)
    else:
        root = Path(spec.target)
        if not root.is_dir():
            raise DataError(f"{spec}: no such folder (expected <split>/<class>/<image> folders inside)")
    subfolders = visible_folders(root)  # `__MACOSX` beside the wrapping folder does not count
    if split not in subfolders and len(subfolders) == 1 and split in visible_folders(root / subfolders[0]):
        return root / subfolders[0]  # root/<name>/<split>/<class>/<image>, as many zips are made
    return root


def list_source_split(spec: str | DataSpec, split: str, *, cache_dir=None) -> ImageListing:
    """The listing (sorted files, labels, class names, skipped files) of a folder or zip split; zips unpacked once.

    Raises DataError for a missing folder, archive or split, NoImagesError for a split without images."""
    spec = parse_data_spec(spec)
    if spec.kind not in ("folder", "zip"):
        raise DataError(f"{spec}: only folder: and zip: sources are listed file by file")
    cache_dir = Path(cache_dir or default_cache_dir()).expanduser()
    return list_split(_split_root(spec, split, cache_dir), split, where=str(spec))


def example_order(split: str, count: int) -> np.ndarray:
    """int64 (count,): the permutation of a sorted file list that gives a split's example order.

    Seeded from the SHA-256 of the split name: the same on every machine, and classes (sorted together in the file
    list) come out mixed."""
    seed = int.from_bytes(hashlib.sha256(split.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).permutation(count)


def _ordered(listing: ImageListing, split: str, spec: DataSpec, limit: int | None
             ) -> tuple[list[str], list[str], np.ndarray]:
    """(paths, names for messages, int32 labels) of the first `limit` examples in the split's example order."""
    order = example_order(split, len(listing))[:limit]
    files = [listing.files[i] for i in order]
    paths = [str(listing.root.joinpath(*name.split("/"))) for name in files]
    names = paths if spec.kind == "folder" else [f"{spec}: {split}/{name}" for name in files]  # the entry, not a cache
    return paths, names, listing.labels[order]


def tf_dataset(spec: str | DataSpec, split: str, *, data_dir=None, cache_dir=None):
    """Stream a split: (tf.data.Dataset of {"image": uint8 (H, W, 3), "label": int32}, num_examples, class_names).

    Deterministic order (a folder/zip split in the example order of `load_split`), no shuffling, images keep their
    own sizes (resize downstream). Imports TensorFlow.
    """
    from nestgen.data import tf_sources

    spec = parse_data_spec(spec)
    if spec.kind == "tfds":
        return tf_sources.tfds_stream(spec.target, split, data_dir=data_dir)
    listing = list_source_split(spec, split, cache_dir=cache_dir)
    warn(listing.notice(f"{spec}[{split}]"))
    paths, _, labels = _ordered(listing, split, spec, None)
    return tf_sources.file_stream(paths, labels), len(paths), listing.class_names


# ---- decoding and the array cache ------------------------------------------------------------------------------

def _stack(items: Sequence, names: Sequence[str], decode: Callable, where: str) -> np.ndarray:
    """uint8 (N, H, W, 3) from `decode(items, names)` → arrays, run in chunks into one preallocated array."""
    out = None
    first_name = ""
    for start in range(0, len(items), _CHUNK):
        arrays = decode(items[start:start + _CHUNK], names[start:start + _CHUNK])
        if out is None:
            out = np.empty((len(items), *arrays[0].shape), np.uint8)  # (N, H, W, 3)
            first_name = names[0]
        for offset, array in enumerate(arrays):
            if array.shape != out.shape[1:]:
                (h, w), (h2, w2) = out.shape[1:3], array.shape[:2]
                raise DataError(f"{where}: images of different sizes ({first_name} is {w}x{h}, "
                                f"{names[start + offset]} is {w2}x{h2}); set the image size to resize them "
                                "(load_split(image_size=S); the trainers pass config.input.image_size)")
            out[start + offset] = array
    return out


def _fit(arrays: Sequence[np.ndarray], image_size: int | None) -> list[np.ndarray]:
    """Pixel arrays (a tfds builder that stores pixels) brought to image_size×image_size as decode_image would."""
    from PIL import Image

    return [a if not image_size or a.shape[:2] == (image_size, image_size)
            else np.asarray(resize_and_crop(Image.fromarray(a), image_size)) for a in arrays]


def _decode(spec: DataSpec, split: str, *, data_dir, cache_dir, limit: int | None, image_size: int | None
            ) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str]:
    """(images (N, H, W, 3) uint8, labels (N,) int32, class names, skipped files, listing notice or "")."""
    where = f"{spec}[{split}]"

    def by_pillow(sources, names):
        return decode_images(sources, image_size=image_size, names=names)

    if spec.kind == "tfds":
        from nestgen.data.tf_sources import read_tfds

        items, labels, class_names = read_tfds(spec.target, split, data_dir=data_dir, limit=limit)
        if not items:
            raise NoImagesError(f"{spec}: split {split!r} holds no image")
        names = [f"{where} example {i}" for i in range(len(items))]
        encoded = isinstance(items[0], bytes)
        images = _stack(items, names, by_pillow if encoded else lambda arrays, _: _fit(arrays, image_size), where)
        return images, labels, class_names, [], ""
    listing = list_source_split(spec, split, cache_dir=cache_dir)
    paths, names, labels = _ordered(listing, split, spec, limit)
    images = _stack(paths, names, by_pillow, where)
    return images, labels, listing.class_names, listing.skipped, listing.notice(where) or ""


def _source_digest(spec: DataSpec) -> str | None:
    """Content key of a folder/zip source: the archive's SHA-256, or the folder's file names, sizes and mtimes."""
    if spec.kind == "zip" and os.path.isfile(spec.target):
        return archive_sha256(spec.target)
    if spec.kind != "folder" or not os.path.isdir(spec.target):
        return None  # tfds caches itself; a missing path fails later with its own message
    digest = hashlib.sha256(spec.target.encode())
    for root, dirs, names in os.walk(spec.target):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            info = os.stat(path)
            digest.update(f"{os.path.relpath(path, spec.target)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cache_path(cache_dir: Path, spec: DataSpec, split: str, limit: int | None, image_size: int | None,
                digest: str) -> Path:
    record = json.dumps({"version": CACHE_VERSION, "source": digest, "split": split, "limit": limit,
                         "image_size": image_size}, sort_keys=True)
    key = hashlib.sha256(record.encode()).hexdigest()[:24]
    name = re.sub(r"[^\w.-]", "_", f"{Path(spec.target).stem}-{split}")
    return cache_dir / "arrays" / f"{name}-{key}.npz"


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], list[str], str] | None:
    try:
        with np.load(path) as arrays:
            images, labels = arrays["images"], arrays["labels"]
            names, skipped = [str(n) for n in arrays["class_names"]], [str(n) for n in arrays["skipped"]]
            notice = str(arrays["notice"])
    except (OSError, KeyError, ValueError):
        return None  # missing or damaged: decode again
    ok = images.dtype == np.uint8 and images.ndim == 4 and labels.dtype == np.int32 and len(labels) == len(images)
    return (images, labels, names, skipped, notice) if ok else None


def _write_cache(path: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str], skipped: list[str],
                 notice: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, images=images, labels=labels, class_names=np.asarray(class_names, dtype=str),
                     skipped=np.asarray(skipped, dtype=str), notice=np.asarray(notice))
        os.replace(staging, path)  # readers never see a partial file
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def load_split(spec: str | DataSpec, split: str, *, data_dir=None, cache_dir=None, limit: int | None = None,
               image_size: int | None = None) -> SplitData:
    """A whole split in memory: uint8 images (N, H, W, 3), int32 labels (N,), in the deterministic example order;
    `limit` keeps the first `limit` examples (a class-mixed sample).

    `image_size` S: every image that is not S×S is resized (shorter side to S, bicubic) and centre-cropped to
    uint8 S×S, the rule of `images.preprocess`; without it all images must share one size (else a DataError names
    two sizes). Folder/zip splits use Pillow only (no TensorFlow) and are decoded once, then read from
    `<cache_dir>/arrays/*.npz` (default cache: `$NESTGEN_CACHE` or `~/.cache/nestgen`). Skipped non-image files and
    empty class folders are reported as a `listing.SkippedFilesWarning`. Raises DataError (missing source or
    split, no images, an undecodable file: delete or replace it, sizes that differ), ArchiveError for a bad zip.
    """
    spec = parse_data_spec(spec)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive number of examples or None, got {limit!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size must be a positive number of pixels or None, got {image_size!r}")
    description = f"{spec}[{split}]" + (f"[:{limit}]" if limit is not None else "")
    cache_dir = Path(cache_dir or default_cache_dir()).expanduser()
    digest = _source_digest(spec)
    cached = _cache_path(cache_dir, spec, split, limit, image_size, digest) if digest else None
    found = _read_cache(cached) if cached and cached.is_file() else None
    if found is None and digest and limit is not None:  # the whole split may be cached: take its first rows
        whole = _cache_path(cache_dir, spec, split, None, image_size, digest)
        if whole.is_file() and (found := _read_cache(whole)) is not None:
            found = (found[0][:limit].copy(), found[1][:limit].copy(), *found[2:])  # not views of the whole
    if found is None:
        found = _decode(spec, split, data_dir=data_dir, cache_dir=cache_dir, limit=limit, image_size=image_size)
        if cached:
            _write_cache(cached, *found)
    images, labels, class_names, skipped, notice = found
    warn(notice)
    if labels.size and not 0 <= int(labels.min()) <= int(labels.max()) < len(class_names):
        raise DataError(f"{description}: labels run outside the {len(class_names)} class names")
    return SplitData(images, labels, class_names, description, skipped)
