"""timm's PyTorch NesT (`timm.models.nest.Nest`) weights in and out of nestgen, without importing torch.

timm names: `patch_embed.proj`, `levels.{l}.pos_embed`, `levels.{l}.transformer_encoder.{i}.{norm1, attn.qkv,
attn.proj, norm2, mlp.fc1, mlp.fc2}`, `levels.{l}.pool.{conv, norm}` (the aggregation sits on the level *after*
it), `norm`, `head`; OIHW convolutions and (out, in) linear weights. timm's NesT is multi-head only; its
attention output is laid out (head_dim, heads) before `attn.proj`, which the mapping accounts for. timm runs the
exact GELU and, for the `*_jx` models, TF-SAME pooling: converted configs use activation "gelu".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from nestgen.convert.torch_zip import Skipped, read_state_dict, skipped_origin, tensor_dict
from nestgen.convert.tree import ParameterTreeError, check_tree, expected_shapes, flatten, shapes
from nestgen.models.classifier import NestConfig

E = "encoder/"


def _require_multi_head(cfg: NestConfig) -> None:
    if cfg.attention != "multi_head":
        raise ParameterTreeError(
            "timm's NesT has multi-head attention only; this model uses multi-query attention (one shared key/value "
            "head), which has no timm equivalent. Keep it in nestgen's format or the official Flax format.")


def _linear(kernel):  # Flax (in, out) → torch (out, in)
    return jnp.transpose(kernel)


def _conv(kernel):  # Flax HWIO → torch OIHW
    return jnp.transpose(kernel, (3, 2, 0, 1))


def _conv_back(weight):  # torch OIHW → Flax HWIO
    return jnp.transpose(weight, (2, 3, 1, 0))


def to_timm(flat: dict[str, Any], cfg: NestConfig) -> dict[str, Any]:
    """nestgen flat parameters → timm state dict names and layouts."""
    _require_multi_head(cfg)
    out = {"patch_embed.proj.weight": _conv(flat[E + "patch_embed/proj/kernel"]),
           "patch_embed.proj.bias": flat[E + "patch_embed/proj/bias"],
           "norm.weight": flat["norm/scale"], "norm.bias": flat["norm/bias"],
           "head.weight": _linear(flat["head/kernel"]), "head.bias": flat["head/bias"]}
    for level in range(cfg.num_levels):
        ours, theirs = f"{E}level_{level}", f"levels.{level}"
        out[theirs + ".pos_embed"] = flat[ours + "/pos_embed"]
        if level > 0:
            agg = f"{E}aggregate_{level - 1}"
            out[theirs + ".pool.conv.weight"] = _conv(flat[agg + "/conv/kernel"])
            out[theirs + ".pool.conv.bias"] = flat[agg + "/conv/bias"]
            out[theirs + ".pool.norm.weight"] = flat[agg + "/norm/scale"]
            out[theirs + ".pool.norm.bias"] = flat[agg + "/norm/bias"]
        for i in range(cfg.depths[level]):
            o, t = f"{ours}/layer_{i}", f"{theirs}.transformer_encoder.{i}"
            q, kv = flat[o + "/attn/query/kernel"], flat[o + "/attn/key_value/kernel"]  # (C, h, d), (C, 2, h, d)
            c = q.shape[0]
            qkv = jnp.concatenate([q.reshape(c, 1, -1), kv.reshape(c, 2, -1)], axis=1)  # (C, 3, h*d)
            qkv_bias = jnp.concatenate([flat[o + "/attn/query/bias"].reshape(1, -1),
                                        flat[o + "/attn/key_value/bias"].reshape(2, -1)])  # (3, h*d)
            proj = flat[o + "/attn/out/kernel"]  # (h, d, C)
            h, d, _ = proj.shape
            out |= {
                t + ".norm1.weight": flat[o + "/norm1/scale"], t + ".norm1.bias": flat[o + "/norm1/bias"],
                t + ".attn.qkv.weight": _linear(qkv.reshape(c, 3 * h * d)), t + ".attn.qkv.bias": qkv_bias.reshape(-1),
                # timm flattens the attention output as (head_dim, heads): input feature i*h + head
                t + ".attn.proj.weight": _linear(jnp.transpose(proj, (1, 0, 2)).reshape(d * h, -1)),
                t + ".attn.proj.bias": flat[o + "/attn/out/bias"],
                t + ".norm2.weight": flat[o + "/norm2/scale"], t + ".norm2.bias": flat[o + "/norm2/bias"],
                t + ".mlp.fc1.weight": _linear(flat[o + "/mlp/fc1/kernel"]),
                t + ".mlp.fc1.bias": flat[o + "/mlp/fc1/bias"],
                t + ".mlp.fc2.weight": _linear(flat[o + "/mlp/fc2/kernel"]),
                t + ".mlp.fc2.bias": flat[o + "/mlp/fc2/bias"],
            }
    return out


def from_timm(state: dict[str, Any], cfg: NestConfig) -> dict[str, Any]:
    """timm state dict → nestgen flat parameters (the exact inverse of `to_timm`)."""
    _require_multi_head(cfg)
    s = {k: jnp.asarray(v) for k, v in state.items()}
    out = {E + "patch_embed/proj/kernel": _conv_back(s["patch_embed.proj.weight"]),
           E + "patch_embed/proj/bias": s["patch_embed.proj.bias"],
           "norm/scale": s["norm.weight"], "norm/bias": s["norm.bias"],
           "head/kernel": _linear(s["head.weight"]), "head/bias": s["head.bias"]}
    for level in range(cfg.num_levels):
        ours, theirs = f"{E}level_{level}", f"levels.{level}"
        h = cfg.heads[level]
        out[ours + "/pos_embed"] = s[theirs + ".pos_embed"]
        if level > 0:
            agg = f"{E}aggregate_{level - 1}"
            out[agg + "/conv/kernel"] = _conv_back(s[theirs + ".pool.conv.weight"])
            out[agg + "/conv/bias"] = s[theirs + ".pool.conv.bias"]
            out[agg + "/norm/scale"] = s[theirs + ".pool.norm.weight"]
            out[agg + "/norm/bias"] = s[theirs + ".pool.norm.bias"]
        for i in range(cfg.depths[level]):
            o, t = f"{ours}/layer_{i}", f"{theirs}.transformer_encoder.{i}"
            qkv = _linear(s[t + ".attn.qkv.weight"])  # (C, 3C)
            c = qkv.shape[0]
            d = c // h
            qkv = qkv.reshape(c, 3, h, d)  # (C, 3, h, d): query, key, value
            qkv_bias = s[t + ".attn.qkv.bias"].reshape(3, h, d)
            out |= {
                o + "/norm1/scale": s[t + ".norm1.weight"], o + "/norm1/bias": s[t + ".norm1.bias"],
                o + "/attn/query/kernel": qkv[:, 0], o + "/attn/query/bias": qkv_bias[0],
                o + "/attn/key_value/kernel": qkv[:, 1:], o + "/attn/key_value/bias": qkv_bias[1:],
                o + "/attn/out/kernel": jnp.transpose(_linear(s[t + ".attn.proj.weight"]).reshape(d, h, c), (1, 0, 2)),
                o + "/attn/out/bias": s[t + ".attn.proj.bias"],
                o + "/norm2/scale": s[t + ".norm2.weight"], o + "/norm2/bias": s[t + ".norm2.bias"],
                o + "/mlp/fc1/kernel": _linear(s[t + ".mlp.fc1.weight"]), o + "/mlp/fc1/bias": s[t + ".mlp.fc1.bias"],
                o + "/mlp/fc2/kernel": _linear(s[t + ".mlp.fc2.weight"]), o + "/mlp/fc2/bias": s[t + ".mlp.fc2.bias"],
            }
    return out


def timm_shapes(cfg: NestConfig) -> dict[str, tuple[int, ...]]:
    from nestgen.models.registry import abstract_params

    _require_multi_head(cfg)
    return expected_shapes(lambda p: to_timm(p, cfg), flatten(abstract_params(cfg)))


def timm_kwargs(cfg: NestConfig) -> dict[str, Any]:
    """Arguments of `timm.models.nest.Nest(...)` that build the same network."""
    return dict(img_size=cfg.image_size, in_chans=cfg.in_channels, patch_size=cfg.patch_size,
                num_levels=cfg.num_levels, embed_dims=list(cfg.dims), num_heads=list(cfg.heads),
                depths=list(cfg.depths), num_classes=cfg.num_classes, mlp_ratio=cfg.mlp_ratio,
                pad_type="same" if cfg.pool_padding == "same" else "")


WEIGHT_ENTRIES = ("state_dict_ema", "model_ema", "state_dict", "model")  # timm's own order, EMA first
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile


def select_weights(checkpoint: Any, entry: str | None = None, what: str = "checkpoint") -> tuple[str | None, dict]:
    """(entry name, state dict) of a loaded checkpoint. `entry` names one ('state_dict'); None follows timm's own
    `load_checkpoint(use_ema=True)`: the first of WEIGHT_ENTRIES present (so the EMA weights of a `train.py
    --model-ema` run, on which its best metric was measured), else the whole file as a plain state dict."""
    if entry is not None:
        if not isinstance(checkpoint, dict) or entry not in checkpoint:
            found = ", ".join(repr(k) for k in checkpoint) if isinstance(checkpoint, dict) else "none"
            raise ValueError(f"{what} has no entry {entry!r} (its entries: {found})")
        return entry, tensor_dict(checkpoint[entry], f"{what} entry {entry!r}")
    if isinstance(checkpoint, dict):
        for name in WEIGHT_ENTRIES:
            if isinstance(checkpoint.get(name), dict):
                return name, tensor_dict(checkpoint[name], f"{what} entry {name!r}")
            if name in checkpoint and skipped_origin(checkpoint[name]) is not None:  # a whole pickled module
                return name, tensor_dict(checkpoint[name], f"{what} entry {name!r}")  # raises, naming its class
        if checkpoint and not any(isinstance(v, np.ndarray | Skipped) for v in checkpoint.values()):
            raise ValueError(f"{what} holds no weights: none of its entries ({', '.join(map(repr, checkpoint))}) is a "
                             f"tensor or one of {', '.join(WEIGHT_ENTRIES)}")
    return None, tensor_dict(checkpoint, what)


def strip_wrappers(state: dict[str, Any]) -> dict[str, Any]:
    """Keys without the `module.` (DataParallel, DDP) and `_orig_mod.` (torch.compile) prefixes, as timm's
    `clean_state_dict` does."""
    out = {}
    for key, value in state.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def read_timm_weights(path: str | Path, entry: str | None = None) -> dict[str, np.ndarray]:
    """A timm state dict from safetensors or a PyTorch checkpoint (read without torch, tensors only; see
    `select_weights` for which entry of a training checkpoint, and `strip_wrappers`)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        state = load_file(str(path))
    else:
        _, state = select_weights(read_state_dict(path), entry, str(path))
    return strip_wrappers(state)


