"""Probes and baselines: what they measure, on planted baskets and on hand-checked cases."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from flavor_ml.data.split import holdout_mask
from flavor_ml.errors import CorpusFormatError, EvaluationError
from flavor_ml.eval.baselines import PairScorer, build_baselines, model_scorer
from flavor_ml.eval.categories import read_categories
from flavor_ml.eval.metrics import (
    EvaluationReport,
    evaluate_embeddings,
    heldout_partners,
    knn_accuracy,
    pair_precision,
    rank_hits,
)
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.training.train_embeddings import train_embeddings
from tests.test_training import CUISINE_OF, FAST, STAPLES, planted_baskets

PROBES = {"completion_hr10", "completion_mrr", "eval_precision"}
PARAMS = EvaluationParams(holdout_fraction=0.2, min_count=5)


@pytest.fixture(scope="module")
def split():
    baskets = planted_baskets(1500, seed=3)
    mask = holdout_mask(baskets, PARAMS)
    train = [b for b, held in zip(baskets, mask) if not held]
    test = [b for b, held in zip(baskets, mask) if held]
    return train, test


@pytest.fixture(scope="module")
def embeddings(split):
    return train_embeddings(split[0], FAST)


@pytest.fixture(scope="module")
def report(embeddings, split) -> EvaluationReport:
    categories = dict(CUISINE_OF) | {staple: "staple" for staple in STAPLES}
    return evaluate_embeddings(embeddings, split[0], split[1], PARAMS, categories)


def test_every_probe_has_its_baselines_in_the_same_report(report):
    assert set(report.metrics) == PROBES | {"category_knn_acc"}
    assert set(report.baselines) == {"popularity", "cooccurrence", "random", "ppmi_svd", "ease"}
    for scorer, values in report.baselines.items():
        assert PROBES <= set(values), scorer
    assert {"category_knn_acc"} <= set(report.baselines["random"]) & set(report.baselines["ppmi_svd"])
    assert report.skipped == {}
    assert report.test_baskets > 0 and report.completion_queries > report.test_baskets
    assert report.train_baskets + report.test_baskets == 1500


def test_flat_names_are_the_ones_mlflow_and_the_promotion_gates_use(report):
    flat = report.flat()
    for name in (
        "completion_hr10",
        "completion_mrr",
        "eval_precision",
        "category_knn_acc",
        "popularity/completion_hr10",
        "cooccurrence/completion_mrr",
        "random/category_knn_acc",
        "ppmi_svd/completion_hr10",
        "ppmi_svd/eval_precision",
    ):
        assert isinstance(flat[name], float), name
    assert all(0.0 <= value <= 1.0 for value in flat.values())


def test_the_model_completes_planted_recipes_better_than_popularity_and_random(report):
    hr = report.metrics["completion_hr10"]
    assert hr > report.baselines["popularity"]["completion_hr10"] + 0.2
    assert hr > 3 * report.baselines["random"]["completion_hr10"]
    assert report.metrics["completion_mrr"] > report.baselines["popularity"]["completion_mrr"]
    assert report.metrics["eval_precision"] > report.baselines["popularity"]["eval_precision"]


def test_category_neighbours_recover_the_planted_cuisines(report):
    assert report.metrics["category_knn_acc"] >= 0.9
    assert report.baselines["random"]["category_knn_acc"] < 0.6
    assert report.category_items == len(CUISINE_OF) + len(STAPLES)


def test_the_model_is_scored_exactly_as_embeddings_completion_scores(embeddings):
    names = ["basil", "tomato", "salt"]
    weights = sp.csr_array(
        (np.full(3, 1 / 3), ([0, 0, 0], [embeddings.index_of(n) for n in names])), shape=(1, len(embeddings))
    )
    batched = model_scorer(embeddings).scores(weights)[0]
    np.testing.assert_allclose(batched, embeddings.completion_scores(names), rtol=1e-5, atol=1e-5)


def test_baselines_are_built_from_the_training_baskets_only():
    train = [["a", "b"], ["a", "c"], ["a", "b", "c"]]
    scorers, skipped = build_baselines(train, ["a", "b", "c", "d"], dimensions=4, seed=0)
    assert scorers["popularity"].bias.tolist() == [3, 2, 2, 0]
    assert scorers["cooccurrence"].left.toarray().tolist() == [[0, 2, 2, 0], [2, 0, 1, 0], [2, 1, 0, 0], [0, 0, 0, 0]]
    assert skipped == {}


def test_ppmi_svd_is_skipped_with_a_reason_when_the_vocabulary_is_too_small():
    scorers, skipped = build_baselines([["a", "b"]] * 3, ["a", "b"], dimensions=4, seed=0)
    assert "ppmi_svd" not in scorers
    assert "2 ingredient" in skipped["ppmi_svd"]


def test_random_vectors_are_seeded():
    first, _ = build_baselines([["a", "b"], ["b", "c"]], ["a", "b", "c"], dimensions=4, seed=5)
    second, _ = build_baselines([["a", "b"], ["b", "c"]], ["a", "b", "c"], dimensions=4, seed=5)
    assert np.array_equal(first["random"].vectors, second["random"].vectors)


def test_ties_count_as_chance_not_luck():
    # A constant scorer over 20 candidates, 2 of them excluded as context: the hidden one
    # is equally likely at any of the 18 ranks.
    scores = np.zeros((1, 20))
    excluded = sp.csr_array(([1.0, 1.0], ([0, 0], [0, 1])), shape=(1, 20))
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 22))])
    hits, reciprocal = rank_hits(scores, np.array([5]), excluded, 10, harmonic)
    assert hits[0] == pytest.approx(10 / 18)
    assert reciprocal[0] == pytest.approx(np.mean(1.0 / np.arange(1, 19)))


def test_ranks_ignore_the_context_and_count_better_candidates():
    scores = np.array([[9.0, 8.0, 7.0, 6.0, 5.0]])
    excluded = sp.csr_array(([1.0], ([0], [0])), shape=(1, 5))  # item 0 is context, not a candidate
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 7))])
    hits, reciprocal = rank_hits(scores, np.array([2]), excluded, 1, harmonic)
    assert (hits[0], reciprocal[0]) == (0.0, 0.5)
    hits, reciprocal = rank_hits(scores, np.array([2]), excluded, 2, harmonic)
    assert hits[0] == 1.0


def test_eval_precision_counts_held_out_pairs_above_chance_among_the_top_k():
    index = {name: i for i, name in enumerate("abcde")}
    # 4 held-out baskets. a-b: together 2 times, each in 2 baskets: 2*4 > 2*2, a held-out pair.
    # c-d: 1*4 > 2*1, a pair. c-e and a-e: 1*4 > 2*2 is false, together only as often as chance.
    test = [["a", "b"], ["a", "b", "e"], ["c", "d"], ["c", "e"]]
    partners = heldout_partners(test, index).toarray()
    assert partners.tolist() == [
        [0, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    # A scorer that ranks b first for a, and e before d for c.
    table = np.array([[0, 5, 1, 1, 1], [5, 0, 1, 1, 1], [1, 1, 0, 2, 3], [1, 1, 2, 0, 1], [1, 1, 3, 1, 0]], float)
    scorer = PairScorer("table", left=table)
    queries = np.array([0, 2])
    assert pair_precision(scorer, queries, sp.csr_array(partners), k=1) == pytest.approx(0.5)
    assert pair_precision(scorer, queries, sp.csr_array(partners), k=2) == pytest.approx(1.0)


def test_knn_accuracy_votes_the_five_nearest_by_cosine():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 10
    labels = np.repeat(np.arange(3), 8)
    clustered = centres[labels] + rng.standard_normal((24, 3))
    assert knn_accuracy(clustered, labels) == 1.0
    assert knn_accuracy(rng.standard_normal((300, 8)), rng.integers(0, 3, 300)) < 0.5


def test_category_probe_is_skipped_with_a_reason_when_too_few_ingredients_are_labelled(embeddings, split):
    report = evaluate_embeddings(embeddings, split[0], split[1], PARAMS, {"basil": "herb", "lime": "fruit"})
    assert "category_knn_acc" not in report.metrics
    assert "2 vocabulary ingredients seen at least min_count=5 times" in report.skipped["category_knn_acc"]


def test_an_empty_held_out_split_is_an_error(embeddings, split):
    with pytest.raises(EvaluationError, match="no test baskets"):
        evaluate_embeddings(embeddings, split[0], [], PARAMS)


def test_a_min_count_nothing_reaches_is_an_error_that_says_so(embeddings, split):
    with pytest.raises(EvaluationError, match="min_count=100000"):
        evaluate_embeddings(embeddings, split[0], split[1], PARAMS.model_copy(update={"min_count": 100_000}))


def test_categories_from_a_flavor_network_style_table(tmp_path: Path):
    table = tmp_path / "ingr_info.tsv"
    table.write_text("# id\tingredient name\tcategory\n0\tolive_oil\tplant derivative\n1\tbasil\therb\n\n")
    assert read_categories(table) == {"olive oil": "plant derivative", "basil": "herb"}


def test_categories_from_a_csv_with_or_without_header(tmp_path: Path):
    table = tmp_path / "categories.csv"
    table.write_text("ingredient,category\nBlack_Bean,legume\nlime , fruit\n")
    assert read_categories(table) == {"black bean": "legume", "lime": "fruit"}
    table.write_text("black bean,legume\n")
    assert read_categories(table) == {"black bean": "legume"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("basil,herb\nlime\n", r"row 2: expected 2 fields"),
        ("0\tbasil\n", r"row 1: expected 3 fields"),
        ("basil,herb\nbasil,spice\n", r"row 2: 'basil' is listed as 'herb' earlier and 'spice' here"),
        ("basil,\n", r"row 1: empty ingredient name or category"),
        ("# only a comment\n", "no ingredient categories found"),
    ],
)
def test_a_bad_category_table_names_file_and_row(tmp_path: Path, content: str, message: str):
    table = tmp_path / "categories.csv"
    table.write_text(content)
    with pytest.raises(CorpusFormatError, match=message) as error:
        read_categories(table)
    assert str(table) in str(error.value)


def test_a_missing_category_table_is_a_clear_error(tmp_path: Path):
    with pytest.raises(CorpusFormatError, match="cannot read category table"):
        read_categories(tmp_path / "absent.csv")


def read_flavor_network(directory: Path) -> list[list[str]]:
    """allr + menu recipes of the flavor network data: cuisine, then ingredients (olive_oil)."""
    baskets = []
    for name in ("allr_recipes.txt", "menu_recipes.txt"):
        for line in (directory / name).read_text(encoding="utf-8").splitlines():
            fields = line.rstrip("\n").split("\t")[1:]
            basket = list(dict.fromkeys(f.replace("_", " ") for f in fields if f))
            if basket:
                baskets.append(basket)
    return baskets


@pytest.mark.slow
@pytest.mark.shared_data
def test_tuned_defaults_beat_ppmi_svd_on_the_flavor_network_corpus(shared_datasets: Path):
    directory = shared_datasets / "flavor-network"
    baskets = read_flavor_network(directory)
    params = EvaluationParams()
    mask = holdout_mask(baskets, params)
    train = [b for b, held in zip(baskets, mask) if not held]
    test = [b for b, held in zip(baskets, mask) if held]
    started = time.perf_counter()
    embeddings = train_embeddings(train, TrainingParams())
    seconds = time.perf_counter() - started
    report = evaluate_embeddings(embeddings, train, test, params, read_categories(directory / "ingr_info.tsv"))
    flat = report.flat()
    summary = {name: round(value, 3) for name, value in flat.items()} | {"train_seconds": round(seconds, 1)}
    assert flat["completion_hr10"] >= 0.57, summary
    assert flat["completion_hr10"] > flat["ppmi_svd/completion_hr10"], summary
    assert flat["completion_hr10"] > flat["cooccurrence/completion_hr10"] > flat["popularity/completion_hr10"], summary
    assert flat["category_knn_acc"] > 3 * flat["random/category_knn_acc"], summary
