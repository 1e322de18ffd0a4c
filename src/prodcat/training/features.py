"""Text preprocessing as sklearn transformers, so the logged model takes raw title and description.

Nothing here downloads anything: stopword lists come from the `stop-words` package and the
Snowball stemmer ships with NLTK.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache
from itertools import accumulate, chain, pairwise

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

from prodcat.training.vocabulary import (
    CODEPOINTS,
    PYTHON_HASH,
    NGramIndex,
    encode_codepoints,
    hash_windows,
    iter_window_hashes,
    python_hash_keys,
)

TAG = re.compile(r"<[^>]+>")
# Numbers with their units or separators stay one token: 18/100, 24x32, 3.7v, 500ml.
TOKEN = re.compile(r"\d+(?:[.,/x-]\d+)*[a-z]{0,3}|[a-z]+")
STEM_LANGUAGES = {"fr": "french", "en": "english", "de": "german"}
# Digit folding (build_tfidf's word_digits and char_digits): "zero" maps every digit to 0, so
# "30cm" and "50cm" share their n-grams ("00cm"); "split_zero" first cuts between digits and
# letters ("30cm" -> "00 cm"). Sizes and quantities are many and sparse, units and the shape
# of a number carry the signal: on the seeded 80/20 split of designations.csv, folding the
# word and lowercased char views lifted weighted and macro F1 by about 0.3 points.
DIGIT = re.compile(r"\d")
DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")
DIGIT_FOLDINGS = (None, "zero", "split_zero")
FAST_ANALYZERS = ("char", "char_wb")
# From this many documents, a char_wb view looks up each distinct word's n-grams once;
# below, it keeps each word's columns across calls, for up to this many words per view (and
# the word tokenizer each word's tokens), then starts again empty.
DISTINCT_WORDS_FROM = 16
WORD_CACHE_WORDS = 20_000


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


def check_digit_folding(digits: str | None) -> None:
    """ValueError unless digits is one of DIGIT_FOLDINGS."""
    if digits not in DIGIT_FOLDINGS:
        raise ValueError(f"unknown digit folding {digits!r}; known: {DIGIT_FOLDINGS}")


def fold_digits(text: str, digits: str | None) -> str:
    """The text with its digits folded as `digits` says (see DIGIT_FOLDINGS); None: as is."""
    if digits is None:
        return text
    if digits == "split_zero":
        text = DIGIT_LETTER.sub(" ", text)
    return DIGIT.sub("0", text)


class DigitFolding:
    """A char view's preprocessor: the document lowercased (or not) and its digits folded.

    It replaces sklearn's own preprocessor, so it lowercases in its place."""

    def __init__(self, digits: str | None = "zero", lowercase: bool = True):
        check_digit_folding(digits)
        self.digits = digits
        self.lowercase = lowercase

    def __call__(self, document: str) -> str:
        return fold_digits(document.lower() if self.lowercase else document, self.digits)


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
    """Tokens of a cleaned document: words and numbers-with-units, minus stopwords, stemmed;
    with digits, its digits folded first (see DIGIT_FOLDINGS)."""

    digits: str | None = None  # tokenizers pickled before digit folding have none

    def __init__(
        self,
        stopword_languages: tuple[str, ...] = (),
        stem_language: str | None = None,
        digits: str | None = None,
    ):
        self.stopword_languages = tuple(stopword_languages)
        self.stem_language = stem_language
        check_digit_folding(digits)
        self.digits = digits

    def __call__(self, document: str) -> list[str]:
        # A token never spans white space, nor does digit folding act across it: the tokens
        # of a document are those of its words in turn, and words recur from title to title.
        cache = self.__dict__.setdefault("_word_tokens", {})
        tokens: list[str] = []
        for word in document.split():
            found = cache.get(word)
            if found is None:
                found = tuple(self.tokenize(word))  # tuples of strings the collector skips
                if len(cache) >= WORD_CACHE_WORDS:
                    cache.clear()
                cache[word] = found
            tokens += found
        return tokens

    def tokenize(self, text: str) -> list[str]:
        """The tokens of a text, without the cache of words."""
        stop = get_stopwords(self.stopword_languages) if self.stopword_languages else frozenset()
        tokens = [t for t in TOKEN.findall(fold_digits(text, self.digits)) if t not in stop]
        if self.stem_language:
            stem = _stemmer(self.stem_language).stem
            tokens = [stem(t) for t in tokens]
        return tokens

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_word_tokens"}


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


