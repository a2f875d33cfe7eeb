"""What a checkpoint, a class name and a script's environment may say, checked once at the door (issue 23):
non-finite weights, class names that do not fit the model, preprocess sections that do not fit it, names that are
numbers, names that are paths, splits listed differently from the model, advice that must work when followed, and
the scripts' one error boundary (full disk, read-only folder, stdout on /dev/full, orbax's background noise)."""

import ast
import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestgen.convert.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nestgen.data.classes import ClassError, file_safe, label_mapping, resolve_class
from nestgen.data.sources import load_split
from nestgen.data.synthetic import write_image_folder
from nestgen.models.registry import get_config, init_params

ROOT = Path(__file__).resolve().parents[1]
NUMBERED = [str(i) for i in sorted(range(1, 11), key=str)]  # a folder listing: '1', '10', '2', … '9'
TINY_G = get_config("nest_gen_micro_32_cond", image_size=16, num_levels=3, dims=(16, 32, 32), heads=(1, 2, 2),
                    depths=(1, 1, 1), latent_dim=16, w_dim=32, num_classes=10)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _run(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, timeout=600, cwd=cwd)


def _error_lines(stderr: str) -> list[str]:
    """stderr without progress-bar frames: what a user reads."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and not line.startswith("train")]


def _edit_config(directory: Path, **changes) -> None:
    record = json.loads((directory / "config.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(record.get(key), dict):
            record[key].update(value)
        else:
            record[key] = value
    (directory / "config.json").write_text(json.dumps(record))


def _poison(directory: Path, value: float) -> str:
    """Put one `value` (NaN, inf) into the largest kernel of a checkpoint; returns the tensor's name."""
    from safetensors.numpy import load_file, save_file

    flat = load_file(str(directory / "model.safetensors"))
    name = max((k for k in flat if k.endswith("kernel")), key=lambda k: flat[k].size)
    flat[name] = flat[name].copy()
    flat[name].flat[7] = value
    save_file(flat, str(directory / "model.safetensors"))
    return name


@pytest.fixture
def classifier(tiny_checkpoint, tmp_path) -> Path:
    copy = tmp_path / "classifier"
    shutil.copytree(tiny_checkpoint, copy)
    return copy


