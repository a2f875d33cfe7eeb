"""FID, KID and precision/recall of a generator through clean-fid, and FD_NesT: the same Fréchet distance in the
pooled features of a trained nestgen classifier. The only nestgen module that imports torch and clean-fid.

Protocol (spec §5): clean mode (legacy_tensorflow / legacy_pytorch selectable), image i of a run drawn from seed
seed0 + i with label i mod num_classes (a uniform class mix), features from clean-fid's own code path
(`get_model_features`, `get_folder_features`, `frechet_distance`, `kernel_distance`). References:

  cifar10:train, cifar10:test, ffhq:trainval70k:256, …  clean-fid's precomputed statistics (NAME:SPLIT[:RES])
  zip:PATH.zip@SPLIT, folder:PATH@SPLIT, tfds:NAME@SPLIT  statistics nestgen builds from a data source and caches
                                                          in <cache>/fid/ (rebuilt when the images change)
  images:PATH                                           every image file under a folder (or in a .zip), each run

Every file clean-fid would download (Inception network, precomputed statistics) is checked, and fetched if the
network answers, before anything is generated; otherwise the error names the file and where to put it.
Import torch/clean-fid (`backends()`) before TensorFlow: torchvision aborts the process when imported after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import shutil
import sys
import tempfile
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nestgen.data.archive import default_cache_dir
from nestgen.evaluation.precision_recall import precision_recall

MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")
INCEPTION_FILE = "inception-2015-12-05.pt"  # clean-fid's TorchScript Inception-v3 (clean, legacy_tensorflow)
INCEPTION_URL = f"https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/{INCEPTION_FILE}"
CLEANFID_INCEPTION = Path("/tmp") / INCEPTION_FILE  # where clean-fid itself downloads it
PT_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # legacy_pytorch, in torch's hub cache
PT_INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PT_INCEPTION_FILE}"
STATS_URL = "https://www.cs.cmu.edu/~clean-fid/stats/"
CLEANFID_STATS_DIR: Path | None = None  # None: the installed package's cleanfid/stats/
DOWNLOAD_TIMEOUT_S = 10.0
STATS_VERSION = 1
# clean-fid's precomputed statistics: name → {split: resolutions (the first is the default)}.
STANDARD_SETS = {
    "cifar10": {"train": (32,), "test": (32,)}, "ffhq": {"trainval": (1024, 256), "trainval70k": (1024, 256)},
    "lsun_church": {"train": (256,)}, "lsun_horse": {"train": (256,)},
    "lsun_cat": {"train": (256,), "trainfull": (256,)},
    "afhq_cat": {"train": (512,)}, "afhq_dog": {"train": (512,)}, "afhq_wild": {"train": (512,)},
    "brecahad": {"train": (512,)}, "metfaces": {"train": (1024,)}, "horse2zebra": {"test": (256,)},
    "cat2dog": {"test": (256,)},
}
REFERENCE_HELP = ("cifar10:train, cifar10:test or another of clean-fid's precomputed sets (NAME:SPLIT[:RES]); "
                  "zip:PATH.zip@SPLIT, folder:PATH@SPLIT or tfds:NAME@SPLIT (statistics built and cached by nestgen); "
                  "images:PATH (a folder or .zip of images)")


class FIDError(ValueError):
    """A reference, feature network or file needed for FID is unknown or missing; the message says what to do."""


@functools.cache
def backends():
    """torch and clean-fid's modules, imported once (before TensorFlow, or torchvision aborts the process)."""
    if "tensorflow" in sys.modules and "torchvision" not in sys.modules:
        raise FIDError("torchvision (clean-fid's dependency) aborts the process when imported after TensorFlow: "
                       "call nestgen.evaluation.fid.backends() (or import torch, torchvision) before TensorFlow")
    try:
        import cleanfid.features
        import cleanfid.fid
        import cleanfid.inception_torchscript
        import cleanfid.resize
        import torch
    except ImportError as error:
        raise ImportError(f'FID needs torch and clean-fid ({error}): pip install -e ".[fid]"') from error
    return dataclasses.make_dataclass("Backends", ["torch", "fid", "features", "resize", "inception"])(
        torch, cleanfid.fid, cleanfid.features, cleanfid.resize, cleanfid.inception_torchscript)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """clean-fid's Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The `disp` argument is deprecated", DeprecationWarning)  # scipy 1.17
        return float(backends().fid.frechet_distance(mu1, sigma1, mu2, sigma2))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features → mean (D,) and covariance (D, D), as clean-fid computes them."""
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def kernel_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """clean-fid's KID (100 subsets of ≤ 1000), with its subsets drawn from `seed` (the global RNG is restored)."""
    state = np.random.get_state()  # noqa: NPY002 (clean-fid draws its subsets from the global RNG)
    try:
        np.random.seed(seed)  # noqa: NPY002
        return float(backends().fid.kernel_distance(real, fake))
    finally:
        np.random.set_state(state)  # noqa: NPY002