class _IndexedVocabulary:
    """The vocabulary a fitted view keeps: an NGramIndex (prodcat.training.vocabulary) in
    place of sklearn's dict, made at fit and at load of a model pickled with a dict."""

    KEYS = PYTHON_HASH

    def _index_vocabulary(self) -> None:
        self.__dict__.pop("_word_cache", None)  # columns of the vocabulary fitted before
        if isinstance(getattr(self, "vocabulary_", None), dict):
            self.vocabulary_ = NGramIndex.from_dict(self.vocabulary_, self.KEYS)

    def fit(self, raw_documents, y=None) -> _IndexedVocabulary:
        """sklearn's fit, then the vocabulary indexed."""
        super().fit(raw_documents, y)
        self._index_vocabulary()
        return self

    def fit_transform(self, raw_documents, y=None) -> sp.csr_matrix:
        """sklearn's fit_transform, then the vocabulary indexed."""
        result = super().fit_transform(raw_documents, y)
        self._index_vocabulary()
        return result

    def __setstate__(self, state: dict) -> None:
        for stale in ("_table_keys", "_table_ids"):  # the table of versions before NGramIndex
            state.pop(stale, None)
        super().__setstate__(state)
        self._index_vocabulary()

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The n-grams in column order, as sklearn gives them (an object array)."""
        if isinstance(getattr(self, "vocabulary_", None), NGramIndex):
            return np.asarray(list(self.vocabulary_.terms), dtype=object)
        return super().get_feature_names_out(input_features)

    def _count_matrix(self, keys: np.ndarray, owners: np.ndarray, n_docs: int) -> sp.csr_matrix:
        """The document x vocabulary count matrix of n-gram keys and their documents."""
        return self._tally(self.vocabulary_.lookup(keys), owners, n_docs)

    def _tally(self, columns: np.ndarray, owners: np.ndarray, n_docs: int) -> sp.csr_matrix:
        """The count matrix of n-gram columns (-1: unknown) and their documents."""
        n_cols = len(self.vocabulary_)
        # A batch's cells usually fit in 32 bits, which sort in about half the time.
        cell_type = np.int32 if n_docs * n_cols < 2**31 else np.int64
        known = columns >= 0
        cells = (owners[known] * n_cols + columns[known]).astype(cell_type)
        cells.sort()
        boundary = np.empty(len(cells), dtype=bool)
        boundary[:1] = True
        np.not_equal(cells[1:], cells[:-1], out=boundary[1:])
        starts = np.flatnonzero(boundary)
        counts = np.empty(len(starts), dtype=self.dtype)
        counts[:-1], counts[-1:] = np.diff(starts), len(cells) - starts[-1:]
        unique = cells[starts]
        indptr = np.searchsorted(unique // n_cols, np.arange(n_docs + 1))
        return sp.csr_matrix((counts, unique % n_cols, indptr), shape=(n_docs, n_cols))


class WordTfidfVectorizer(_IndexedVocabulary, TfidfVectorizer):
    """TfidfVectorizer whose transform skips sklearn's per-call input validation and finds
    its n-grams in an NGramIndex, by their Python hashes, all at once: sklearn's matrix
    unless two n-grams share a 64-bit hash."""

    def transform(self, raw_documents) -> sp.csr_matrix:
        """TF-IDF features of the documents, one row each."""
        if isinstance(raw_documents, str) or not isinstance(
            getattr(self, "vocabulary_", None), NGramIndex
        ):
            return super().transform(raw_documents)
        analyze = self.build_analyzer()
        grams = [analyze(doc) for doc in raw_documents]
        sizes = np.fromiter(map(len, grams), dtype=np.int64, count=len(grams))
        keys = python_hash_keys((g for doc in grams for g in doc), int(sizes.sum()))
        owners = np.repeat(np.arange(len(grams)), sizes)
        counts = self._count_matrix(keys, owners, len(grams))
        if self.binary:
            counts.data.fill(1)
        return apply_tfidf(self._tfidf, counts)


class CharTfidfVectorizer(_IndexedVocabulary, TfidfVectorizer):
    """TfidfVectorizer(analyzer="char" or "char_wb") whose transform counts n-grams with numpy.

    sklearn builds a Python string per character n-gram (about 850 per title), which made
    this view most of inference time. Here every n-gram of a batch is hashed at once (a
    64-bit polynomial hash of its code points, salted by length) and looked up in the
    NGramIndex of the fitted vocabulary. Fitting is sklearn's own; the output is the same
    matrix unless two n-grams share a 64-bit hash.
    """

    KEYS = CODEPOINTS

    def transform(self, raw_documents) -> sp.csr_matrix:
        """TF-IDF features of the documents, one row each."""
        if self.analyzer not in FAST_ANALYZERS or not isinstance(
            getattr(self, "vocabulary_", None), NGramIndex
        ):
            return super().transform(raw_documents)
        return apply_tfidf(self._tfidf, self._count_ngrams(list(raw_documents)))

    def _index_vocabulary(self) -> None:
        if self.analyzer in FAST_ANALYZERS:
            super()._index_vocabulary()

    def _count_ngrams(self, docs: list[str]) -> sp.csr_matrix:
        preprocess = self.build_preprocessor()
        docs = [self._white_spaces.sub(" ", preprocess(d)) for d in docs]
        if self.analyzer == "char":
            keys, owners = self._segment_keys(docs)
            return self._count_matrix(keys, owners, len(docs))
        if len(docs) >= DISTINCT_WORDS_FROM:
            return self._count_word_ngrams(docs)
        return self._count_cached_words(docs)

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_word_cache", None)  # filled again by the calls that need it
        return state

    def _count_cached_words(self, docs: list[str]) -> sp.csr_matrix:
        """char_wb on a few documents, word by word, each word's columns from the cache."""
        words = [d.split() for d in docs]
        distinct = list({w for ws in words for w in ws})
        columns_of = dict(zip(distinct, self._columns_of_words(distinct), strict=True))
        pieces = [columns_of[w] for ws in words for w in ws]
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        owners = np.repeat(np.repeat(np.arange(len(docs)), [len(ws) for ws in words]), lengths)
        columns = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        return self._tally(columns, owners, len(docs))

    def _columns_of_words(self, words: list[str]) -> list[np.ndarray]:
        """The known columns of each word's char_wb n-grams. They come from a cache kept
        across calls, since words recur from title to title; only the words it lacks are
        hashed and looked up. A call of 7 titles read 4,888 n-grams, 1,184 of them distinct."""
        cache = self.__dict__.setdefault("_word_cache", {})
        found = [cache.get(w) for w in words]
        missing = [w for w, columns in zip(words, found, strict=True) if columns is None]
        if not missing:
            return found
        columns, bounds = self._columns_by_word(missing)
        computed = {w: columns[a:b] for w, (a, b) in zip(missing, pairwise(bounds), strict=True)}
        if len(missing) <= WORD_CACHE_WORDS:  # a larger batch would fill it past its bound
            if len(cache) + len(missing) > WORD_CACHE_WORDS:
                cache.clear()
            cache.update(computed)
        return [computed[w] if f is None else f for w, f in zip(words, found, strict=True)]

    def _columns_by_word(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The known columns of each word's char_wb n-grams, word after word, and where each
        word's start and end in them (bounds[i]:bounds[i + 1])."""
        keys, word_of_key = self._segment_keys([f" {w} " for w in words])
        columns = self.vocabulary_.lookup(keys)
        known = columns >= 0
        order = np.argsort(word_of_key[known], kind="stable")
        bounds = np.searchsorted(word_of_key[known][order], np.arange(len(words) + 1))
        return columns[known][order], bounds

    def _count_word_ngrams(self, docs: list[str]) -> sp.csr_matrix:
        """char_wb: the n-grams of each distinct word of the batch are counted for every
        occurrence of the word. A document repeats its title, and titles share words: about
        a sixth of the lookups for a 1,000-item batch, fewer still for words in the cache."""
        split = [doc.split() for doc in docs]
        sizes = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        every = list(chain.from_iterable(split))
        # Ids by first appearance, in C loops: a Python loop was a tenth of a batch's time.
        distinct = list(dict.fromkeys(every))
        word_ids = dict(zip(distinct, range(len(distinct)), strict=True))
        words = np.fromiter(map(word_ids.__getitem__, every), dtype=np.int64, count=len(every))
        per_word = self._columns_of_words(distinct)
        bounds = np.zeros(len(per_word) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, per_word), dtype=np.int64, count=len(per_word)),
                  out=bounds[1:])  # fmt: skip
        word_columns = np.concatenate(per_word) if per_word else np.zeros(0, dtype=np.int64)
        lengths = bounds[words + 1] - bounds[words]
        firsts = np.repeat(bounds[words] - (np.cumsum(lengths) - lengths), lengths)
        expanded = word_columns[firsts + np.arange(int(lengths.sum()))]
        owners = np.repeat(np.repeat(np.arange(len(docs)), sizes), lengths)
        return self._tally(expanded, owners, len(docs))

    def _segment_keys(self, segments: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The key of every n-gram of the segments (whole documents for "char", padded
        words for "char_wb"), and the index of the segment each comes from."""
        lengths = np.fromiter((len(s) for s in segments), dtype=np.int64, count=len(segments))
        codes = encode_codepoints("".join(segments))
        owner = np.repeat(np.arange(len(segments), dtype=np.int64), lengths)
        keys, owners = [np.zeros(0, dtype=np.uint64)], [np.zeros(0, dtype=np.int64)]
        low, high = self.ngram_range
        for n, hashes in iter_window_hashes(codes, min(high, len(codes))):
            if n >= low:
                same_segment = owner[: len(hashes)] == owner[n - 1 :]
                keys.append(hashes[same_segment])
                owners.append(owner[: len(hashes)][same_segment])
        if self.analyzer == "char_wb":  # sklearn counts a word shorter than low once, whole
            starts = np.r_[0, np.cumsum(lengths)[:-1]]
            for length in np.unique(lengths[(lengths < low) & (lengths > 0)]):
                which = np.flatnonzero(lengths == length)
                words = codes[(starts[which, None] + np.arange(length)).ravel()]
                keys.append(hash_windows(words, int(length))[::length])
                owners.append(which)
        return np.concatenate(keys), np.concatenate(owners)


class TextViews(FeatureUnion, auto_wrap_output_keys=None):
    """A FeatureUnion whose transform runs its views in turn, without joblib.

    On a single row, FeatureUnion's Parallel machinery cost as much as the two views it runs,
    and sklearn's set_output wrapper a tenth of it: features stay sparse, so TextViews has no
    set_output (nor does a Pipeline holding it). Fitting is FeatureUnion's own.
    """

    def transform(self, X, **params):
        if params or self.n_jobs not in (None, 1):
            return super().transform(X, **params)
        blocks = []
        for _, transformer, weight in self._iter():
            block = transformer.transform(X)
            blocks.append(block if weight is None else block * weight)
        return self._hstack(blocks) if blocks else np.zeros((len(X), 0))


class TextShape(BaseEstimator, TransformerMixin, auto_wrap_output_keys=None):
    """The shape of each document, one-hot: bins of its length in characters and in words, of
    its shares of capitals and of digits, and whether it has brackets, a spaced dash, a
    capital first, a word of 4 or more capitals. Categories differ in how their titles are
    written (a used book's, a new one's); n-grams do not see it. Every value is `weight`.
    """

    def __init__(self, weight: float = 0.3):
        self.weight = weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # stateless: the bins are fixed
        return tags

    def fit(self, X, y=None) -> TextShape:
        return self

    def transform(self, X) -> sp.csr_matrix:
        """One entry per shape per document, in the bins' columns."""
        docs = list(X)
        # Plain Python, not numpy per shape: a single title took 87 us the numpy way, its
        # model call about 1.4 ms.
        columns = [
            offset + bisect_right(edges, measure(doc))
            for doc in docs
            for offset, (_, measure, edges) in zip(SHAPE_OFFSETS[:-1], SHAPES, strict=True)
        ]
        data = np.full(len(columns), self.weight, dtype=np.float64)
        indptr = np.arange(0, len(columns) + 1, len(SHAPES))
        return sp.csr_matrix((data, np.asarray(columns, dtype=np.int32), indptr),
                             shape=(len(docs), SHAPE_OFFSETS[-1]))  # fmt: skip

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Each bin as a reader sees it: "characters 143-180", "brackets: yes"."""
        names = []
        for name, _, edges in SHAPES:
            if list(edges) == [0.5]:
                names += [f"{name}: no", f"{name}: yes"]
                continue
            shown = [f"{e:g}" for e in edges]
            names += [f"{name} < {shown[0]}"]
            names += [f"{name} {a}-{b}" for a, b in pairwise(shown)]
            names += [f"{name} >= {shown[-1]}"]
        return np.asarray(names, dtype=object)


def share(count: Callable[[str], int], doc: str) -> float:
    """count(doc) per character of the document."""
    return count(doc) / max(len(doc), 1)


def count_capitals(doc: str) -> int:
    """How many of [A-Z] the document has. Counted in its UTF-8 bytes, where each is one byte
    and no other character holds that byte: three times faster than a regex's findall."""
    encoded = doc.encode("utf-8", "surrogatepass")
    return len(encoded) - len(encoded.translate(None, ASCII_CAPITALS))


def count_digits(doc: str) -> int:
    """How many characters of the document \\d matches: counted in its bytes when it is all
    ASCII, as count_capitals does; by regex otherwise, since \\d has other Unicode digits."""
    if not doc.isascii():
        return len(DIGIT.findall(doc))
    encoded = doc.encode("ascii")
    return len(encoded) - len(encoded.translate(None, ASCII_DIGITS))


ASCII_CAPITALS, ASCII_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"0123456789"
CAPITALS_WORD, BRACKET = (
    re.compile(r"\b[A-Z]{4,}\b"),
    re.compile(r"[\[(]"),
)
# (name, measure of a cleaned document, bin edges). A document repeats its title (the
# profiles' title_weight 2), so its length and word edges are twice a title's, plus the
# separator. On the seeded split these bins, weight 0.3, lifted LinearSVC's weighted and
# macro F1 by about 0.3 points, on the test rows and in 3-fold CV alike.
SHAPES: list[tuple[str, Callable[[str], float], tuple[float, ...]]] = [
    ("characters", len, tuple(int(e) for e in np.round(2 * np.exp(np.linspace(1.5, 6, 12)) + 3))),
    ("words", lambda doc: len(doc.split()), (3, 5, 7, 9, 13, 17, 23, 31, 41, 61)),
    ("capitals share", lambda doc: share(count_capitals, doc), (0.02, 0.05, 0.1, 0.2, 0.4, 0.7)),
    ("digits share", lambda doc: share(count_digits, doc), (0.001, 0.03, 0.08, 0.15, 0.3)),
    ("brackets", lambda doc: BRACKET.search(doc) is not None, (0.5,)),
    ("spaced dash", lambda doc: " - " in doc, (0.5,)),
    ("capital first", lambda doc: doc[:1].isascii() and doc[:1].isupper(), (0.5,)),
    ("word in capitals", lambda doc: CAPITALS_WORD.search(doc) is not None, (0.5,)),
]
# Where each shape's bins start among the view's columns; the last is the view's width.
SHAPE_OFFSETS = list(accumulate((len(edges) + 1 for _, _, edges in SHAPES), initial=0))


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
    word_digits: str | None = None,
    char_digits: str | None = None,
    shape_weight: float | None = None,
) -> FeatureUnion:
    """Word n-grams (tokens, optional stopwords and stemming) and character n-grams, side by
    side, both lowercased; with cased_ngrams, a third view of character n-grams that keeps
    case (it needs the cleaner's lowercase=False to see any). word_digits and char_digits
    fold the digits of the word and the lowercased char view (DIGIT_FOLDINGS); the cased
    view keeps them, model numbers included. With shape_weight, a last view: the
    documents' TextShape.

    The character views read the cleaned text itself, punctuation included: it carries signal.
    """
    word = WordTfidfVectorizer(
        ngram_range=tuple(word_ngrams), min_df=word_min_df, sublinear_tf=True,
        max_features=max_word_features, token_pattern=None,
        tokenizer=WordTokenizer(tuple(stopword_languages), stem_language, word_digits),
    )  # fmt: skip
    views = [("word", word), ("char", _char_view(char_analyzer, char_ngrams, char_min_df,
                                                  max_char_features, lowercase=True,
                                                  digits=char_digits))]  # fmt: skip
    if cased_ngrams:
        views.append(("cased", _char_view(cased_analyzer, cased_ngrams, char_min_df,
                                          max_char_features, lowercase=False)))  # fmt: skip
    if shape_weight:
        views.append(("shape", TextShape(shape_weight)))
    return TextViews(views)


def count_features(model: Pipeline | FeatureUnion) -> int:
    """Columns of a fitted model's TF-IDF step (or of the union itself): its views' n-grams and
    the shape view's bins."""
    if isinstance(model, Pipeline):
        model = model.named_steps["tfidf"]
    return sum(_count_columns(view) for _, view in model.transformer_list if view != "drop")


def _count_columns(view) -> int:
    vocabulary = getattr(view, "vocabulary_", None)  # a view without one (the shape) names its bins
    return len(view.get_feature_names_out()) if vocabulary is None else len(vocabulary)


def _char_view(
    analyzer: str,
    ngrams: tuple[int, int],
    min_df: int,
    max_features: int | None,
    lowercase: bool,
    digits: str | None = None,
) -> CharTfidfVectorizer:
    return CharTfidfVectorizer(
        analyzer=analyzer, ngram_range=tuple(ngrams), min_df=min_df, sublinear_tf=True,
        max_features=max_features, lowercase=lowercase,
        preprocessor=None if digits is None else DigitFolding(digits, lowercase),
    )  # fmt: skip
