"""Data specs, folder/zip/tfds splits in memory and as tf.data, the decoded-array cache, offline tfds errors."""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestgen.convert.checkpoint import CIFAR10_CLASSES
from nestgen.data import sources
from nestgen.data.images import load_image
from nestgen.data.sources import DataError, DataSpec, load_split, parse_data_spec, tf_dataset

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
    fresh = load_split(folder, "train", cache_dir=tmp_path / "c", limit=4)  # decoded with tf.data's take
    np.testing.assert_array_equal(fresh.images, first.images[:4])


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
    with pytest.raises(DataError, match=r"images of different sizes .*\.png is 5x5.*resize them or use a streaming"):
        load_split(root, "train", cache_dir=tmp_path / "cache")
    stream, count, _ = tf_dataset(root, "train")  # streaming keeps each image's own size
    assert count == 6 and {tuple(x["image"].shape) for x in stream.as_numpy_iterator()} == {(6, 8, 3), (5, 5, 3)}
    broken = _write_folder(tmp_path / "broken")
    (broken / "test" / "dog" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"test/dog/1\.png could not be decoded \(Unknown image file format"):
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
    data = load_split(f"zip:{shared_test_zip}", "test", cache_dir=tmp_path, limit=200)
    assert data.images.shape == (200, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.class_names == list(CIFAR10_CLASSES)
    assert data.description == f"zip:{shared_test_zip}[test][:200]"
    assert len(np.unique(data.labels)) == 10  # the fixed shuffle interleaves the classes
    assert 60 < data.images.mean() < 190
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


def test_tensorflow_is_imported_lazily_and_sees_no_gpu():
    code = ("import sys; import nestgen.data, nestgen.data.images, nestgen.data.archive, nestgen.data.sources; "
            "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    tf, _ = sources._tensorflow()
    assert tf.config.get_visible_devices("GPU") == []
