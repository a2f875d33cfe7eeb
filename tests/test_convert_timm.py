"""Parity with timm's PyTorch NesT: timm → nestgen → timm gives the same logits; .pth files load without torch code."""

import dataclasses
import pickle
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file as torch_save_safetensors
from timm.models.nest import Nest

from nestgen.convert.checkpoint import load_checkpoint, save_checkpoint
from nestgen.convert.timm import from_timm, load_timm, save_timm, timm_kwargs, to_timm
from nestgen.convert.torch_zip import UnsafeCheckpointError, read_state_dict
from nestgen.convert.tree import ParameterTreeError, flatten, unflatten
from nestgen.models.classifier import NestConfig
from nestgen.models.registry import get_config, init_params

SMALL = NestConfig(image_size=32, patch_size=2, num_levels=3, dims=(32, 64, 96), heads=(2, 4, 6), depths=(1, 2, 1),
                   attention="multi_head", num_classes=7, activation="gelu", drop_path_rate=0.0)
IMAGENET_TINY = get_config("nest_tiny_s196_224", activation="gelu")


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


def test_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": _Exploit()}))
    with pytest.raises(UnsafeCheckpointError, match="refusing to load 'builtins.print'"):
        read_state_dict(path)
    assert "pwned" not in capsys.readouterr().out


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
