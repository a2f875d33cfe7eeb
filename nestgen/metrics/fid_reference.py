"""The reference side of FID: parsing reference names, clean-fid's precomputed statistics files (checked, fetched
if the network answers, else named in the error), the statistics nestgen caches for data-spec references, and the
image files of `images:PATH` references.

Reference images are listed and decoded as training data are (`nestgen.data.listing`, `images.decode_image`), so a
file gives the same pixels here as in training and inference; a reference of fewer than `MIN_IMAGES` images is
refused with its count. Imports neither torch nor clean-fid; the features come from `fid`, which passes them in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nestgen.data.archive import default_cache_dir, extract_archive
from nestgen.data.images import decode_images
from nestgen.data.listing import NoImagesError, list_images, warn
from nestgen.metrics.fid_base import DOWNLOAD_TIMEOUT_S as DOWNLOAD_TIMEOUT_S
from nestgen.metrics.fid_base import FIDError, read_npz, require_file, write_npz
from nestgen.metrics.frechet import feature_statistics

if TYPE_CHECKING:
    from nestgen.metrics.fid_features import FeatureNetwork

STATS_VERSION = 1
MIN_IMAGES = 2  # a mean and a covariance (clean-fid's KID needs 2 as well)
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


@dataclasses.dataclass(frozen=True)
class ImageReference:
    """The image files of an `images:PATH` reference in sorted order: paths to read, names for messages."""

    paths: list[str]
    names: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index) -> list[np.ndarray]:
        """uint8 (H, W, 3) pixels of the images at `index` (a sequence of ints), decoded in threads."""
        return decode_images([self.paths[i] for i in index], names=[self.names[i] for i in index])


@dataclasses.dataclass
class ReferenceStats:
    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D)
    features: np.ndarray | None  # (N, D), for KID and precision/recall
    description: str


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


# ---- reference images -----------------------------------------------------------------------------------------

def too_few(count: int, reference: Reference | str, needed: int = MIN_IMAGES) -> FIDError:
    """The one-line FIDError for a reference of `count` images when `needed` are needed."""
    return FIDError(f"reference {reference} holds {count} image{'s' * (count != 1)}; FID needs at least {needed} "
                    "(a mean and a covariance): add images or choose another reference")


def check_count(count: int, reference: Reference | str, needed: int = MIN_IMAGES) -> None:
    """Raise `too_few` if a reference holds fewer than `needed` images."""
    if count < needed:
        raise too_few(count, reference, needed)


def image_reference(reference: str | Reference, cache_dir=None) -> ImageReference:
    """The images of an `images:PATH` reference: every image file under the folder, or in the .zip (unpacked once,
    safely, under `<cache_dir>/archives`), by the listing rule of `nestgen.data.listing` (skipped files reported
    as a warning). Raises FIDError if it holds fewer than MIN_IMAGES images."""
    reference = parse_reference(reference)
    if reference.kind != "images":
        raise FIDError(f"reference {reference} is not an images:PATH reference")
    path = Path(reference.name)
    is_zip = path.is_file() and path.suffix.lower() == ".zip"
    root = extract_archive(path, cache_dir) if is_zip else path
    listing = list_images(root, where=str(reference))
    warn(listing.notice(str(reference)))
    check_count(len(listing), reference)
    paths = [str(p) for p in listing.paths]
    return ImageReference(paths, [f"{reference}: {name}" for name in listing.files] if is_zip else paths)


# ---- reference statistics --------------------------------------------------------------------------------------

def precomputed_statistics(reference: Reference, network: FeatureNetwork, *, need_features: bool, stats_dir: Path,
                           stats_url: str, cache_dir=None) -> ReferenceStats:
    """clean-fid's published statistics (and KID features) of a standard reference, from `stats_dir` or the cache."""
    if network.metric != "fid":
        raise FIDError(f"clean-fid's precomputed {reference.name} statistics are Inception features; "
                       f"{network.label} needs reference images: use zip:PATH.zip@SPLIT, folder:PATH@SPLIT or "
                       "images:PATH (e.g. zip:../shared/data/cifar10-test.zip@test)")
    stem = f"{reference.name}_{network.mode}_{reference.split}_{reference.res}".lower()
    files = [stem + ".npz"] + ([stem + "_kid.npz"] if need_features else [])
    cache = Path(cache_dir or default_cache_dir()).expanduser() / "fid" / "cleanfid-stats"
    kid_hint = (f". KID and precision/recall need reference features, which clean-fid publishes for few sets: "
                f"for {reference.name} build them from images instead (zip:PATH.zip@{reference.split})")
    paths = [require_file(stats_dir / name, f"{stats_url}{name}", f"clean-fid's reference statistics file {name}",
                          hint=kid_hint if name.endswith("_kid.npz") else "", alternatives=(cache / name,))
             for name in files]
    stats = read_npz(paths[0], "mu", "sigma")
    features = read_npz(paths[1], "feats")["feats"] if need_features else None
    return ReferenceStats(stats["mu"], stats["sigma"], features,
                          f"{reference} (clean-fid precomputed statistics {paths[0]})")


def stats_path(reference: Reference, network: FeatureNetwork, cache_dir=None) -> Path:
    """Where nestgen caches the statistics of a data-spec reference in a feature space."""
    stem = re.sub(r"[^\w.-]", "_", Path(reference.name.partition(":")[2]).stem or reference.name)
    key = hashlib.sha256(str(reference).encode()).hexdigest()[:8]
    name = re.sub(r"[^\w.@-]", "_", f"{stem}-{reference.split}-{key}_{network.key}")
    return Path(cache_dir or default_cache_dir()).expanduser() / "fid" / f"{name}.npz"


def data_statistics(reference: Reference, network: FeatureNetwork, features_of: Callable[..., np.ndarray], *,
                    need_features: bool, cache_dir=None) -> ReferenceStats:
    """Statistics of a data-spec reference, cached under <cache>/fid/ and rebuilt when its images change.

    `features_of(images (N, H, W, 3) uint8, description)` → (N, D) features, called only on a cache miss."""
    from nestgen.data.sources import load_split

    try:
        data = load_split(reference.name, reference.split, cache_dir=cache_dir)
    except NoImagesError as error:
        raise too_few(0, reference) from error
    check_count(len(data), reference)
    digest = hashlib.sha256(f"v{STATS_VERSION}:{data.images.shape}".encode() + data.images.tobytes()).hexdigest()
    path = stats_path(reference, network, cache_dir)
    cached = read_npz(path, "digest", "mu", "sigma", "features" if need_features else "mu")
    if cached is None or str(cached["digest"]) != digest:
        features = features_of(data.images, f"{data.description} statistics: ")
        mu, sigma = feature_statistics(features)
        kept = {"features": np.asarray(features, np.float32)} if need_features else {}  # (N, D): large for Inception
        write_npz(path, digest=np.asarray(digest), mu=mu, sigma=sigma, **kept)
        cached = {"mu": mu, "sigma": sigma, "features": features}
    return ReferenceStats(cached["mu"], cached["sigma"], cached.get("features") if need_features else None,
                          f"{reference} ({len(data)} images, statistics cached in {path})")