def _architecture(found: dict[str, tuple[int, ...]]) -> dict[str, str]:
    """What timm NesT weight shapes say about the network: levels, patch size, dims, depths, blocks, classes."""
    levels = sorted({int(k.split(".")[1]) for k in found if k.startswith("levels.") and k.split(".")[1].isdigit()})
    pos = [found.get(f"levels.{level}.pos_embed", ()) for level in levels]  # (1, blocks, tokens, C) each
    depths = [len({k.split(".")[3] for k in found if k.startswith(f"levels.{level}.transformer_encoder.")})
              for level in levels]
    return {
        "levels": str(len(levels)),
        "patch size": str(found.get("patch_embed.proj.weight", (None,))[-1]),
        "dims": f"({', '.join(str(p[-1]) if p else '?' for p in pos)})",
        "depths": f"({', '.join(map(str, depths))})",
        "blocks × tokens": f"({', '.join(f'{p[1]}×{p[2]}' if len(p) == 4 else '?' for p in pos)})",
        "classes": str(found.get("head.weight", (None,))[0]),
    }


def _keys(keys: set[str], what: str) -> str:
    return f"{len(keys)} {what} ({', '.join(repr(k) for k in sorted(keys)[:2])}{', …' if len(keys) > 2 else ''})"


def mismatch_cause(found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> str:
    """One line: why weights with key shapes `found` do not fit a model expecting `expected` (both timm names)."""
    if not found.keys() & expected.keys():
        firsts = {k.split(".", 1)[0] for k in found}
        if len(firsts) == 1 and all("." in k for k in found):
            prefix = firsts.pop() + "."
            if {k[len(prefix):] for k in found} & expected.keys():
                return (f"every key starts with {prefix!r} (the network was saved inside a wrapper module); "
                        "save the inner module's state_dict()")
        return (f"no key of a timm NesT among the file's {len(found)} tensors (e.g. "
                f"{', '.join(repr(k) for k in sorted(found)[:3])}): these are not timm NesT weights")
    ours, theirs = _architecture(found), _architecture(expected)
    parts = [f"{name} {ours[name]} vs {theirs[name]}" for name in ours if ours[name] != theirs[name]]
    missing, unexpected = expected.keys() - found.keys(), found.keys() - expected.keys()
    reshaped = {k for k in found.keys() & expected.keys() if tuple(found[k]) != tuple(expected[k])}
    if parts == [f"classes {ours['classes']} vs {theirs['classes']}"] and not missing | unexpected \
            and all(k.startswith("head.") for k in reshaped):
        return (f"the head has {ours['classes']} classes, the model {theirs['classes']}: set the number of classes "
                f"to {ours['classes']} (convert.py --num-classes {ours['classes']})")
    if not parts:
        parts = [_keys(keys, what) for keys, what in ((missing, "missing"), (unexpected, "unexpected"),
                                                      (reshaped, "of another shape")) if keys]
    return f"the weights are not this NesT variant (file vs model: {'; '.join(parts)})"


def load_timm(path: str | Path, cfg: NestConfig, entry: str | None = None) -> dict[str, Any]:
    """Read timm NesT weights for `cfg` and return nestgen's flat parameters, float32. `entry` picks one entry of a
    training checkpoint (default: see `select_weights`). A mismatch raises ParameterTreeError whose first line
    names the cause and whose next lines list every key that differs."""
    state = read_timm_weights(path, entry)
    found, expected = shapes(state), timm_shapes(cfg)
    try:
        check_tree(found, expected, f"timm weights {path}")
    except ParameterTreeError as error:
        raise ParameterTreeError(f"{path}: {mismatch_cause(found, expected)}\n{error}") from None
    return {k: jnp.asarray(v, jnp.float32) for k, v in from_timm(state, cfg).items()}


def save_timm(path: str | Path, flat: dict[str, Any], cfg: NestConfig) -> dict[str, Any]:
    """Write nestgen parameters as a timm safetensors file; returns (and stores as metadata) timm's Nest kwargs."""
    from nestgen.files import save_safetensors

    state = {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in to_timm(flat, cfg).items()}
    kwargs = timm_kwargs(cfg)
    save_safetensors(path, state, {"format": "pt", "timm_nest_kwargs": json.dumps(kwargs)})
    return kwargs
