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
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer, _align_api_if_sparse
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.sparsefuncs_fast import (
    inplace_csr_row_normalize_l1,
    inplace_csr_row_normalize_l2,
)

TAG = re.compile(r"<[^>]+>")
# Numbers with their units or separators stay one token: 18/100, 24x32, 3.7v, 500ml.
TOKEN = re.compile(r"\d+(?:[.,/x-]\d+)*[a-z]{0,3}|[a-z]+")
STEM_LANGUAGES = {"fr": "french", "en": "english", "de": "german"}
FAST_ANALYZERS = ("char", "char_wb")


def strip_html(text: str) -> str:
    """Unescape HTML entities (listings are sometimes escaped twice) and drop tags."""
    if not isinstance(text, str) or not text:
        return ""
    return TAG.sub(" ", html.unescape(html.unescape(text)))


def fold_text(text: str) -> str:
    """Unescape HTML, strip tags, normalise unicode and fold accents; case is kept."""
    text = strip_html(text)
    if not text:
        return ""
    if not text.isascii():  # ASCII is its own NFKD form and has no combining marks
        text = unicodedata.normalize("NFKD", text).translate(_WITHOUT_COMBINING)
    return text


def clean_text(text: str) -> str:
    """Unescape HTML, strip tags, normalise unicode, fold accents and case."""
    return fold_text(text).lower()


class _CombiningMarks(dict):
    """A str.translate table deleting combining marks, filled in as code points are met."""

    def __missing__(self, code: int) -> int | None:
        value = None if unicodedata.combining(chr(code)) else code
        self[code] = value
        return value


_WITHOUT_COMBINING = _CombiningMarks()


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
    """(title, description) rows -> one cleaned document each, the title repeated for weight.

    With lowercase=False the documents keep their case: capitals carry signal (brands, model
    codes), so a cased view reads them and the other views lowercase for themselves.
    """

    def __init__(self, title_weight: int = 2, lowercase: bool = True):
        self.title_weight = title_weight
        self.lowercase = lowercase

    def __setstate__(self, state: dict) -> None:
        state.setdefault("lowercase", True)  # versions registered before the cased view
        super().__setstate__(state)

    def fit(self, X, y=None) -> ProductTextCleaner:
        return self

    def transform(self, X) -> np.ndarray:
        titles, descriptions = _columns(X)
        docs = [self.compose(*self.clean_fields(title, description))
                for title, description in zip(titles, descriptions, strict=True)]  # fmt: skip
        return np.asarray(docs, dtype=object)

    def clean_fields(self, title: str, description: str) -> tuple[str, str]:
        """Title and description cleaned, whitespace runs made single spaces."""
        clean = clean_text if self.lowercase else fold_text
        return " ".join(clean(title).split()), " ".join(clean(description).split())

    def compose(self, title: str, description: str) -> str:
        """The document the vectorizers read, from cleaned fields."""
        parts = [title] * self.title_weight + [description]
        return " . ".join(p for p in parts if p)


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


def apply_tfidf(tfidf: TfidfTransformer, counts: sp.csr_matrix) -> sp.csr_matrix:
    """TfidfTransformer.transform(counts, copy=False), minus its input validation.

    Same arithmetic, in place. The validation (through narwhals) cost about a millisecond a
    call, a quarter of a single prediction; the counts come from our own vectorizers.
    """
    if counts.dtype not in (np.float64, np.float32):
        return tfidf.transform(counts, copy=False)
    if tfidf.sublinear_tf:
        np.log(counts.data, counts.data)
        counts.data += 1.0
    if hasattr(tfidf, "idf_"):
        counts.data *= tfidf.idf_[counts.indices]
    if tfidf.norm == "l2":
        inplace_csr_row_normalize_l2(counts)
    elif tfidf.norm == "l1":
        inplace_csr_row_normalize_l1(counts)
    return _align_api_if_sparse(counts)


class WordTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer whose transform skips sklearn's per-call input validation."""

    def transform(self, raw_documents):
        if isinstance(raw_documents, str) or not hasattr(self, "_tfidf"):
            return super().transform(raw_documents)
        self._check_vocabulary()
        _, counts = self._count_vocab(raw_documents, fixed_vocab=True)
        if self.binary:
            counts.data.fill(1)
        return apply_tfidf(self._tfidf, counts)


class CharTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer(analyzer="char" or "char_wb") whose transform counts n-grams with numpy.

    sklearn builds a Python string per character n-gram (about 850 per title), which made
    this view most of inference time. Here every n-gram of a batch is hashed at once (a
    64-bit polynomial hash of its code points, salted by length) and looked up in an
    open-addressing table of the fitted vocabulary. Fitting is sklearn's own; the output is
    the same matrix unless two n-grams share a 64-bit hash.
    """

    _PRIME = np.uint64(0x100000001B3)
    _MIX = np.uint64(0x9E3779B97F4A7C15)

    def fit(self, raw_documents, y=None) -> CharTfidfVectorizer:
        super().fit(raw_documents, y)
        self._index_vocabulary()
        return self

    def fit_transform(self, raw_documents, y=None):
        result = super().fit_transform(raw_documents, y)
        self._index_vocabulary()
        return result

    def transform(self, raw_documents):
        if self.analyzer not in FAST_ANALYZERS or not hasattr(self, "_table_ids"):
            return super().transform(raw_documents)
        return apply_tfidf(self._tfidf, self._count_ngrams(list(raw_documents)))

    def _index_vocabulary(self) -> None:
        if self.analyzer not in FAST_ANALYZERS:
            return
        terms = list(self.vocabulary_)
        keys = np.empty(len(terms), dtype=np.uint64)
        for n in {len(t) for t in terms}:
            at = [i for i, t in enumerate(terms) if len(t) == n]
            codes = np.array([[ord(c) for c in terms[i]] for i in at], dtype=np.uint64)
            keys[at] = self._hash_windows(codes.ravel(), n)[::n]
        ids = np.array([self.vocabulary_[t] for t in terms], dtype=np.int64)
        bits = max(4, int(np.ceil(np.log2(max(len(terms), 1) * 2.5))))
        self._table_keys = np.zeros(1 << bits, dtype=np.uint64)
        self._table_ids = np.full(1 << bits, -1, dtype=np.int64)
        slot, pending = self._first_slot(keys), np.arange(len(keys))
        while pending.size:  # linear probing, one round per probe step for all keys at once
            free = self._table_ids[slot] == -1
            taken, first = np.unique(slot[free], return_index=True)
            winners = pending[free][first]
            self._table_keys[taken], self._table_ids[taken] = keys[winners], ids[winners]
            rest = np.ones(len(pending), dtype=bool)
            rest[np.flatnonzero(free)[first]] = False
            pending, slot = pending[rest], (slot[rest] + 1) & np.int64(len(self._table_ids) - 1)

    def _first_slot(self, keys: np.ndarray) -> np.ndarray:
        bits = int(np.log2(len(self._table_ids)))
        with np.errstate(over="ignore"):
            return ((keys * self._MIX) >> np.uint64(64 - bits)).astype(np.int64)

    @classmethod
    def _hash_windows(cls, codes: np.ndarray, n: int) -> np.ndarray:
        """Salted hash of every window of n code points; len(codes) - n + 1 values."""
        hashes = codes.copy()
        with np.errstate(over="ignore"):
            for k in range(1, n):
                hashes = hashes[:-1] * cls._PRIME + codes[k:]
            return hashes ^ (np.uint64(n) * cls._MIX)

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        """Vocabulary column of each key, -1 when unknown."""
        found = np.full(len(keys), -1, dtype=np.int64)
        active, slot = np.arange(len(keys)), self._first_slot(keys)
        mask = np.int64(len(self._table_ids) - 1)
        while active.size:
            ids = self._table_ids[slot]
            hit = (ids >= 0) & (self._table_keys[slot] == keys[active])
            found[active[hit]] = ids[hit]
            go_on = (ids >= 0) & ~hit
            active, slot = active[go_on], (slot[go_on] + 1) & mask
        return found

    def _segments(self, docs: list[str]) -> tuple[list[str], np.ndarray]:
        """The strings n-grams are read from, and the document each belongs to: the whole
        documents for "char"; for "char_wb", each word padded with a space on either side."""
        preprocess = self.build_preprocessor()
        docs = [self._white_spaces.sub(" ", preprocess(d)) for d in docs]
        if self.analyzer == "char":
            return docs, np.arange(len(docs), dtype=np.int64)
        words = [[f" {w} " for w in d.split()] for d in docs]
        counts = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
        return [w for ws in words for w in ws], np.repeat(np.arange(len(docs)), counts)

    def _count_ngrams(self, docs: list[str]) -> sp.csr_matrix:
        segments, segment_doc = self._segments(docs)
        lengths = np.fromiter((len(s) for s in segments), dtype=np.int64, count=len(segments))
        text = "".join(segments).encode("utf-32-le", "surrogatepass")
        codes = np.frombuffer(text, dtype=np.uint32).astype(np.uint64)
        owner = np.repeat(np.arange(len(segments), dtype=np.int64), lengths)
        keys, owners = [], []
        low, high = self.ngram_range
        for n in range(low, min(high, len(codes)) + 1):
            hashes = self._hash_windows(codes, n)
            same_segment = owner[: len(hashes)] == owner[n - 1 :]
            keys.append(hashes[same_segment])
            owners.append(segment_doc[owner[: len(hashes)][same_segment]])
        if self.analyzer == "char_wb":  # sklearn counts a word shorter than low once, whole
            starts = np.r_[0, np.cumsum(lengths)[:-1]]
            for length in np.unique(lengths[(lengths < low) & (lengths > 0)]):
                which = np.flatnonzero(lengths == length)
                words = codes[(starts[which, None] + np.arange(length)).ravel()]
                keys.append(self._hash_windows(words, int(length))[::length])
                owners.append(segment_doc[which])
        return self._count_matrix(keys, owners, len(docs))

    def _count_matrix(self, keys: list, owners: list, n_docs: int) -> sp.csr_matrix:
        """The document x vocabulary count matrix of n-gram keys and their documents."""
        n_cols = len(self.vocabulary_)
        # A batch's cells usually fit in 32 bits, which sort in about half the time.
        cell_type = np.int32 if n_docs * n_cols < 2**31 else np.int64
        if keys:
            columns, owners = self._lookup(np.concatenate(keys)), np.concatenate(owners)
            known = columns >= 0
            cells = (owners[known] * n_cols + columns[known]).astype(cell_type)
            cells.sort()
        else:
            cells = np.zeros(0, dtype=cell_type)
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]]) if len(cells) else cells
        unique = cells[starts]
        counts = np.diff(np.r_[starts, len(cells)]).astype(self.dtype)
        indptr = np.searchsorted(unique // n_cols, np.arange(n_docs + 1))
        return sp.csr_matrix((counts, unique % n_cols, indptr), shape=(n_docs, n_cols))


class TextViews(FeatureUnion):
    """A FeatureUnion whose transform runs its views in turn, without joblib.

    On a single row, FeatureUnion's Parallel machinery cost as much as the two views it runs.
    Fitting is FeatureUnion's own.
    """

    def transform(self, X, **params):
        if params or self.n_jobs not in (None, 1):
            return super().transform(X, **params)
        blocks = []
        for _, transformer, weight in self._iter():
            block = transformer.transform(X)
            blocks.append(block if weight is None else block * weight)
        return self._hstack(blocks) if blocks else np.zeros((len(X), 0))


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
    cased_ngrams: tuple[int, int] | None = None,
    cased_analyzer: str = "char_wb",
) -> FeatureUnion:
    """Word n-grams (tokens, optional stopwords and stemming) and character n-grams, side by
    side, both lowercased; with cased_ngrams, a third view of character n-grams that keeps
    case (it needs the cleaner's lowercase=False to see any).

    The character views read the cleaned text itself, punctuation included: it carries signal.
    """
    word = WordTfidfVectorizer(
        ngram_range=tuple(word_ngrams), min_df=word_min_df, sublinear_tf=True,
        max_features=max_word_features, token_pattern=None,
        tokenizer=WordTokenizer(tuple(stopword_languages), stem_language),
    )  # fmt: skip
    views = [("word", word), ("char", _char_view(char_analyzer, char_ngrams, char_min_df,
                                                  max_char_features, lowercase=True))]  # fmt: skip
    if cased_ngrams:
        views.append(("cased", _char_view(cased_analyzer, cased_ngrams, char_min_df,
                                          max_char_features, lowercase=False)))  # fmt: skip
    return TextViews(views)


def count_features(model: Pipeline | FeatureUnion) -> int:
    """Columns of a fitted model's TF-IDF step (or of the union itself): its views' n-grams."""
    if isinstance(model, Pipeline):
        model = model.named_steps["tfidf"]
    return sum(len(view.vocabulary_) for _, view in model.transformer_list if view != "drop")


def _char_view(
    analyzer: str, ngrams: tuple[int, int], min_df: int, max_features: int | None, lowercase: bool
) -> CharTfidfVectorizer:
    return CharTfidfVectorizer(
        analyzer=analyzer, ngram_range=tuple(ngrams), min_df=min_df, sublinear_tf=True,
        max_features=max_features, lowercase=lowercase,
    )  # fmt: skip
