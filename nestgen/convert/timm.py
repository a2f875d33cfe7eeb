"""timm's PyTorch NesT (`timm.models.nest.Nest`) weights in and out of nestgen, without importing torch.

timm names: `patch_embed.proj`, `levels.{l}.pos_embed`, `levels.{l}.transformer_encoder.{i}.{norm1, attn.qkv,
attn.proj, norm2, mlp.fc1, mlp.fc2}`, `levels.{l}.pool.{conv, norm}` (the aggregation sits on the level *after*
it), `norm`, `head`; OIHW convolutions and (out, in) linear weights. timm's NesT is multi-head only; its
attention output is laid out (head_dim, heads) before `attn.proj`, which the mapping accounts for. timm runs the
exact GELU and, for the `*_jx` models, TF-SAME pooling: converted configs use activation "gelu".

The name map is one table (`GLOBAL`, `PER_LEVEL`, `PER_POOL`, `PER_LAYER`: nestgen names, timm name, layout);
`to_timm` reads it one way and `from_timm` the other, each layout being a pair of inverse functions (`LAYOUTS`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from nestgen.convert.torch_zip import Skipped, read_state_dict, skipped_origin, tensor_dict
from nestgen.convert.tree import ParameterTreeError, check_tree, expected_shapes, flatten, shapes
from nestgen.models.classifier import NestConfig


def _require_multi_head(cfg: NestConfig) -> None:
    if cfg.attention != "multi_head":
        raise ParameterTreeError(
            "timm's NesT has multi-head attention only; this model uses multi-query attention (one shared key/value "
            "head), which has no timm equivalent. Keep it in nestgen's format or the official Flax format.")


def _qkv_kernel_to(ours: list, heads: int) -> Any:
    """query (C, h, d), key_value (C, 2, h, d) → timm's qkv.weight (3·h·d, C)."""
    q, kv = ours
    c = q.shape[0]
    return jnp.transpose(jnp.concatenate([q.reshape(c, 1, -1), kv.reshape(c, 2, -1)], axis=1).reshape(c, -1))


