import random
import re

import numpy as np
import pandas as pd
import pytest

from prodcat.training.features import (
    ProductTextCleaner,
    TextShape,
    WordTokenizer,
    build_tfidf,
    clean_text,
    count_capitals,
    count_digits,
)
from prodcat.training.gate import decide
from prodcat.training.search import (
    EncodedXGBClassifier,
    build_pipeline,
    load_profile,
    make_estimator,
    param_prefix,
)


def test_clean_text_unescapes_strips_tags_and_folds_accents():
    raw = "<p>Cr&egrave;me <b>Br&ucirc;l&eacute;e</b></p>&amp;amp; Déjà"
    assert " ".join(clean_text(raw).split()) == "creme brulee & deja"
    assert clean_text(None) == "" and clean_text("") == ""


def test_numbers_with_units_stay_single_tokens():
    tokens = WordTokenizer()("lot de 24x32 cartes 18/100 batterie 3.7v 500ml")
    assert {"24x32", "18/100", "3.7v", "500ml"} <= set(tokens)


def test_digit_folding_shares_ngrams_across_sizes():
    assert WordTokenizer(digits="split_zero")("robe 38 lot de 24x32 30cm") == [
        "robe", "00", "lot", "de", "00", "x", "00", "00", "cm"]  # fmt: skip
    union = build_tfidf(char_ngrams=(2, 4), char_min_df=1, cased_ngrams=(2, 3),
                        word_digits="split_zero", char_digits="zero")  # fmt: skip
    union.fit(["Cadre 30cm", "Cadre 50cm", "cadre 18X24"])
    word, char, cased = (view for _, view in union.transformer_list)
    assert "00 cm" in word.vocabulary_ and "30" not in word.vocabulary_
    assert "00cm" in char.vocabulary_ and "30" not in char.vocabulary_
    assert "30" in cased.vocabulary_  # the cased view keeps digits: model numbers
    first, second = union.transform(["Cadre 30cm", "Cadre 40cm"])[:, : len(word.vocabulary_)]
    assert (first != second).nnz == 0
    with pytest.raises(ValueError, match="digit folding"):
        build_tfidf(word_digits="round")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"digits": "split_zero"},
        {"digits": "zero"},
        {"stopword_languages": ("fr", "en"), "stem_language": "fr"},
    ],
)
def test_tokens_remembered_word_by_word_are_the_whole_documents(options):
    import pickle

    from ..models import real_text

    text = real_text(60_000).lower()
    docs = [text[i : i + 120] for i in range(0, len(text), 97)]
    docs += ["30cm\u00a0x\u200950cm", "a2b\t3.7v\n500ml", "x²3 ①2 ٣٤cm", "18/100 24x32", ""]
    tokenizer = WordTokenizer(**options)
    for _ in range(2):  # the second time, every word from the cache
        assert [tokenizer(d) for d in docs] == [tokenizer.tokenize(d) for d in docs]
    assert len(tokenizer._word_tokens) > 100
    restored = pickle.loads(pickle.dumps(tokenizer))
    assert "_word_tokens" not in restored.__dict__ and restored(docs[0]) == tokenizer(docs[0])


def test_the_shape_view_puts_each_document_in_one_bin_per_shape():
    shape = TextShape(0.3)
    doc = "Robe ROUGE (taille 38) - coton . Robe ROUGE (taille 38) - coton"
    matrix = shape.fit([doc]).transform([doc, "livre", ""])
    names = shape.get_feature_names_out()
    assert matrix.shape == (3, len(names)) and (matrix.data == 0.3).all()
    # 63 characters, 15 words, 12 capitals (0.19), 4 digits (0.063).
    assert [names[i] for i in matrix[0].indices] == [
        "characters 49-72", "words 13-17", "capitals share 0.1-0.2", "digits share 0.03-0.08",
        "brackets: yes", "spaced dash: yes", "capital first: yes",
        "word in capitals: yes"]  # fmt: skip
    assert [names[i] for i in matrix[1].indices] == [
        "characters < 12", "words < 3", "capitals share < 0.02", "digits share < 0.001",
        "brackets: no", "spaced dash: no", "capital first: no", "word in capitals: no"]  # fmt: skip
    assert (matrix[2] != matrix[1]).nnz == 0
    assert shape.transform([]).shape == (0, len(names))
    union = build_tfidf(char_ngrams=(2, 3), char_min_df=1, shape_weight=0.3).fit([doc, "livre"])
    assert [name for name, _ in union.transformer_list][-1] == "shape"
    assert union.transform([doc]).shape[1] == sum(len(v.get_feature_names_out())
                                                  for _, v in union.transformer_list)  # fmt: skip


