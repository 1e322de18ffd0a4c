"""Text descriptors that work offline in any language, and the share of unknown words.

Each listing's text is its title and its description with HTML stripped. The descriptors are
computed with str.translate into one class letter per character, then counted in C: a
Python loop over characters cost seconds on descriptions of 10,000 characters.
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd

from prodcat.training.features import strip_html

DESCRIPTOR_COLUMNS = ["chars", "words", "digit_share", "upper_share", "nonletter_share"]


class _CharClasses(dict):
    """A str.translate table: U upper-case letter, L other letter, D digit, S space, P rest."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char.isspace():
            value = "S"
        elif char.isdigit():
            value = "D"
        elif char.isalpha():
            value = "U" if char.isupper() else "L"
        else:
            value = "M" if unicodedata.combining(char) else "P"
        self[code] = value
        return value


_CLASSES = _CharClasses()


def join_text(title: str | None, description: str | None) -> str:
    """The text a listing is described by: its title, then its description without HTML."""
    description = strip_html(description or "").strip()
    return f"{title or ''} {description}" if description else (title or "")


def describe_texts(texts: list[str]) -> pd.DataFrame:
    """Length, word count and the shares of digits, upper case and non-letters, per text."""
    rows = np.zeros((len(texts), 5), dtype=np.float64)
    for i, text in enumerate(texts):
        classes = text.translate(_CLASSES)
        letters = classes.count("U") + classes.count("L")
        visible = len(text) - classes.count("S")
        rows[i] = (
            len(text),
            len(text.split()),
            classes.count("D") / len(text) if text else 0.0,
            classes.count("U") / letters if letters else 0.0,
            (visible - letters) / visible if visible else 0.0,
        )
    return pd.DataFrame(rows, columns=DESCRIPTOR_COLUMNS)


class Vocabulary:
    """The champion's own word vocabulary, and how much of a text falls outside it."""

    def __init__(self, model):
        self.clean = model.named_steps["clean"]
        self.words = find_word_vectorizer(model)
        self.known = (
            frozenset(t for t in self.words.vocabulary_ if " " not in t) if self.words else None
        )
        self.tokenize = self.words.build_tokenizer() if self.words else None

    def oov_shares(self, titles: list[str], descriptions: list[str]) -> np.ndarray:
        """Per listing, the share of its word tokens the model never saw (NaN without tokens)."""
        shares = np.full(len(titles), np.nan)
        if self.known is None:
            return shares
        docs = self.clean.transform(list(zip(titles, descriptions, strict=True)))
        for i, doc in enumerate(docs):
            tokens = self.tokenize(doc)
            if tokens:
                shares[i] = sum(t not in self.known for t in tokens) / len(tokens)
        return shares


def find_word_vectorizer(model):
    """The word view of a prodcat pipeline's TF-IDF union, or None when it has none."""
    union = model.named_steps.get("tfidf")
    for _, transformer in getattr(union, "transformer_list", []):
        if getattr(transformer, "analyzer", None) == "word" and hasattr(transformer, "vocabulary_"):
            return transformer
    return None
