"""Parity with timm's PyTorch NesT: timm → nestgen → timm gives the same logits; .pth files load without torch code."""

import argparse
import dataclasses
import importlib.util
import io
import os
import pickle
import pickletools
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file as torch_save_safetensors
from timm.models.nest import Nest

from nestgen.convert.checkpoint import load_checkpoint, save_checkpoint
from nestgen.convert.timm import from_timm, load_timm, read_timm_weights, save_timm, timm_kwargs, to_timm
from nestgen.convert.torch_zip import UnsafeCheckpointError, read_state_dict, skipped_origin
from nestgen.convert.tree import ParameterTreeError, flatten, unflatten
from nestgen.models.classifier import NestConfig
from nestgen.models.registry import get_config, init_params

SMALL = NestConfig(image_size=32, patch_size=2, num_levels=3, dims=(32, 64, 96), heads=(2, 4, 6), depths=(1, 2, 1),
                   attention="multi_head", num_classes=7, activation="gelu", drop_path_rate=0.0)
IMAGENET_TINY = get_config("nest_tiny_s196_224", activation="gelu")
ROOT = Path(__file__).resolve().parents[1]


def _timm_model(cfg: NestConfig, seed: int) -> Nest:
    torch.manual_seed(seed)
    model = Nest(**timm_kwargs(cfg), drop_path_rate=0.0).eval()
    with torch.no_grad():  # make biases and norms non-trivial so every mapping is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _timm_logits(model: Nest, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()


def _relative_error(ours, reference) -> float:
    return float(np.abs(np.asarray(ours) - reference).max() / np.abs(reference).max())


@pytest.mark.parametrize("cfg,batch", [(SMALL, 4), (IMAGENET_TINY, 2)], ids=["small-custom", "imagenet-nest-tiny"])
def test_timm_round_trip_logits_agree(cfg, batch, tmp_path):
    model = _timm_model(cfg, seed=0)
    images = np.random.default_rng(0).standard_normal((batch, cfg.image_size, cfg.image_size, 3), dtype=np.float32)
    reference = _timm_logits(model, images)

    torch_save_safetensors(model.state_dict(), str(tmp_path / "timm.safetensors"))
    flat = load_timm(tmp_path / "timm.safetensors", cfg)
    ours, _ = cfg.build().apply({"params": unflatten(flat)}, images)
    assert _relative_error(ours, reference) < 1e-4

    # nestgen checkpoint → timm safetensors → a fresh timm model computes the same logits again
    save_checkpoint(tmp_path / "ckpt", cfg, unflatten(flat))
    kwargs = save_timm(tmp_path / "back.safetensors", flatten(load_checkpoint(tmp_path / "ckpt").params), cfg)
    from safetensors.torch import load_file

    fresh = Nest(**kwargs).eval()
    fresh.load_state_dict(load_file(str(tmp_path / "back.safetensors")))
    assert _relative_error(_timm_logits(fresh, images), reference) < 1e-4


def test_pytorch_state_dict_loads_without_torch_code(tmp_path):
    model = _timm_model(SMALL, seed=1)
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "model.pth")
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    flat = load_timm(tmp_path / "model.pth", SMALL)
    back = {k: np.asarray(v) for k, v in to_timm(flat, SMALL).items()}
    assert back.keys() == state.keys() and all(np.array_equal(back[k], state[k]) for k in state)