def test_the_shape_counts_are_the_regex_definitions():
    # The counts go through bytes; they must match what the regexes say, for any text.
    # Fullwidth capitals and digits, Arabic-Indic and Bengali digits, superscripts, lone
    # surrogates: none is [A-Z]; the digits are \d (the superscript is not).
    texts = ["", "ABC abc", "ÀBCD é ÉCOLE", "\uff26ull \uff21\uff22\uff23\uff24 \uff11\uff12",
             "\u0663 digits \u0664\u0665 12", "\ud800 lone AB12 \udfff", "x\u0660y\u09e6",
             "ABCD", "abcd ABCDé", "ÆØÅ 1/2"]  # fmt: skip
    alphabet = "aAbZ09 .-()[]éÉ\u0663\uff11\uff21\ud800\u00b2"
    rng = random.Random(3)
    texts += ["".join(rng.choices(alphabet, k=rng.randint(0, 30))) for _ in range(2000)]
    for text in texts:
        assert count_capitals(text) == len(re.findall(r"[A-Z]", text)), text
        assert count_digits(text) == len(re.findall(r"\d", text)), text


def test_multilingual_stopwords_and_stemming_work_offline():
    tokens = WordTokenizer(("fr", "en", "de"), "fr")("le chapeau and the hut und der hosen")
    assert "le" not in tokens and "the" not in tokens and "der" not in tokens
    assert "chapeau" in tokens and "hosen" in tokens  # stemmed French keeps these as they are


def test_title_counts_more_and_empty_description_is_fine():
    docs = ProductTextCleaner(title_weight=3).transform(
        pd.DataFrame({"title": ["Robe"], "description": [None]})
    )
    assert docs[0] == "robe . robe . robe"
    only_titles = ProductTextCleaner().transform(pd.DataFrame({"title": ["A", "B"]}))
    assert list(only_titles) == ["a . a", "b . b"]


def tiny_catalogue() -> tuple[pd.DataFrame, pd.Series]:
    words = {"10": "livre roman auteur", "40": "jeu console manette", "50": "piscine pompe eau"}
    rows, labels = [], []
    for code, vocabulary in words.items():
        for i in range(12):
            rows.append(
                {"title": f"{vocabulary} {i}", "description": "<i>neuf</i>" if i % 2 else ""}
            )
            labels.append(code)
    return pd.DataFrame(rows), pd.Series(labels)


@pytest.mark.parametrize("name", ["linear_svc", "logistic_regression", "sgd", "complement_nb",
                                  "random_forest", "xgboost"])  # fmt: skip
def test_every_candidate_is_a_pipeline_with_probabilities(name):
    X, y = tiny_catalogue()
    reduce = 5 if name in ("xgboost", "random_forest") else None
    tfidf = {"char_ngrams": (2, 3), "char_min_df": 1}
    pipeline = build_pipeline(make_estimator(name), {"title_weight": 2}, tfidf, reduce)
    if name == "linear_svc":
        pipeline.set_params(**{param_prefix(name) + "C": 0.5})
    pipeline.fit(X, y)
    assert [step for step, _ in pipeline.steps] == ["clean", "tfidf", "reduce", "clf"]
    probabilities = pipeline.predict_proba(X.head(3))
    assert probabilities.shape == (3, 3)
    assert np.allclose(probabilities.sum(axis=1), 1)
    assert set(pipeline.predict(X)) <= {"10", "40", "50"}


def test_xgboost_wrapper_keeps_the_catalogue_codes():
    X, y = np.eye(3).repeat(4, axis=0), np.array(["10", "40", "50"]).repeat(4)
    model = EncodedXGBClassifier(n_estimators=5).fit(X, y)
    assert list(model.classes_) == ["10", "40", "50"]
    assert list(model.predict(X[[0, 4, 8]])) == ["10", "40", "50"]


def test_profiles_and_candidates_are_checked():
    assert load_profile("fast")["cv_folds"] >= 2
    names = {c["name"] for c in load_profile("full")["candidates"]}
    assert {"linear_svc", "xgboost"} <= names  # the platform promises both
    with pytest.raises(KeyError, match="unknown training profile"):
        load_profile("huge")
    with pytest.raises(KeyError, match="unknown candidate"):
        make_estimator("perceptron")


def test_tfidf_has_word_and_char_views():
    union = build_tfidf()
    assert [name for name, _ in union.transformer_list] == ["word", "char"]
    cased = build_tfidf(cased_ngrams=(2, 5)).fit(["Robe Rouge", "Robe Verte", "robe rouge"])
    assert [name for name, _ in cased.transformer_list] == ["word", "char", "cased"]
    assert " R" in cased.transformer_list[2][1].vocabulary_
    assert " R" not in cased.transformer_list[1][1].vocabulary_


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "words"),
    [
        (0.40, None, False, "below the floor"),
        (0.80, None, True, "no champion"),
        (0.805, 0.80, True, "beats champion"),
        (0.801, 0.80, False, "does not beat"),
        (0.70, 0.80, False, "does not beat"),
    ],
)
def test_gate_rule(challenger, champion, promote, words):
    decision, reason = decide(challenger, champion, min_delta=0.002, floor=0.5)
    assert decision is promote and words in reason
