"""The inference speed-ups must give what the sklearn originals give."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from prodcat.features import CharTfidfVectorizer
from prodcat.inference import CalibratedLinearEnsemble, compact_calibrated, compact_pipeline
from prodcat.train import build_pipeline, make_estimator

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


@pytest.mark.parametrize("ngrams", [(1, 6), (2, 4), (3, 3)])
@pytest.mark.parametrize("min_df", [1, 2])
def test_char_vectorizer_gives_sklearns_matrix(ngrams, min_df):
    ours = CharTfidfVectorizer(analyzer="char", ngram_range=ngrams, min_df=min_df,
                               sublinear_tf=True)  # fmt: skip
    theirs = TfidfVectorizer(analyzer="char", ngram_range=ngrams, min_df=min_df,
                             sublinear_tf=True)  # fmt: skip
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


def test_char_wb_falls_back_to_sklearn():
    ours = CharTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(TRAIN)
    theirs = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3)).fit(TRAIN)
    assert abs(ours.transform(UNSEEN) - theirs.transform(UNSEEN)).max() < 1e-12


def test_compacted_calibrated_svc_matches_the_original():
    X, y = tiny_catalogue()
    pipeline = build_pipeline(make_estimator("linear_svc"), {"title_weight": 2},
                              {"char_ngrams": (2, 3), "char_min_df": 1}).fit(X, y)  # fmt: skip
    original = pipeline.predict_proba(X)
    predicted = pipeline.predict(X)
    compact_pipeline(pipeline)
    assert isinstance(pipeline.named_steps["clf"], CalibratedLinearEnsemble)
    assert list(pipeline.classes_) == ["10", "40", "50"]
    assert np.abs(pipeline.predict_proba(X) - original).max() < 1e-5
    assert (pipeline.predict(X) == predicted).all()


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

    from prodcat.features import build_tfidf

    views = build_tfidf(char_ngrams=(2, 3), char_min_df=1).fit(UNSEEN)
    union = FeatureUnion(views.transformer_list)
    assert abs(views.transform(UNSEEN) - union.transform(UNSEEN)).max() == 0
    weighted = build_tfidf(char_ngrams=(2, 3), char_min_df=1).set_params(
        transformer_weights={"char": 0.5}
    )
    expected = FeatureUnion(weighted.transformer_list, transformer_weights={"char": 0.5})
    assert abs(weighted.fit(UNSEEN).transform(TRAIN) - expected.transform(TRAIN)).max() == 0
