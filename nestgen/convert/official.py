"""Checkpoints of the official Flax NesT (google-research/nested-transformer) in and out of nestgen.

An official `ckpt-N.flax` is the msgpack of a whole train state with the parameters under `optimizer/target`,
named by Flax auto-naming (`EncoderNDBlock_{g}` numbered over all levels, `ConvPool_{l}` after level l, ...).
msgpack holds only data, so reading one executes no code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import serialization

from nestgen.convert.tree import ParameterTreeError, check_tree, expected_shapes, flatten, shapes, unflatten
from nestgen.files import replacing
from nestgen.models.classifier import NestConfig

E = "encoder/"


def _attention_name(cfg: NestConfig) -> str:
    return "MultiHeadAttention_0" if cfg.attention == "multi_head" else "MultiQueryAttention_0"


def _layers(cfg: NestConfig):
    """(nestgen layer prefix, official EncoderNDBlock name) of every transformer layer, finest level first."""
    g = 0
    for level in range(cfg.num_levels):
        for i in range(cfg.depths[level]):
            yield f"{E}level_{level}/layer_{i}", f"EncoderNDBlock_{g}"
            g += 1


def _renames(cfg: NestConfig) -> list[tuple[str, str]]:
    """(nestgen prefix, official prefix) of every sub-tree whose leaves keep their names and shapes."""
    pairs = [(E + "patch_embed/proj", "PatchEmbedding_0/Conv_0"), ("norm", "LayerNorm_0"), ("head", "Dense_0")]
    for level in range(cfg.num_levels):
        pairs.append((f"{E}level_{level}/pos_embed", f"PositionEmbedding_{level}/pos_embedding"))
        if level + 1 < cfg.num_levels:
            pairs += [(f"{E}aggregate_{level}/conv", f"ConvPool_{level}/Conv_0"),
                      (f"{E}aggregate_{level}/norm", f"ConvPool_{level}/LayerNorm_0")]
    for ours, theirs in _layers(cfg):
        attn = f"{theirs}/{_attention_name(cfg)}"
        pairs += [(ours + "/norm1", theirs + "/LayerNorm_0"), (ours + "/norm2", theirs + "/LayerNorm_1"),
                  (ours + "/attn/query", attn + "/DenseGeneral_0"),
                  (ours + "/attn/out/kernel", attn + "/proj_kernel"), (ours + "/attn/out/bias", attn + "/bias"),
                  (ours + "/mlp/fc1", theirs + "/MlpBlock_0/Dense_0"),
                  (ours + "/mlp/fc2", theirs + "/MlpBlock_0/Dense_1")]
    return pairs


def _key_values(cfg: NestConfig) -> list[tuple[str, str]]:
    """(nestgen key_value prefix, official key+value prefix) of every attention layer."""
    kv = "DenseGeneral_1" if cfg.attention == "multi_head" else "Dense_0"
    return [(ours + "/attn/key_value", f"{theirs}/{_attention_name(cfg)}/{kv}") for ours, theirs in _layers(cfg)]


def _rename(flat: dict[str, Any], pairs: list[tuple[str, str]], reverse: bool) -> dict[str, Any]:
    out = {}
    for ours, theirs in pairs:
        src, dst = (theirs, ours) if reverse else (ours, theirs)
        for key, value in flat.items():
            if key == src or key.startswith(src + "/"):
                out[dst + key[len(src):]] = value
    return out


def to_official(flat: dict[str, Any], cfg: NestConfig) -> dict[str, Any]:
    """nestgen flat parameters → official flat parameters."""
    out = _rename(flat, _renames(cfg), reverse=False)
    for ours, theirs in _key_values(cfg):
        kernel, bias = flat[ours + "/kernel"], flat[ours + "/bias"]  # (C, 2, g, d), (2, g, d)
        c, _, g, d = kernel.shape
        kernel = jnp.transpose(kernel, (0, 2, 1, 3)).reshape(c, g, 2 * d)  # (C, g, 2d): key then value
        bias = jnp.transpose(bias, (1, 0, 2)).reshape(g, 2 * d)  # (g, 2d)
        if cfg.attention == "multi_query":
            kernel, bias = kernel.reshape(c, 2 * d), bias.reshape(2 * d)  # one shared key/value head
        out[theirs + "/kernel"], out[theirs + "/bias"] = kernel, bias
    return out


def from_official(flat: dict[str, Any], cfg: NestConfig) -> dict[str, Any]:
    """Official flat parameters → nestgen flat parameters (the exact inverse of `to_official`)."""
    out = _rename(flat, _renames(cfg), reverse=True)
    for ours, theirs in _key_values(cfg):
        kernel, bias = jnp.asarray(flat[theirs + "/kernel"]), jnp.asarray(flat[theirs + "/bias"])
        c, d = kernel.shape[0], kernel.shape[-1] // 2
        kernel = kernel.reshape(c, -1, 2, d)  # (C, g, 2, d)
        bias = bias.reshape(-1, 2, d)  # (g, 2, d)
        out[ours + "/kernel"] = jnp.transpose(kernel, (0, 2, 1, 3))  # (C, 2, g, d)
        out[ours + "/bias"] = jnp.transpose(bias, (1, 0, 2))  # (2, g, d)
    return out


def official_shapes(cfg: NestConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the official parameter tree of a config."""
    from nestgen.models.registry import abstract_params

    return expected_shapes(lambda p: to_official(p, cfg), flatten(abstract_params(cfg)))


def read_official_tree(path: str | Path) -> dict[str, Any]:
    """The flat parameter tree of an official msgpack checkpoint (a whole train state or a bare tree)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        state = serialization.msgpack_restore(data)
    except Exception as error:  # msgpack raises several unrelated types on bad bytes
        raise ParameterTreeError(f"{path} is not a Flax msgpack checkpoint: {error}") from error
    if not isinstance(state, dict):
        raise ParameterTreeError(f"{path} holds a {type(state).__name__}, not a parameter tree")
    if isinstance(state.get("optimizer"), dict):
        state = state["optimizer"].get("target", {})
    if isinstance(state.get("params"), dict):
        state = state["params"]
    return flatten(state)


def load_official(path: str | Path, cfg: NestConfig) -> dict[str, Any]:
    """Read an official checkpoint for `cfg` and return nestgen's flat parameters, float32.

    Raises ParameterTreeError naming every missing, unexpected or wrongly shaped key before converting.
    """
    official = read_official_tree(path)
    check_tree(shapes(official), official_shapes(cfg), f"official checkpoint {path}")
    return {k: jnp.asarray(v, jnp.float32) for k, v in from_official(official, cfg).items()}


def save_official(path: str | Path, flat: dict[str, Any], cfg: NestConfig) -> None:
    """Write nestgen parameters as an official-style msgpack tree under `optimizer/target`."""
    tree = {k: np.asarray(v) for k, v in to_official(flat, cfg).items()}
    with replacing(path) as temporary:  # a full disk leaves no partial file and the previous one whole
        temporary.write_bytes(serialization.msgpack_serialize({"optimizer": {"target": unflatten(tree)}}))
