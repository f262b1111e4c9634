"""The evaluation's held-out side in flat arrays measures exactly what the list-based construction measured.

``tests/support/reference_eval/queries.py`` and ``intervals.py`` are the query construction
and the bootstrap as they were (a Python list per query, the draws as int64 then float32).
The flat construction must give the very same sparse matrices, targets and baskets (same
rows, same cells in the same order, same weights), and the bootstrap the very same draws and
intervals, so that no metric moves; and it must stay small where the old one grew with the
held-out side.
"""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest

from flavor_ml.data.split import holdout_mask
from flavor_ml.eval import queries as flat
from flavor_ml.eval.intervals import ClusterBootstrap
from flavor_ml.eval.metrics import evaluate_embeddings, heldout_partners
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.training.train_embeddings import train_embeddings
from tests.support.reference_eval import intervals as reference_intervals
from tests.support.reference_eval import queries as reference
from tests.support.reference_eval.metrics import heldout_partners as reference_partners
from tests.test_training import CUISINE_OF, planted_baskets

NAMES = [f"n{i:02d}" for i in range(60)]
INDEX = {name: i for i, name in enumerate(NAMES[:50])}  # the last 10 names are unknown to the vocabulary


def messy_baskets(count: int = 2000, seed: int = 0) -> list[list[str]]:
    """Baskets of 0 to 30 draws from 60 names: repeats, unknown names, empty and one-name baskets."""
    rng = random.Random(seed)
    return [[rng.choice(NAMES) for _ in range(rng.choice([0, 1, 2, 3, 5, 9, 15, 30]))] for _ in range(count)]


def assert_same_queries(new: flat.CompletionQueries, old: reference.CompletionQueries) -> None:
    assert new.targets.tolist() == old.targets.tolist()
    assert new.baskets.tolist() == old.baskets.tolist()
    assert new.weights.shape == old.weights.shape
    assert new.weights.indptr.tolist() == old.weights.indptr.tolist()
    assert new.weights.indices.tolist() == old.weights.indices.tolist()
    assert new.weights.data.tolist() == old.weights.data.tolist()  # exactly: same weights, same order


@pytest.fixture(scope="module")
def baskets() -> list[list[str]]:
    return messy_baskets()


@pytest.fixture(scope="module")
def eligible() -> np.ndarray:
    return np.random.default_rng(1).random(len(INDEX)) < 0.7


def test_leave_one_out_queries_are_those_of_the_list_construction(baskets, eligible):
    assert_same_queries(flat.leave_one_out(baskets, INDEX, eligible), reference.leave_one_out(baskets, INDEX, eligible))


def test_leave_one_out_built_in_many_blocks_is_the_same(baskets, eligible, monkeypatch):
    monkeypatch.setattr(flat, "_BLOCK_CELLS", 50)  # smaller than the longest basket's cells: one basket a block
    assert_same_queries(flat.leave_one_out(baskets, INDEX, eligible), reference.leave_one_out(baskets, INDEX, eligible))


@pytest.mark.parametrize("m", [1, 2, 3, 7])
def test_known_slices_are_those_of_the_list_construction(baskets, eligible, m):
    for seed in (0, 13):
        assert_same_queries(
            flat.with_known(baskets, INDEX, eligible, m, seed), reference.with_known(baskets, INDEX, eligible, m, seed)
        )


@pytest.mark.parametrize("h", [1, 2, 3])
def test_hidden_slices_are_those_of_the_list_construction(baskets, eligible, h):
    for seed in (0, 13):
        assert_same_queries(
            flat.with_hidden(baskets, INDEX, eligible, h, seed),
            reference.with_hidden(baskets, INDEX, eligible, h, seed),
        )


def test_baskets_without_queries_give_empty_query_sets(eligible):
    for few in ([], [[], ["n55"], ["n01"]]):  # nothing, an empty basket, only unknown names, one known name
        assert len(flat.leave_one_out(few, INDEX, eligible)) == 0
        assert len(flat.with_known(few, INDEX, eligible, 2, 0)) == 0
        assert flat.leave_one_out(few, INDEX, eligible).weights.shape == (0, len(INDEX))


def test_known_baskets_read_a_stream_once_and_keep_first_occurrences(baskets):
    known = flat.KnownBaskets(iter(baskets), INDEX)  # a one-shot iterator, as the chunk files are read
    assert len(known) == len(baskets)
    expected = reference.known_ingredients(baskets, INDEX)
    assert [known.basket(b) for b in range(len(baskets))] == expected
    assert known.indices.dtype == np.int32  # 4 bytes per held-out ingredient, not a Python int


def test_held_out_pairs_are_those_of_the_reference(baskets):
    new = heldout_partners(baskets, INDEX)
    old = reference_partners(baskets, INDEX)
    assert (new != old).nnz == 0 and new.nnz == old.nnz > 0


def test_bootstrap_draws_and_intervals_are_those_of_the_reference():
    rng = np.random.default_rng(1)
    for clusters in (1, 7, 3000):
        groups, values = rng.integers(0, clusters, size=3 * clusters), rng.random(3 * clusters)
        for samples in (1000, 250, 37):  # whole blocks of draws and a part of one
            new, old = ClusterBootstrap(groups, 13, samples), reference_intervals.ClusterBootstrap(groups, 13, samples)
            assert new.interval(values) == old.interval(values), (clusters, samples)


def test_bootstrap_keeps_about_one_byte_per_draw():
    # The old draws peaked at 12 bytes each (int64 drawn, float32 kept): 240 MB for 20,000 baskets.
    tracemalloc.start()
    try:
        ClusterBootstrap(np.arange(20_000), seed=13)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1000 * 20_000


def test_a_report_from_a_stream_of_held_out_baskets_is_the_report_from_a_list():
    params = EvaluationParams(holdout_fraction=0.2, min_count=5)
    baskets = planted_baskets(1200, seed=5)
    mask = holdout_mask(baskets, params)
    train = [b for b, h in zip(baskets, mask) if not h]
    test = [b + ["never seen"] for b, h in zip(baskets, mask) if h]
    cuisines = [CUISINE_OF.get(next((n for n in b if n in CUISINE_OF), ""), None) for b in test]
    embeddings = train_embeddings(train, TrainingParams(epochs=3, vector_size=16, deterministic=True))
    listed = evaluate_embeddings(embeddings, train, test, params, test_cuisines=cuisines)
    streamed = evaluate_embeddings(embeddings, iter(train), iter(test), params, test_cuisines=cuisines)
    assert any(name.startswith("cuisine_") for name in listed.slices)
    assert streamed.digest() == listed.digest()