def test_torch_zip_reader_handles_dtypes_and_strided_tensors(tmp_path):
    data = {"half": torch.arange(6, dtype=torch.float16).reshape(2, 3), "long": torch.arange(4),
            "transposed": torch.arange(12.0).reshape(3, 4).t(), "scalar": torch.tensor(2.5),
            "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16)}
    torch.save(data, tmp_path / "t.pt")
    loaded = read_state_dict(tmp_path / "t.pt")
    for key, tensor in data.items():
        np.testing.assert_array_equal(np.asarray(loaded[key], np.float64), tensor.float().numpy(), err_msg=key)


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_that_would_run_code_is_read_inert_and_refused_as_weights(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": _Exploit()}))
    assert skipped_origin(read_state_dict(path)["x"]) == "builtins.print"
    with pytest.raises(UnsafeCheckpointError, match=r"key 'x' is a pickled 'builtins.print' object where a tensor"):
        read_timm_weights(path)
    assert "pwned" not in capsys.readouterr().out


# ---- timm train.py's own checkpoints (model_best.pth.tar, checkpoint-N.pth.tar) ---------------------------------


def _training_checkpoint(path, model: Nest, prefix: str = "", ema: Nest | None = None, **extra) -> None:
    """What timm's CheckpointSaver writes: weights next to the optimizer, the argparse arguments and bookkeeping."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)  # one step, so its state holds tensors too
    model(torch.zeros(1, 3, model.patch_embed.img_size[0], model.patch_embed.img_size[1])).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    state = {prefix + k: v for k, v in model.state_dict().items()}
    checkpoint = {"epoch": 3, "arch": "nest_tiny", "state_dict": state, "optimizer": optimizer.state_dict(),
                  "args": argparse.Namespace(model="nest_tiny", lr=0.1, device=torch.device("cpu"),
                                             amp_dtype=torch.float16, data_dir=Path("/data/imagenet")),
                  "version": 2, "metric": 71.2, "amp_scaler": {"scale": 65536.0, "growth_tracker": 0},
                  "saver": {"best_metric": 71.2, "checkpoint_files": [("checkpoint-3.pth.tar", 71.2)]}} | extra
    if ema is not None:
        checkpoint["state_dict_ema"] = {prefix + k: v for k, v in ema.state_dict().items()}
    torch.save(checkpoint, path)


@pytest.mark.parametrize("prefix", ["", "module."], ids=["plain", "DataParallel"])
def test_timm_training_checkpoint_converts(prefix, tmp_path):
    model = _timm_model(SMALL, seed=3)
    path = tmp_path / "model_best.pth.tar"
    _training_checkpoint(path, model, prefix)
    images = np.random.default_rng(2).standard_normal((2, 32, 32, 3), dtype=np.float32)
    flat = load_timm(path, SMALL)
    ours, _ = SMALL.build().apply({"params": unflatten(flat)}, images)
    assert _relative_error(ours, _timm_logits(model, images)) < 1e-4


def test_timm_training_checkpoint_picks_the_ema_weights_as_timm_does_unless_told(tmp_path):
    model, ema = _timm_model(SMALL, seed=4), _timm_model(SMALL, seed=5)
    path = tmp_path / "model_best.pth.tar"
    _training_checkpoint(path, model, "module.", ema=ema)
    images = np.random.default_rng(3).standard_normal((2, 32, 32, 3), dtype=np.float32)
    for entry, reference in ((None, ema), ("state_dict_ema", ema), ("state_dict", model)):
        ours, _ = SMALL.build().apply({"params": unflatten(load_timm(path, SMALL, entry))}, images)
        assert _relative_error(ours, _timm_logits(reference, images)) < 1e-4, entry
    with pytest.raises(ValueError, match=r"has no entry 'model_ema' \(its entries: 'epoch', 'arch', 'state_dict'"):
        load_timm(path, SMALL, "model_ema")


def test_convert_script_on_a_timm_training_checkpoint(tmp_path):
    cfg = get_config("nest_micro_32", activation="gelu")
    model = _timm_model(cfg, seed=6)
    _training_checkpoint(tmp_path / "model_best.pth.tar", model, "module.")
    spec = importlib.util.spec_from_file_location("convert", ROOT / "scripts" / "convert.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    assert convert.main(["timm", "--variant", "nest_micro_32", "--input", str(tmp_path / "model_best.pth.tar"),
                         "--output", str(tmp_path / "out")]) == 0
    loaded = load_checkpoint(tmp_path / "out")
    images = np.random.default_rng(4).standard_normal((2, 32, 32, 3), dtype=np.float32)
    ours, _ = loaded.build().apply({"params": loaded.params}, images)
    assert _relative_error(ours, _timm_logits(model, images)) < 1e-4


class _System:
    """Pickles as a call of os.system (posix.system here): what a malicious checkpoint carries."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_code_in_a_training_checkpoint_never_runs(tmp_path):
    marker = tmp_path / "ran"
    model = _timm_model(SMALL, seed=7)
    # beside the weights (where timm keeps its arguments): read past, never run; the weights still convert
    _training_checkpoint(tmp_path / "aside.pth.tar", model, args=_System(f"touch {marker}"))
    assert skipped_origin(read_state_dict(tmp_path / "aside.pth.tar")["args"]) in ("posix.system", "os.system")
    load_timm(tmp_path / "aside.pth.tar", SMALL)
    # in the weights: refused, naming what it would have called
    state = dict(model.state_dict()) | {"head.bias": _System(f"touch {marker}")}
    torch.save({"state_dict": state, "epoch": 1}, tmp_path / "inside.pth.tar")
    with pytest.raises(UnsafeCheckpointError, match=r"key 'head.bias' is a pickled '(posix|os).system' object"):
        load_timm(tmp_path / "inside.pth.tar", SMALL)
    # the whole file one object (torch.save(model)): refused the same way
    with zipfile.ZipFile(tmp_path / "object.pth", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_System(f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"is a pickled '(posix|os).system' object, not a dictionary"):
        load_timm(tmp_path / "object.pth", SMALL)
    # a whole pickled module under a weights entry ({'epoch': 3, 'model': model}): named, with what to do
    torch.save({"epoch": 3, "model": model}, tmp_path / "module.pth.tar")
    with pytest.raises(UnsafeCheckpointError, match=r"entry 'model' is a pickled 'timm.models.nest.Nest' object, "
                                                    r"not a dictionary .* save model.state_dict\(\) instead"):
        load_timm(tmp_path / "module.pth.tar", SMALL)
    assert not marker.exists()


def test_globals_named_by_a_checkpoint_are_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "nestgen_trap.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef boom(*a): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    payload = b"\x80\x02}q\x00X\x04\x00\x00\x00argsq\x01cnestgen_trap\nboom\nq\x02)Rq\x03s."  # {'args': boom()}
    assert pickletools.dis(payload, out=io.StringIO()) is None  # a well-formed pickle
    with zipfile.ZipFile(tmp_path / "trap.pth", "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    assert skipped_origin(read_state_dict(tmp_path / "trap.pth")["args"]) == "nestgen_trap.boom"
    assert not marker.exists() and "nestgen_trap" not in sys.modules


def test_tensor_views_outside_their_storage_are_refused(tmp_path):
    torch.save({"w": torch.arange(4.0)}, tmp_path / "ok.pth")
    with zipfile.ZipFile(tmp_path / "ok.pth") as src, zipfile.ZipFile(tmp_path / "bad.pth", "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("data.pkl"):  # size (4,) → (400,): a view reaching past the 4 stored floats
                data = data.replace(b"K\x04\x85", b"M\x90\x01\x85")
                assert b"M\x90\x01\x85" in data
            dst.writestr(name, data)
    with pytest.raises(UnsafeCheckpointError, match=r"reaches element 399 of a storage of 4 elements"):
        read_state_dict(tmp_path / "bad.pth")


def test_mismatched_timm_weights_name_the_cause_on_the_first_line(tmp_path):
    state = dict(_timm_model(SMALL, seed=8).state_dict())
    cases = {
        "model.": ({f"model.{k}": v for k, v in state.items()},
                   "every key starts with 'model.' (the network was saved inside a wrapper module)"),
        "classes": (state | {"head.weight": torch.zeros(10, 96), "head.bias": torch.zeros(10)},
                    "the head has 10 classes, the model 7: set the number of classes to 10"),
        "resnet": ({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(7, 8)},
                   "no key of a timm NesT among the file's 2 tensors (e.g. 'conv1.weight', 'fc.weight')"),
        "deeper": (state | {f"levels.2.transformer_encoder.1.{k.split('.', 4)[4]}": v for k, v in state.items()
                            if k.startswith("levels.2.transformer_encoder.0.")},
                   "the weights are not this NesT variant (file vs model: depths (1, 2, 2) vs (1, 2, 1))"),
    }
    for name, (weights, cause) in cases.items():
        torch.save({"state_dict": weights, "args": argparse.Namespace(lr=1)}, tmp_path / f"{name}.pth.tar")
        with pytest.raises(ParameterTreeError) as info:
            load_timm(tmp_path / f"{name}.pth.tar", SMALL)
        first = str(info.value).splitlines()[0]
        assert first.startswith(f"{tmp_path / name}.pth.tar: {cause}"), first


def test_multi_query_model_cannot_go_to_timm(tmp_path):
    cfg = get_config("nest_tiny_s16_32")
    with pytest.raises(ParameterTreeError, match="multi-head attention only"):
        save_timm(tmp_path / "x.safetensors", flatten(init_params(cfg, 0)), cfg)


def test_wrong_timm_weights_name_key_and_shapes(tmp_path):
    model = _timm_model(SMALL, seed=0)
    state = dict(model.state_dict())
    state["head.weight"] = torch.zeros(9, 96)
    del state["levels.1.pool.norm.bias"]
    torch_save_safetensors(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ParameterTreeError) as info:
        load_timm(tmp_path / "bad.safetensors", SMALL)
    message = str(info.value)
    assert "key 'head.weight' has shape (9, 96), expected (7, 96)" in message
    assert "missing key 'levels.1.pool.norm.bias' (expected shape (64,))" in message


def test_symmetric_pool_padding_matches_timms_own_nest():
    cfg = dataclasses.replace(SMALL, pool_padding="symmetric")
    model = _timm_model(cfg, seed=2)
    assert timm_kwargs(cfg)["pad_type"] == ""
    images = np.random.default_rng(1).standard_normal((2, 32, 32, 3), dtype=np.float32)
    flat = from_timm({k: v.numpy() for k, v in model.state_dict().items()}, cfg)
    ours, _ = cfg.build().apply({"params": unflatten(flat)}, images)
    assert _relative_error(ours, _timm_logits(model, images)) < 1e-4


def test_a_pickle_cannot_retype_a_storage(tmp_path):
    with zipfile.ZipFile(tmp_path / "retype.pth", "w") as archive:  # torch.FloatStorage with its dtype set to 'O'
        archive.writestr("archive/data.pkl", b"ctorch\nFloatStorage\n(dVdtype\nVO\nsb.")
    with pytest.raises(UnsafeCheckpointError, match="tries to modify a storage type"):
        read_state_dict(tmp_path / "retype.pth")
