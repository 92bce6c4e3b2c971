"""Near-duplicate statements: MinHash signatures over word shingles, an LSH index to find
candidates, and a greedy "first one wins" rule.

``NearDuplicateFilter.check(key, shingles)`` is called once per text, tasks in ascending id
order (then, with ``curate.include_seed_problems``, the seed problems keyed ``"seed:<id>"``).
It looks the text's signature up among the texts kept so far; if a candidate's estimated
Jaccard similarity reaches the threshold, the text is a near duplicate of the one among them
kept first, i.e. the lowest task id (returned), else it is kept and indexed. So each removed
text names one that stays, a seed never displaces a task, and each kept one is below the
threshold against every other kept one. This is not the transitive closure (A~B, B~C with
A!~C keeps A and C): chains of small edits do not swallow distinct tasks.

MinHash and the LSH banding come from datasketch; the signatures of kept tasks stay in memory
(``num_perm`` x 4 bytes each, ~0.6 KB at 128) for the exact estimate that weeds out LSH's
false candidates. At 100k kept tasks that is ~60 MB plus the LSH tables (~100 MB).

When datasketch finds no banding for a (threshold, num_perm) pair (very high thresholds with
few permutations give one band), two bands of ``num_perm // 2`` rows are used: candidates then
need half the signature to agree, which any pair at such a threshold does with high odds.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np


class NearDuplicateFilter:
    def __init__(self, threshold: float, num_perm: int, seed: int = 1) -> None:
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.num_perm = num_perm
        try:
            self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        except ValueError:  # "the number of bands are too small (b < 2)"
            self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm,
                                   params=(2, num_perm // 2))
        # Shingles arrive already hashed to 32 bits: int() hands them to MinHash as they are.
        self._template = MinHash(num_perm=num_perm, seed=seed, hashfunc=int)
        self._kept: dict[Hashable, tuple[int, np.ndarray]] = {}  # key -> (rank, signature)

    @property
    def kept(self) -> int:
        return len(self._kept)

    def check(self, key: Hashable, shingles: np.ndarray) -> Hashable | None:
        """The kept key that ``key`` near-duplicates, or None (then ``key`` is kept).

        A statement with no shingles (empty text) is kept and never matched.
        """
        if len(shingles) == 0:
            return None
        m = self._template.copy()
        m.update_batch(shingles.tolist())
        sig = m.hashvalues
        best, best_rank = None, None
        for other in self._lsh.query(m):
            rank, other_sig = self._kept[other]
            if (best_rank is None or rank < best_rank) and \
                    self.similarity(sig, other_sig) >= self.threshold:
                best, best_rank = other, rank
        if best is None:
            self._lsh.insert(key, m, check_duplication=False)
            self._kept[key] = (len(self._kept), sig)
        return best

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Estimated Jaccard similarity of two signatures: the share of equal slots."""
        return float(np.count_nonzero(a == b)) / self.num_perm
