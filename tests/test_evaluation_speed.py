"""The faster evaluation measures exactly what the reference implementation measured.

``tests/support/reference_eval`` is the evaluation as it was before the speed-up (masked
copies of the scores, ARPACK for large vocabularies). On the same split the model's metrics
must agree within 1e-6; a baseline may move only where an approximation is documented
(the randomized truncated SVD of PPMI-SVD), by at most 0.005.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flavor_ml.data.split import holdout_mask
from flavor_ml.eval import baselines
from flavor_ml.eval.metrics import evaluate_embeddings
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.training.train_embeddings import train_embeddings
from tests.support.reference_eval import baselines as reference_baselines
from tests.support.reference_eval.metrics import evaluate_embeddings as reference_evaluate
from tests.test_training import CUISINE_OF, STAPLES, planted_baskets

PARAMS = EvaluationParams(holdout_fraction=0.2, min_count=5)
EXACT = 1e-6


def read_flavor_network(directory: Path) -> list[list[str]]:
    baskets = []
    for name in ("allr_recipes.txt", "menu_recipes.txt"):
        for line in (directory / name).read_text(encoding="utf-8").splitlines():
            basket = list(dict.fromkeys(f.replace("_", " ") for f in line.split("\t")[1:] if f))
            if basket:
                baskets.append(basket)
    return baskets


def _split(baskets, params=PARAMS):
    mask = holdout_mask(baskets, params)
    return [b for b, h in zip(baskets, mask) if not h], [b for b, h in zip(baskets, mask) if h]


@pytest.fixture(scope="module")
def planted():
    train, test = _split(planted_baskets(1500, seed=3))
    embeddings = train_embeddings(train, TrainingParams(epochs=5, vector_size=16, deterministic=True))
    categories = dict(CUISINE_OF) | {staple: "staple" for staple in STAPLES}
    return embeddings, train, test, categories


def test_model_and_baseline_metrics_are_those_of_the_reference_implementation(planted):
    embeddings, train, test, categories = planted
    fast = evaluate_embeddings(embeddings, train, test, PARAMS, categories)
    slow = reference_evaluate(embeddings, train, test, PARAMS, categories)
    assert fast.metrics.keys() == slow.metrics.keys()
    for name, value in slow.metrics.items():
        assert abs(fast.metrics[name] - value) <= EXACT, name
    for scorer, values in slow.baselines.items():
        for name, value in values.items():
            assert abs(fast.baselines[scorer][name] - value) <= EXACT, f"{scorer}/{name}"
    assert (fast.completion_queries, fast.pair_queries, fast.category_items) == (
        slow.completion_queries,
        slow.pair_queries,
        slow.category_items,
    )


def test_ties_and_context_cells_count_as_in_the_reference():
    # Integer scores make ties common, including ties between a target and its context.
    import scipy.sparse as sp

    from flavor_ml.eval.metrics import rank_hits
    from tests.support.reference_eval.metrics import rank_hits as reference_rank_hits

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(300, 40)).astype(np.float64)
    targets = rng.integers(0, 40, size=300)
    rows, cols = [], []
    for row, target in enumerate(targets):
        context = [c for c in rng.choice(40, size=rng.integers(1, 8), replace=False) if c != target]
        rows += [row] * len(context)
        cols += context
    excluded = sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=scores.shape)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 42))])
    for k in (1, 5, 10):
        fast = rank_hits(scores, targets, excluded, k, harmonic)
        slow = reference_rank_hits(scores, targets, excluded, k, harmonic)
        np.testing.assert_allclose(fast[0], slow[0], atol=EXACT)
        np.testing.assert_allclose(fast[1], slow[1], atol=EXACT)


@pytest.mark.slow
@pytest.mark.shared_data
def test_randomized_svd_moves_ppmi_svd_by_less_than_0_005_on_flavor_network(shared_datasets: Path, monkeypatch):
    train, test = _split(read_flavor_network(shared_datasets / "flavor-network"), EvaluationParams())
    embeddings = train_embeddings(train[:20000], TrainingParams(epochs=2, vector_size=16))
    params = EvaluationParams()
    exact = reference_evaluate(embeddings, train, test, params)
    monkeypatch.setattr(baselines, "_DENSE_SVD_LIMIT", 0)  # force the randomized SVD on 369 ingredients
    monkeypatch.setattr(reference_baselines, "_DENSE_SVD_LIMIT", 10**9)
    approximate = evaluate_embeddings(embeddings, train, test, params)
    for name, value in exact.baselines["ppmi_svd"].items():
        assert abs(approximate.baselines["ppmi_svd"][name] - value) <= 0.005, name
    for name, value in exact.metrics.items():
        assert abs(approximate.metrics[name] - value) <= EXACT, name
