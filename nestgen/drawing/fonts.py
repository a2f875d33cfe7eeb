"""The label font of nestgen's pictures, and what it cannot draw.

Noto Sans CJK (Chinese, Japanese, Korean, Latin with accents, Greek, Cyrillic) when the `manimgx-fonts-cjk`
package is installed (`pip install -e ".[fonts]"`), else Pillow's built-in Aileron, which has ASCII and a few signs
("seed 3 · horse") but no accented letters, Greek or CJK. Characters the font lacks are never drawn as its box
glyph: `undrawable` finds them (a character whose rendering equals the missing-glyph box of an unmapped code
point), `legible` replaces them by base letters or code points ("U+9E1F") with an UndrawableTextWarning, and
`drawable_labels` gives callers that know class indices "#3" labels and a note to show.
"""

from __future__ import annotations

import functools
import importlib.util
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

# (package, font file in it, face index, weight): a font with wide coverage, used when installed
# Noto Sans CJK JP, Regular: every CJK face has every glyph; JP's and KR's Latin punctuation is proportional ("·")
WIDE_FONT = ("manimgx_fonts_cjk", "NotoSansCJK-VF.otf.ttc", 0, 400)
WIDE_FONT_HINT = "pip install manimgx-fonts-cjk draws Chinese, Japanese, Korean, accented Latin, Greek and Cyrillic"
_TOFU = "\U0010fffd"  # a private-use code point fonts do not map: it renders as the font's missing-glyph box


class UndrawableTextWarning(UserWarning):
    """Some text has characters the label font cannot draw; something legible was drawn instead."""


def wide_font_file() -> Path | None:
    """The wide-coverage font file (WIDE_FONT) if its package is installed, else None."""
    spec = importlib.util.find_spec(WIDE_FONT[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / WIDE_FONT[1]
    return path if path.is_file() else None


@functools.lru_cache(maxsize=8)
def label_font(size: int):
    from PIL import ImageFont

    path = wide_font_file()
    if path is None:
        return ImageFont.load_default(size=size)
    font = ImageFont.truetype(str(path), size, index=WIDE_FONT[2])
    font.set_variation_by_axes([WIDE_FONT[3]])  # the variable font's default instance is Thin
    return font


def font_name() -> str:
    """The label font's family, e.g. 'Noto Sans CJK SC' or 'Aileron'."""
    return label_font(16).getname()[0]


def _mask(font, text: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(text)
    return mask.size, bytes(np.asarray(mask)) if mask.size[0] and mask.size[1] else b""


@functools.lru_cache(maxsize=4096)
def _drawable(char: str, size: int = 16) -> bool:
    """Whether the label font has a glyph for `char`: its rendering differs from the missing-glyph box."""
    font = label_font(size)
    try:
        mask = _mask(font, char)
    except (UnicodeError, OSError, ValueError):  # e.g. a bitmap font outside its encoding
        return False
    try:
        return mask != _mask(font, _TOFU)
    except (UnicodeError, OSError, ValueError):
        return True


def undrawable(text: str) -> list[str]:
    """The characters of `text` the label font has no glyph for (each once, in order; whitespace never counts):
    drawn, they would all come out as the same box. Empty when `text` is legible as it is."""
    seen: dict[str, None] = {}
    for char in text:
        if not char.isspace() and char not in seen and not _drawable(char):
            seen[char] = None
    return list(seen)


def _base(char: str) -> str | None:
    """The letters under `char`'s accents ('é' → 'e') when the label font draws them, else None."""
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base and base != char and not undrawable(base) else None


def _spelled(text: str) -> str:
    """`text` with every character the label font lacks replaced: by its base letters when the font draws them
    ('é' → 'e'), else by its code point ('鸟' → 'U+9E1F')."""
    missing, out, coded = set(undrawable(text)), [], False
    for char in text:
        base = _base(char) if char in missing else char
        out.append(base if base is not None else f"{' ' if coded else ''}U+{ord(char):04X}")  # 'U+0635 U+0642'
        coded = base is None
    return "".join(out)


def _note(pairs: Iterable[tuple[str, str]]) -> str | None:
    """One line naming the texts that cannot be drawn and what is drawn instead, or None when there are none."""
    pairs = [(text, drawn) for text, drawn in pairs if text != drawn]
    if not pairs:
        return None
    chars = list(dict.fromkeys(c for text, _ in pairs for c in undrawable(text)))
    shown = ", ".join(f"{text!r} as {drawn!r}" for text, drawn in pairs[:6])
    more = f" and {len(pairs) - 6} more" if len(pairs) > 6 else ""
    hint = f" ({WIDE_FONT_HINT})" if wide_font_file() is None else ""
    return (f"the label font ({font_name()}) has no glyph for {' '.join(chars[:20])}{' …' if len(chars) > 20 else ''}: "
            f"drawing {shown}{more}{hint}")


def drawable_labels(names: Sequence[str]) -> tuple[list[str], str | None]:
    """Class names → (the labels to draw, a one-line note or None). A name with a character the label font has no
    glyph for is drawn without its accents when that makes it drawable ('Ünïcödé' → 'Unicode'), else as its class
    index ('#3'); the note names every such class and its label, and how to get a font that draws it when none is
    installed. Callers show the note (stderr, the app's status line)."""
    names = [str(name) for name in names]
    labels = [_spelled(name) if all(map(_base, undrawable(name))) else f"#{k}" for k, name in enumerate(names)]
    return labels, _note(zip(names, labels, strict=True))


def legible(texts: Sequence[str], where: str) -> list[str]:
    """`texts` with undrawable characters replaced (`_spelled`), warning (UndrawableTextWarning) about them."""
    drawn = [_spelled(str(t)) for t in texts]
    note = _note(zip(map(str, texts), drawn, strict=True))
    if note:
        warnings.warn(f"{where}: {note}", UndrawableTextWarning, stacklevel=3)
    return drawn
