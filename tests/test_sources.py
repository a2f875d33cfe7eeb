"""Data specs, folder/zip/tfds splits in memory and as tf.data, the listing rule and the one decoder on every path,
sizes, the decoded-array cache, TensorFlow-free folder/zip loading, offline tfds errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestgen.convert.checkpoint import CIFAR10_CLASSES
from nestgen.data import sources
from nestgen.data.images import decode_image, load_image, preprocess
from nestgen.data.listing import SkippedFilesWarning
from nestgen.data.sources import DataError, DataSpec, load_split, parse_data_spec, tf_dataset
from nestgen.metrics.fid_reference import image_reference

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CIFAR10_TEST_ZIP = SHARED / "data" / "cifar10-test.zip"
CLASSES = ("cat", "dog")


def _value(split: str, label: int, index: int) -> int:
    """The grey level that encodes where an image came from, so labels can be checked whatever the order."""
    return 100 * (split == "test") + 40 * label + 10 * index + 5


def _write_folder(root: Path, *, mode: str = "RGB", sizes=((8, 6),)) -> Path:
    """root/<train|test>/<cat|dog>/<i>.png, 3 images per class; `sizes` cycles over the images (W, H)."""
    count = 0
    for split in ("train", "test"):
        for label, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for index in range(3):
                size = sizes[count % len(sizes)]
                count += 1
                value = _value(split, label, index)
                Image.new(mode, size, value if mode == "L" else (value,) * 3).save(root / split / name / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _write_folder(tmp_path_factory.mktemp("data") / "pets")


@pytest.fixture(scope="module")
def shared_test_zip() -> Path:
    if not CIFAR10_TEST_ZIP.is_file():
        pytest.fail(f"{CIFAR10_TEST_ZIP} is missing: the shared data folder must sit beside the project")
    return CIFAR10_TEST_ZIP


def test_parse_data_spec(folder, tmp_path):
    assert parse_data_spec("tfds:cifar10") == DataSpec("tfds", "cifar10")
    assert parse_data_spec("tfds:cifar10:3.0.2") == DataSpec("tfds", "cifar10:3.0.2")
    assert parse_data_spec("cifar10") == DataSpec("tfds", "cifar10")
    assert parse_data_spec("imagenet2012_subset/1pct:5.0.0") == DataSpec("tfds", "imagenet2012_subset/1pct:5.0.0")
    assert parse_data_spec(f"folder:{folder}") == DataSpec("folder", str(folder))
    assert parse_data_spec(str(folder)) == DataSpec("folder", str(folder))
    assert parse_data_spec("zip:/data/x.zip") == DataSpec("zip", "/data/x.zip")
    assert parse_data_spec("/data/missing/X.ZIP") == DataSpec("zip", "/data/missing/X.ZIP")
    assert str(parse_data_spec("zip:/data/x.zip")) == "zip:/data/x.zip"
    assert parse_data_spec("zip:x.zip").target == str(Path.cwd() / "x.zip")
    for bad in ("", "folder:", "./no/such/folder", "Not A Name"):
        with pytest.raises(DataError):
            parse_data_spec(bad)


def test_folder_split_shapes_labels_and_class_names(folder, tmp_path):
    data = load_split(f"folder:{folder}", "train", cache_dir=tmp_path)
    assert data.images.shape == (6, 6, 8, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (6,) and data.labels.dtype == np.int32
    assert data.class_names == list(CLASSES)
    assert data.description == f"folder:{folder}[train]"
    values = data.images[:, 0, 0, 0].astype(int)
    assert sorted(values) == sorted(_value("train", c, i) for c in range(2) for i in range(3))
    np.testing.assert_array_equal(data.labels, (values - 5) % 100 // 40)  # every label matches its image
    test = load_split(f"folder:{folder}", "test", cache_dir=tmp_path)
    assert test.images[:, 0, 0, 0].min() >= 100 and test.class_names == list(CLASSES)


def test_order_is_deterministic_cached_and_limit_takes_a_prefix(folder, tmp_path, monkeypatch):
    first = load_split(folder, "train", cache_dir=tmp_path / "a")
    second = load_split(folder, "train", cache_dir=tmp_path / "b")  # decoded again, fresh cache
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert list((tmp_path / "a" / "arrays").glob("*.npz"))

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded although the split is cached")

    monkeypatch.setattr(sources, "_decode", must_not_decode)
    cached = load_split(folder, "train", cache_dir=tmp_path / "a")
    np.testing.assert_array_equal(cached.images, first.images)
    assert cached.class_names == first.class_names
    head = load_split(folder, "train", cache_dir=tmp_path / "a", limit=4)  # a prefix of the cached whole split
    np.testing.assert_array_equal(head.images, first.images[:4])
    np.testing.assert_array_equal(head.labels, first.labels[:4])
    assert head.description.endswith("[train][:4]")
    monkeypatch.undo()
    fresh = load_split(folder, "train", cache_dir=tmp_path / "c", limit=4)  # only the first 4 files decoded
    np.testing.assert_array_equal(fresh.images, first.images[:4])
    order = [(int(label), int(value)) for label, value in zip(first.labels, first.images[:, 0, 0, 0], strict=True)]
    assert order != sorted(order)  # the example order mixes the classes: not the sorted file list


def test_changed_folder_is_decoded_again(tmp_path):
    root = _write_folder(tmp_path / "pets")
    before = load_split(root, "train", cache_dir=tmp_path / "cache")
    Image.new("RGB", (8, 6), (1, 2, 3)).save(root / "train" / "cat" / "9.png")
    after = load_split(root, "train", cache_dir=tmp_path / "cache")
    assert len(before) == 6 and len(after) == 7


def test_grayscale_becomes_three_channels(tmp_path):
    root = _write_folder(tmp_path / "grey", mode="L")
    data = load_split(root, "test", cache_dir=tmp_path / "cache")
    assert data.images.shape == (6, 6, 8, 3)
    assert (data.images[..., 0] == data.images[..., 1]).all() and (data.images[..., 0] == data.images[..., 2]).all()


def test_pixels_match_the_inference_image_loader(tmp_path):
    """Training pixels equal what nestgen.data.images gives at inference: same JPEG IDCT, transparency on white."""
    rng = np.random.default_rng(0)
    (tmp_path / "d" / "train" / "a").mkdir(parents=True)
    files = {"noise.jpg": Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8)),
             "alpha.png": Image.fromarray(rng.integers(0, 256, (6, 8, 4), np.uint8), "RGBA"),
             "palette.png": Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8)).convert("P"),
             "gif-named.png": Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8))}
    for name, image in files.items():
        image.save(tmp_path / "d" / "train" / "a" / name, "GIF" if name.startswith("gif") else None, quality=70)
    data = load_split(tmp_path / "d", "train", cache_dir=tmp_path / "cache")
    expected = [np.asarray(load_image(tmp_path / "d" / "train" / "a" / name)) for name in files]
    assert sorted(x.tobytes() for x in data.images) == sorted(x.tobytes() for x in expected)


def test_mixed_sizes_and_broken_images_are_refused(tmp_path):
    root = _write_folder(tmp_path / "mixed", sizes=((8, 6), (8, 6), (5, 5)))
    with pytest.raises(DataError, match=r"images of different sizes \(.*\.png is \d+x\d+, .*\.png is \d+x\d+\); "
                                        r"set the image size") as caught:
        load_split(root, "train", cache_dir=tmp_path / "cache")
    assert "\n" not in str(caught.value) and "8x6" in str(caught.value) and "5x5" in str(caught.value)
    stream, count, _ = tf_dataset(root, "train")  # streaming keeps each image's own size
    assert count == 6 and {tuple(x["image"].shape) for x in stream.as_numpy_iterator()} == {(6, 8, 3), (5, 5, 3)}
    broken = _write_folder(tmp_path / "broken")
    (broken / "test" / "dog" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"test/dog/1\.png cannot be decoded \(not an image file \(PNG, JPEG, GIF, "
                                        r"BMP, WebP, TIFF … expected\)\); delete or replace it$"):
        load_split(broken, "test", cache_dir=tmp_path / "cache")


def test_missing_split_folder_and_bad_limit(folder, tmp_path):
    with pytest.raises(DataError, match=r"no split 'validation'; it has \['test', 'train'\]"):
        load_split(folder, "validation", cache_dir=tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        load_split(f"folder:{tmp_path / 'nothing'}", "train", cache_dir=tmp_path)
    with pytest.raises(DataError, match="no such zip file"):
        load_split(f"zip:{tmp_path / 'nothing.zip'}", "train", cache_dir=tmp_path)
    with pytest.raises(DataError, match="limit must be a positive"):
        load_split(folder, "train", cache_dir=tmp_path, limit=0)


def test_zip_of_a_folder_in_a_wrapping_folder(folder, tmp_path):
    zpath = tmp_path / "pets.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for path in sorted(folder.rglob("*.png")):
            zf.write(path, f"pets/{path.relative_to(folder).as_posix()}")
    from_zip = load_split(zpath, "train", cache_dir=tmp_path / "cache")
    from_folder = load_split(folder, "train", cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(from_zip.images, from_folder.images)
    assert from_zip.description == f"zip:{zpath}[train]"
    assert len(list((tmp_path / "cache" / "archives").iterdir())) == 1


def test_shared_cifar10_test_zip(shared_test_zip, tmp_path):
    data = load_split(f"zip:{shared_test_zip}", "test", cache_dir=tmp_path)
    assert data.images.shape == (10_000, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.class_names == list(CIFAR10_CLASSES) == sorted(CIFAR10_CLASSES)  # airplane … truck
    assert data.description == f"zip:{shared_test_zip}[test]" and data.skipped == []
    np.testing.assert_array_equal(np.bincount(data.labels), [1000] * 10)
    assert len(np.unique(data.labels[:200])) == 10  # the example order interleaves the classes
    assert 60 < data.images.mean() < 190
    head = load_split(f"zip:{shared_test_zip}", "test", cache_dir=tmp_path, limit=200)  # from the whole's cache
    np.testing.assert_array_equal(head.images, data.images[:200])
    assert head.description == f"zip:{shared_test_zip}[test][:200]"
    stream, count, class_names = tf_dataset(f"zip:{shared_test_zip}", "test", cache_dir=tmp_path)
    assert count == 10_000 and class_names == data.class_names
    for i, example in enumerate(stream.take(16).as_numpy_iterator()):
        np.testing.assert_array_equal(example["image"], data.images[i])
        assert example["label"] == data.labels[i] and example["label"].dtype == np.int32


def test_tf_dataset_matches_load_split(folder, tmp_path):
    data = load_split(folder, "test", cache_dir=tmp_path)
    stream, count, class_names = tf_dataset(f"folder:{folder}", "test")
    examples = list(stream.as_numpy_iterator())
    assert count == len(examples) == 6 and class_names == data.class_names
    np.testing.assert_array_equal(np.stack([e["image"] for e in examples]), data.images)
    np.testing.assert_array_equal(np.array([e["label"] for e in examples]), data.labels)


def test_tfds_offline_fails_fast_naming_the_local_alternatives(tmp_path, monkeypatch):
    for variable in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")  # nothing listens: offline even where a network exists
    for variable in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    start = time.monotonic()
    with pytest.raises(DataError) as caught:
        load_split("tfds:cifar10", "train", data_dir=tmp_path)
    message = str(caught.value)
    assert time.monotonic() - start < 30
    assert "'cifar10' is not prepared in" in message and "could not be downloaded" in message
    assert "folder:" in message and "zip:" in message and "--data-dir" in message
    assert not (tmp_path / "downloads").exists()  # nothing half-downloaded


def test_tfds_unknown_name():
    with pytest.raises(DataError, match="'cifar_10' is unknown.*Did you mean cifar10"):
        load_split("tfds:cifar_10", "train")
    with pytest.raises(DataError, match="'no_such_dataset_xyz' is unknown"):
        tf_dataset("tfds:no_such_dataset_xyz", "train")


def test_tfds_split_in_memory_is_decoded_by_pillow_like_the_stream(monkeypatch):
    from nestgen.data import tf_sources

    _, tfds = sources._tensorflow()
    monkeypatch.setattr(tf_sources, "tfds_builder", lambda name, data_dir: tfds.builder(name))  # mock: "prepared"
    with tfds.testing.mock_data(num_examples=10):
        data = load_split("tfds:cifar10", "test")
        small = load_split("tfds:cifar10", "test", limit=4, image_size=16)
        stream, count, class_names = tf_dataset("tfds:cifar10", "test")
        examples = list(stream.as_numpy_iterator())
    assert data.images.shape == (10, 32, 32, 3) and count == 10 and class_names == data.class_names
    assert len(data.class_names) == 10 and small.images.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(np.stack([e["image"] for e in examples]), data.images)  # tf.io = Pillow pixels
    np.testing.assert_array_equal(np.array([e["label"] for e in examples]), data.labels)
    np.testing.assert_array_equal(small.labels, data.labels[:4])


def test_tensorflow_is_imported_lazily_and_sees_no_gpu():
    code = ("import sys; import nestgen.data, nestgen.data.images, nestgen.data.archive, nestgen.data.sources; "
            "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    tf, _ = sources._tensorflow()
    assert tf.config.get_visible_devices("GPU") == []


# ---- the listing rule, the decoder and sizes, on every path -------------------------------------------------------

def _zip_folder(folder: Path, zpath: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(zpath, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return zpath


def _grey(value: int, size=(8, 6)) -> Image.Image:
    return Image.new("RGB", size, (value,) * 3)


def test_hidden_folders_and_os_metadata_are_ignored(tmp_path):
    root = tmp_path / "pets"
    for label, name in enumerate(("cat", "dog")):
        (root / "train" / name).mkdir(parents=True)
        for index in range(2):
            _grey(40 * label + 10 * index + 5).save(root / "train" / name / f"{index}.png")
    (root / "train" / ".ipynb_checkpoints" / "cat").mkdir(parents=True)  # a hidden "class" holding an image
    _grey(200).save(root / "train" / ".ipynb_checkpoints" / "cat" / "0-checkpoint.png")
    (root / "train" / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "train" / "__MACOSX" / "cat" / "._0.png").write_bytes(b"\0\5\26\7 AppleDouble")
    (root / "train" / "cat" / "._x.png").write_bytes(b"\0\5\26\7 AppleDouble")  # resource fork beside an image
    (root / "train" / "dog" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "train" / "dog" / "Thumbs.db").write_bytes(b"\xd0\xcf")
    (root / "__MACOSX" / "train").mkdir(parents=True)  # beside the split folder, as macOS zips have it
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedFilesWarning)  # metadata is ignored, not reported
        data = load_split(root, "train", cache_dir=tmp_path / "cache")
        from_zip = load_split(_zip_folder(root, tmp_path / "pets.zip", "pets/"), "train", cache_dir=tmp_path / "c")
    assert data.class_names == from_zip.class_names == ["cat", "dog"] and data.skipped == []
    assert len(data) == len(from_zip) == 4
    values = data.images[:, 0, 0, 0].astype(int)
    assert sorted(values) == [5, 15, 45, 55]
    np.testing.assert_array_equal(data.labels, values // 40)  # every label matches its image
    np.testing.assert_array_equal(from_zip.images, data.images)
    np.testing.assert_array_equal(from_zip.labels, data.labels)


def test_every_format_pillow_reads_is_an_image_and_other_files_are_reported(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "zoo"
    (root / "train" / "owl").mkdir(parents=True)
    (root / "train" / "bat" / "night").mkdir(parents=True)
    (root / "train" / "empty").mkdir(parents=True)
    pixels = rng.integers(0, 256, (6, 8, 3), np.uint8)
    names = {"a.png": "PNG", "b.webp": "WEBP", "c.WEBP": "WEBP", "d.bmp": "BMP", "e.gif": "GIF"}
    for name, fmt in names.items():
        Image.fromarray(pixels).save(root / "train" / "owl" / name, fmt, lossless=True)
    _grey(9).save(root / "train" / "bat" / "night" / "deep.png")  # below a class folder: still that class
    (root / "train" / "owl" / "notes.txt").write_text("not an image\n")
    (root / "train" / "loose.jpg").write_bytes(b"in no class folder")
    with pytest.warns(SkippedFilesWarning) as caught:
        data = load_split(root, "train", cache_dir=tmp_path / "cache")
    message = str(caught[0].message)
    assert "\n" not in message and message.startswith(f"folder:{root}[train]: skipped 2 files")
    assert "loose.jpg" in message and "owl/notes.txt" in message and "'empty'" in message
    assert data.skipped == ["loose.jpg", "owl/notes.txt"]
    assert data.class_names == ["bat", "empty", "owl"]  # an empty class is kept: labels stay aligned
    np.testing.assert_array_equal(np.bincount(data.labels, minlength=3), [1, 0, 5])
    owls = data.images[data.labels == 2]
    expected = [decode_image(root / "train" / "owl" / name) for name in names]
    assert sorted(x.tobytes() for x in owls) == sorted(x.tobytes() for x in expected)
    np.testing.assert_array_equal(expected[0], pixels)  # lossless formats give the pixels back
    with pytest.warns(SkippedFilesWarning, match="skipped 2 files"):  # reported again when read from the cache
        again = load_split(root, "train", cache_dir=tmp_path / "cache")
    assert again.skipped == data.skipped


def test_a_split_without_images_is_refused(tmp_path):
    (tmp_path / "d" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "d" / "train" / "cat" / "readme.md").write_text("soon")
    with pytest.raises(DataError, match=r"split 'train' holds no image \(1 class folders, 1 other files"):
        load_split(tmp_path / "d", "train", cache_dir=tmp_path / "cache")


def _rotated_jpeg(path: Path) -> Path:
    """A JPEG stored 40 wide × 24 high (left half red, right half blue) with EXIF Orientation 6 (rotate 90° CW):
    displayed 24 wide × 40 high, red on top."""
    stored = np.zeros((24, 40, 3), np.uint8)  # (H, W, 3)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored).save(path, "JPEG", quality=95, exif=exif)
    return path


def test_exif_orientation_is_applied_on_every_path(tmp_path):
    root = tmp_path / "rot"
    photo = _rotated_jpeg(root / "test" / "up" / "photo.jpg")
    pixels = decode_image(photo)
    assert pixels.shape == (40, 24, 3)  # upright: 40 rows, 24 columns
    assert pixels[:18, :, 0].mean() > 200 and pixels[:18, :, 2].mean() < 50  # red on top
    assert pixels[22:, :, 2].mean() > 200 and pixels[22:, :, 0].mean() < 50  # blue below
    np.testing.assert_array_equal(np.asarray(load_image(photo)), pixels)
    from_folder = load_split(root, "test", cache_dir=tmp_path / "cache")
    from_zip = load_split(_zip_folder(root, tmp_path / "rot.zip"), "test", cache_dir=tmp_path / "cache")
    assert from_folder.images.shape == from_zip.images.shape == (1, 40, 24, 3)
    np.testing.assert_array_equal(from_folder.images[0], pixels)
    np.testing.assert_array_equal(from_zip.images[0], pixels)
    stream, _, _ = tf_dataset(root, "test")
    np.testing.assert_array_equal(next(stream.as_numpy_iterator())["image"], pixels)


def test_image_size_resizes_and_crops_like_preprocess(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "big"
    (root / "train" / "a").mkdir(parents=True)
    (root / "train" / "b").mkdir(parents=True)
    files = []
    for i in range(4):
        files.append(root / "train" / "ab"[i % 2] / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), np.uint8)).save(files[-1])  # 48 wide × 40 high
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(root / "train" / "a" / "small.png")
    files.append(root / "train" / "a" / "small.png")  # already 32×32: kept as it is
    data = load_split(root, "train", cache_dir=tmp_path / "cache", image_size=32)
    assert data.images.shape == (5, 32, 32, 3) and data.images.dtype == np.uint8
    rule = {"image_size": 32, "resize": "bicubic", "crop_pct": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}
    expected = [np.rint(preprocess(load_image(path), rule) * 255).astype(np.uint8) for path in files]
    assert sorted(x.tobytes() for x in data.images) == sorted(x.tobytes() for x in expected)
    np.testing.assert_array_equal(expected[-1], np.asarray(Image.open(files[-1])))
    with pytest.raises(DataError) as caught:  # without image_size: one line naming two sizes
        load_split(root, "train", cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message and "48x40" in message and "32x32" in message and "set the image size" in message
    (root / "train" / "a" / "small.png").unlink()
    same = load_split(root, "train", cache_dir=tmp_path / "cache")  # the cache key holds image_size
    assert same.images.shape == (4, 40, 48, 3)
    assert load_split(root, "train", cache_dir=tmp_path / "cache", image_size=32).images.shape == (4, 32, 32, 3)
    with pytest.raises(DataError, match="image_size must be a positive"):
        load_split(root, "train", cache_dir=tmp_path / "cache", image_size=0)


def test_one_odd_file_gives_the_same_pixels_on_every_path(tmp_path):
    """Palette PNG with transparency and 16-bit PNG: folder, zip, FID `images:` reader and load_image agree."""
    rng = np.random.default_rng(2)
    root = tmp_path / "odd"
    (root / "train" / "x").mkdir(parents=True)
    palette = Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8)).convert("P", palette=Image.Palette.ADAPTIVE,
                                                                                colors=8)
    palette.save(root / "train" / "x" / "palette.png", transparency=0)
    deep = rng.integers(0, 65536, (6, 8), np.uint16)
    Image.fromarray(deep).save(root / "train" / "x" / "deep.png")
    assert Image.open(root / "train" / "x" / "deep.png").mode.startswith("I;16")
    files = sorted((root / "train" / "x").iterdir())  # deep.png, palette.png
    expected = [np.asarray(load_image(path)) for path in files]
    assert (expected[1] == 255).all(axis=-1).any()  # transparent palette entries are white
    np.testing.assert_array_equal(expected[0][..., 0], np.rint(deep / 257.0).astype(np.uint8))  # scaled, not cut
    zpath = _zip_folder(root, tmp_path / "odd.zip")
    for source in (root, zpath):
        data = load_split(source, "train", cache_dir=tmp_path / "cache")
        order = np.argsort([x.tobytes() != expected[0].tobytes() for x in data.images])
        np.testing.assert_array_equal(data.images[order], np.stack(expected))
    for source in (root / "train", zpath):
        reference = image_reference(f"images:{source}", cache_dir=tmp_path / "cache")
        read = reference.read(range(len(reference)))
        if source == zpath:
            assert reference.names == [f"images:{zpath}: train/x/deep.png", f"images:{zpath}: train/x/palette.png"]
        assert len(read) == 2 and all(a.dtype == np.uint8 for a in read)
        np.testing.assert_array_equal(np.stack(read), np.stack(expected))
    np.testing.assert_array_equal(decode_image(files[1].read_bytes()), expected[1])


def test_folder_and_zip_splits_never_import_tensorflow(tmp_path):
    root = _write_folder(tmp_path / "pets")
    zpath = _zip_folder(root, tmp_path / "pets.zip")
    code = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None  # import tensorflow now raises ImportError
        sys.modules["tensorflow_datasets"] = None
        from nestgen.data.sources import load_split
        folder = load_split({str(root)!r}, "train", cache_dir={str(tmp_path / "cache")!r}, limit=5, image_size=4)
        packed = load_split("zip:{zpath}", "test", cache_dir={str(tmp_path / "cache")!r})
        assert folder.images.shape == (5, 4, 4, 3) and packed.images.shape == (6, 6, 8, 3), (folder, packed)
        assert folder.class_names == packed.class_names == ["cat", "dog"]
        print("ok", sorted(m for m in sys.modules if m.startswith("tensorflow") and sys.modules[m] is not None))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok []"
