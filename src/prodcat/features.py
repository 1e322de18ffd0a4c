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
    """(title, description) rows -> one cleaned document each, the title counted several times."""

    def __init__(
        self,
        title_weight: int = 2,
        stopword_languages: tuple[str, ...] = ("fr", "en", "de"),
        stem: bool = False,
        stem_language: str = "fr",
    ):
        self.title_weight = title_weight
        self.stopword_languages = stopword_languages
        self.stem = stem
        self.stem_language = stem_language

    def fit(self, X, y=None) -> ProductTextCleaner:
        return self

    def transform(self, X) -> np.ndarray:
        titles, descriptions = _columns(X)
        stop = (
            get_stopwords(tuple(self.stopword_languages))
            if self.stopword_languages
            else frozenset()
        )
        stem = _stemmer(self.stem_language).stem if self.stem else None
        docs = []
        for title, description in zip(titles, descriptions, strict=True):
            title_tokens = self._tokens(title, stop, stem)
            docs.append(
                " ".join(title_tokens * self.title_weight + self._tokens(description, stop, stem))
            )
        return np.asarray(docs, dtype=object)

    @staticmethod
    def _tokens(text: str, stop: frozenset[str], stem) -> list[str]:
        tokens = [t for t in TOKEN.findall(clean_text(text)) if t not in stop]
        return [stem(t) for t in tokens] if stem else tokens


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
    word_ngrams: tuple[int, int] = (1, 2),
    char_ngrams: tuple[int, int] = (2, 5),
    max_word_features: int | None = 200_000,
    max_char_features: int | None = 300_000,
    min_df: int = 2,
) -> FeatureUnion:
    """Word and character n-gram TF-IDF side by side."""
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=word_ngrams, min_df=min_df, sublinear_tf=True,
                                     max_features=max_word_features, token_pattern=r"\S+")),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=char_ngrams, min_df=min_df,
                                     sublinear_tf=True, max_features=max_char_features)),
        ]
    )  # fmt: skip
