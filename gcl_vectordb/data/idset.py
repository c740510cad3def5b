"""A compact set of string ids for duplicate detection over millions of products.

A Python `set` of 5M product-id strings costs ~400 MB; this keeps one 64-bit hash per id (8 bytes) in
sorted numpy runs that merge like a log-structured tree: a batch of `b` lookups costs O(b · log n · runs)
with at most ~log2(n / first_run) runs. Two different ids share a hash with probability ~n² / 2⁶⁵
(≈ 7·10⁻⁷ at 5M ids), in which case the later one is reported as a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def hash_ids(ids: Sequence[str]) -> np.ndarray:
    """Deterministic 64-bit hashes `(len(ids),) uint64` (pandas' SipHash, fixed key: any process)."""
    from pandas.util import hash_array  # pandas (0.6 s): not imported by `import gcl_vectordb.data`

    return hash_array(np.asarray(ids, dtype=object), categorize=False)


class CompactIdSet:
    """Membership of ids seen so far, 8 bytes per id."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []  # sorted, unique, sizes decreasing from first to last
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            where = np.searchsorted(run, hashes)
            where[where == len(run)] = 0
            found |= run[where] == hashes
        return found

    def add_batch(self, ids: Sequence[str]) -> np.ndarray:
        """Add ids in order; return a `(len(ids),) bool` mask of those seen before (incl. in this batch)."""
        return self.add_hashes(hash_ids(ids))

    def add_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """As `add_batch`, for precomputed `hash_ids` values."""
        if len(hashes) == 0:
            return np.zeros(0, dtype=bool)
        seen = self._contains(hashes)
        _, first = np.unique(hashes, return_index=True)
        repeated_in_batch = np.ones(len(hashes), dtype=bool)
        repeated_in_batch[first] = False
        seen |= repeated_in_batch
        self._push(np.unique(hashes[~seen]))
        return seen

    def _push(self, run: np.ndarray) -> None:
        if len(run) == 0:
            return
        self._size += len(run)
        # Merge while the newest run is at least as large as the one before it (keeps O(log n) runs).
        while self._runs and len(self._runs[-1]) <= len(run):
            # Runs are disjoint and sorted: a stable (timsort) sort of the two merges them in linear time.
            run = np.concatenate((self._runs.pop(), run))
            run.sort(kind="stable")
        self._runs.append(run)
