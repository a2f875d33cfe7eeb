"""Text in pictures: every label is drawn legibly or replaced by something legible, with a warning that says so.

Two label fonts: Pillow's built-in Aileron (always there: ASCII and a few signs) and Noto Sans CJK from the
optional `manimgx-fonts-cjk` package (the tests of it skip, saying so, where that package is not installed)."""

import string
import warnings

import numpy as np
import pytest

from nestgen.drawing import fonts
from nestgen.drawing.pictures import (
    PAD,
    UndrawableTextWarning,
    captioned_grid,
    drawable_labels,
    labelled_grid,
    text_height,
    undrawable,
)

NAMES = ["鸟", "猫", "cat", "Ünïcödé", "α-beta", "T-shirt/top"]
CELL = 64


def _clear_font_caches() -> None:
    fonts.label_font.cache_clear()
    fonts._drawable.cache_clear()


def _use_font(monkeypatch, wide: bool):
    """Draw with the wide font (skipped where it is not installed) or Pillow's built-in one, for one test."""
    if wide and fonts.wide_font_file() is None:
        pytest.skip("the wide label font is not installed here (pip install manimgx-fonts-cjk)")
    if not wide:
        monkeypatch.setattr(fonts, "wide_font_file", lambda: None)
    _clear_font_caches()
    yield
    monkeypatch.undo()
    _clear_font_caches()


@pytest.fixture
def builtin_font(monkeypatch):
    yield from _use_font(monkeypatch, wide=False)


@pytest.fixture
def wide_font(monkeypatch):
    yield from _use_font(monkeypatch, wide=True)


def _images(rows: int, columns: int = 2) -> np.ndarray:
    return np.full((rows, columns, 16, 16, 3), 128, np.uint8)  # (R, C, 16, 16, 3)


def _row_label(picture: np.ndarray, r: int) -> np.ndarray:
    top = text_height(CELL) + PAD + r * (CELL + PAD)
    return picture[top:top + CELL, :CELL]


def _drawn(function, *args) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        picture = function(*args)
    return picture, [str(w.message) for w in caught if issubclass(w.category, UndrawableTextWarning)]


def test_the_builtin_font_has_ascii_and_nothing_here_beyond_it(builtin_font):
    assert fonts.font_name() == "Aileron"
    assert undrawable(string.printable) == [] and undrawable("seed 3 · horse…") == []
    assert [undrawable(n) for n in NAMES] == [["鸟"], ["猫"], [], ["Ü", "ï", "ö", "é"], ["α"], []]
    assert undrawable("鸟 鸟\t猫") == ["鸟", "猫"]  # each once; whitespace never counts


def test_class_names_the_builtin_font_lacks_become_legible_labels_with_a_note(builtin_font):
    labels, note = drawable_labels(NAMES)
    assert labels == ["#0", "#1", "cat", "Unicode", "#4", "T-shirt/top"]
    assert note.startswith("the label font (Aileron) has no glyph for 鸟 猫 Ü ï ö é α: drawing '鸟' as '#0', "
                           "'猫' as '#1', 'Ünïcödé' as 'Unicode', 'α-beta' as '#4'")
    assert "pip install manimgx-fonts-cjk" in note and "\n" not in note
    assert drawable_labels(["cat", "dog"]) == (["cat", "dog"], None)


def test_labelled_grid_draws_code_points_instead_of_boxes_and_warns(builtin_font):
    picture, notes = _drawn(labelled_grid, _images(len(NAMES)), NAMES, ["seed 0", "seed 1"], CELL, "class \\ seed")
    assert len(notes) == 1 and notes[0].startswith("labelled_grid: the label font (Aileron) has no glyph for 鸟 猫")
    assert "'鸟' as 'U+9E1F', '猫' as 'U+732B', 'Ünïcödé' as 'Unicode', 'α-beta' as 'U+03B1-beta'" in notes[0]
    spelled = ["U+9E1F", "U+732B", "cat", "Unicode", "U+03B1-beta", "T-shirt/top"]
    reference, none = _drawn(labelled_grid, _images(len(NAMES)), spelled, ["seed 0", "seed 1"], CELL, "class \\ seed")
    assert none == [] and np.array_equal(picture, reference)  # the fallback text is what was drawn
    assert not np.array_equal(_row_label(picture, 0), _row_label(picture, 1))  # 鸟 and 猫 no longer the same box


def test_captioned_grid_draws_code_points_instead_of_boxes_and_warns(builtin_font):
    images = _images(len(NAMES))[:, 0]
    picture, notes = _drawn(captioned_grid, images, [f"seed {k} · {n}" for k, n in enumerate(NAMES)], 3, CELL)
    assert len(notes) == 1 and "'seed 0 · 鸟' as 'seed 0 · U+9E1F'" in notes[0]
    spelled = ["seed 0 · U+9E1F", "seed 1 · U+732B", "seed 2 · cat", "seed 3 · Unicode", "seed 4 · U+03B1-beta",
               "seed 5 · T-shirt/top"]
    reference, none = _drawn(captioned_grid, images, spelled, 3, CELL)
    assert none == [] and np.array_equal(picture, reference)


def test_the_wide_font_draws_every_name_legibly_and_distinctly(wide_font):
    assert fonts.font_name().startswith("Noto Sans CJK")
    assert [undrawable(n) for n in NAMES] == [[]] * len(NAMES)
    assert drawable_labels(NAMES) == (NAMES, None)
    picture, notes = _drawn(labelled_grid, _images(len(NAMES)), NAMES, ["seed 0", "seed 1"], CELL, "class \\ seed")
    assert notes == []
    cells = [_row_label(picture, r) for r in range(len(NAMES))]
    assert all((cell < 100).all(-1).sum() > 10 for cell in cells)  # ink in every label …
    assert len({cell.tobytes() for cell in cells}) == len(NAMES)  # … and no two labels alike (鸟 ≠ 猫)
    box, _ = _drawn(labelled_grid, _images(1), ["\U0010fffd"], ["seed 0", "seed 1"], CELL, "class \\ seed")
    assert not any(np.array_equal(cell, _row_label(box, 0)) for cell in cells)  # none is the missing-glyph box


def test_the_wide_font_stays_inside_the_caption_bands(wide_font):
    images = _images(4)[:, 0]
    captions = ["seed 0 · 鸟鸟鸟鸟鸟鸟鸟鸟鸟鸟鸟鸟", "gjpqy 猫 gjpqy 猫 gjpqy", "Ünïcödé ÅÉÎ", "α-beta γδ"]
    picture, notes = _drawn(captioned_grid, images, captions, 2, 32)
    band = text_height(32)
    assert notes == []
    for r in range(2):
        below = PAD + r * (32 + band + PAD) + 32 + band  # the white strip under each caption band
        assert (picture[below:below + PAD] == 255).all()
        assert (picture[below - band:below] < 100).all(-1).sum() > 20  # captions drawn


def test_the_wide_font_names_what_it_cannot_draw_either(wide_font):
    labels, note = drawable_labels(["鸟", "صقر"])
    assert labels == ["鸟", "#1"] and note.startswith("the label font (Noto Sans CJK JP) has no glyph for ص ق ر")
    assert "pip install" not in note
