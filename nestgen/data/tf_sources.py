"""The TensorFlow side of data sources, imported only when one is used: tfds builders (read into memory or
streamed) and tf.data streams of folder/zip image files.

Folder and zip splits held in memory never come here (`sources.load_split` reads them with Pillow alone). A tfds
split read into memory is only *read* by TensorFlow: its encoded images are decoded by `images.decode_image` like
every other file. Streams (`sources.tf_dataset`) decode tfds images with tf.io (accurate IDCT, transparency on
white: the Pillow pixels on JPEG/PNG) and folder/zip files with `decode_image` itself. TensorFlow never sees a GPU.
"""

from __future__ import annotations

import difflib
import functools
import os
import sys
from urllib.parse import urlparse

import numpy as np

from nestgen.data.images import decode_image
from nestgen.data.listing import DataError

_PROBE_TIMEOUT_S = 5.0


@functools.cache
def tensorflow():
    """Import TensorFlow and tfds once, with GPUs hidden from TensorFlow (JAX owns the accelerators)."""
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(f"reading tfds datasets or streaming with tf.data needs TensorFlow and tensorflow-datasets "
                          f"({error}): pip install 'nestgen[data]'") from error
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


def tfds_builder(name: str, data_dir):
    """The prepared tfds builder for `name`; downloads only if the network answers, else fails at once."""
    tf, tfds = tensorflow()
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


def _tfds_source(name: str, split: str, data_dir):
    """(tf.data.Dataset of raw examples, number of examples, class names, whether images stay encoded)."""
    tf, tfds = tensorflow()
    builder = tfds_builder(name, data_dir)
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DataError(f"tfds:{name}: has features {sorted(features.keys())}; an 'image' and a 'label' are needed")
    image = features["image"]
    encoded = isinstance(image, tfds.features.Image) and tf.as_dtype(image.dtype) == tf.uint8
    decoders = {"image": tfds.decode.SkipDecoding()} if encoded else None  # decoded by us instead
    try:
        dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
    except (KeyError, ValueError) as error:
        raise DataError(f"tfds:{name}: no split {split!r}; it has {sorted(builder.info.splits.keys())}") from error
    try:
        num_examples = builder.info.splits[split].num_examples
    except (KeyError, ValueError):  # no split metadata (tfds.testing.mock_data): count what the dataset holds
        num_examples = int(dataset.cardinality())
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options), num_examples, list(features["label"].names), encoded


def _decode_tf(encoded):
    """Encoded JPEG/PNG/... bytes → uint8 (H, W, 3) with tf.io, the pixels Pillow gives on JPEG and PNG.

    TensorFlow's default JPEG IDCT differs from Pillow's by up to 5 levels (mean 1) on the CIFAR-10 JPEGs; the
    accurate IDCT matches it exactly. Transparency goes on white. (EXIF orientation is not applied: tfds builders
    store images as they are meant to be seen.)
    """
    tf, _ = tensorflow()

    def jpeg():
        return tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")  # (H, W, 3)

    def png():
        rgba = tf.cast(tf.io.decode_png(encoded, channels=4), tf.float32)  # (H, W, 4)
        alpha = rgba[..., 3:] / 255.0  # (H, W, 1)
        return tf.cast(tf.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)), tf.uint8)  # (H, W, 3)

    def other():  # GIF, BMP or WebP; animations give their first frame
        frames = tf.io.decode_image(encoded, channels=3)  # (H, W, 3) or (frames, H, W, 3)
        frames = tf.reshape(frames, tf.concat([[-1], tf.shape(frames)[-3:]], axis=0))  # (frames, H, W, 3)
        return tf.ensure_shape(frames[0], [None, None, 3])  # (H, W, 3)

    is_png = tf.strings.substr(encoded, 0, 8) == b"\x89PNG\r\n\x1a\n"
    return tf.cond(tf.io.is_jpeg(encoded), jpeg, lambda: tf.cond(is_png, png, other))


def _to_image_label(example, decode: bool = True):
    """Raw tfds example → {"image": uint8 (H, W, 3) (or the encoded bytes if not `decode`), "label": int32}."""
    tf, _ = tensorflow()
    image = example["image"]
    if image.dtype == tf.string:
        if not decode:
            return {"image": image, "label": tf.cast(example["label"], tf.int32)}
        image = _decode_tf(image)
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


def read_tfds(name: str, split: str, *, data_dir, limit: int | None
              ) -> tuple[list[bytes | np.ndarray], np.ndarray, list[str]]:
    """A tfds split read (not decoded) into memory: (encoded images as bytes, or uint8 (H, W, 3) arrays where the
    builder stores pixels; int32 labels (N,); class names), in the builder's deterministic order."""
    tf, _ = tensorflow()
    dataset, _, class_names, _ = _tfds_source(name, split, data_dir)
    if limit is not None:
        dataset = dataset.take(limit)
    stream = dataset.map(functools.partial(_to_image_label, decode=False), num_parallel_calls=tf.data.AUTOTUNE)
    images, labels = [], []
    for example in stream.prefetch(64).as_numpy_iterator():
        images.append(example["image"])  # bytes, or (H, W, 3) uint8
        labels.append(example["label"])
    return images, np.asarray(labels, np.int32), class_names


def tfds_stream(name: str, split: str, *, data_dir):
    """(tf.data.Dataset of {"image": uint8 (H, W, 3), "label": int32}, number of examples, class names)."""
    tf, _ = tensorflow()
    dataset, num_examples, class_names, _ = _tfds_source(name, split, data_dir)
    return dataset.map(_to_image_label, num_parallel_calls=tf.data.AUTOTUNE), num_examples, class_names


def file_stream(paths: list[str], labels: np.ndarray):
    """tf.data.Dataset of {"image": uint8 (H, W, 3), "label": int32} from image files, decoded by decode_image.

    Deterministic, in the order given; a file Pillow cannot decode stops the iteration with its DataError text.
    """
    tf, _ = tensorflow()

    def decode(path: bytes) -> np.ndarray:
        return decode_image(os.fsdecode(path))  # (H, W, 3)

    def load(path, label):
        image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        return {"image": tf.ensure_shape(image, [None, None, 3]), "label": tf.cast(label, tf.int32)}

    options = tf.data.Options()
    options.deterministic = True
    names = tf.constant([os.fsencode(path) for path in paths], tf.string)  # (N,): any file name, undecoded
    dataset = tf.data.Dataset.from_tensor_slices((names, np.asarray(labels, np.int32)))
    return dataset.with_options(options).map(load, num_parallel_calls=tf.data.AUTOTUNE)