@pytest.fixture(scope="module")
def numbered_generator(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("gen") / "numbered"
    save_checkpoint(directory, TINY_G, init_params(TINY_G, 1), class_names=NUMBERED,
                    metadata={"w_avg": np.zeros((10, TINY_G.w_dim)).tolist()})
    return directory


# --- checkpoints: believed only when they fit --------------------------------------------------------------------

def test_non_finite_weights_are_refused_at_load_naming_the_tensor(classifier, tmp_path):
    name = _poison(classifier, np.nan)
    with pytest.raises(CheckpointError, match=rf"tensor '{re.escape(name)}' holds 1 NaN or infinite value \(of "):
        load_checkpoint(classifier)
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    run = _run(ROOT / "scripts" / "classify.py", "--checkpoint", classifier, "--json", image)
    assert run.returncode == 2 and run.stdout == ""  # no "nan%" and no bare NaN in the JSON
    assert _error_lines(run.stderr) == [line for line in run.stderr.splitlines() if line] and len(
        _error_lines(run.stderr)) == 1 and name in run.stderr


def test_an_infinite_generator_weight_refuses_to_sample(numbered_generator, tmp_path):
    broken = tmp_path / "g"
    shutil.copytree(numbered_generator, broken)
    name = _poison(broken, np.inf)
    out = tmp_path / "grid.png"
    assert _script("sample")(["--checkpoint", str(broken), "--num", "2", "--out", str(out)]) == 2
    assert not out.exists()  # no all-black grid
    with pytest.raises(CheckpointError, match=re.escape(name)):
        load_checkpoint(broken)


@pytest.mark.parametrize(("names", "message"), [
    (["a", "b", "c", "d"], "config.json lists 4 class names for a model with 5 classes"),
    (list("abcdef"), "config.json lists 6 class names for a model with 5 classes"),
    (["a", "b", "b", "d", "e"], "class names must be distinct; repeated: 'b'"),
    (["a", "b", "", "d", "e"], "class names must be non-empty strings"),
    (["a", "b", 3, "d", "e"], "class names must be non-empty strings, got 3"),
    ("abcde", "class_names must be a list of strings"),
])
def test_class_names_that_do_not_fit_the_model_are_refused_at_load(classifier, names, message):
    _edit_config(classifier, class_names=names)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(classifier)


@pytest.mark.parametrize(("preprocess", "message"), [
    ({"image_size": 32}, "preprocess.image_size is 32 but the model takes 16px images; set it to 16"),
    ({"std": [0.2, 0.0, 0.2]}, "preprocess.std must be three positive finite numbers"),
    ({"mean": [0.5, 0.5]}, "preprocess.mean must be three finite numbers"),
    ({"resize": "cubic"}, "preprocess.resize is 'cubic'; use one of bicubic, bilinear, nearest, lanczos"),
    ({"crop_pct": 1.5}, "preprocess.crop_pct must be a number in (0, 1], got 1.5"),
])
def test_a_preprocess_section_that_does_not_fit_the_model_is_refused(classifier, preprocess, message):
    _edit_config(classifier, preprocess=preprocess)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(classifier)


def test_saving_refuses_what_loading_would_refuse(tmp_path):
    config = get_config("nest_micro_32", image_size=16, num_classes=3)
    params = init_params(config, 0)
    with pytest.raises(CheckpointError, match="repeated: 'x'"):
        save_checkpoint(tmp_path / "c", config, params, class_names=["x", "x", "y"])
    params["head"]["kernel"] = np.full_like(params["head"]["kernel"], np.nan)
    with pytest.raises(CheckpointError, match=r"tensor 'head/kernel' holds \d+ NaN or infinite values"):
        save_checkpoint(tmp_path / "c", config, params)
    assert not (tmp_path / "c").exists()


# --- classes: a name is a name, an index is #k -------------------------------------------------------------------

def test_one_rule_for_names_and_indices():
    assert NUMBERED[:3] == ["1", "10", "2"]
    assert resolve_class("1", NUMBERED) == 0 and resolve_class("10", NUMBERED) == 1  # names, found as names
    assert resolve_class("#1", NUMBERED) == 1 and resolve_class("# 9", NUMBERED) == 9  # indices need "#"
    assert resolve_class(3, NUMBERED) == 3 and resolve_class(np.int64(3), NUMBERED) == 3  # ints are indices
    animals = ["cat", "dog", "horse"]
    assert resolve_class("2", animals) == 2 and resolve_class(" dog ", animals) == 1  # no class named "2"
    assert resolve_class("T-shirt/top", ["T-shirt/top", "鸟"]) == 0 and resolve_class("鸟", ["T-shirt/top", "鸟"]) == 1
    for bad, message in ((True, "got bool"), (1.0, "got float"), (None, "got NoneType"), ("#3", "out of range"),
                         ("11", "out of range"), ("hrose", "did you mean 'horse'"), ("-1", "unknown class '-1'")):
        with pytest.raises(ClassError, match=re.escape(message)):
            resolve_class(bad, animals if bad != "11" else NUMBERED)


def test_numbered_classes_in_the_sampler_script_and_gradcat(numbered_generator, tmp_path):
    from nestgen.inference.sampling import GeneratorSampler

    sampler = GeneratorSampler.from_directory(numbered_generator)
    assert sampler.class_index("10") == NUMBERED.index("10") and sampler.class_index("#9") == 9
    out = tmp_path / "tens"
    assert _script("sample")(["--checkpoint", str(numbered_generator), "--num", "1", "--class", "10",
                              "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "seed000000_10.png"]

    from nestgen.explain.gradcat import GradCAT

    explainer = GradCAT(None, None, NUMBERED, 16)
    assert explainer.resolve_class("10") == 1 and explainer.resolve_class("#9") == 9


def test_file_names_from_class_names_stay_inside_the_folder(tmp_path):
    names = ["T-shirt/top", "../../../escaped_cat", "鸟", "..", "a b\tc", "CON"]
    assert [file_safe(n, f"class{i}") for i, n in enumerate(names)] == [
        "T-shirt_top", "escaped_cat", "鸟", "class3", "a_b_c", "CON"]
    config = get_config("nest_gen_micro_32_cond", image_size=16, num_levels=3, dims=(16, 32, 32), heads=(1, 2, 2),
                        depths=(1, 1, 1), latent_dim=16, w_dim=32, num_classes=len(names))
    generator = tmp_path / "g"
    save_checkpoint(generator, config, init_params(config, 2), class_names=names)
    out = tmp_path / "deep" / "a" / "b" / "samples"
    for index in range(len(names)):
        assert _script("sample")(["--checkpoint", str(generator), "--num", "1", "--seed", str(index),
                                  "--class", f"#{index}", "--out", str(out)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    assert written == sorted(["deep/a/b/samples/grid.png"] + [
        f"deep/a/b/samples/seed{i:06d}_{file_safe(n, f'class{i}')}.png" for i, n in enumerate(names)])


def test_a_split_s_labels_are_matched_to_the_model_s_classes_by_name(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    write_image_folder(tmp_path / "data", images, np.array([0, 0, 1, 1, 2, 2]), ["ant", "cat", "eel"], "test")
    split = load_split(f"folder:{tmp_path / 'data'}", "test", image_size=16)
    assert split.class_names == ["ant", "cat", "eel"]
    model_names = ["ant", "bee", "cat", "dog", "eel"]  # the test folder lacks bee and dog
    matched = split.with_classes(model_names)
    assert matched.class_names == model_names and sorted(matched.labels.tolist()) == [0, 0, 2, 2, 4, 4]
    assert [model_names[m] for m in matched.labels] == [split.class_names[k] for k in split.labels]
    assert label_mapping(["n01", "n02"], ["goldfish", "shark"], "x") is None  # WordNet ids: by position
    with pytest.raises(ClassError, match="has classes the model does not know: eel"):
        split.with_classes(["ant", "cat", "dog"])

    from nestgen.metrics.accuracy import evaluate_checkpoint

    checkpoint = load_checkpoint(tiny_checkpoint)  # classes ant, bee, cat, dog, eel
    result = evaluate_checkpoint(checkpoint, f"folder:{tmp_path / 'data'}", "test", batch_size=8)
    predictions = checkpoint.build().apply({"params": checkpoint.params},
                                           (images.astype(np.float32) / 255 - np.asarray(checkpoint.preprocess["mean"]))
                                           / np.asarray(checkpoint.preprocess["std"]))[0]
    truth = np.array([0, 0, 2, 2, 4, 4])
    assert result["top1"] == pytest.approx(float(np.mean(np.argmax(predictions, -1) == truth)), abs=1e-6)


# --- advice printed is advice that works ------------------------------------------------------------------------

def test_the_class_count_advice_works_when_followed(tmp_path):
    rng = np.random.default_rng(0)
    data = write_image_folder(tmp_path / "two", rng.integers(0, 255, (32, 16, 16, 3), dtype=np.uint8),
                              np.arange(32) % 2, ["cat", "dog"])
    base = ["--config", str(ROOT / "configs" / "gan_cifar10.py") + ":smoke", "--set", f"data.train=folder:{data}",
            "--set", "async_checkpoints=False", "--set", "total_images=32", "--set", "data.train_limit=None"]
    run = _run(ROOT / "scripts" / "train_gan.py", *base, "--workdir", tmp_path / "first")
    assert run.returncode == 2
    advice = re.search(r"set (\S+=\S+)", run.stderr).group(1)
    assert advice == "generator.overrides.num_classes=2"
    run = _run(ROOT / "scripts" / "train_gan.py", *base, "--set", advice, "--workdir", tmp_path / "second")
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((tmp_path / "second" / "export" / "config.json").read_text())["class_names"] == ["cat", "dog"]


def test_a_misspelt_model_override_names_the_fields():
    from nestgen.training.configs import load_config
    from nestgen.training.gan_trainer import model_configs

    config = load_config(str(ROOT / "configs" / "gan_cifar10.py") + ":smoke", ["generator.overrides.num_clases=2"])
    with pytest.raises(ValueError, match="has no field 'num_clases'; its fields: .*num_classes"):
        model_configs(config)


# --- the scripts' one error boundary ------------------------------------------------------------------------------

USER_SCRIPTS = ["classify", "convert", "evaluate", "evaluate_fid", "explain", "package",
                "project", "relay", "sample", "summary",
                "train_classifier", "train_gan"]


def test_every_user_script_goes_through_the_one_boundary():
    for name in USER_SCRIPTS:
        tree = ast.parse((ROOT / "scripts" / f"{name}.py").read_text())
        main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
        assert [ast.unparse(d) for d in main.decorator_list] == ["entry_point"], name
        caught = [ast.unparse(h.type) for h in ast.walk(main) if isinstance(h, ast.ExceptHandler) and h.type]
        assert not [c for c in caught if "CheckpointError" in c or "FileNotFoundError" in c], (name, caught)


@contextlib.contextmanager
def _small_disk(path: Path, size: str, *options: str):
    """A tmpfs of `size` mounted at `path` (root only: skipped elsewhere)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=" + size, *options)), "tmpfs", str(path)],
                           capture_output=True, text=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({mount.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(disk: Path) -> None:
    with contextlib.suppress(OSError), open(disk / "filler", "wb") as file:
        while True:
            file.write(b"\0" * 4096)
            file.flush()


def test_a_full_disk_ends_a_script_in_one_line_and_keeps_the_old_file(numbered_generator, tmp_path):
    with _small_disk(tmp_path / "disk", "256k") as disk:
        assert _script("sample")(["--checkpoint", str(numbered_generator), "--num", "4", "--out",
                                  str(disk / "grid.png")]) == 0
        before = (disk / "grid.png").read_bytes()
        _fill(disk)
        run = _run(ROOT / "scripts" / "sample.py", "--checkpoint", numbered_generator, "--num", "16", "--seed", "9",
                   "--out", disk / "grid.png")
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert run.stderr.startswith("error: no space left on the device")
        assert (disk / "grid.png").read_bytes() == before  # the previous grid is intact


def test_a_read_only_folder_and_a_full_stdout_are_one_line_each(numbered_generator, tiny_checkpoint, tmp_path):
    with _small_disk(tmp_path / "ro", "64k", "ro") as disk:
        run = _run(ROOT / "scripts" / "sample.py", "--checkpoint", numbered_generator, "--num", "1",
                   "--out", disk / "g.png")
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert "read-only" in run.stderr and f"({disk / 'g.png'})" in run.stderr  # the file asked for, not a temporary
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    with open(os.devnull if not Path("/dev/full").exists() else "/dev/full", "w") as full:
        run = subprocess.run([sys.executable, ROOT / "scripts" / "classify.py", "--checkpoint", tiny_checkpoint,
                              "--json", image], stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.startswith("error: no space left on the device"), run.stderr
    assert run.stderr.count("\n") == 1


@pytest.mark.parametrize(("command", "name"), [("to-timm", "m.safetensors"), ("to-official", "ck.flax"),
                                               ("repack", "ck")])
def test_every_writer_on_a_full_disk_or_a_read_only_folder_is_one_line_and_leaves_no_partial_file(
        tiny_checkpoint, tmp_path, command, name):
    """safetensors reports a full disk as its own SafetensorError, and a file written in place was left half
    written: every writer goes through nestgen.files, whose failures name the file asked for."""
    convert = [ROOT / "scripts" / "convert.py", command, "--checkpoint", tiny_checkpoint, "--output"]
    with _small_disk(tmp_path / "disk", "256k") as disk:
        assert _run(*convert, disk / name).returncode == 0
        before = {p.name: p.read_bytes() for p in (disk / name).glob("*")} if command == "repack" else (
            disk / name).read_bytes()
        _fill(disk)
        run = _run(*convert, disk / name)
        lines = [line for line in run.stderr.splitlines() if not line.startswith("note:")]  # to-timm's GELU note
        assert run.returncode == 2 and len(lines) == 1, run.stderr
        assert lines[0].startswith("error: no space left on the device") and str(disk / name) in lines[0]
        after = {p.name: p.read_bytes() for p in (disk / name).glob("*")} if command == "repack" else (
            disk / name).read_bytes()
        assert after == before and sorted(p.name for p in disk.iterdir()) == sorted([name, "filler"])
    with _small_disk(tmp_path / "ro", "64k", "ro") as disk:
        run = _run(*convert, disk / name)
        lines = [line for line in run.stderr.splitlines() if not line.startswith("note:")]
        assert run.returncode == 2 and len(lines) == 1, run.stderr
        assert "read-only" in lines[0] and str(disk / name) in lines[0]


def test_explain_refuses_an_output_that_is_not_a_png_before_any_work(tiny_checkpoint, tmp_path):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    for out in (tmp_path / "folder", tmp_path / "picture.jpg"):
        run = _run(ROOT / "scripts" / "explain.py", "--checkpoint", tiny_checkpoint, "--image", image, "--out", out)
        assert run.returncode == 2 and _error_lines(run.stderr) == [
            f"error: --out {str(out)!r}: give a file name ending in .png (e.g. --out explanation.png)"], run.stderr
        assert not out.exists()
    run = _run(ROOT / "scripts" / "explain.py", "--checkpoint", tiny_checkpoint, "--image", image, "--out",
               tmp_path / "e.png")
    assert run.returncode == 0 and Image.open(tmp_path / "e.png").format == "PNG", run.stderr


def test_a_generator_s_tracked_mean_of_w_is_checked_at_load(numbered_generator, tmp_path):
    broken = tmp_path / "g"
    shutil.copytree(numbered_generator, broken)
    w_avg = np.zeros((10, TINY_G.w_dim))
    w_avg[3, 5] = np.nan
    _edit_config(broken, metadata={"w_avg": w_avg.tolist()})
    with pytest.raises(CheckpointError, match=r"metadata.w_avg holds 1 NaN or infinite value \(of 320\)"):
        load_checkpoint(broken)
    out = tmp_path / "grid.png"
    assert _script("sample")(["--checkpoint", str(broken), "--truncation", "0.7", "--out", str(out)]) == 2
    assert not out.exists()  # no black grid
    _edit_config(broken, metadata={"w_avg": np.zeros((9, TINY_G.w_dim)).tolist()})
    with pytest.raises(CheckpointError, match=r"is of shape \(9, 32\); this generator needs \(10, 32\)"):
        load_checkpoint(broken)


def test_the_trainer_on_a_full_disk_is_one_line_without_orbax_noise(tmp_path):
    rng = np.random.default_rng(0)
    data = write_image_folder(tmp_path / "data", rng.integers(0, 255, (64, 32, 32, 3), dtype=np.uint8),
                              np.arange(64) % 10, [f"c{i}" for i in range(10)])
    with _small_disk(tmp_path / "disk", "300k") as disk:
        run = _run(ROOT / "scripts" / "train_classifier.py", "--config",
                   str(ROOT / "configs" / "classifier_cifar10.py") + ":smoke", "--workdir", disk / "run",
                   "--set", f"data.train=folder:{data}", "--set", "data.eval=None", "--set", "num_steps=12",
                   "--set", "checkpoint_every_steps=4", "--set", "log_every_steps=2")
        lines = _error_lines(run.stderr)
        assert run.returncode == 2 and len(lines) == 1, run.stderr[-3000:]
        assert lines[0].startswith("error: no space left on the device"), lines
        assert "Traceback" not in run.stderr and "absl" not in run.stderr


def test_a_failed_save_s_abandoned_write_coroutines_stay_quiet_at_exit(tmp_path):
    """A full disk mid-save leaves orbax's write coroutines unawaited; Python warns about them when it collects
    them at exit ("sys:1: RuntimeWarning: coroutine … was never awaited"), after the script's one error line."""
    script = tmp_path / "script.py"
    script.write_text(
        "import errno, sys\n"
        "from nestgen.cli import entry_point\n"
        "async def write_fragment():\n    pass\n"
        "KEPT = []\n"
        "@entry_point\n"
        "def main(argv=None):\n"
        "    KEPT.append(write_fragment())\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', 'x')\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n")
    run = _run(script)
    assert run.returncode == 2 and run.stderr.splitlines() == [
        "error: no space left on the device: free some space or write somewhere else (x); "
        "nothing that existed before was changed"], run.stderr


def test_only_the_closed_loop_tracebacks_are_held_back():
    import io

    from nestgen import cli
    from nestgen.cli import _WithoutClosedLoopTracebacks

    out = io.StringIO()
    stream = _WithoutClosedLoopTracebacks(out)
    closed = ["Traceback (most recent call last):\n", '  File "base_events.py", line 806, in call_soon_threadsafe\n',
              "    self._check_closed()\n", "RuntimeError: Event loop is closed\n"]
    bug = ["Traceback (most recent call last):\n", '  File "x.py", line 1, in f\n', "ZeroDivisionError: oops\n"]
    for piece in ["train: 10%\r", *closed, "error: no space\n", *bug, *closed]:
        stream.write(piece)
    assert out.getvalue() == "train: 10%\rerror: no space\n" + "".join(bug)
    # two native threads print theirs at once, interleaved line by line with each other and with the script's
    # own error line (seen in the full suite): each thread is followed on its own
    def interleaved(pieces):
        out, current = io.StringIO(), [0]
        stream = _WithoutClosedLoopTracebacks(out)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cli.threading, "get_ident", lambda: current[0])
            for thread, piece in pieces:
                current[0] = thread
                stream.write(piece)
        return out.getvalue()

    a, b = [(1, line) for line in closed], [(2, line) for line in closed]
    main = [(0, "error: no space"), (0, "\n")]  # print() writes the line and its end separately
    assert interleaved([a[0], a[1], b[0], main[0], b[1], a[2], main[1], b[2], a[3], b[3]]) == "error: no space\n"
    # … and a real error interleaved with one of them is written whole, in its own order
    shown = interleaved([a[0], (2, bug[0]), a[1], (2, bug[1]), a[2], a[3], (2, bug[2])])
    assert shown == "".join(bug)
