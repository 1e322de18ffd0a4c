"""Compact vocabularies: the same columns as sklearn's dict, in a fraction of the memory."""

import pickle
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from prodcat.training.features import CharTfidfVectorizer, WordTfidfVectorizer, WordTokenizer
from prodcat.training.vocabulary import CODEPOINTS, PYTHON_HASH, NGramIndex, TermList

TERMS = ["robe", " ét", "été ", "🎲🎲", "a", "日本語", "lot de", "x\ud800y", "İ", "z" * 300]


def test_a_term_list_reads_back_every_term():
    terms = TermList(TERMS)
    assert len(terms) == len(TERMS)
    assert list(terms) == TERMS
    assert [terms[i] for i in range(len(TERMS))] == TERMS
    assert terms[-1] == TERMS[-1] and terms[1:3] == TERMS[1:3]
    with pytest.raises(IndexError):
        terms[len(TERMS)]
    assert list(pickle.loads(pickle.dumps(terms))) == TERMS
    assert list(TermList([])) == []


@pytest.mark.parametrize("kind", [CODEPOINTS, PYTHON_HASH])
def test_an_index_finds_each_term_at_its_column_and_nothing_else(kind):
    words = [f"{w}{i}" for i, w in enumerate(["piscine", "pompe", "robe"] * 3000)]
    vocabulary = {term: column for column, term in enumerate(TERMS + words)}
    index = NGramIndex.from_dict(vocabulary, kind)
    assert len(index) == len(vocabulary) and list(index) == TERMS + words
    assert all(index[term] == column for term, column in vocabulary.items())
    found = index.lookup(index.keys_of(list(vocabulary)))
    assert np.array_equal(found, np.arange(len(vocabulary)))
    unknown = ["robe ", "piscine9001", "", "🎲", "日本"]
    assert (index.lookup(index.keys_of(unknown)) == -1).all()
    assert not any(term in index for term in unknown)
    with pytest.raises(KeyError):
        index["pompe-1"]
    assert 42 not in index
    assert dict(index) == vocabulary and list(index.keys()) == list(vocabulary)
    assert list(index.values()) == list(range(len(vocabulary)))


@pytest.mark.parametrize("kind", [CODEPOINTS, PYTHON_HASH])
def test_an_index_loaded_in_another_process_finds_the_same_columns(kind, tmp_path):
    # String hashes differ from one process to the next: the table is rebuilt on load.
    index = NGramIndex.from_dict({t: i for i, t in enumerate(TERMS)}, kind)
    (tmp_path / "index.pkl").write_bytes(pickle.dumps(index))
    code = (
        "import pickle, sys; index = pickle.load(open(sys.argv[1], 'rb'));"
        "print([index[t] for t in index.terms], index.get('robe '))"
    )
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "index.pkl")],
                             env={"PYTHONHASHSEED": seed}, capture_output=True, text=True,
                             check=True)  # fmt: skip
        assert out.stdout.strip() == f"{list(range(len(TERMS)))} None"


def fitted_views(docs):
    word = WordTfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=None,
                               tokenizer=WordTokenizer()).fit(docs)  # fmt: skip
    char = CharTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).fit(docs)
    return word, char


def catalogue(n, seed=0):
    rng = np.random.default_rng(seed)
    syllables = ["ro", "be", "pis", "ci", "ne", "pom", "pe", "lot", "de", "jeu", "été", "xl"]
    words = ["".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(4000)]
    return [" ".join(rng.choice(words, size=8)) + f" {rng.integers(1000)}" for _ in range(n)]


def test_fitted_views_keep_an_index_not_a_dict():
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = catalogue(300)
    for view in fitted_views(docs):
        assert isinstance(view.vocabulary_, NGramIndex)
        names = view.get_feature_names_out()
        assert names.dtype == object and list(names) == list(view.vocabulary_.terms)
        assert all(view.vocabulary_[n] == i for i, n in enumerate(names))
        theirs = TfidfVectorizer(**view.get_params()).fit(docs)
        assert list(theirs.get_feature_names_out()) == list(names)
        back = [v.inverse_transform(v.transform(docs[:9])) for v in (view, theirs)]
        assert all((a == b).all() for a, b in zip(*back, strict=True))


def test_a_view_pickled_with_sklearns_dict_loads_as_an_index_with_the_same_matrix():
    docs, unseen = catalogue(300), catalogue(50, seed=1)
    for view in fitted_views(docs):
        expected = view.transform(unseen)
        old = pickle.loads(pickle.dumps(view))
        # A version before the index: sklearn's dict, and the char view's own hash table.
        old.vocabulary_ = {t: i for i, t in enumerate(view.vocabulary_.terms)}
        old.__dict__.update(_table_keys=np.zeros(4, np.uint64), _table_ids=np.zeros(4))
        loaded = pickle.loads(pickle.dumps(old))
        assert isinstance(loaded.vocabulary_, NGramIndex)
        assert not hasattr(loaded, "_table_keys") and not hasattr(loaded, "_table_ids")
        assert (loaded.transform(unseen) != expected).nnz == 0


def test_a_loaded_vocabulary_costs_a_fraction_of_sklearns_dict():
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzéèà0123456789"))
    docs = [" ".join("".join(rng.choice(letters, size=6)) for _ in range(10)) for _ in range(2000)]
    _, char = fitted_views(docs)
    n_grams = len(char.vocabulary_)
    assert n_grams > 50_000
    as_dict = {t: i for i, t in enumerate(char.vocabulary_.terms)}
    dumped_index, dumped_dict = pickle.dumps(char.vocabulary_), pickle.dumps(as_dict)
    del as_dict

    def loaded_bytes(dumped):
        tracemalloc.start()
        loaded = pickle.loads(dumped)
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del loaded
        return size

    index_bytes, dict_bytes = loaded_bytes(dumped_index), loaded_bytes(dumped_dict)
    # The packed terms (about 9 bytes), a key (8) and 4 to 8 table slots (16 to 32).
    assert index_bytes / n_grams < 50
    assert index_bytes < dict_bytes / 2.5  # 35 and 126 bytes per n-gram when measured
