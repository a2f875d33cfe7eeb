"""Class names: how a model's classes are named, chosen, matched with a dataset's, and written into file names.

One rule for every entry point (scripts, library, app, API):
  - a class is chosen by its **name**, exactly as the checkpoint's `config.json` lists it ("cat", "T-shirt/top",
    "鸟", "10");
  - or by its **index** written `#3` (0-based), a form no folder listing produces;
  - a bare whole number ("3", or a Python int) is read as an index only when no class has that name, so on a
    dataset whose classes are named `1` … `10` (Flowers-102, GTSRB, ImageNetV2) `--class 1` is the class named "1".
A model's class names are distinct, non-empty strings, one per class (`check_class_names`). A split's labels are
matched to the model's classes by name (`label_mapping`), never by the position in the split's own folder listing.
File names built from class names go through `file_safe`, so "T-shirt/top" or "../../x" stay inside the folder.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence

import numpy as np


class ClassError(ValueError):
    """An unknown class, a bad index, or class names that do not fit the model; one line saying what to do."""


def check_class_names(names, num_classes: int, where: str) -> list[str]:
    """`names` as a list of `num_classes` distinct non-empty strings, or ClassError naming `where` (e.g. the
    config.json path): "config.json lists 9 class names for a model with 10 classes"."""
    if not isinstance(names, (list, tuple)):
        raise ClassError(f"{where}: class_names must be a list of strings, got {type(names).__name__}")
    if len(names) != num_classes:
        raise ClassError(f"{where} lists {len(names)} class names for a model with {num_classes} classes; "
                         f"give one name per class, in label order")
    bad = [repr(n) for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ClassError(f"{where}: class names must be non-empty strings, got {', '.join(bad[:3])}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ClassError(f"{where}: class names must be distinct; repeated: {', '.join(map(repr, repeated[:3]))}")
    return list(names)


def _shown(names: Sequence[str], limit: int = 20) -> str:
    return ", ".join(names[:limit]) + (f" … ({len(names)} in all)" if len(names) > limit else "")


def resolve_class(value, class_names: Sequence[str]) -> int:
    """A class name, `#index`, or a whole number used as an index when no class has that name → the index.

    `value`: str, int or numpy integer. Raises ClassError (one line: the classes, or the index range) for an
    unknown name, an index out of range, or a value of another type (bool, float, None, …)."""
    names = list(class_names)
    count = len(names)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (str, int, np.integer)):
        raise ClassError(f"a class is a name or an index like #3, got {type(value).__name__} {value!r:.60}")
    if isinstance(value, str):
        if value in names:
            return names.index(value)
        text = value.strip()
        if text in names:
            return names.index(text)
        match = re.fullmatch(r"#\s*(\d+)|(\d+)", text)
        if match is None:
            close = difflib.get_close_matches(text, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ClassError(f"unknown class {text[:80]!r}{hint}; classes: {_shown(names)} "
                             f"(or an index #0…#{count - 1})" if count else "this model has no classes")
        value = int(match.group(1) or match.group(2))
    index = int(value)
    if not 0 <= index < count:
        raise ClassError(f"class index {index} is out of range: this model has {count} classes, #0…#{count - 1}"
                         if count else "this model has no classes")
    return index


def label_mapping(split_names: Sequence[str], model_names: Sequence[str], where: str) -> np.ndarray | None:
    """How a split's labels (indices into `split_names`, its own folder listing) map onto the model's classes:
    None when they are the same list, else an int32 array `mapping[split_label] = model_label`.

    Classes are matched by name, so a test split that lacks a class folder keeps its labels right. When no split
    class carries a model class name and the counts agree (ImageNet folders named by WordNet id, a converted model
    with human-readable names), labels are taken by position, as the folder order gives them. Raises ClassError
    when only some names match, or the split has more classes than the model."""
    split_names, model_names = list(split_names), list(model_names)
    if split_names == model_names:
        return None
    unknown = [n for n in split_names if n not in model_names]
    if not unknown:
        return np.asarray([model_names.index(n) for n in split_names], np.int32)
    if len(unknown) == len(split_names) and len(split_names) == len(model_names):
        return None
    raise ClassError(f"{where} has classes the model does not know: {_shown(unknown, 5)}; the model's classes are "
                     f"{_shown(model_names, 10)} (a split's folder names must be the model's class names)")


_UNSAFE = re.compile(r"[^\w.+-]+")  # \w is Unicode-aware: letters and digits of every script stay


def file_safe(name: str, fallback: str, max_length: int = 64) -> str:
    """A piece of a file name built from `name` (a class name): path separators, "..", control characters and
    spaces become "_", leading dots and dashes are dropped; `fallback` (e.g. "class3") when nothing is left.
    "T-shirt/top" → "T-shirt_top", "../../x" → "x", "鸟" → "鸟"."""
    text = unicodedata.normalize("NFC", str(name))
    text = _UNSAFE.sub("_", text).replace("..", "_")
    text = text.strip("._-")[:max_length].rstrip("._-")
    return text or fallback
