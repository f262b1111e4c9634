"""Completion queries built from held-out baskets: the leave-one-out set and its slices.

A query is a weighted context (a row of a sparse matrix, weights summing to 1), one hidden
target and the held-out basket it came from (the unit the bootstrap resamples). Targets are
always ingredients seen at least ``min_count`` times in training; contexts hold only
vocabulary ingredients.

- :func:`leave_one_out`: every eligible ingredient of every basket with another known one,
  hidden in turn, the rest of the basket as context (the headline probe).
- :func:`with_known`: the same question with exactly ``m`` known ingredients: per basket
  with more than ``m`` known ingredients, one eligible target and ``m`` others drawn at
  random (seeded) — how completion improves with what the cook has told us.
- :func:`with_hidden`: ``h`` eligible ingredients hidden at once, the rest (at least 2) as
  context; one query per hidden ingredient with the same context, so the mean hit@k over a
  basket's queries is its recall@k (the other hidden ingredients stay candidates).

Memory: the held-out baskets are kept as one flat array of vocabulary indices
(:class:`KnownBaskets`) and the queries are built from it with numpy, never as a Python list
per query: the held-out side of a large corpus has millions of queries.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

_BLOCK_CELLS = 1 << 22  # leave-one-out context cells built at once (a few int64 arrays of 32 MiB)


class KnownBaskets:
    """Held-out baskets as vocabulary indices, flat: basket ``b`` is ``indices[offsets[b]:offsets[b + 1]]``.

    Names outside ``index`` are dropped and repeats kept once, in order of first occurrence.
    ``baskets`` is read once, so a stream of chunk files will do.
    """

    def __init__(self, baskets: Iterable[Sequence[str]], index: Mapping[str, int]) -> None:
        flat, ends = array("q"), array("q", [0])
        for basket in baskets:
            flat.extend(dict.fromkeys(index[name] for name in basket if name in index))
            ends.append(len(flat))
        self.indices = np.frombuffer(flat, dtype=np.int64).astype(np.int32 if len(index) < 2**31 else np.int64)
        self.offsets = np.frombuffer(ends, dtype=np.int64).copy()
        self.lengths = np.diff(self.offsets)
        # Each basket's indices ascending (the order of a canonical CSR row), and where each position's
        # ingredient sits in that order (the cell a leave-one-out query drops).
        by_basket = np.repeat(np.arange(len(self.lengths), dtype=np.int64), self.lengths)
        order = np.lexsort((self.indices, by_basket))
        self.ascending = self.indices[order]
        self.rank = np.empty(len(order), dtype=np.int64)
        self.rank[order] = np.arange(len(order)) - np.repeat(self.offsets[:-1], self.lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def basket(self, number: int) -> list[int]:
        """Basket ``number``'s indices, in order of first occurrence."""
        values: list[int] = self.indices[self.offsets[number] : self.offsets[number + 1]].tolist()
        return values

    def incidence(self, n_items: int) -> sp.csr_array:
        """Baskets x vocabulary 0/1 matrix."""
        data = np.ones(len(self.ascending), dtype=np.float64)
        return sp.csr_array((data, self.ascending, self.offsets), shape=(len(self), n_items))


class CompletionQueries:
    """Contexts (``weights``), hidden ``targets`` and the held-out ``baskets`` they came from."""

    def __init__(
        self, context: np.ndarray, lengths: np.ndarray, targets: np.ndarray, baskets: np.ndarray, n_items: int
    ) -> None:
        """``context`` holds the queries' contexts one after the other (``lengths`` of them), each ascending."""
        lengths = np.asarray(lengths, dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        vals = np.repeat(1.0 / np.maximum(lengths, 1), lengths)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.baskets = np.asarray(baskets, dtype=np.int64)
        self.weights = sp.csr_array((vals, np.asarray(context), indptr), shape=(len(self.targets), n_items))

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, mask: np.ndarray) -> CompletionQueries:
        """The queries where ``mask`` is True (same order)."""
        picked = CompletionQueries.__new__(CompletionQueries)
        picked.targets, picked.baskets = self.targets[mask], self.baskets[mask]
        picked.weights = self.weights[np.flatnonzero(mask)]
        return picked


def known_baskets(baskets: Iterable[Sequence[str]] | KnownBaskets, index: Mapping[str, int]) -> KnownBaskets:
    """``baskets`` mapped to vocabulary indices, unless they already are: map once, slice many times."""
    return baskets if isinstance(baskets, KnownBaskets) else KnownBaskets(baskets, index)


