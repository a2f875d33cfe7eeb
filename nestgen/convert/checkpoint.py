"""nestgen's release checkpoint: a directory with `config.json` and `model.safetensors`. No pickles.

config.json holds everything needed to rebuild and use the model: the model config, class names, input
preprocessing (size, resize, crop, normalisation), the dtype the weights are stored in, and where they came
from. Weights may be stored in float16/bfloat16 to halve the file; they are loaded back as float32.
Saving writes a sibling temporary directory and swaps it in, so a failed save never destroys the previous
checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import ml_dtypes
import numpy as np

from nestgen.convert.tree import ParameterTreeError, check_tree, flatten, shapes, unflatten
from nestgen.data.classes import ClassError, check_class_names

FORMAT = "nestgen"
FORMAT_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
W_AVG_KEY = "w_avg"  # a generator's metadata: the tracked mean of w, (num_classes or 1, w_dim) as nested lists
WEIGHT_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete or inconsistent. The message says which file and why."""


def imagenet_classes() -> list[str]:
    text = resources.files("nestgen.data").joinpath("imagenet_classes.txt").read_text()
    return [line for line in text.splitlines() if line]


def default_class_names(num_classes: int) -> list[str]:
    if num_classes == 10:
        return list(CIFAR10_CLASSES)
    if num_classes == 1000:
        return imagenet_classes()
    return [f"class_{i}" for i in range(num_classes)]


def default_preprocess(image_size: int) -> dict[str, Any]:
    """Small inputs: CIFAR statistics, resize the whole image. 224-style inputs: ImageNet statistics, 87.5% crop."""
    small = image_size <= 64
    return {"image_size": image_size, "resize": "bicubic", "crop_pct": 1.0 if small else 0.875,
            "mean": list(CIFAR10_MEAN if small else IMAGENET_MEAN), "std": list(CIFAR10_STD if small else IMAGENET_STD)}


@dataclasses.dataclass
class Checkpoint:
    """A loaded release checkpoint: model config, float32 parameters (nested) and metadata."""

    config: Any
    params: dict[str, Any]
    class_names: list[str]
    preprocess: dict[str, Any]
    metadata: dict[str, Any]
    path: Path | None = None

    def build(self, dtype=jnp.float32):
        return self.config.build(dtype)


def save_checkpoint(directory: str | Path, config, params: dict[str, Any], *, class_names=None,
                    preprocess: dict[str, Any] | None = None, weights_dtype: str = "float32",
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write `directory` (config.json + model.safetensors) atomically; returns its path."""
    from nestgen.files import save_safetensors
    from nestgen.models.registry import abstract_params

    directory = Path(directory)
    if weights_dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"weights_dtype must be one of {sorted(WEIGHT_DTYPES)}, got {weights_dtype!r}")
    flat = flatten(params)
    check_tree(shapes(flat), shapes(flatten(abstract_params(config))), "parameters to save")
    class_names = list(class_names) if class_names is not None else default_class_names(config.num_classes)
    if len(class_names) != config.num_classes:
        raise CheckpointError(f"{len(class_names)} class names given for a model with {config.num_classes} classes")
    try:
        check_class_names(class_names, config.num_classes, "the class names to save")
    except ClassError as error:
        raise CheckpointError(str(error)) from error
    check_finite(flat, f"the parameters to save in {directory}")
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": config.to_dict(),
              "class_names": class_names, "preprocess": preprocess or default_preprocess(config.image_size),
              "weights_dtype": weights_dtype, "metadata": metadata or {}}
    arrays = {k: np.ascontiguousarray(np.asarray(v, np.float32).astype(WEIGHT_DTYPES[weights_dtype]))
              for k, v in flat.items()}

    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as error:  # name the checkpoint asked for, not a temporary name
        raise OSError(error.errno, error.strerror, str(directory)) from error
    try:
        save_safetensors(staging / WEIGHTS_FILE, arrays, {"format": FORMAT})
        (staging / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
        for path in (staging / WEIGHTS_FILE, staging / CONFIG_FILE):
            path.chmod(0o644)  # readable like any other file, not mkdtemp's owner-only mode
        staging.chmod(0o755)
        old = directory.with_name(f".{directory.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            directory.rename(old)
        try:
            staging.rename(directory)
        except BaseException:
            if old.exists():
                old.rename(directory)  # put the previous checkpoint back
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as error:  # a full disk, …: name the checkpoint asked for, not the staging folder
        shutil.rmtree(staging, ignore_errors=True)
        raise OSError(error.errno, error.strerror, str(directory)) from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def read_checkpoint_config(directory: str | Path) -> dict[str, Any]:
    """The parsed config.json of a checkpoint directory, validated for format."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a nestgen checkpoint holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    if record.get("format") != FORMAT or "model" not in record:
        raise CheckpointError(f"{path} is not a nestgen checkpoint config (no 'format': 'nestgen' / 'model')")
    if record.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {record['format_version']}; this nestgen reads up to "
                              f"{FORMAT_VERSION}: upgrade nestgen")
    return record


