"""The one listing rule: which files are images, what is ignored, what is skipped and reported."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nestgen.data.listing import (
    DataError,
    NoImagesError,
    image_extensions,
    is_ignored,
    is_image,
    list_images,
    list_split,
)


def test_image_extensions_are_what_pillow_decodes():
    extensions = image_extensions()
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm"} <= extensions
    assert not {".txt", ".pdf", ".mpg", ".h5", ".npy", ".mp4"} & extensions  # save-only, header-only, not images
    assert is_image("A.JPG") and is_image("x.tar.png") and not is_image("png") and not is_image("notes.txt")
    for name in (".DS_Store", "._x.png", ".ipynb_checkpoints", "__MACOSX", "__pycache__", "Thumbs.db",
                 "desktop.ini", "DESKTOP.INI"):
        assert is_ignored(name), name
    assert not is_ignored("cat") and not is_ignored("x.png")


def test_list_split_and_list_images(tmp_path):
    root = tmp_path / "data"
    for path in ("train/b/2.png", "train/a/z/1.png", "train/a/0.png", "train/a.png/0.png", "train/.hidden/0.png",
                 "train/a/._0.png", "train/b/Thumbs.db", "train/b/x.txt"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        if path.endswith(".png"):
            Image.new("RGB", (2, 2)).save(root / path)
        else:
            (root / path).write_text("x")
    listing = list_split(root, "train")
    assert listing.class_names == ["a", "a.png", "b"]
    assert listing.files == ["a/0.png", "a/z/1.png", "a.png/0.png", "b/2.png"]  # sorted by class, then path
    np.testing.assert_array_equal(listing.labels, [0, 0, 1, 2])
    assert listing.skipped == ["b/x.txt"] and listing.empty_classes == []
    assert listing.notice("here") == "here: skipped 1 file that is not an image Pillow reads (b/x.txt)"
    everything = list_images(root)  # no classes: every image below the folder, in code-point order ("." < "/")
    assert everything.files == ["train/a.png/0.png", "train/a/0.png", "train/a/z/1.png", "train/b/2.png"]
    assert everything.class_names == [] and everything.skipped == ["train/b/x.txt"]
    with pytest.raises(DataError, match=r"no split 'test'; it has \['train'\]"):
        list_split(root, "test")
    with pytest.raises(DataError, match=r"no split '\.hidden'"):
        list_split(root / "train", ".hidden")
    (root / "valid" / "a").mkdir(parents=True)
    with pytest.raises(NoImagesError, match="split 'valid' holds no image"):
        list_split(root, "valid")
    assert len(list_images(root / "valid")) == 0
    with pytest.raises(DataError, match="no such folder"):
        list_images(root / "nothing")
