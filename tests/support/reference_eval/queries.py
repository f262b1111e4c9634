"""Completion queries as built before the flat rewrite (verbatim but for this line), for the equivalence test.
Completion queries built from held-out baskets: the leave-one-out set and its slices.

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
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp


class CompletionQueries:
    """Contexts (``weights``), hidden ``targets`` and the held-out ``baskets`` they came from."""

    def __init__(self, contexts: list[list[int]], targets: list[int], baskets: list[int], n_items: int) -> None:
        lengths = np.fromiter((len(c) for c in contexts), dtype=np.int64, count=len(contexts))
        rows = np.repeat(np.arange(len(contexts)), lengths)
        cols = np.fromiter((i for c in contexts for i in c), dtype=np.int64, count=len(rows))
        vals = np.repeat(1.0 / np.maximum(lengths, 1), lengths)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.baskets = np.asarray(baskets, dtype=np.int64)
        self.weights = sp.csr_array((vals, (rows, cols)), shape=(len(targets), n_items))

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, mask: np.ndarray) -> CompletionQueries:
        """The queries where ``mask`` is True (same order)."""
        picked = CompletionQueries.__new__(CompletionQueries)
        picked.targets, picked.baskets = self.targets[mask], self.baskets[mask]
        picked.weights = self.weights[np.flatnonzero(mask)]
        return picked


def known_ingredients(test_baskets: Sequence[Sequence[str]], index: Mapping[str, int]) -> list[list[int]]:
    """Each basket's vocabulary ingredients (indices, first occurrence kept): build once, slice many times."""
    return [list(dict.fromkeys(index[name] for name in basket if name in index)) for basket in test_baskets]


def _known_lists(baskets: Sequence[Sequence[str]] | KnownBaskets, index: Mapping[str, int]) -> list[list[int]]:
    return baskets.lists if isinstance(baskets, KnownBaskets) else known_ingredients(baskets, index)


class KnownBaskets:
    """Held-out baskets already mapped to vocabulary indices (see :func:`known_ingredients`)."""

    def __init__(self, test_baskets: Sequence[Sequence[str]], index: Mapping[str, int]) -> None:
        self.lists = known_ingredients(test_baskets, index)


def leave_one_out(
    test_baskets: Sequence[Sequence[str]] | KnownBaskets, index: Mapping[str, int], eligible: np.ndarray
) -> CompletionQueries:
    """Every eligible ingredient of every basket hidden in turn, the rest of the basket as context."""
    contexts: list[list[int]] = []
    targets: list[int] = []
    baskets: list[int] = []
    for number, known in enumerate(_known_lists(test_baskets, index)):
        if len(known) < 2:
            continue
        for target in known:
            if eligible[target]:
                contexts.append([i for i in known if i != target])
                targets.append(target)
                baskets.append(number)
    return CompletionQueries(contexts, targets, baskets, len(index))


def with_known(
    test_baskets: Sequence[Sequence[str]] | KnownBaskets,
    index: Mapping[str, int],
    eligible: np.ndarray,
    m: int,
    seed: int,
) -> CompletionQueries:
    """One query per basket with more than ``m`` known ingredients: a random eligible target, ``m`` random others."""
    rng = random.Random(f"known-{seed}-{m}")  # string seeds are hashed with sha512: the same in every process
    contexts: list[list[int]] = []
    targets: list[int] = []
    baskets: list[int] = []
    for number, known in enumerate(_known_lists(test_baskets, index)):
        if len(known) <= m:
            continue
        candidates = [i for i in known if eligible[i]]
        if not candidates:
            continue
        target = candidates[rng.randrange(len(candidates))]
        others = [i for i in known if i != target]
        contexts.append([others[j] for j in sorted(rng.sample(range(len(others)), m))])
        targets.append(target)
        baskets.append(number)
    return CompletionQueries(contexts, targets, baskets, len(index))


def with_hidden(
    test_baskets: Sequence[Sequence[str]] | KnownBaskets,
    index: Mapping[str, int],
    eligible: np.ndarray,
    h: int,
    seed: int,
    min_context: int = 2,
) -> CompletionQueries:
    """``h`` random eligible ingredients hidden at once per basket, at least ``min_context`` others known."""
    rng = random.Random(f"hidden-{seed}-{h}")
    contexts: list[list[int]] = []
    targets: list[int] = []
    baskets: list[int] = []
    for number, known in enumerate(_known_lists(test_baskets, index)):
        if len(known) - h < min_context:
            continue
        candidates = [i for i in known if eligible[i]]
        if len(candidates) < h:
            continue
        hidden = set(rng.sample(candidates, h))
        context = [i for i in known if i not in hidden]
        for target in sorted(hidden):
            contexts.append(context)
            targets.append(target)
            baskets.append(number)
    return CompletionQueries(contexts, targets, baskets, len(index))
