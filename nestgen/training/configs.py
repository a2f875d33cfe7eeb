"""Load experiment configs: `path/to/config.py[:arg]` files with `get_config(arg)` plus `key.sub=value` overrides."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import ml_collections


def load_config(spec: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    """`configs/classifier_cifar10.py:variant=nest_small_s16_32,smoke` → the ConfigDict its get_config returns."""
    path, _, arg = spec.partition(":")
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {file} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"nestgen_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg)
    for item in overrides:
        apply_override(config, item)
    return config


def load_sibling(config_file: str, name: str):
    """Import another config file of the same folder as a module (configs share recipes this way)."""
    path = Path(config_file).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"nestgen_config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as a path or a variant name


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
    """Set `a.b.c=value` in place; the key must already exist, so typos fail loudly, except under a model's
    `overrides` (`model.overrides.num_classes=2`): those name fields of the model config, which `get_config` checks."""
    key, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"override {item!r} must look like key.path=value")
    *parents, leaf = key.strip().split(".")
    node = config
    for name in parents:
        if name not in node:
            raise KeyError(f"override {item!r}: config has no field {name!r}")
        node = node[name]
    if parents and parents[-1] == "overrides":  # model-config fields over the variant's: new keys are welcome,
        node[leaf] = _parse_value(value)  # and checked against the model config when the run builds it
        return
    if leaf not in node:
        raise KeyError(f"override {item!r}: config has no field {key!r}; fields here: {sorted(node.keys())}")
    with node.ignore_type():
        node[leaf] = _parse_value(value)


def parse_config_arg(arg: str) -> dict[str, str | bool]:
    """'variant=nest_tiny_s16_32,smoke' → {'variant': 'nest_tiny_s16_32', 'smoke': True}."""
    out: dict[str, str | bool] = {}
    for part in filter(None, (p.strip() for p in (arg or "").split(","))):
        key, sep, value = part.partition("=")
        out[key] = value if sep else True
    return out
