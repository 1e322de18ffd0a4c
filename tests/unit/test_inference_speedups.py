"""The inference speed-ups must give what the sklearn originals give."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from prodcat.training.compact import CalibratedLinearEnsemble, compact_calibrated, compact_pipeline
from prodcat.training.features import CharTfidfVectorizer, DigitFolding
from prodcat.training.search import build_pipeline, make_estimator

from .test_features_and_training import tiny_catalogue

TRAIN = [
    "Robe d'été en coton bio, taille 38",
    "lot de 24x32 cartes 18/100 - batterie 3.7v 500ml",
    "jeu console manette  sans\tfil\n(noir)",
    "Kühlschrank ÄÖÜ ß ﬁ İstanbul 日本語 🎲🎲",
    "piscine pompe eau",
    "piscine pompe eau filtrante",
]
UNSEEN = [*TRAIN, "", "a", "  ", "x" * 300, "robe\ud800 coton", "🎲", "zzz qqq", "İİ"]


@pytest.mark.parametrize("ngrams", [(1, 6), (2, 4), (3, 3), (4, 7)])
@pytest.mark.parametrize("min_df", [1, 2])
@pytest.mark.parametrize("analyzer", ["char", "char_wb"])
@pytest.mark.parametrize("lowercase", [True, False])
@pytest.mark.parametrize("digits", [None, "zero"])
def test_char_vectorizer_gives_sklearns_matrix(ngrams, min_df, analyzer, lowercase, digits):
    folding = DigitFolding(digits, lowercase) if digits else None
    options = dict(analyzer=analyzer, ngram_range=ngrams, min_df=min_df, sublinear_tf=True,
                   lowercase=lowercase, preprocessor=folding)  # fmt: skip
    ours, theirs = CharTfidfVectorizer(**options), TfidfVectorizer(**options)
    assert (ours.fit_transform(TRAIN) != theirs.fit_transform(TRAIN)).nnz == 0
    ours_matrix, their_matrix = ours.transform(UNSEEN), theirs.transform(UNSEEN)
    assert ours_matrix.shape == their_matrix.shape
    assert ours_matrix.has_canonical_format
    assert abs(ours_matrix - their_matrix).max() < 1e-12
    assert ours_matrix.nnz == their_matrix.nnz > 0


def test_char_vectorizer_fit_then_transform():
    ours = CharTfidfVectorizer(analyzer="char", ngram_range=(1, 3)).fit(TRAIN)
    theirs = TfidfVectorizer(analyzer="char", ngram_range=(1, 3)).fit(TRAIN)
    assert abs(ours.transform(UNSEEN) - theirs.transform(UNSEEN)).max() < 1e-12


def test_char_wb_counts_short_words_as_sklearn_does(monkeypatch):
    # (4, 7): " a " and " ab " are shorter than 4, so sklearn counts each once, whole.
    ours = CharTfidfVectorizer(analyzer="char_wb", ngram_range=(4, 7)).fit([*TRAIN, "a ab abc"])
    theirs = TfidfVectorizer(analyzer="char_wb", ngram_range=(4, 7)).fit([*TRAIN, "a ab abc"])
    monkeypatch.setattr(TfidfVectorizer, "transform", None)  # the fast path only
    unseen = ["a ab abc abcd", "ab", "x a"]
    assert (
        abs(
            ours.transform(unseen)
            - theirs._tfidf.transform(theirs._count_vocab(unseen, fixed_vocab=True)[1])
        ).max()
        < 1e-12
    )
    assert ours.transform(["ab"]).nnz > 0


def test_compacted_calibrated_svc_matches_the_original():
    X, y = tiny_catalogue()
    pipeline = build_pipeline(make_estimator("linear_svc"), {"title_weight": 2},
                              {"char_ngrams": (2, 3), "char_min_df": 1}).fit(X, y)  # fmt: skip
    original = pipeline.predict_proba(X)
    predicted = pipeline.predict(X)
    compact_pipeline(pipeline)
    assert isinstance(pipeline.named_steps["clf"], CalibratedLinearEnsemble)
    assert list(pipeline.classes_) == ["10", "40", "50"]
    assert pipeline.named_steps["clf"].weights.dtype == np.int16
    assert np.abs(pipeline.predict_proba(X) - original).max() < 1e-3  # 16-bit weights
    assert (pipeline.predict(X) == predicted).all()


@pytest.mark.parametrize("rows", [1, 5, 70, 300])
def test_a_product_reads_only_the_weights_of_the_columns_a_batch_has(rows):
    import scipy.sparse as sp

    from prodcat.training.compact import quantize_weights, select_used_columns

    rng = np.random.default_rng(rows)
    weights, _ = quantize_weights(rng.normal(size=(5_000, 12)))
    X = sp.random(rows, 5_000, density=0.002, format="csr", dtype=np.float32, random_state=rows)
    narrowed, used = select_used_columns(X, weights)
    assert used.dtype == np.float32
    assert narrowed.shape[1] == used.shape[0] <= X.nnz
    # The same sums in the same order as with every weight converted: identical scores.
    assert np.array_equal(narrowed @ used, X @ weights.astype(np.float32))


def test_quantizing_needs_no_temporary_as_large_as_the_weights():
    import tracemalloc

    from prodcat.training.compact import quantize_weights

    weights = np.random.default_rng(0).normal(size=(200_000, 27))
    tracemalloc.start()
    quantize_weights(weights)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < weights.nbytes / 2  # the int16 result is a quarter of it


def test_quantized_weights_are_within_half_a_step_of_each_column_largest():
    from prodcat.training.compact import quantize_weights

    weights = np.array([[1e-7, -2.0, 0.0], [3e5, 0.5, 0.0], [-1.0, 1e-9, 0.0]])
    quantized, scale = quantize_weights(weights)
    assert quantized.dtype == np.int16 and np.abs(quantized).max() == 32767
    error = np.abs(quantized * scale - weights)
    assert (error <= np.abs(weights).max(axis=0) / 65534 + 1e-12).all()
    assert (quantized[:, 2] == 0).all() and np.isfinite(scale).all()  # an all-zero column


def test_only_sigmoid_multiclass_linear_ensembles_are_compacted():
    X = np.random.default_rng(0).normal(size=(60, 4))
    three, two = np.repeat(["a", "b", "c"], 20), np.repeat(["a", "b"], 30)
    isotonic = CalibratedClassifierCV(LinearSVC(), cv=3, method="isotonic").fit(X, three)
    binary = CalibratedClassifierCV(LinearSVC(), cv=3).fit(X, two)
    assert compact_calibrated(isotonic) is None
    assert compact_calibrated(binary) is None
    assert compact_calibrated(LinearSVC().fit(X, three)) is None
    assert compact_calibrated(CalibratedClassifierCV(LinearSVC(), cv=3).fit(X, three)) is not None


def test_text_views_give_what_feature_union_gives():
    from sklearn.pipeline import FeatureUnion

    from prodcat.training.features import build_tfidf

    views = build_tfidf(char_ngrams=(2, 3), char_min_df=1).fit(UNSEEN)
    union = FeatureUnion(views.transformer_list)
    assert abs(views.transform(UNSEEN) - union.transform(UNSEEN)).max() == 0
    weighted = build_tfidf(char_ngrams=(2, 3), char_min_df=1).set_params(
        transformer_weights={"char": 0.5}
    )
    expected = FeatureUnion(weighted.transformer_list, transformer_weights={"char": 0.5})
    assert abs(weighted.fit(UNSEEN).transform(TRAIN) - expected.transform(TRAIN)).max() == 0


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"ngram_range": (1, 2), "sublinear_tf": True},
        {"ngram_range": (1, 3), "binary": True, "norm": "l1", "use_idf": False},
        {"norm": None, "smooth_idf": False, "min_df": 2},
    ],
)
def test_word_vectorizer_gives_sklearns_matrix(options):
    from prodcat.training.features import WordTfidfVectorizer, WordTokenizer

    tokenizer = WordTokenizer(("fr", "en"), "fr")
    common = {"lowercase": False, "token_pattern": None, "tokenizer": tokenizer, **options}
    ours = WordTfidfVectorizer(**common).fit(TRAIN)
    theirs = TfidfVectorizer(**common).fit(TRAIN)
    ours_matrix, their_matrix = ours.transform(UNSEEN), theirs.transform(UNSEEN)
    assert ours_matrix.has_canonical_format
    assert (ours_matrix != their_matrix).nnz == 0
    assert ours_matrix.nnz > 0


@pytest.mark.parametrize("norm", ["l1", "l2", None])
@pytest.mark.parametrize("sublinear_tf", [True, False])
@pytest.mark.parametrize("use_idf", [True, False])
def test_apply_tfidf_is_tfidf_transformers_arithmetic(norm, sublinear_tf, use_idf):
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfTransformer

    from prodcat.training.features import apply_tfidf

    counts = sp.random(40, 30, density=0.2, format="csr", random_state=1)
    counts.data = np.ceil(counts.data * 5)
    tfidf = TfidfTransformer(norm=norm, sublinear_tf=sublinear_tf, use_idf=use_idf).fit(counts)
    expected = tfidf.transform(counts, copy=True)
    assert abs(apply_tfidf(tfidf, counts.copy()) - expected).max() == 0


def test_clean_text_folds_exactly_as_the_reference():
    import unicodedata

    from prodcat.training.features import TAG, clean_text

    def reference(text: str) -> str:  # the original, character by character
        import html

        text = TAG.sub(" ", html.unescape(html.unescape(text)))
        text = unicodedata.normalize("NFKD", text)
        return "".join(c for c in text if not unicodedata.combining(c)).lower()

    samples = [*UNSEEN, "Crème brûlée &amp;eacute; <b>Ñandú</b>", "ﬁ ½ ² Å Ǆ", "a\u0301\u0327",
               "Ελληνικά Tiếng Việt", "plain ascii, 18/100", "\u1e9b\u0323", "x\u20dd"]  # fmt: skip
    for sample in samples:
        assert clean_text(sample) == reference(sample), sample


def test_large_batches_score_as_single_rows():
    from prodcat.training.compact import CSC_FROM_ROWS

    X, y = tiny_catalogue()
    pipeline = compact_pipeline(
        build_pipeline(make_estimator("linear_svc"), {"title_weight": 2},
                       {"char_ngrams": (2, 3), "char_min_df": 1}).fit(X, y)
    )  # fmt: skip
    rows = [(t, d) for t, d in zip(X["title"], X["description"].fillna(""), strict=True)]
    rows = (rows * (CSC_FROM_ROWS // len(rows) + 1))[: CSC_FROM_ROWS + 5]
    batched = pipeline.predict_proba(rows)
    one_by_one = np.vstack([pipeline.predict_proba([row]) for row in rows])
    assert np.array_equal(batched, one_by_one)


@pytest.mark.parametrize("ngrams", [(1, 3), (2, 5), (4, 7)])
def test_char_wb_counts_a_batch_distinct_word_by_word_as_sklearn_does(ngrams, monkeypatch):
    from prodcat.training import features

    fitted_on = [*TRAIN, "a ab abc"]
    ours = CharTfidfVectorizer(analyzer="char_wb", ngram_range=ngrams).fit(fitted_on)
    theirs = TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams).fit(fitted_on)
    docs = [*TRAIN, "a ab abc abcd", "ab", "x a"] * 3 + UNSEEN
    assert len(docs) >= features.DISTINCT_WORDS_FROM
    by_distinct_word = ours.transform(docs)
    assert by_distinct_word.has_canonical_format
    assert abs(by_distinct_word - theirs.transform(docs)).max() < 1e-12
    monkeypatch.setattr(features, "DISTINCT_WORDS_FROM", len(docs) + 1)  # word by word
    assert (ours.transform(docs) != by_distinct_word).nnz == 0


@pytest.mark.parametrize("ngrams", [(1, 5), (4, 7)])
def test_char_wb_words_remembered_across_calls_give_sklearns_matrix(ngrams, monkeypatch):
    import pickle

    from prodcat.training import features

    fitted_on = [*TRAIN, "a ab abc"]
    ours = CharTfidfVectorizer(analyzer="char_wb", ngram_range=ngrams).fit(fitted_on)
    theirs = TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams).fit(fitted_on)
    calls = [UNSEEN[:3], UNSEEN[2:9], ["a ab abc abcd", "ab", *TRAIN[:2]], UNSEEN[:3]]
    first = [ours.transform(docs) for docs in calls]
    assert len(ours._word_cache) > 10  # the later calls found words the earlier ones saw
    for docs, matrix in zip(calls, first, strict=True):
        assert matrix.has_canonical_format
        assert abs(matrix - theirs.transform(docs)).max() < 1e-12
        assert (ours.transform(docs) != matrix).nnz == 0  # from the cache alone
    monkeypatch.setattr(features, "WORD_CACHE_WORDS", 5)  # full: it starts again
    ours._word_cache.clear()
    for docs, matrix in zip(calls, first, strict=True):
        assert (ours.transform(docs) != matrix).nnz == 0
        assert len(ours._word_cache) <= 5  # a call of more new words leaves it as it was
    restored = pickle.loads(pickle.dumps(ours))
    assert "_word_cache" not in restored.__dict__ and "_word_cache" in ours.__dict__
    assert (restored.transform(calls[0]) != first[0]).nnz == 0
    refitted = ours.fit(UNSEEN)  # the words' columns were the former vocabulary's
    expected = TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams).fit(UNSEEN)
    assert abs(refitted.transform(calls[0]) - expected.transform(calls[0])).max() < 1e-12
