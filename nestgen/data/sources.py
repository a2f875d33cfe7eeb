"""Where images come from: tfds builders, local `<split>/<class>/<image>` folders, or zip archives of such folders.

A data spec names the source (`tfds:cifar10`, `folder:/data/pets`, `zip:../shared/data/cifar10-train.zip`, or
the bare name/path). All reading goes through tensorflow-datasets and tf.data; folders and unpacked archives are
read with `tfds.folder_dataset.ImageFolder`, whose order is a fixed shuffle seeded by the split name (the same
on every call and machine, classes interleaved, so the first `limit` examples are a mixed sample). Class names
travel with the data so that trainers can write them into checkpoints. Decoded folder/zip splits are cached as
`.npz` under the cache directory. TensorFlow is imported on first use and never sees a GPU.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from nestgen.data.archive import archive_sha256, default_cache_dir, extract_archive

KINDS = ("tfds", "folder", "zip")
CACHE_VERSION = 1
_TFDS_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.+-]+)?(:[0-9*]+\.[0-9*]+\.[0-9*]+)?$")
_PROBE_TIMEOUT_S = 5.0
_BATCH = 256


class DataError(ValueError):
    """A data source is missing, unknown, unreachable or inconsistent; the message says what to do instead."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A parsed data source: `kind` is "tfds" (target: builder name, optionally ":version") or "folder"/"zip"."""

    kind: str
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclasses.dataclass
class SplitData:
    """One split in memory: uint8 images (N, H, W, 3), int32 labels (N,) and the class names labels index."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    description: str

    def __len__(self) -> int:
        return len(self.labels)


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


@functools.cache
def _tensorflow():
    """Import TensorFlow and tfds once, with GPUs hidden from TensorFlow (JAX owns the accelerators)."""
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(f"reading datasets needs TensorFlow and tensorflow-datasets ({error}): "
                          "pip install 'nestgen[data]'") from error
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # TensorFlow was initialised already; its devices can no longer change
    try:
        import importlib_resources  # noqa: F401
    except ImportError:
        # tfds 4.9.10 imports it when preparing a builder but declares it only for Python < 3.9
        # (tensorflow/datasets#11212); the standard library module has the same API.
        import importlib.resources
        sys.modules.setdefault("importlib_resources", importlib.resources)
    return tf, tfds


def _unreachable(urls) -> str | None:
    """A short reason if a download host does not answer within seconds (tfds itself retries for minutes)."""
    import requests

    hosts = {}
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https"):
            hosts.setdefault(parsed.netloc, url)
    for host, url in sorted(hosts.items()):
        try:
            requests.head(url, timeout=_PROBE_TIMEOUT_S, allow_redirects=False)
        except requests.exceptions.RequestException as error:
            text = str(error)
            why = ("name resolution failed" if "NameResolution" in text or "resolve" in text else
                   "proxy refused the connection" if isinstance(error, requests.exceptions.ProxyError) else
                   "timed out" if isinstance(error, requests.exceptions.Timeout) else type(error).__name__)
            return f"cannot reach {host}: {why}"
    return None


def _offline_message(name: str, where: str, reason: str) -> str:
    return (f"tfds dataset {name!r} is not prepared in {where} and could not be downloaded ({reason}). "
            "Use local data instead: --data folder:PATH (a <split>/<class>/<image> folder) or --data zip:PATH.zip "
            "(for example ../shared/data/cifar10-train.zip), or prepare it with tfds on a machine with network "
            "and pass --data-dir.")


def _tfds_builder(name: str, data_dir):
    """The prepared tfds builder for `name`; downloads only if the network answers, else fails at once."""
    tf, tfds = _tensorflow()
    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))
    except tfds.core.DatasetNotFoundError as error:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name.split(":")[0].split("/")[0], known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"tfds dataset {name!r} is unknown to tensorflow-datasets {tfds.__version__}.{hint} "
                        "For local images use --data folder:PATH or --data zip:PATH.zip.") from error
    except (AssertionError, ValueError) as error:  # e.g. a version tfds does not have
        raise DataError(f"tfds dataset {name!r}: {str(error).splitlines()[0]}") from error
    if builder.is_prepared():
        return builder
    try:
        urls = list(builder.url_infos or {})
    except Exception:  # no checksums file: nothing to probe, let tfds try
        urls = []
    reason = _unreachable(urls)
    if reason is None:
        try:
            builder.download_and_prepare()
            return builder
        except Exception as error:  # tfds raises many kinds (requests, OSError, AssertionError for manual data)
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    raise DataError(_offline_message(name, str(builder.data_dir), reason))


def _folder_root(spec: DataSpec, split: str, cache_dir) -> Path:
    """The directory ImageFolder reads: the folder itself or the unpacked archive (one wrapping folder allowed)."""
    if spec.kind == "zip":
        if not os.path.isfile(spec.target):
            raise DataError(f"{spec}: no such zip file")
        root = extract_archive(spec.target, cache_dir)
    else:
        root = Path(spec.target)
        if not root.is_dir():
            raise DataError(f"{spec}: no such folder (expected <split>/<class>/<image> folders inside)")
    subfolders = [path for path in root.iterdir() if path.is_dir()]
    if not (root / split).is_dir() and len(subfolders) == 1 and (subfolders[0] / split).is_dir():
        return subfolders[0]  # root/<name>/<split>/<class>/<image>, as many zips are made
    return root


def _source(spec: DataSpec, split: str, *, data_dir, cache_dir):
    """(tf.data.Dataset of raw tfds examples, number of examples, class names, the split's folder or None)."""
    tf, tfds = _tensorflow()
    root = None
    if spec.kind == "tfds":
        builder = _tfds_builder(spec.target, data_dir)
    else:
        root = _folder_root(spec, split, cache_dir)
        builder = tfds.folder_dataset.ImageFolder(str(root))
        if not builder.info.splits:
            raise DataError(f"{spec}: no <split>/<class>/<image> folders with .jpg/.jpeg/.png files in {root}")
    splits = sorted(builder.info.splits.keys())
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DataError(f"{spec}: has features {sorted(features.keys())}; an 'image' and a 'label' are needed")
    image = features["image"]
    encoded = isinstance(image, tfds.features.Image) and tf.as_dtype(image.dtype) == tf.uint8
    decoders = {"image": tfds.decode.SkipDecoding()} if encoded else None  # decoded by _decode_image instead
    try:
        num_examples = builder.info.splits[split].num_examples
        dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
    except (KeyError, ValueError) as error:
        raise DataError(f"{spec}: no split {split!r}; it has {splits} (<split>/<class>/<image> folders for "
                        "local data)") from error
    options = tf.data.Options()
    options.deterministic = True
    split_dir = root / split if root is not None else None
    return dataset.with_options(options), num_examples, list(features["label"].names), split_dir


def _decode_image(encoded):
    """Encoded JPEG/PNG/... bytes → uint8 (H, W, 3), decoded as Pillow does in nestgen.data.images.

    TensorFlow's default JPEG IDCT differs from Pillow's by up to 5 levels (mean 1) on the CIFAR-10 JPEGs; the
    accurate IDCT matches it exactly, so training and inference see the same pixels. Transparency goes on white.
    """
    tf, _ = _tensorflow()

    def jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")  # (H, W, 3)

    def png():
        rgba = tf.cast(tf.io.decode_png(encoded, channels=4), tf.float32)  # (H, W, 4)
        alpha = rgba[..., 3:] / 255.0  # (H, W, 1)
        return tf.cast(tf.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)), tf.uint8)  # (H, W, 3)

    def other():  # GIF, BMP or WebP behind an image file name; animations give their first frame
        frames = tf.io.decode_image(encoded, channels=3)  # (H, W, 3) or (frames, H, W, 3)
        frames = tf.reshape(frames, tf.concat([[-1], tf.shape(frames)[-3:]], axis=0))  # (frames, H, W, 3)
        return tf.ensure_shape(frames[0], [None, None, 3])  # (H, W, 3)

    is_png = tf.strings.substr(encoded, 0, 8) == b"\x89PNG\r\n\x1a\n"
    return tf.cond(tf.io.is_jpeg(encoded), jpeg, lambda: tf.cond(is_png, png, other))


