"""Which files of a folder are images: the one listing rule every reader uses (folder and zip splits, the streamed
splits, FID `images:` references).

Rule:
  - classes are the sorted visible subfolders of `<root>/<split>/`; every image anywhere below a class folder
    (subfolders included; links to folders are not followed) belongs to that class; files directly in the split
    folder belong to no class and are skipped;
  - hidden names (starting with "."; e.g. `.ipynb_checkpoints/`, `.DS_Store`, `._x.png` AppleDouble forks) and
    OS/archive metadata (`__MACOSX`, `__pycache__`, `Thumbs.db`, `desktop.ini`) are ignored without a word;
  - a file is an image when Pillow registers its extension (case-insensitive) for a format it can open and
    decode (`PIL.Image.registered_extensions()`, less the formats Pillow only identifies: stubs that need an
    external handler, MPEG video); any other file is skipped, counted, and reported in one line
    (`ImageListing.notice`, which `warn` issues as a `SkippedFilesWarning`);
  - a class folder that holds no image is kept as a class (the folder names define the label space, so the labels
    of every split stay aligned, e.g. a test split that lacks one class) and named in the same notice.

Order: classes by name, files by their relative path (code-point order of the '/'-separated path), so the list is
the same on every machine and file system. Readers choose their example order from it.

`DataError` (re-exported by `nestgen.data.sources`) is defined here, the lowest data module, so that the listing and
the decoder (`nestgen.data.images.decode_image`) raise it without importing the sources.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from pathlib import Path

import numpy as np

METADATA = frozenset({"__macosx", "__pycache__", "thumbs.db", "desktop.ini"})  # compared lower-case
_NAMED = 3  # skipped files named in a notice


class DataError(ValueError):
    """A data source is missing, unknown, unreachable or inconsistent; the message says what to do instead."""


class NoImagesError(DataError):
    """A split or folder holds no image at all (FID references turn it into a count of what is needed)."""


class SkippedFilesWarning(UserWarning):
    """Files that are not images were skipped, or a class folder holds no image (one line, names a few)."""


@dataclasses.dataclass(frozen=True)
class ImageListing:
    """Image files under `root`: relative '/'-paths (N,), int32 labels (N,) into `class_names` ([] when unlabelled),
    and the relative paths of the skipped non-image files."""

    root: Path
    files: list[str]
    labels: np.ndarray
    class_names: list[str]
    skipped: list[str]
    empty_classes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def paths(self) -> list[Path]:
        return [self.root.joinpath(*name.split("/")) for name in self.files]

    def notice(self, where: str) -> str | None:
        """One line about skipped files and empty classes, or None when there is nothing to say."""
        parts = []
        if self.skipped:
            named = ", ".join(self.skipped[:_NAMED]) + (", …" if len(self.skipped) > _NAMED else "")
            what = "file that is not an image" if len(self.skipped) == 1 else "files that are not images"
            parts.append(f"skipped {len(self.skipped)} {what} Pillow reads ({named})")
        if self.empty_classes:
            parts.append(f"class folder{'s' * (len(self.empty_classes) != 1)} "
                         f"{', '.join(map(repr, self.empty_classes))} hold{'s' * (len(self.empty_classes) == 1)} "
                         "no image (kept as a class so labels stay aligned with the other splits)")
        return f"{where}: {'; '.join(parts)}" if parts else None


def warn(notice: str | None, stacklevel: int = 3) -> None:
    """Issue a listing notice (if any) as a SkippedFilesWarning."""
    if notice:
        warnings.warn(notice, SkippedFilesWarning, stacklevel=stacklevel)


@functools.cache
def image_extensions() -> frozenset[str]:
    """Lower-case extensions (".png", ".webp", ...) of the formats this Pillow can open and decode."""
    from PIL import Image, ImageFile

    def decodable(fmt: str) -> bool:
        if fmt == "MPO":
            return True  # multi-picture JPEG: opened through the JPEG plugin, so absent from Image.OPEN
        if fmt not in Image.OPEN or fmt == "MPEG":  # MPEG: Pillow reads the header of a video, not its frames
            return False
        opener = Image.OPEN[fmt][0]  # a class, or a factory function (JPEG)
        return not (isinstance(opener, type) and issubclass(opener, ImageFile.StubImageFile))  # BUFR, GRIB, HDF5, WMF

    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if decodable(fmt))


def is_ignored(name: str) -> bool:
    """True for hidden names and OS/archive metadata, which no reader sees or reports."""
    return name.startswith(".") or name.lower() in METADATA


def is_image(name: str) -> bool:
    """True if a file name has an extension Pillow reads (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in image_extensions()


def visible_folders(folder: Path) -> list[str]:
    """Sorted names of the subfolders of `folder` that the rule does not ignore."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not is_ignored(e.name))


def _walk(folder: Path, prefix: str, images: list[str], skipped: list[str]) -> None:
    """Append the relative paths ('prefix/a/b.png') under `folder` to `images` or `skipped` (unsorted).

    Symbolic links to files are followed; links to folders are not entered (no loops) and count as skipped."""
    with os.scandir(folder) as scan:
        for entry in scan:
            if is_ignored(entry.name):
                continue
            name = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                _walk(Path(entry.path), f"{name}/", images, skipped)
            else:
                (images if entry.is_file() and is_image(entry.name) else skipped).append(name)


def list_split(root: str | Path, split: str, where: str = "") -> ImageListing:
    """The labelled images of `<root>/<split>/<class>/...`; relative paths are '<class>/...'.

    Files directly in the split folder (in no class) are skipped and reported. Raises DataError if the split folder
    is missing (naming the splits there are) and NoImagesError if it holds no image.
    """
    root = Path(root)
    where = where or str(root)
    splits = visible_folders(root)
    if split not in splits:
        raise DataError(f"{where}: no split {split!r}; it has {splits} (<split>/<class>/<image> folders in {root})")
    folder = root / split
    files, labels, skipped, empty = [], [], [], []
    class_names = visible_folders(folder)
    with os.scandir(folder) as scan:
        skipped += sorted(e.name for e in scan if not e.is_dir() and not is_ignored(e.name))  # in no class
    for label, name in enumerate(class_names):
        found: list[str] = []
        _walk(folder / name, f"{name}/", found, skipped)
        files += sorted(found)
        labels += [label] * len(found)
        if not found:
            empty.append(name)
    if not files:
        raise NoImagesError(f"{where}: split {split!r} holds no image ({len(class_names)} class folders, "
                            f"{len(skipped)} other files in {folder}); put images in {folder}/<class>/")
    return ImageListing(folder, files, np.asarray(labels, np.int32), class_names, sorted(skipped), empty)


def list_images(folder: str | Path, where: str = "") -> ImageListing:
    """Every image anywhere under `folder` (no labels), sorted by relative path. Raises DataError if it is no folder.

    A folder without images gives an empty listing: the caller says how many it needs.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{where or folder}: no such folder")
    files: list[str] = []
    skipped: list[str] = []
    _walk(folder, "", files, skipped)
    return ImageListing(folder, sorted(files), np.zeros(len(files), np.int32), [], sorted(skipped))
