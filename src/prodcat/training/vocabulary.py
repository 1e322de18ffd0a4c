"""Compact vocabularies for the TF-IDF views: what an API worker holds for each fitted view.

sklearn keeps a fitted vocabulary as a dict of n-gram -> column. With the capped views
(650,000 n-grams) those dicts cost about 130 MiB in every API worker, more than the model's
weights: a Python string, an int and a dict slot per n-gram. Here the n-grams are packed
in one UTF-8 buffer in column order (TermList), and found through an open-addressing table
of 64-bit keys (NGramIndex): 35 to 45 bytes per n-gram in all.

Registered models are pickled with these classes: this module's path must keep importing.
"""

from __future__ import annotations

import logging
import operator
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import pairwise

import numpy as np

PRIME = np.uint64(0x100000001B3)
MIX = np.uint64(0x9E3779B97F4A7C15)
CODEPOINTS, PYTHON_HASH = "codepoints", "python-hash"
PROBE_WINDOW = 8
KEY_CHUNK = 65_536  # terms made Python strings at a time while keys are computed
log = logging.getLogger(__name__)


class TermList(Sequence[str]):
    """Strings packed in one UTF-8 buffer with their offsets, indexed like a list."""

    def __init__(self, terms: Iterable[str]):
        encoded = [t.encode("utf-8", "surrogatepass") for t in terms]
        self.blob = b"".join(encoded)
        offset_type = np.int32 if len(self.blob) < 2**31 else np.int64
        self.offsets = np.zeros(len(encoded) + 1, dtype=offset_type)
        np.cumsum([len(e) for e in encoded], out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int | slice) -> str | list[str]:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("term index out of range")
        start, end = self.offsets[index], self.offsets[index + 1]
        return self.blob[start:end].decode("utf-8", "surrogatepass")

    def __iter__(self) -> Iterator[str]:
        blob = self.blob
        for start, end in pairwise(self.offsets.tolist()):
            yield blob[start:end].decode("utf-8", "surrogatepass")


def hash_windows(codes: np.ndarray, n: int) -> np.ndarray:
    """Salted polynomial hash (uint64) of every window of n code points: len(codes) - n + 1
    values (n >= 1)."""
    return deque(iter_window_hashes(codes, n), maxlen=1)[0][1]  # the last, the others dropped


def iter_window_hashes(codes: np.ndarray, high: int) -> Iterator[tuple[int, np.ndarray]]:
    """(n, hash_windows(codes, n)) for n = 1 to high, each built from the one before."""
    hashes = codes
    for n in range(1, high + 1):
        with np.errstate(over="ignore"):
            if n > 1:
                hashes = hashes[:-1] * PRIME + codes[n - 1 :]
            salted = hashes ^ (np.uint64(n) * MIX)
        yield n, salted


def encode_codepoints(text: str) -> np.ndarray:
    """The code points of text as uint64, lone surrogates included."""
    raw = text.encode("utf-32-le", "surrogatepass")
    return np.frombuffer(raw, dtype=np.uint32).astype(np.uint64)


def codepoint_keys(terms: Sequence[str]) -> np.ndarray:
    """Each term's hash_windows key, as the character views compute it for their n-grams."""
    terms = list(terms)
    lengths = np.fromiter(map(len, terms), dtype=np.int64, count=len(terms))
    codes = encode_codepoints("".join(terms))
    starts = np.cumsum(lengths) - lengths
    keys = np.zeros(len(terms), dtype=np.uint64)
    for n in np.unique(lengths[lengths > 0]).tolist():
        at = np.flatnonzero(lengths == n)
        keys[at] = hash_windows(codes[(starts[at, None] + np.arange(n)).ravel()], n)[::n]
    return keys


def python_hash_keys(terms: Iterable[str], count: int) -> np.ndarray:
    """Each term's Python hash as uint64. Valid in this process only (string hashes are
    salted per process), so a table keyed by them is rebuilt when a model is loaded."""
    return np.fromiter(map(hash, terms), dtype=np.int64, count=count).view(np.uint64)