def _to_image_label(example):
    """Raw example → {"image": uint8 (H, W, 3), "label": int32}; encoded images go through _decode_image."""
    tf, _ = _tensorflow()
    image = example["image"]
    if image.dtype == tf.string:
        image = _decode_image(image)
    elif image.dtype != tf.uint8:
        image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
    if image.shape.rank == 2:
        image = image[..., None]  # (H, W, 1)
    channels = image.shape[-1]
    if channels in (1, 2):  # grayscale (with alpha)
        image = tf.repeat(image[..., :1], 3, axis=-1)  # (H, W, 3)
    elif channels != 3:  # RGBA, or not known until decoded
        image = tf.cond(tf.shape(image)[-1] < 3, lambda: tf.repeat(image[..., :1], 3, axis=-1),
                        lambda: image[..., :3])  # (H, W, 3)
    return {"image": image, "label": tf.cast(example["label"], tf.int32)}


def tf_dataset(spec: str | DataSpec, split: str, *, data_dir=None, cache_dir=None):
    """Stream a split: (tf.data.Dataset of {"image": uint8 (H, W, 3), "label": int32}, num_examples, class_names).

    Deterministic order, no shuffling, images keep their own sizes (resize downstream).
    """
    spec = parse_data_spec(spec)
    dataset, num_examples, class_names, _ = _source(spec, split, data_dir=data_dir, cache_dir=cache_dir)
    return dataset.map(_to_image_label, num_parallel_calls=_tensorflow()[0].data.AUTOTUNE), num_examples, class_names


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