# ---- references ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Reference:
    """kind "standard" (clean-fid's statistics of `name`/`split`/`res`), "data" (a nestgen data spec) or "images"."""

    kind: str
    name: str
    split: str | None = None
    res: int | None = None

    def __str__(self) -> str:
        return {"standard": f"{self.name}:{self.split}:{self.res}", "data": f"{self.name}@{self.split}",
                "images": f"images:{self.name}"}[self.kind]


def parse_reference(text: str | Reference) -> Reference:
    """`cifar10:train`, `ffhq:trainval70k:256`, `zip:PATH@SPLIT`, `folder:…@SPLIT`, `tfds:NAME@SPLIT`, `images:PATH`."""
    if isinstance(text, Reference):
        return text
    text = str(text).strip()
    kind, _, rest = text.partition(":")
    if kind == "images":
        path = os.path.abspath(os.path.expanduser(rest))
        if not (os.path.isdir(path) or (path.lower().endswith(".zip") and os.path.isfile(path))):
            raise FIDError(f"reference {text!r}: {path} is not a folder or a .zip file of images")
        return Reference("images", path)
    if kind in ("zip", "folder", "tfds"):
        from nestgen.data.sources import parse_data_spec

        spec, _, split = text.rpartition("@") if "@" in text else (text, "", "train")
        return Reference("data", str(parse_data_spec(spec)), split or "train")
    name, split, res = (text.lower().split(":") + [None, None])[:3]
    if name not in STANDARD_SETS:
        raise FIDError(f"unknown FID reference {text!r}; use {REFERENCE_HELP}")
    splits = STANDARD_SETS[name]
    split = split or next(iter(splits))
    if split not in splits:
        raise FIDError(f"clean-fid has no statistics for {name} split {split!r}; it has {', '.join(splits)}")
    if res is not None and (not res.isdigit() or int(res) not in splits[split]):
        raise FIDError(f"clean-fid has {name}:{split} statistics at {splits[split]}, not at resolution {res}")
    return Reference("standard", name, split, int(res) if res else splits[split][0])


# ---- feature networks ------------------------------------------------------------------------------------------

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


def _download(url: str, path: Path) -> str | None:
    """Fetch url to path (atomically); None on success, else why not."""
    staging = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(response, out)
        os.replace(staging, path)
        return None
    except OSError as error:  # urllib.error.URLError, timeouts, unwritable folders
        if staging:
            Path(staging).unlink(missing_ok=True)
        return f"{type(error).__name__}: {getattr(error, 'reason', None) or error}"


def _require(path: Path, url: str, what: str, hint: str = "", alternatives: tuple[Path, ...] = ()) -> Path:
    """An existing copy of a file clean-fid needs (downloaded if the network answers), else a FIDError."""
    for candidate in (path, *alternatives):
        if candidate.is_file():
            return candidate
    reason = _download(url, path)
    if reason is None:
        return path
    elsewhere = f" (or in {', '.join(str(p.parent) for p in alternatives)})" if alternatives else ""
    raise FIDError(f"{what} is missing: {path} does not exist and could not be downloaded from {url} ({reason}). "
                   f"Download {path.name} on a machine with network and put it at {path}{elsewhere}{hint}.")


def _device(device):
    torch = backends().torch
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FIDError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return device


