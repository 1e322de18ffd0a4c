"""Text preprocessing as sklearn transformers, so the logged model takes raw title and description.

Nothing here downloads anything: stopword lists come from the `stop-words` package and the
Snowball stemmer ships with NLTK.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

TAG = re.compile(r"<[^>]+>")
# Numbers with their units or separators stay one token: 18/100, 24x32, 3.7v, 500ml.
TOKEN = re.compile(r"\d+(?:[.,/x-]\d+)*[a-z]{0,3}|[a-z]+")
STEM_LANGUAGES = {"fr": "french", "en": "english", "de": "german"}


def clean_text(text: str) -> str:
    """Unescape HTML, strip tags, normalise unicode, fold accents and case."""
    if not isinstance(text, str) or not text:
        return ""
    text = html.unescape(html.unescape(text))  # listings are sometimes escaped twice
    text = TAG.sub(" ", text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower()


@lru_cache
def get_stopwords(languages: tuple[str, ...]) -> frozenset[str]:
    """Union of the stopword lists of the given ISO 639-1 languages, accents folded."""
    from stop_words import get_stop_words

    words = {clean_text(w) for lang in languages for w in get_stop_words(lang)}
    return frozenset(w for w in words if w)


@lru_cache
def _stemmer(language: str):
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer(STEM_LANGUAGES.get(language, language))


class ProductTextCleaner(BaseEstimator, TransformerMixin):
    """(title, description) rows -> one cleaned document each, the title repeated for weight."""

    def __init__(self, title_weight: int = 2):
        self.title_weight = title_weight

    def fit(self, X, y=None) -> ProductTextCleaner:
        return self

    def transform(self, X) -> np.ndarray:
        titles, descriptions = _columns(X)
        docs = []
        for title, description in zip(titles, descriptions, strict=True):
            title = " ".join(clean_text(title).split())
            parts = [title] * self.title_weight + [" ".join(clean_text(description).split())]
            docs.append(" . ".join(p for p in parts if p))
        return np.asarray(docs, dtype=object)


class WordTokenizer:
    """Tokens of a cleaned document: words and numbers-with-units, minus stopwords, stemmed."""

    def __init__(self, stopword_languages: tuple[str, ...] = (), stem_language: str | None = None):
        self.stopword_languages = tuple(stopword_languages)
        self.stem_language = stem_language

    def __call__(self, document: str) -> list[str]:
        stop = get_stopwords(self.stopword_languages) if self.stopword_languages else frozenset()
        tokens = [t for t in TOKEN.findall(document) if t not in stop]
        if self.stem_language:
            stem = _stemmer(self.stem_language).stem
            tokens = [stem(t) for t in tokens]
        return tokens


def _columns(X) -> tuple[list[str], list[str]]:
    if isinstance(X, pd.DataFrame):
        titles = X["title"].fillna("").astype(str).tolist()
        if "description" in X:
            descriptions = X["description"].fillna("").astype(str).tolist()
        else:
            descriptions = [""] * len(X)
        return titles, descriptions
    rows = list(X)
    return [str(r[0]) for r in rows], [str(r[1]) if len(r) > 1 and r[1] else "" for r in rows]


def build_tfidf(
    stopword_languages: tuple[str, ...] = (),
    stem_language: str | None = None,
    word_ngrams: tuple[int, int] = (1, 2),
    char_ngrams: tuple[int, int] = (1, 6),
    char_analyzer: str = "char",
    max_word_features: int | None = None,
    max_char_features: int | None = 400_000,
    word_min_df: int = 1,
    char_min_df: int = 2,
) -> FeatureUnion:
    """Word n-grams (tokens, optional stopwords and stemming) and character n-grams, side by side.

    The character view reads the cleaned text itself, punctuation included: it carries signal.
    """
    word = TfidfVectorizer(
        ngram_range=tuple(word_ngrams), min_df=word_min_df, sublinear_tf=True,
        max_features=max_word_features, lowercase=False, token_pattern=None,
        tokenizer=WordTokenizer(tuple(stopword_languages), stem_language),
    )  # fmt: skip
    char = TfidfVectorizer(
        analyzer=char_analyzer, ngram_range=tuple(char_ngrams), min_df=char_min_df,
        sublinear_tf=True, max_features=max_char_features,
    )  # fmt: skip
    return FeatureUnion([("word", word), ("char", char)])
