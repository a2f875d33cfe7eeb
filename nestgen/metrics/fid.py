"""FID, KID and precision/recall of a generator through clean-fid, and FD_NesT: the same Fréchet distance in the
pooled features of a trained nestgen classifier. The entry module: torch and clean-fid are imported by
`fid_base.backends()` (re-exported here), the feature networks live in `fid_features`, references and their
statistics files in `fid_reference`, the distances in `frechet`, and their public names are re-exported here.

Protocol (spec §5): clean mode (legacy_tensorflow / legacy_pytorch selectable), image i of a run drawn from seed
seed0 + i with label i mod num_classes (a uniform class mix), features from clean-fid's own code path
(`get_model_features`, `get_folder_features`, `frechet_distance`, `kernel_distance`). References:

  cifar10:train, cifar10:test, ffhq:trainval70k:256, …  clean-fid's precomputed statistics (NAME:SPLIT[:RES])
  zip:PATH.zip@SPLIT, folder:PATH@SPLIT, tfds:NAME@SPLIT  statistics nestgen builds from a data source and caches
                                                          in <cache>/fid/ (rebuilt when the images change)
  images:PATH                                           every image file under a folder (or in a .zip), each run

Reference images are listed and decoded by the rules of the training data (`nestgen.data.listing`,
`nestgen.data.images.decode_image`: EXIF orientation, transparency on white, ...), not by clean-fid's own folder
reader; a reference of fewer than MIN_IMAGES images is refused with its count before any feature is computed.

Every file clean-fid would download (Inception network, precomputed statistics) is checked, and fetched if the
network answers, before anything is generated; otherwise the error names the file and where to put it.
Import torch/clean-fid (`backends()`) before TensorFlow: torchvision aborts the process when imported after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nestgen.metrics.fid_base import FIDError, backends
from nestgen.metrics.fid_features import (
    INCEPTION_FILE,
    FeatureNetwork,
    checkpoint_id,
    inception_network,
    nest_network,
)
from nestgen.metrics.fid_reference import (
    DOWNLOAD_TIMEOUT_S,
    MIN_IMAGES,
    REFERENCE_HELP,
    STANDARD_SETS,
    STATS_VERSION,
    ImageReference,
    Reference,
    ReferenceStats,
    data_statistics,
    image_reference,
    parse_reference,
    precomputed_statistics,
    stats_path,
)
from nestgen.metrics.frechet import feature_statistics, frechet_distance, kernel_distance
from nestgen.metrics.precision_recall import precision_recall

__all__ = [
    "CLEANFID_INCEPTION", "CLEANFID_STATS_DIR", "DOWNLOAD_TIMEOUT_S", "INCEPTION_FILE", "INCEPTION_URL", "MIN_IMAGES",
    "MODES", "PT_INCEPTION_FILE", "PT_INCEPTION_URL", "REFERENCE_HELP", "STANDARD_SETS", "STATS_URL", "STATS_VERSION",
    "FIDError", "FIDResult", "FeatureNetwork", "GeneratorBridge", "ImageReference", "Reference", "ReferenceStats",
    "backends", "checkpoint_id", "evaluate", "evaluate_checkpoint", "feature_statistics", "fid_for_sampler",
    "frechet_distance", "image_reference", "kernel_distance", "load_features", "parse_reference",
    "reference_statistics", "sampler_draw", "stats_path",
]

MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")
INCEPTION_URL = f"https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/{INCEPTION_FILE}"
CLEANFID_INCEPTION = Path("/tmp") / INCEPTION_FILE  # where clean-fid itself downloads it
PT_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"  # legacy_pytorch, in torch's hub cache
PT_INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PT_INCEPTION_FILE}"
STATS_URL = "https://www.cs.cmu.edu/~clean-fid/stats/"
CLEANFID_STATS_DIR: Path | None = None  # None: the installed package's cleanfid/stats/


# ---- feature networks ------------------------------------------------------------------------------------------

def _device(device, network: FeatureNetwork | None = None):
    """The torch device clean-fid moves batches to. For FD_NesT always the CPU: the NesT features are computed by
    JAX (on its own device), torch only carries the batches, and a CUDA context beside JAX's preallocated GPU
    memory would compete with it."""
    torch = backends().torch
    if network is not None and network.metric == "fd_nest":
        return torch.device("cpu")
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FIDError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return device


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
    bk = backends()
    if spec != "inception":
        return nest_network(bk, spec[5:], batch_size)
    if mode == "legacy_pytorch":
        path, url = Path(bk.torch.hub.get_dir()) / "checkpoints" / PT_INCEPTION_FILE, PT_INCEPTION_URL
    else:
        path, url = CLEANFID_INCEPTION, INCEPTION_URL
    return inception_network(bk, mode, weights_or_id, bk.torch.device(device), path=path, url=url)


# ---- reference statistics --------------------------------------------------------------------------------------

def _features(count: int, take: Callable[[np.ndarray], Any], network: FeatureNetwork, *, batch_size: int, device,
              verbose: bool, description: str) -> np.ndarray:
    """`count` images → (count, D) features through clean-fid's generator path (same resize, same network).

    `take(index (B,))` gives the images at `index`: uint8 (B, H, W, 3), or a list of uint8 (H, W, 3) of any sizes
    (each is resized by clean-fid's per-image resize; the legacy_tensorflow mode resizes inside its network, so
    there a batch must share one size)."""
    torch = backends().torch
    position = [0]

    def serve(z):  # the images in order; the last batch is padded and clean-fid drops the extra rows
        start = position[0]
        position[0] += z.shape[0]
        images = take(np.minimum(np.arange(start, start + z.shape[0]), count - 1))
        if len({image.shape for image in images}) == 1:
            batch = np.stack(images) if isinstance(images, list) else images  # (B, H, W, 3)
            return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).float()  # (B, 3, H, W)
        if network.mode == "legacy_tensorflow":
            sizes = sorted({f"{image.shape[1]}x{image.shape[0]}" for image in images})
            raise FIDError(f"{description.rstrip(': ')}: images of different sizes ({', '.join(sizes[:2])}); "
                           "clean-fid's legacy_tensorflow mode needs one size: resize them or use --mode clean")
        # clean-fid resizes the images of a batch one by one (`img_batch[idx]`), so a list of tensors serves too
        return [torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() for image in images]

    return backends().fid.get_model_features(serve, network.extract, mode=network.mode, z_dim=1, num_gen=count,
                                             batch_size=batch_size, device=device, desc=description,
                                             verbose=verbose, custom_fn_resize=network.resize)


def reference_statistics(reference: str | Reference, network: FeatureNetwork, *, need_features: bool = False,
                         batch_size: int = 64, device=None, cache_dir=None, verbose: bool = True) -> ReferenceStats:
    """Mean, covariance (and features if asked) of a reference in the network's feature space."""
    reference, device = parse_reference(reference), _device(device, network)
    fid = backends().fid
    if reference.kind == "standard":
        stats_dir = Path(CLEANFID_STATS_DIR or Path(fid.__file__).parent / "stats")
        return precomputed_statistics(reference, network, need_features=need_features, stats_dir=stats_dir,
                                      stats_url=STATS_URL, cache_dir=cache_dir)
    if reference.kind == "images":  # listed and decoded as training data are, batch by batch
        images = image_reference(reference, cache_dir)
        features = _features(len(images), images.read, network, batch_size=batch_size, device=device,
                             verbose=verbose, description=f"{Path(reference.name).name}: ")
        return ReferenceStats(*feature_statistics(features), features,
                              f"{reference} ({len(features)} images, features computed on this run)")

    def features_of(images: np.ndarray, description: str) -> np.ndarray:
        return _features(len(images), images.__getitem__, network, batch_size=batch_size, device=device,
                         verbose=verbose, description=description)

    return data_statistics(reference, network, features_of, need_features=need_features, cache_dir=cache_dir)


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
    from nestgen.inference.sampling import latents

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
    from nestgen.inference.sampling import check_seeds

    if num < 2:
        raise FIDError(f"a Fréchet distance needs at least 2 samples, got --num {num}")
    check_seeds(seed, num)  # seeds seed … seed + num - 1, before any network or statistics is loaded
    backends()  # before anything imports TensorFlow
    reference = parse_reference(reference)
    network = load_features(features, mode=mode, inception_weights=inception_weights, device=device,
                            batch_size=batch_size)
    device = _device(device, network)
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
    from nestgen.inference.sampling import GeneratorSampler

    backends()
    sampler = GeneratorSampler.from_directory(directory, batch_size=batch_size)
    return {"checkpoint": str(directory),
            **evaluate(sampler, reference, num, batch_size=batch_size, **kwargs).record()}