def _inception_network(mode: str, weights, device) -> FeatureNetwork:
    bk = backends()
    description = f"Inception-v3 pool3 2048-d ({{}}), clean-fid {mode} mode"
    if mode == "legacy_pytorch":
        hub = Path(bk.torch.hub.get_dir()) / "checkpoints"
        if weights is not None:
            raise FIDError(f"--inception-weights is the TorchScript network of the clean and legacy_tensorflow "
                           f"modes; legacy_pytorch reads {PT_INCEPTION_FILE} from {hub}")
        path = _require(hub / PT_INCEPTION_FILE, PT_INCEPTION_URL, "clean-fid's legacy_pytorch Inception network")
        extract = bk.features.build_feature_extractor(mode, device, use_dataparallel=False)
        return FeatureNetwork(f"inception_{mode}", "fid", "FID", description.format(path.name), extract, None, mode)
    if weights is not None:
        path = Path(weights).expanduser().resolve()
        if not path.is_file():
            raise FIDError(f"--inception-weights {path}: no such file (clean-fid's TorchScript Inception network "
                           f"{INCEPTION_FILE}, from {INCEPTION_URL})")
    else:
        path = _require(CLEANFID_INCEPTION, INCEPTION_URL, "clean-fid's Inception network",
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


def _nest_network(directory: str, batch_size: int) -> FeatureNetwork:
    """The pooled pre-logit features of a nestgen classifier, with the checkpoint's own resize and normalisation."""
    from nestgen.convert.checkpoint import load_checkpoint

    bk = backends()
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


def load_features(spec: str | FeatureNetwork = "inception", *, mode: str = "clean", inception_weights=None,
                  device=None, batch_size: int = 64) -> FeatureNetwork:
    """`inception` (clean-fid's network for `mode`) or `nest:CLASSIFIER_DIR` (FD_NesT). Networks are reused."""
    if isinstance(spec, FeatureNetwork):
        return spec
    if mode not in MODES:
        raise FIDError(f"unknown clean-fid mode {mode!r}; modes: {', '.join(MODES)}")
    if spec == "inception":
        return _load(spec, mode, str(inception_weights) if inception_weights else None, str(_device(device)), 0)
    if str(spec).startswith("nest:"):
        if mode != "clean":
            raise FIDError("FD_NesT always resizes the clean way; the legacy modes are for Inception features only")
        backends()
        return _load(spec, mode, checkpoint_id(spec[5:]), "cpu", batch_size)
    raise FIDError(f"unknown --features {spec!r}: use inception or nest:CLASSIFIER_CHECKPOINT_DIR")


@functools.lru_cache(maxsize=4)
def _load(spec: str, mode: str, weights_or_id: str | None, device: str, batch_size: int) -> FeatureNetwork:
    if spec == "inception":
        return _inception_network(mode, weights_or_id, backends().torch.device(device))
    return _nest_network(spec[5:], batch_size)


# ---- reference statistics --------------------------------------------------------------------------------------

@dataclasses.dataclass
class ReferenceStats:
    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    features: np.ndarray | None  # (N, D), for KID and precision/recall
    description: str


def _array_features(images: np.ndarray, network: FeatureNetwork, *, batch_size: int, device, verbose: bool,
                    description: str) -> np.ndarray:
    """(N, H, W, 3) uint8 images → (N, D) features through clean-fid's generator path (same resize, same network)."""
    torch = backends().torch
    position = [0]

    def serve(z):  # the images in order; the last batch is padded and clean-fid drops the extra rows
        start = position[0]
        position[0] += z.shape[0]
        index = np.minimum(np.arange(start, start + z.shape[0]), len(images) - 1)
        return torch.from_numpy(np.ascontiguousarray(images[index].transpose(0, 3, 1, 2))).float()  # (B, 3, H, W)

    return backends().fid.get_model_features(serve, network.extract, mode=network.mode, z_dim=1, num_gen=len(images),
                                             batch_size=batch_size, device=device, desc=description,
                                             verbose=verbose, custom_fn_resize=network.resize)


def _read_npz(path: Path, *keys: str) -> dict[str, Any] | None:
    try:
        with np.load(path) as arrays:
            return {key: arrays[key] for key in keys}
    except (OSError, KeyError, ValueError):
        return None


def _write_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def stats_path(reference: Reference, network: FeatureNetwork, cache_dir=None) -> Path:
    """Where nestgen caches the statistics of a data-spec reference in a feature space."""
    stem = re.sub(r"[^\w.-]", "_", Path(reference.name.partition(":")[2]).stem or reference.name)
    key = hashlib.sha256(str(reference).encode()).hexdigest()[:8]
    name = re.sub(r"[^\w.@-]", "_", f"{stem}-{reference.split}-{key}_{network.key}")
    return Path(cache_dir or default_cache_dir()).expanduser() / "fid" / f"{name}.npz"


def reference_statistics(reference: str | Reference, network: FeatureNetwork, *, need_features: bool = False,
                         batch_size: int = 64, device=None, cache_dir=None, verbose: bool = True) -> ReferenceStats:
    """Mean, covariance (and features if asked) of a reference in the network's feature space."""
    reference, device = parse_reference(reference), _device(device)
    fid = backends().fid
    if reference.kind == "standard":
        if network.metric != "fid":
            raise FIDError(f"clean-fid's precomputed {reference.name} statistics are Inception features; "
                           f"{network.label} needs reference images: use zip:PATH.zip@SPLIT, folder:PATH@SPLIT or "
                           "images:PATH (e.g. zip:../shared/data/cifar10-test.zip@test)")
        stem = f"{reference.name}_{network.mode}_{reference.split}_{reference.res}".lower()
        files = [stem + ".npz"] + ([stem + "_kid.npz"] if need_features else [])
        cache = Path(cache_dir or default_cache_dir()).expanduser() / "fid" / "cleanfid-stats"
        stats_dir = Path(CLEANFID_STATS_DIR or Path(fid.__file__).parent / "stats")
        kid_hint = (f". KID and precision/recall need reference features, which clean-fid publishes for few sets: "
                    f"for {reference.name} build them from images instead (zip:PATH.zip@{reference.split})")
        paths = [_require(stats_dir / name, f"{STATS_URL}{name}", f"clean-fid's reference statistics file {name}",
                          hint=kid_hint if name.endswith("_kid.npz") else "", alternatives=(cache / name,))
                 for name in files]
        stats = _read_npz(paths[0], "mu", "sigma")
        features = _read_npz(paths[1], "feats")["feats"] if need_features else None
        return ReferenceStats(stats["mu"], stats["sigma"], features,
                              f"{reference} (clean-fid precomputed statistics {paths[0]})")
    if reference.kind == "images":
        with contextlib.redirect_stdout(sys.stderr):
            features = fid.get_folder_features(reference.name, network.extract, num_workers=0, batch_size=batch_size,
                                               device=device, mode=network.mode, custom_fn_resize=network.resize,
                                               description=f"{Path(reference.name).name}: ", verbose=verbose)
        return ReferenceStats(*feature_statistics(features), features,
                              f"{reference} ({len(features)} images, features computed on this run)")
    from nestgen.data.sources import load_split

    data = load_split(reference.name, reference.split, cache_dir=cache_dir)
    digest = hashlib.sha256(f"v{STATS_VERSION}:{data.images.shape}".encode() + data.images.tobytes()).hexdigest()
    path = stats_path(reference, network, cache_dir)
    cached = _read_npz(path, "digest", "mu", "sigma", "features" if need_features else "mu")
    if cached is None or str(cached["digest"]) != digest:
        features = _array_features(data.images, network, batch_size=batch_size, device=device, verbose=verbose,
                                   description=f"{data.description} statistics: ")
        mu, sigma = feature_statistics(features)
        kept = {"features": np.asarray(features, np.float32)} if need_features else {}  # (N, D): large for Inception
        _write_npz(path, digest=np.asarray(digest), mu=mu, sigma=sigma, **kept)
        cached = {"mu": mu, "sigma": sigma, "features": features}
    return ReferenceStats(cached["mu"], cached["sigma"], cached.get("features") if need_features else None,
                          f"{reference} ({len(data)} images, statistics cached in {path})")


# ---- generators ------------------------------------------------------------------------------------------------

class GeneratorBridge:
    """clean-fid's `gen=`: ignores its torch z; image i of the run comes from seed seed0 + i, label i mod classes."""

    def __init__(self, draw: Callable[[np.ndarray, np.ndarray], np.ndarray], num_classes: int = 1, seed: int = 0):
        self.draw, self.num_classes, self.seed, self.count = draw, max(int(num_classes), 1), int(seed), 0

    def __call__(self, z):
        index = np.arange(self.count, self.count + z.shape[0])
        self.count += len(index)
        images = np.asarray(self.draw(self.seed + index, (index % self.num_classes).astype(np.int32)))  # (B, H, W, 3)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != len(index) or images.shape[-1] != 3:
            raise ValueError(f"a generator must give uint8 images ({len(index)}, H, W, 3), got {images.dtype} "
                             f"{images.shape}")
        return backends().torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float().to(z.device)


def sampler_draw(sampler, truncation: float = 1.0) -> tuple[Callable, int]:
    """A GeneratorSampler → (draw(seeds, labels) → uint8 images, number of classes to mix)."""
    from nestgen.evaluation.sampling import latents

    config = sampler.config

    def draw(seeds, labels):
        return sampler.synthesize(sampler.mapping(latents(list(seeds), config.latent_dim), labels, truncation))

    return draw, config.num_classes if config.conditional else 1


@dataclasses.dataclass
class FIDResult:
    metrics: dict[str, float]  # "fid" or "fd_nest"; "kid" or "kd_nest"; "precision", "recall"
    label: str  # "FID" or "FD_NesT[<classifier id>]"
    protocol: dict[str, Any]

    def record(self) -> dict[str, Any]:
        return {"metric": self.label, **self.metrics, "protocol": self.protocol}


def evaluate(sampler, reference: str | Reference, num: int = 50_000, *, features: str | FeatureNetwork = "inception",
             mode: str = "clean", kid: bool = False, pr: bool = False, pr_samples: int | None = 10_000, seed: int = 0,
             batch_size: int = 64, truncation: float = 1.0, num_classes: int = 1, inception_weights=None, device=None,
             cache_dir=None, verbose: bool = True) -> FIDResult:
    """FID (or FD_NesT), optionally KID and precision/recall (k = 3), of `num` samples against a reference.

    `sampler`: a GeneratorSampler, or draw(seeds (B,), labels (B,)) → uint8 (B, H, W, 3) with `num_classes`.
    Precision/recall use at most `pr_samples` of each set (three n × n distance products: 50,000 wants a GPU).
    Feature network and reference statistics are ready (or the missing file is named) before any sample is drawn.
    """
    if num < 2:
        raise FIDError(f"a Fréchet distance needs at least 2 samples, got --num {num}")
    backends()  # before anything imports TensorFlow
    reference, device = parse_reference(reference), _device(device)
    network = load_features(features, mode=mode, inception_weights=inception_weights, device=device,
                            batch_size=batch_size)
    ref = reference_statistics(reference, network, need_features=kid or pr, batch_size=batch_size, device=device,
                               cache_dir=cache_dir, verbose=verbose)
    draw, num_classes = sampler_draw(sampler, truncation) if hasattr(sampler, "synthesize") else (sampler, num_classes)
    with contextlib.redirect_stdout(sys.stderr):
        feats = backends().fid.get_model_features(
            GeneratorBridge(draw, num_classes, seed), network.extract, mode=network.mode, z_dim=1, num_gen=num,
            batch_size=batch_size, device=device, desc=f"{network.label} {num} samples: ", verbose=verbose,
            custom_fn_resize=network.resize)
    metrics = {network.metric: frechet_distance(*feature_statistics(feats), ref.mu, ref.sigma)}
    protocol = {"mode": network.mode, "reference": ref.description, "num_samples": num, "features": network.description,
                "seeds": f"{seed}…{seed + num - 1}",
                "class_mix": f"uniform, label = i mod {num_classes}" if num_classes > 1 else "unconditional",
                "truncation": truncation}
    if kid:
        metrics[network.kid_metric] = kernel_distance(ref.features, feats, seed)
        protocol["kid"] = f"clean-fid kernel_distance, 100 subsets of {min(len(feats), len(ref.features), 1000)}"
    if pr:
        n = min(len(feats), len(ref.features), pr_samples or len(feats))
        metrics["precision"], metrics["recall"] = precision_recall(ref.features, feats, k=3, max_samples=n, seed=seed)
        protocol["precision_recall"] = f"k=3 nearest neighbours, {n} real vs {n} generated"
    return FIDResult(metrics, network.label, protocol)


def fid_for_sampler(sampler, reference: str | Reference, num: int, *, features: str | FeatureNetwork = "inception",
                    **kwargs) -> dict[str, float]:
    """The metrics only, for a training loop: {"fid": …} or {"fd_nest": …} (+ "kid"/"kd_nest", "precision", …)."""
    return evaluate(sampler, reference, num, features=features, verbose=kwargs.pop("verbose", False),
                    **kwargs).metrics


def evaluate_checkpoint(directory: str | Path, reference: str | Reference, num: int = 50_000, *,
                        batch_size: int = 64, **kwargs) -> dict[str, Any]:
    """The JSON-ready record of a generator checkpoint: metric label, values and the protocol spelled out."""
    from nestgen.evaluation.sampling import GeneratorSampler

    backends()
    sampler = GeneratorSampler.from_directory(directory, batch_size=batch_size)
    return {"checkpoint": str(directory),
            **evaluate(sampler, reference, num, batch_size=batch_size, **kwargs).record()}
