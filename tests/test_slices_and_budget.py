"""Probes by slice with bootstrap intervals, and the adaptive training budget."""

from __future__ import annotations

import numpy as np
import pytest

from flavor_ml.data.split import holdout_mask
from flavor_ml.eval.intervals import bootstrap_interval
from flavor_ml.eval.metrics import evaluate_embeddings
from flavor_ml.eval.queries import leave_one_out, with_hidden, with_known
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.training.budget import MAX_EPOCHS, MIN_EPOCHS, adaptive_epochs, resolve_budget
from flavor_ml.training.train_embeddings import train_embeddings
from tests.test_training import CUISINE_OF, planted_baskets

PARAMS = EvaluationParams(holdout_fraction=0.2, min_count=5)
BASKETS = [["a", "b", "c", "d", "e", "f", "g", "h", "i"], ["a", "b", "c"], ["a", "x"]]
INDEX = {name: i for i, name in enumerate("abcdefghi")}


def test_known_slices_give_exactly_m_known_ingredients_and_an_eligible_target():
    eligible = np.array([True, True, True, False, True, True, True, True, True])
    for m in (2, 3, 7):
        queries = with_known(BASKETS, INDEX, eligible, m, seed=1)
        contexts = [queries.weights[[i]].indices.tolist() for i in range(len(queries))]
        assert all(len(c) == m for c in contexts)
        assert all(eligible[t] and t not in c for t, c in zip(queries.targets, contexts))
        assert len(queries) == (2 if m == 2 else 1)  # ["a", "b", "c"] has 3 known: one query for m = 2 only
    again = with_known(BASKETS, INDEX, eligible, 3, seed=1)
    assert again.targets.tolist() == with_known(BASKETS, INDEX, eligible, 3, seed=1).targets.tolist()


def test_hidden_slices_hide_h_at_once_and_share_the_context():
    eligible = np.ones(len(INDEX), dtype=bool)
    queries = with_hidden(BASKETS, INDEX, eligible, 3, seed=0)
    assert len(queries) == 3 and set(queries.baskets.tolist()) == {0}  # the 3-ingredient basket leaves < 2 known
    contexts = {tuple(queries.weights[[i]].indices.tolist()) for i in range(3)}
    assert len(contexts) == 1
    (context,) = contexts
    assert len(context) == 6 and not set(context) & set(queries.targets.tolist())


def test_leave_one_out_records_the_basket_of_each_query():
    queries = leave_one_out(BASKETS, INDEX, np.ones(len(INDEX), dtype=bool))
    assert queries.baskets.tolist() == [0] * 9 + [1] * 3


def test_bootstrap_intervals_cover_the_mean_and_narrow_with_more_baskets():
    rng = np.random.default_rng(0)
    small, large = rng.random(200) < 0.6, rng.random(20_000) < 0.6
    low, high = bootstrap_interval(small.astype(float), np.arange(200) // 4, seed=1)
    assert low < small.mean() < high
    wide = high - low
    low, high = bootstrap_interval(large.astype(float), np.arange(20_000) // 4, seed=1)
    assert low < large.mean() < high and high - low < wide / 5
    assert bootstrap_interval(small.astype(float), np.arange(200) // 4, seed=1) == bootstrap_interval(
        small.astype(float), np.arange(200) // 4, seed=1
    )


@pytest.fixture(scope="module")
def report():
    baskets = planted_baskets(1500, seed=3)
    mask = holdout_mask(baskets, PARAMS)
    train = [b for b, h in zip(baskets, mask) if not h]
    test = [b for b, h in zip(baskets, mask) if h]
    cuisines = [CUISINE_OF.get(next((n for n in b if n in CUISINE_OF), ""), None) for b in test]
    embeddings = train_embeddings(train, TrainingParams(epochs=5, vector_size=16, deterministic=True))
    return evaluate_embeddings(embeddings, train, test, PARAMS, dict(CUISINE_OF), test_cuisines=cuisines)


def test_every_slice_is_reported_for_the_model_the_served_scorer_and_the_telling_baselines(report):
    expected = (
        {f"known_{m}" for m in range(2, 8)}
        | {"hidden_2", "hidden_3", "rare_targets"}
        | {f"cuisine_{c}" for c in ("italian", "mexican", "japanese", "indian")}
    )
    assert expected <= set(report.slices)
    for name, by_scorer in report.slices.items():
        assert set(by_scorer) == {"model", "served", "ease", "ppmi_svd", "popularity"}, name
        assert report.slice_queries[name] > 0
    assert set(report.slices["hidden_2"]["model"]) == {"recall10"}
    assert set(report.slices["known_3"]["model"]) == {"completion_hr10"}


def test_flat_names_carry_slices_intervals_and_the_served_scorer(report):
    flat = report.flat()
    for name in (
        "slice/known_2/completion_hr10",
        "slice/hidden_3/ease/recall10",
        "slice/rare_targets/served/completion_hr10",
        "served/completion_hr10",
        "ease/completion_hr10",
        "completion_hr10/ci95_low",
        "completion_hr10/ci95_high",
        "served/completion_hr10/ci95_high",
        "category_knn_acc/ci95_low",
    ):
        assert name in flat, name
    assert flat["completion_hr10/ci95_low"] <= flat["completion_hr10"] <= flat["completion_hr10/ci95_high"]
    assert report.served_scorer == "item2vec" and flat["served/completion_hr10"] == flat["completion_hr10"]


@pytest.mark.parametrize(("baskets", "epochs"), [(2_500, 30), (13_000, 30), (40_000, 10), (100_000, 5), (2_000_000, 5)])
def test_the_default_budget_gives_small_corpora_more_epochs(baskets, epochs):
    assert adaptive_epochs(baskets) == epochs
    assert MIN_EPOCHS <= adaptive_epochs(baskets) <= MAX_EPOCHS


def test_explicit_epochs_win_and_derived_ones_are_reported():
    params, derived = resolve_budget(TrainingParams(epochs=7, head_epochs=3), 1_000)
    assert params.epochs == 7 and params.head_epochs == 3 and derived == {"epochs_source": "explicit"}
    params, derived = resolve_budget(TrainingParams(), 20_000)
    assert params.epochs == derived["epochs"] == 20 and derived["epochs_source"] == "adaptive"
    # The completion head runs as many passes as the vectors, unless told otherwise.
    assert params.head_epochs == derived["head_epochs"] == 20


def test_training_without_epochs_uses_the_budget(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="flavor_ml.training.train_embeddings"):
        train_embeddings(planted_baskets(300), TrainingParams(vector_size=8, deterministic=True))
    assert any(f"{MAX_EPOCHS} epochs" in r.getMessage() for r in caplog.records)
