"""The model's input path, fast and without a model: what the cleaner makes of DataFrames
(training) and (title, description) tuples (serving), and how text is cleaned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from prodcat.training.features import (
    ProductTextCleaner,
    _columns,
    _CombiningMarks,
    clean_text,
    strip_html,
)

TITLES = ["Robe <b>rouge</b>", "Console", "Livre"]
DESCRIPTIONS = ["coton &eacute;t&eacute;", "", None]


def test_a_frame_and_tuples_give_the_same_columns():
    frame = pd.DataFrame({"title": TITLES, "description": DESCRIPTIONS})
    rows = [(t, d or "") for t, d in zip(TITLES, DESCRIPTIONS, strict=True)]
    expected = (TITLES, ["coton &eacute;t&eacute;", "", ""])
    assert _columns(frame) == expected
    assert _columns(rows) == expected
    assert _columns(iter(rows)) == expected  # any iterable of rows, read once


def test_missing_descriptions_are_empty_in_both_paths():
    assert _columns(pd.DataFrame({"title": ["a", None]})) == (["a", ""], ["", ""])
    frame = pd.DataFrame({"title": ["a", "b"], "description": [np.nan, None]})
    assert _columns(frame) == (["a", "b"], ["", ""])
    assert _columns([("a",), ("b", None), ("c", ""), ["d", "e"]]) == (
        ["a", "b", "c", "d"], ["", "", "", "e"]
    )  # fmt: skip


def test_non_text_values_become_text():
    assert _columns(pd.DataFrame({"title": [12], "description": [3.5]})) == (["12"], ["3.5"])
    assert _columns([(12, 3.5)]) == (["12"], ["3.5"])


def test_the_cleaner_repeats_the_title_and_joins_the_description():
    docs = ProductTextCleaner(title_weight=2).transform([("  Robe  <b>Rouge</b> ", "en  coton")])
    assert docs.tolist() == ["robe rouge . robe rouge . en coton"]
    assert docs.dtype == object
    assert ProductTextCleaner(title_weight=1).transform([("a", "")]).tolist() == ["a"]
    assert ProductTextCleaner().transform([("", "seule")]).tolist() == ["seule"]
    assert ProductTextCleaner().transform([]).tolist() == []


def test_the_cleaner_is_a_plain_sklearn_transformer():
    cleaner = ProductTextCleaner(title_weight=3)
    assert cleaner.fit([("a", "b")]) is cleaner
    assert clone(cleaner).get_params() == {"title_weight": 3, "lowercase": True}
    assert ProductTextCleaner().title_weight == 2


def test_the_cleaner_keeps_case_when_asked_and_old_pickles_stay_lowercase():
    cased = ProductTextCleaner(title_weight=1, lowercase=False)
    assert cased.transform([("Écran LED <i>Samsung</i>", "")]).tolist() == ["Ecran LED Samsung"]
    old = ProductTextCleaner.__new__(ProductTextCleaner)
    old.__setstate__({"title_weight": 1})  # pickled before the option existed
    assert old.transform([("Écran LED", "")]).tolist() == ["ecran led"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("&amp;eacute;t&eacute; <i>Déjà</i>", "ete  deja "),
        ("ÉCOLE ½ ﬁn", "ecole 1\u20442 fin"),  # NFKD: ½ is 1, fraction slash, 2
        ("a<br/>b", "a b"),
        ("5 &lt; 6", "5 < 6"),
        ("", ""),
        (None, ""),
        (42, ""),
    ],
)
def test_clean_text_unescapes_twice_drops_tags_folds_accents_and_case(raw, clean):
    assert clean_text(raw) == clean


def test_strip_html_keeps_text_and_replaces_tags_with_spaces():
    assert strip_html("<p>Un</p>deux") == " Un deux"
    assert strip_html("&amp;lt;b&amp;gt;") == " "
    assert strip_html(None) == "" and strip_html("") == ""


def test_the_combining_marks_table_deletes_marks_and_remembers_each_code_point():
    # A fresh table: the module's own one already knows every code point earlier tests met.
    table = _CombiningMarks()
    assert "e\u0301\u0327x".translate(table) == "ex"
    assert table == {ord("e"): ord("e"), 0x301: None, 0x327: None, ord("x"): ord("x")}