class NGramIndex(Mapping[str, int]):
    """A fitted vocabulary (n-gram -> column) in a few bytes per n-gram: a drop-in for the
    dict sklearn keeps in `vocabulary_`, whose `lookup` finds a batch of keys at once.

    Only the terms are pickled; the table is rebuilt on load. Two n-grams sharing a 64-bit
    key would share a column; the table keeps one.
    """

    def __init__(self, terms: TermList, key_kind: str):
        if key_kind not in (CODEPOINTS, PYTHON_HASH):
            raise ValueError(f"unknown key kind {key_kind!r}")
        self.terms, self.key_kind = terms, key_kind
        self._build()

    @classmethod
    def from_dict(cls, vocabulary: Mapping[str, int], key_kind: str) -> NGramIndex:
        """The index of sklearn's fitted vocabulary, columns unchanged."""
        ordered = [""] * len(vocabulary)
        for term, column in vocabulary.items():
            ordered[column] = term
        return cls(TermList(ordered), key_kind)

    def keys_of(self, terms: Sequence[str]) -> np.ndarray:
        """The table keys (uint64) of some strings, computed as this index computes them."""
        if self.key_kind == CODEPOINTS:
            return codepoint_keys(terms)
        return python_hash_keys(terms, len(terms))

    def _build(self) -> None:
        # An empty slot (-1) reads the padding after the last key (see lookup).
        self._padded_keys = np.zeros(len(self.terms) + 1, dtype=np.uint64)
        for start in range(0, len(self.terms), KEY_CHUNK):  # not every term a str at once
            chunk = self.terms[start : start + KEY_CHUNK]
            self._padded_keys[start : start + len(chunk)] = self.keys_of(chunk)
        self._keys = self._padded_keys[:-1]
        if len(np.unique(self._keys)) < len(self._keys):
            log.warning("some n-grams share a 64-bit key: each such group counts as one column")
        # At most a quarter full: most keys settle in their first slot, and none goes far.
        bits = max(4, int(np.ceil(np.log2(max(len(self._keys), 1) * 4))))
        self.table = np.full(1 << bits, -1, dtype=np.int32)
        slot, pending = self._first_slot(self._keys), np.arange(len(self._keys))
        self.max_probe = -1  # the farthest any key sits from its first slot
        while pending.size:  # linear probing, one round per probe step for all keys at once
            self.max_probe += 1
            free = self.table[slot] == -1
            taken, first = np.unique(slot[free], return_index=True)
            self.table[taken] = pending[free][first]
            rest = np.ones(len(pending), dtype=bool)
            rest[np.flatnonzero(free)[first]] = False
            pending, slot = pending[rest], (slot[rest] + 1) & (len(self.table) - 1)

    def _first_slot(self, keys: np.ndarray) -> np.ndarray:
        bits = int(np.log2(len(self.table)))
        with np.errstate(over="ignore"):
            return ((keys * MIX) >> np.uint64(64 - bits)).astype(np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The column of each key (uint64, from keys_of or the views' own hashing), -1 when
        the key is not in the vocabulary."""
        first = self._first_slot(keys)
        ids = self.table[first]
        found = np.where((self._padded_keys[ids] == keys) & (ids >= 0), ids, -1)
        active = np.flatnonzero((found < 0) & (ids >= 0))  # its slot taken by another key
        first, mask, probed = first[active], len(self.table) - 1, 1
        # Then a window of slots at a time: a few numpy calls rather than a round per step.
        while active.size and probed <= self.max_probe:
            ids = self.table[(first[:, None] + np.arange(probed, probed + PROBE_WINDOW)) & mask]
            match = (self._padded_keys[ids] == keys[active, None]) & (ids >= 0)
            hit = match.any(axis=1)
            found[active[hit]] = ids[hit, match[hit].argmax(axis=1)]
            go_on = ~hit & (ids >= 0).all(axis=1)  # an empty slot ends a key's search
            active, first, probed = active[go_on], first[go_on], probed + PROBE_WINDOW
        return found

    def __getitem__(self, term: str) -> int:
        column = int(self.lookup(self.keys_of([term]))[0]) if isinstance(term, str) else -1
        if column < 0 or self.terms[column] != term:
            raise KeyError(term)
        return column

    def __len__(self) -> int:
        return len(self.terms)

    def __iter__(self) -> Iterator[str]:
        return iter(self.terms)

    def __getstate__(self) -> dict:
        return {"terms": self.terms, "key_kind": self.key_kind}

    def __setstate__(self, state: dict) -> None:
        self.terms, self.key_kind = state["terms"], state["key_kind"]
        self._build()
