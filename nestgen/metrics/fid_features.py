"""The feature networks that FID-style distances are measured in, wrapped the way clean-fid calls its feature
extractor: clean-fid's Inception-v3 (FID, KID) and the pooled features of a trained nestgen classifier (FD_NesT).

Imports neither torch nor clean-fid: `fid` passes `fid_base.backends()` in as `bk`, and says which files to use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nestgen.metrics.fid_base import FIDError, require_file

INCEPTION_FILE = "inception-2015-12-05.pt"  # clean-fid's TorchScript Inception-v3 (clean, legacy_tensorflow)


@dataclasses.dataclass
class FeatureNetwork:
    """What clean-fid calls the feature extractor, plus how its distance is named and cached."""

    key: str  # part of cached statistics' names: "inception_clean", "nest_<id>"
    metric: str  # "fid" or "fd_nest"
    label: str  # "FID" or "FD_NesT[<classifier checkpoint id>]", never "FID" for NesT features
    description: str
    extract: Callable  # torch (B, 3, H, W) float in [0, 255] → torch (B, D)
    resize: Callable | None  # numpy (H, W, 3) → float32 (h, w, 3); None: clean-fid's resizer for `mode`
    mode: str = "clean"

    @property
    def kid_metric(self) -> str:
        return "kid" if self.metric == "fid" else "kd_nest"


def checkpoint_id(directory: str | Path) -> str:
    """`<checkpoint dir name>@<first 8 hex digits of the SHA-256 of its weights file>`."""
    from nestgen.convert.checkpoint import WEIGHTS_FILE, CheckpointError, read_checkpoint_config

    read_checkpoint_config(directory)  # a clear error for a missing or foreign directory
    path = Path(directory).resolve() / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return f"{path.parent.name}@{digest.hexdigest()[:8]}"


def inception_network(bk: Any, mode: str, weights, device, *, path: Path, url: str) -> FeatureNetwork:
    """clean-fid's Inception-v3 for `mode`, from `weights` if given, else from `path` (fetched from `url` if missing).

    legacy_pytorch: pytorch-fid's network, at `path` in torch's hub cache; it takes no `weights`."""
    description = f"Inception-v3 pool3 2048-d ({{}}), clean-fid {mode} mode"
    if mode == "legacy_pytorch":
        if weights is not None:
            raise FIDError(f"--inception-weights is the TorchScript network of the clean and legacy_tensorflow "
                           f"modes; legacy_pytorch reads {path.name} from {path.parent}")
        path = require_file(path, url, "clean-fid's legacy_pytorch Inception network")
        extract = bk.features.build_feature_extractor(mode, device, use_dataparallel=False)
        return FeatureNetwork(f"inception_{mode}", "fid", "FID", description.format(path.name), extract, None, mode)
    if weights is not None:
        path = Path(weights).expanduser().resolve()
        if not path.is_file():
            raise FIDError(f"--inception-weights {path}: no such file (clean-fid's TorchScript Inception network "
                           f"{INCEPTION_FILE}, from {url})")
    else:
        path = require_file(path, url, "clean-fid's Inception network",
                            hint=", or pass --inception-weights PATH (inception_weights=PATH in Python)")
    try:
        with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
            directory = path.parent
            if path.name != INCEPTION_FILE:  # clean-fid's InceptionV3W loads <directory>/inception-2015-12-05.pt
                directory = Path(scratch)
                (directory / INCEPTION_FILE).symlink_to(path)
            model = bk.inception.InceptionV3W(str(directory), download=False,
                                              resize_inside=mode == "legacy_tensorflow")
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise FIDError(f"{path} is not clean-fid's TorchScript Inception network: {first_line}") from error
    model = model.to(device).eval()
    return FeatureNetwork(f"inception_{mode}", "fid", "FID", description.format(path), model, None, mode)


def nest_network(bk: Any, directory: str, batch_size: int) -> FeatureNetwork:
    """The pooled pre-logit features of a nestgen classifier, with the checkpoint's own resize and normalisation."""
    from nestgen.convert.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(directory)
    if checkpoint.config.kind != "classifier":
        raise FIDError(f"nest:{directory} holds a {checkpoint.config.kind}; FD_NesT needs a classifier checkpoint")
    ident, pre, model = checkpoint_id(directory), checkpoint.preprocess, checkpoint.build()
    mean, std = (np.float32(255) * np.asarray(pre[key], np.float32) for key in ("mean", "std"))  # (3,), pixel units
    forward = jax.jit(lambda params, x: model.apply({"params": params}, (x - mean) / std)[1]["pre_logits"])

    def extract(batch):  # torch (B, 3, S, S) in [0, 255] → torch (B, C)
        x = batch.detach().cpu().numpy().transpose(0, 2, 3, 1).astype(np.float32)  # (B, S, S, 3)
        out = []
        for start in range(0, len(x), batch_size):
            chunk = x[start:start + batch_size]
            padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:], np.float32)])
            out.append(np.asarray(forward(checkpoint.params, padded))[:len(chunk)])  # (b, C)
        return bk.torch.from_numpy(np.concatenate(out))

    size = int(pre["image_size"])
    scale = max(size, int(round(size / float(pre.get("crop_pct", 1.0)))))
    resize_to_scale = bk.resize.make_resizer("PIL", False, pre.get("resize", "bicubic"), (scale, scale))

    def resize(image: np.ndarray) -> np.ndarray:  # clean-fid's float PIL resize to S / crop_pct, centre crop S
        image = resize_to_scale(np.asarray(image))
        top = (scale - size) // 2
        return np.ascontiguousarray(image[top:top + size, top:top + size], np.float32)  # (S, S, 3)

    description = (f"nestgen classifier {checkpoint.path} ({ident}) pooled pre-logits {checkpoint.config.dims[-1]}-d, "
                   f"inputs resized to {size}x{size} (PIL bicubic, clean)")
    return FeatureNetwork(f"nest_{ident}", "fd_nest", f"FD_NesT[{ident}]", description, extract, resize)
