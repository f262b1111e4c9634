"""Basket co-occurrence counts, accumulated a batch of baskets at a time.

Every scorer fitted on the training side (EASE, co-occurrence, PPMI-SVD, popularity) and the
``min_count`` eligibility need only ``G = XᵀX`` of the baskets x vocabulary 0/1 matrix ``X``:
pair counts off the diagonal, basket counts on it. ``G`` is vocabulary x vocabulary, so building
it from a stream of baskets keeps memory bounded by a batch and the vocabulary, not the corpus.
The counts are integers, so the sum over batches is exactly the product of the whole matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import scipy.sparse as sp

GRAM_BATCH = 65_536  # baskets turned into one incidence matrix at a time


def incidence_matrix(baskets: Sequence[Sequence[str]], index: Mapping[str, int]) -> sp.csr_array:
    """Baskets x vocabulary 0/1 matrix; names outside ``index`` are ignored, repeats count once."""
    rows: list[int] = []
    cols: list[int] = []
    for row, basket in enumerate(baskets):
        known = {index[name] for name in basket if name in index}
        rows.extend([row] * len(known))
        cols.extend(known)
    data = np.ones(len(rows), dtype=np.float64)
    return sp.csr_array((data, (rows, cols)), shape=(len(baskets), len(index)))


@dataclass(frozen=True)
class BasketGram:
    """``XᵀX`` (float64, vocabulary x vocabulary) of ``baskets`` baskets."""

    matrix: sp.csr_array
    baskets: int

    @property
    def counts(self) -> np.ndarray:
        """How many baskets hold each ingredient."""
        return np.asarray(self.matrix.diagonal(), dtype=np.float64)


def basket_gram(baskets: Iterable[Sequence[str]], index: Mapping[str, int], batch: int = GRAM_BATCH) -> BasketGram:
    """``XᵀX`` of ``baskets`` (read once, any iterable) over the names of ``index``."""
    n = len(index)
    total = sp.csr_array((n, n), dtype=np.float64)
    rows = 0
    stream = iter(baskets)
    while part := list(islice(stream, batch)):
        x = incidence_matrix(part, index)
        total = (total + (x.T @ x)).tocsr()
        rows += len(part)
    return BasketGram(total, rows)