def check_finite(flat: dict[str, Any], where: str) -> None:
    """CheckpointError naming the first tensor of `flat` ({name: array}) with NaN or ±inf values, their count,
    and how many other tensors have some; nothing when every value is finite."""
    bad = {}
    for name, value in flat.items():
        array = np.asarray(value)
        if array.dtype.kind == "f" or array.dtype == ml_dtypes.bfloat16:
            count = array.size - int(np.count_nonzero(np.isfinite(array.astype(np.float32))))
            if count:
                bad[name] = (count, array.size)
    if bad:
        name, (count, size) = next(iter(bad.items()))
        more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
        raise CheckpointError(f"{where}: tensor {name!r} holds {count:,} NaN or infinite value{'s' * (count != 1)} "
                              f"(of {size:,}){more}; the weights are corrupt or training diverged: use another "
                              f"checkpoint")


def check_w_avg(w_avg: Any, config, where: str) -> None:
    """A generator's tracked mean of w (metadata `w_avg`, what truncation pulls toward): finite numbers of shape
    (num_classes or 1, w_dim). CheckpointError naming what is wrong."""
    rows = max(config.num_classes, 1)
    try:
        array = np.asarray(w_avg, np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (rows, config.w_dim):
        shape = "not an array of numbers" if array is None else f"of shape {array.shape}"
        raise CheckpointError(f"{where}: metadata.{W_AVG_KEY} is {shape}; this generator needs ({rows}, "
                              f"{config.w_dim}) numbers (the mean of w per class): use the file the trainer wrote")
    bad = array.size - int(np.count_nonzero(np.isfinite(array)))
    if bad:
        raise CheckpointError(f"{where}: metadata.{W_AVG_KEY} holds {bad:,} NaN or infinite value{'s' * (bad != 1)} "
                              f"(of {array.size:,}); the file is corrupt or training diverged: use another checkpoint")


def check_preprocess(preprocess: Any, config, where: str) -> dict[str, Any]:
    """config.json's `preprocess` section, checked against the model: image_size equal to the model's, resize a
    known filter, crop_pct in (0, 1], mean/std three finite numbers (std > 0), range [low, high]; CheckpointError."""
    from nestgen.data.images import RESIZE_FILTERS

    if not isinstance(preprocess, dict):
        raise CheckpointError(f"{where}: 'preprocess' must be an object, got {type(preprocess).__name__}")
    size = preprocess.get("image_size", config.image_size)
    if size != config.image_size:
        raise CheckpointError(f"{where}: preprocess.image_size is {size!r} but the model takes "
                              f"{config.image_size}px images; set it to {config.image_size}")
    resize = preprocess.get("resize", "bicubic")
    if resize not in RESIZE_FILTERS:
        raise CheckpointError(f"{where}: preprocess.resize is {resize!r}; use one of {', '.join(RESIZE_FILTERS)}")
    crop = preprocess.get("crop_pct", 1.0)
    if not _is_number(crop) or not 0.0 < crop <= 1.0:
        raise CheckpointError(f"{where}: preprocess.crop_pct must be a number in (0, 1], got {crop!r}")
    for key, positive in (("mean", False), ("std", True), ("range", False)):
        if key not in preprocess:
            continue
        value, length = preprocess[key], (2 if key == "range" else 3)
        if (not isinstance(value, list) or len(value) != length or not all(map(_is_number, value))
                or (positive and min(value) <= 0) or (key == "range" and value[0] >= value[1])):
            wanted = "[low, high] with low < high" if key == "range" else \
                f"three {'positive ' if positive else ''}finite numbers (one per RGB channel)"
            raise CheckpointError(f"{where}: preprocess.{key} must be {wanted}, got {value!r:.80}")
    if config.kind == "classifier" and not {"mean", "std"} <= preprocess.keys():
        raise CheckpointError(f"{where}: preprocess needs 'mean' and 'std' (per-channel normalisation of a "
                              f"classifier's input), e.g. {default_preprocess(config.image_size)}")
    return preprocess


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """Load a release checkpoint, checked at the door: weight names and shapes against the model config, every
    weight finite, `class_names` one distinct name per class, `preprocess` fitting the model. Weights are cast to
    float32. Raises CheckpointError (one line: the file, the tensor or field, and what to do)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from nestgen.models.registry import abstract_params, config_from_dict

    directory = Path(directory)
    record = read_checkpoint_config(directory)
    where = directory / CONFIG_FILE
    try:
        config = config_from_dict(record["model"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{where}: invalid model config: {error}") from error
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing")
    try:
        flat = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights} could not be read as safetensors: {error}") from error
    try:
        check_tree(shapes(flat), shapes(flatten(abstract_params(config))), f"{weights}")
    except ParameterTreeError as error:
        raise CheckpointError(str(error)) from error
    check_finite(flat, str(weights))
    class_names = record.get("class_names")
    if class_names is None:
        class_names = default_class_names(config.num_classes)
    try:
        class_names = check_class_names(class_names, config.num_classes, str(where))
    except ClassError as error:
        raise CheckpointError(str(error)) from error
    preprocess = check_preprocess(record.get("preprocess") or default_preprocess(config.image_size), config,
                                  str(where))
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{where}: 'metadata' must be an object, got {type(metadata).__name__}")
    if config.kind == "generator" and W_AVG_KEY in metadata:
        check_w_avg(metadata[W_AVG_KEY], config, str(where))
    params = unflatten({k: jnp.asarray(np.asarray(v, np.float32)) for k, v in flat.items()})
    return Checkpoint(config, params, class_names, preprocess, metadata, directory)
