"""Statement text -> words -> hashes of word n-grams, for near-duplicate and contamination checks.

Normalisation (the usual one for decontamination): lower-case, then the maximal runs of word
characters (``\\w+``, Unicode-aware), so punctuation, LaTeX dollars and spacing do not count:
``"Given $n$ (1 <= n <= 10^5)."`` -> ``given n 1 n 10 5``.

Each distinct word gets a 64-bit BLAKE2b hash (cached); an n-gram's hash is a polynomial
over its words' hashes mod 2^64 with a SplitMix64 finaliser, computed for all positions at once
with numpy. Hashes are the same in every process and on every run (no ``PYTHONHASHSEED``), so
a rerun makes the same decisions. Two different n-grams collide with probability ~2^-64.

Leaves out: stemming, stop words, number masking (``n <= 10^5`` and ``n <= 2*10^5`` differ).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

WORD = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial step is a bijection mod 2^64
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_EMPTY = np.zeros(0, dtype=np.uint64)


def words_of(text: str) -> list[str]:
    """The normalised words of ``text``."""
    return WORD.findall(text.lower())


class WordHasher:
    """64-bit hashes of words, cached (a run's vocabulary is small next to its text)."""

    def __init__(self) -> None:
        self._cache: dict[str, int] = {}

    def hashes(self, words: list[str]) -> np.ndarray:
        """One uint64 per word, in order."""
        cache = self._cache
        for w in set(words).difference(cache):  # (a dict, not .keys(): the fast path)
            cache[w] = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(),
                                      "little")
        return np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))


def ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hashes (uint64) of the ``len - n + 1`` word n-grams, in position order; empty if the
    text has fewer than ``n`` words."""
    count = len(word_hashes) - n + 1
    if count <= 0:
        return _EMPTY
    acc = word_hashes[:count].copy()
    for k in range(1, n):  # wraps mod 2^64, as intended
        acc *= _MULT
        acc += word_hashes[k : k + count]
    acc ^= acc >> np.uint64(30)  # SplitMix64 finaliser: every input bit reaches every output bit
    acc *= _MIX1
    acc ^= acc >> np.uint64(27)
    acc *= _MIX2
    acc ^= acc >> np.uint64(31)
    return acc


def shingles(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """The distinct n-gram hashes of a text as 32-bit values (what MinHash takes), sorted.

    A text shorter than ``n`` words is one shingle (the whole text); an empty one has none.
    """
    if len(word_hashes) == 0:
        return np.zeros(0, dtype=np.uint32)
    grams = ngram_hashes(word_hashes, min(n, len(word_hashes)))
    return np.unique((grams >> np.uint64(32)).astype(np.uint32))