def _qkv_kernel_from(theirs, heads: int) -> list:
    qkv = jnp.transpose(theirs)  # (C, 3·h·d)
    c = qkv.shape[0]
    qkv = qkv.reshape(c, 3, heads, c // heads)  # (C, 3, h, d): query, key, value
    return [qkv[:, 0], qkv[:, 1:]]


def _qkv_bias_to(ours: list, heads: int) -> Any:
    """query bias (h, d), key_value bias (2, h, d) → timm's qkv.bias (3·h·d,)."""
    q, kv = ours
    return jnp.concatenate([q.reshape(1, -1), kv.reshape(2, -1)]).reshape(-1)


def _qkv_bias_from(theirs, heads: int) -> list:
    qkv = theirs.reshape(3, heads, -1)  # (3, h, d)
    return [qkv[0], qkv[1:]]


def _proj_to(ours: list, heads: int) -> Any:
    """out kernel (h, d, C) → timm's proj.weight (C, d·h): timm flattens the attention output as (head_dim, heads),
    input feature i·h + head."""
    h, d, _ = ours[0].shape
    return jnp.transpose(jnp.transpose(ours[0], (1, 0, 2)).reshape(d * h, -1))


def _proj_from(theirs, heads: int) -> list:
    c = theirs.shape[0]
    return [jnp.transpose(jnp.transpose(theirs).reshape(-1, heads, c), (1, 0, 2))]  # (d, h, C) → (h, d, C)


# layout → (nestgen arrays → the timm array, the timm array → nestgen arrays), each the other's inverse; `heads`
# is the level's head count (only the attention layouts use it)
LAYOUTS: dict[str, tuple[Callable[[list, int], Any], Callable[[Any, int], list]]] = {
    "same": (lambda ours, heads: ours[0], lambda theirs, heads: [theirs]),
    "linear": (lambda ours, heads: jnp.transpose(ours[0]),  # Flax (in, out) ↔ torch (out, in)
               lambda theirs, heads: [jnp.transpose(theirs)]),
    "conv": (lambda ours, heads: jnp.transpose(ours[0], (3, 2, 0, 1)),  # Flax HWIO ↔ torch OIHW
             lambda theirs, heads: [jnp.transpose(theirs, (2, 3, 1, 0))]),
    "qkv kernel": (_qkv_kernel_to, _qkv_kernel_from),
    "qkv bias": (_qkv_bias_to, _qkv_bias_from),
    "proj": (_proj_to, _proj_from),
}

# (nestgen names, timm name, layout). Placeholders: {l} a level, {p} the aggregation below it (l - 1), {i} a layer
GLOBAL = [
    (["encoder/patch_embed/proj/kernel"], "patch_embed.proj.weight", "conv"),
    (["encoder/patch_embed/proj/bias"], "patch_embed.proj.bias", "same"),
    (["norm/scale"], "norm.weight", "same"),
    (["norm/bias"], "norm.bias", "same"),
    (["head/kernel"], "head.weight", "linear"),
    (["head/bias"], "head.bias", "same"),
]
PER_LEVEL = [(["encoder/level_{l}/pos_embed"], "levels.{l}.pos_embed", "same")]
PER_POOL = [  # levels above the first: timm keeps the aggregation below a level on that level
    (["encoder/aggregate_{p}/conv/kernel"], "levels.{l}.pool.conv.weight", "conv"),
    (["encoder/aggregate_{p}/conv/bias"], "levels.{l}.pool.conv.bias", "same"),
    (["encoder/aggregate_{p}/norm/scale"], "levels.{l}.pool.norm.weight", "same"),
    (["encoder/aggregate_{p}/norm/bias"], "levels.{l}.pool.norm.bias", "same"),
]
LAYER, BLOCK = "encoder/level_{l}/layer_{i}/", "levels.{l}.transformer_encoder.{i}."
PER_LAYER = [
    ([LAYER + "norm1/scale"], BLOCK + "norm1.weight", "same"),
    ([LAYER + "norm1/bias"], BLOCK + "norm1.bias", "same"),
    ([LAYER + "attn/query/kernel", LAYER + "attn/key_value/kernel"], BLOCK + "attn.qkv.weight", "qkv kernel"),
    ([LAYER + "attn/query/bias", LAYER + "attn/key_value/bias"], BLOCK + "attn.qkv.bias", "qkv bias"),
    ([LAYER + "attn/out/kernel"], BLOCK + "attn.proj.weight", "proj"),
    ([LAYER + "attn/out/bias"], BLOCK + "attn.proj.bias", "same"),
    ([LAYER + "norm2/scale"], BLOCK + "norm2.weight", "same"),
    ([LAYER + "norm2/bias"], BLOCK + "norm2.bias", "same"),
    ([LAYER + "mlp/fc1/kernel"], BLOCK + "mlp.fc1.weight", "linear"),
    ([LAYER + "mlp/fc1/bias"], BLOCK + "mlp.fc1.bias", "same"),
    ([LAYER + "mlp/fc2/kernel"], BLOCK + "mlp.fc2.weight", "linear"),
    ([LAYER + "mlp/fc2/bias"], BLOCK + "mlp.fc2.bias", "same"),
]


def name_map(cfg: NestConfig) -> Iterator[tuple[list[str], str, str, int]]:
    """The table spelled out for `cfg`: (nestgen names, timm name, layout, the level's heads) per timm tensor."""
    _require_multi_head(cfg)
    for ours, theirs, layout in GLOBAL:
        yield ours, theirs, layout, 0
    for level in range(cfg.num_levels):
        rows = [(row, {}) for row in PER_LEVEL + (PER_POOL if level > 0 else [])]
        rows += [(row, {"i": i}) for i in range(cfg.depths[level]) for row in PER_LAYER]
        for (ours, theirs, layout), names in rows:
            names = {"l": level, "p": level - 1, **names}
            yield [n.format(**names) for n in ours], theirs.format(**names), layout, cfg.heads[level]


def to_timm(flat: dict[str, Any], cfg: NestConfig) -> dict[str, Any]:
    """nestgen flat parameters → timm state dict names and layouts (`name_map` read forward)."""
    return {theirs: LAYOUTS[layout][0]([flat[n] for n in ours], heads)
            for ours, theirs, layout, heads in name_map(cfg)}


def from_timm(state: dict[str, Any], cfg: NestConfig) -> dict[str, Any]:
    """timm state dict → nestgen flat parameters (`name_map` read backward: the exact inverse of `to_timm`)."""
    out = {}
    for ours, theirs, layout, heads in name_map(cfg):
        out |= dict(zip(ours, LAYOUTS[layout][1](jnp.asarray(state[theirs]), heads), strict=True))
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