def _cache_path(cache_dir: Path, spec: DataSpec, split: str, limit: int | None, digest: str) -> Path:
    record = json.dumps({"version": CACHE_VERSION, "source": digest, "split": split, "limit": limit}, sort_keys=True)
    key = hashlib.sha256(record.encode()).hexdigest()[:24]
    name = re.sub(r"[^\w.-]", "_", f"{Path(spec.target).stem}-{split}")  # "train[:10%]" → "train__10__"
    return cache_dir / "arrays" / f"{name}-{key}.npz"


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    try:
        with np.load(path) as arrays:
            images, labels, names = arrays["images"], arrays["labels"], [str(n) for n in arrays["class_names"]]
    except (OSError, KeyError, ValueError):
        return None  # missing or damaged: decode again
    ok = images.dtype == np.uint8 and images.ndim == 4 and labels.dtype == np.int32 and len(labels) == len(images)
    return (images, labels, names) if ok else None


def _write_cache(path: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, images=images, labels=labels, class_names=np.asarray(class_names, dtype=str))
        os.replace(staging, path)  # readers never see a partial file
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _decode(spec: DataSpec, split: str, *, data_dir, cache_dir, limit: int | None):
    """Decode a split into (images (N, H, W, 3) uint8, labels (N,) int32, class names) with tf.data."""
    tf, _ = _tensorflow()
    dataset, _, class_names, split_dir = _source(spec, split, data_dir=data_dir, cache_dir=cache_dir)
    if limit is not None:
        dataset = dataset.take(limit)
    stream = dataset.map(_to_image_label, num_parallel_calls=tf.data.AUTOTUNE)
    images, labels = [], []
    try:
        for batch in stream.batch(_BATCH).prefetch(2).as_numpy_iterator():
            images.append(batch["image"])  # (B, H, W, 3)
            labels.append(batch["label"])
    except tf.errors.InvalidArgumentError as error:
        raise _explain(f"{spec}[{split}]", dataset, split_dir, error) from error
    if not images:
        raise DataError(f"{spec}: split {split!r} holds no images")
    return np.concatenate(images), np.concatenate(labels).astype(np.int32), class_names


def _tf_reason(error) -> str:
    """The useful end of a tf.data error ("Unknown image file format. ..."), without graph node names."""
    text = re.sub(r"\{\{.*?\}\}\s*", "", str(error.message)).strip().splitlines()[0]
    text = re.sub(r"\s*\[Op:[^\]]*\].*$", "", text)  # " [Op:DecodeImage] name:"
    return text.rsplit(": ", 1)[-1] if "Iterator::" in text else text


def _explain(where: str, dataset, split_dir: Path | None, error) -> DataError:
    """Batching failed: name the first image of another size, or the file that does not decode."""
    tf, _ = _tensorflow()
    first = None
    try:
        for example in dataset.map(lambda ex: {"image": _to_image_label(ex)["image"],
                                               "name": ex.get("image/filename", tf.constant(""))}):
            shape, name = tuple(example["image"].shape), example["name"].numpy().decode()
            if first is None:
                first = (shape, name)
            elif shape != first[0]:
                return DataError(f"{where}: images of different sizes ({first[1] or 'the first'} is "
                                 f"{first[0][1]}x{first[0][0]}, {name or 'another'} is {shape[1]}x{shape[0]}); "
                                 "resize them or use a streaming pipeline (tf_dataset)")
    except tf.errors.InvalidArgumentError as decode_error:
        error = decode_error
    for path in sorted(split_dir.rglob("*")) if split_dir else ():  # find the culprit, file by file
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            try:
                tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
            except tf.errors.InvalidArgumentError as decode_error:
                return DataError(f"{where}: {path} could not be decoded ({_tf_reason(decode_error)}); "
                                 "delete or replace it")
    return DataError(f"{where}: an image could not be decoded ({_tf_reason(error)})")


def load_split(spec: str | DataSpec, split: str, *, data_dir=None, cache_dir=None, limit: int | None = None
               ) -> SplitData:
    """A whole split in memory, in the source's deterministic order; `limit` keeps the first `limit` examples.

    All images must share one size. Folder and zip splits are decoded once and then read from
    `<cache_dir>/arrays/*.npz` (default cache: `$NESTGEN_CACHE` or `~/.cache/nestgen`).
    """
    spec = parse_data_spec(spec)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive number of examples or None, got {limit!r}")
    description = f"{spec}[{split}]" + (f"[:{limit}]" if limit is not None else "")
    cache_dir = Path(cache_dir or default_cache_dir()).expanduser()
    digest = _source_digest(spec)
    cached = _cache_path(cache_dir, spec, split, limit, digest) if digest else None
    found = _read_cache(cached) if cached and cached.is_file() else None
    if found is None and digest and limit is not None:  # the whole split may be cached: take its first rows
        whole = _cache_path(cache_dir, spec, split, None, digest)
        if whole.is_file() and (found := _read_cache(whole)) is not None:
            found = (found[0][:limit].copy(), found[1][:limit].copy(), found[2])  # not views of the whole
    if found is None:
        found = _decode(spec, split, data_dir=data_dir, cache_dir=cache_dir, limit=limit)
        if cached:
            _write_cache(cached, *found)
    images, labels, class_names = found
    if labels.size and not 0 <= int(labels.min()) <= int(labels.max()) < len(class_names):
        raise DataError(f"{description}: labels run outside the {len(class_names)} class names")
    return SplitData(images, labels, class_names, description)