def leave_one_out(
    test_baskets: Iterable[Sequence[str]] | KnownBaskets, index: Mapping[str, int], eligible: np.ndarray
) -> CompletionQueries:
    """Every eligible ingredient of every basket hidden in turn, the rest of the basket as context.

    Queries come basket by basket, targets in the basket's order; built a block of baskets at a time.
    """
    known = known_baskets(test_baskets, index)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    start = 0
    while start < len(known):
        # A basket of n known ingredients makes at most n queries of n cells (before the target is dropped).
        cells = np.cumsum(known.lengths[start:] ** 2)
        stop = start + max(1, int(np.searchsorted(cells, _BLOCK_CELLS, side="right")))
        parts.append(_leave_one_out_block(known, eligible, start, stop))
        start = stop
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return CompletionQueries(empty, empty, empty, empty, len(index))
    context, lengths, targets, baskets = (np.concatenate(column) for column in zip(*parts))
    return CompletionQueries(context, lengths, targets, baskets, len(index))


def _leave_one_out_block(
    known: KnownBaskets, eligible: np.ndarray, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(contexts, their lengths, targets, baskets) of the leave-one-out queries of baskets ``start:stop``."""
    lengths = known.lengths[start:stop]
    first, last = known.offsets[start], known.offsets[stop]
    flat, ascending, rank = known.indices[first:last], known.ascending[first:last], known.rank[first:last]
    basket_start = known.offsets[start:stop] - first
    length_at = np.repeat(lengths, lengths)  # per position: its basket's length
    query_at = np.flatnonzero((length_at >= 2) & eligible[flat])  # in order: basket by basket, as given
    size = length_at[query_at]
    basket_of = np.repeat(np.arange(start, stop), lengths)[query_at]
    # Each query's cells: its whole basket in ascending order, but for the target's cell.
    cell_start = np.repeat(np.cumsum(size) - size, size)
    within = np.arange(int(size.sum())) - cell_start
    source = np.repeat(basket_start[basket_of - start], size) + within
    kept = within != np.repeat(rank[query_at], size)
    return ascending[source[kept]], size - 1, flat[query_at].astype(np.int64), basket_of


class _QueryBuilder:
    """Accumulates queries one at a time into flat arrays (the seeded slices draw per basket)."""

    def __init__(self) -> None:
        self.context, self.lengths, self.targets, self.baskets = array("q"), array("q"), array("q"), array("q")

    def add(self, context: list[int], target: int, basket: int) -> None:
        self.context.extend(sorted(context))
        self.lengths.append(len(context))
        self.targets.append(target)
        self.baskets.append(basket)

    def build(self, n_items: int) -> CompletionQueries:
        def flat(values: array[int]) -> np.ndarray:
            return np.frombuffer(values, dtype=np.int64) if len(values) else np.zeros(0, dtype=np.int64)

        return CompletionQueries(
            flat(self.context), flat(self.lengths), flat(self.targets), flat(self.baskets), n_items
        )


def with_known(
    test_baskets: Iterable[Sequence[str]] | KnownBaskets,
    index: Mapping[str, int],
    eligible: np.ndarray,
    m: int,
    seed: int,
) -> CompletionQueries:
    """One query per basket with more than ``m`` known ingredients: a random eligible target, ``m`` random others."""
    rng = random.Random(f"known-{seed}-{m}")  # string seeds are hashed with sha512: the same in every process
    known = known_baskets(test_baskets, index)
    queries = _QueryBuilder()
    for number in np.flatnonzero(known.lengths > m).tolist():
        basket = known.basket(number)
        candidates = [i for i in basket if eligible[i]]
        if not candidates:
            continue
        target = candidates[rng.randrange(len(candidates))]
        others = [i for i in basket if i != target]
        queries.add([others[j] for j in sorted(rng.sample(range(len(others)), m))], target, number)
    return queries.build(len(index))


def with_hidden(
    test_baskets: Iterable[Sequence[str]] | KnownBaskets,
    index: Mapping[str, int],
    eligible: np.ndarray,
    h: int,
    seed: int,
    min_context: int = 2,
) -> CompletionQueries:
    """``h`` random eligible ingredients hidden at once per basket, at least ``min_context`` others known."""
    rng = random.Random(f"hidden-{seed}-{h}")
    known = known_baskets(test_baskets, index)
    queries = _QueryBuilder()
    for number in np.flatnonzero(known.lengths - h >= min_context).tolist():
        basket = known.basket(number)
        candidates = [i for i in basket if eligible[i]]
        if len(candidates) < h:
            continue
        hidden = set(rng.sample(candidates, h))
        context = [i for i in basket if i not in hidden]
        for target in sorted(hidden):
            queries.add(context, target, number)
    return queries.build(len(index))
