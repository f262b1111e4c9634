"""EASE and the completion scorer a version carries: the closed form, sparsity, files, choice on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flavor_ml.completion import COMPLETION_FILE, EASE, EASE_WEIGHTS_FILE, ITEM2VEC, CompletionModel
from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import ModelLoadError
from flavor_ml.eval.cooccurrence import basket_gram
from flavor_ml.eval.ease import ease_weights, expand, fit_ease, fitted_items, gram_matrix, sparsify_rows
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.training.completion_scorer import fit_completion_model
from flavor_ml.training.train_embeddings import train_embeddings
from flavor_ml.training.validation import split_validation, validation_mask
from tests.test_training import planted_baskets


def test_weights_are_steck_s_closed_form_with_a_zero_diagonal():
    x = (np.random.default_rng(0).random((60, 8)) < 0.4).astype(np.float64)
    gram = x.T @ x
    weights = ease_weights(gram, l2=2.5)
    p = np.linalg.inv(gram + 2.5 * np.eye(8))
    expected = np.eye(8) - p / np.diag(p)[np.newaxis, :]
    np.testing.assert_allclose(weights, expected, atol=1e-10)
    assert np.all(np.diag(weights) == 0)


def test_each_row_keeps_its_k_largest_positive_weights_only():
    weights = np.array([[0.0, 0.5, -0.2, 0.3, 0.1], [0.4, 0.0, 0.2, -0.1, -0.3], [-0.1, -0.2, 0.0, -0.3, -0.4]])
    kept = sparsify_rows(weights, top_k=2).toarray()
    np.testing.assert_allclose(kept, [[0, 0.5, 0, 0.3, 0], [0.4, 0, 0.2, 0, 0], [0, 0, 0, 0, 0]], atol=1e-7)


def test_a_large_vocabulary_is_fitted_over_its_most_frequent_ingredients():
    baskets = [["a", "b", "c"]] * 5 + [["a", "b", "d"]] * 3 + [["e", "a"]]
    index = {n: i for i, n in enumerate("abcdef")}
    gram = basket_gram(baskets, index, batch=2)  # in batches: the same counts as all at once
    assert fitted_items(gram.counts, max_items=3).tolist() == [0, 1, 2]  # a, b, c; never the absent f
    weights = fit_ease(gram.matrix, l2=1.0, top_k=5, max_items=3)
    assert weights.shape == (6, 6)
    assert weights[:, [3, 4, 5]].nnz == 0 and weights[[3, 4, 5]].nnz == 0
    assert gram_matrix(gram.matrix, np.array([0, 1])).tolist() == [[9, 8], [8, 8]]


@pytest.fixture(scope="module")
def chosen():
    baskets = planted_baskets(1500, seed=5)
    split = EvaluationParams(min_count=5, validation_fraction=0.15)
    fit, validation = split_validation(baskets, split)
    params = TrainingParams(epochs=5, vector_size=16, deterministic=True)
    embeddings = train_embeddings(fit, params)
    return fit_completion_model(embeddings, fit, validation, params, split), embeddings


def test_the_served_scorer_is_whichever_completes_the_validation_baskets_better(chosen):
    completion, _ = chosen
    validation = completion.details["validation"]
    better = EASE if validation[EASE]["completion_hr10"] > validation[ITEM2VEC]["completion_hr10"] else ITEM2VEC
    assert completion.scorer == better
    tried = completion.details["ease"]["l2_grid"]
    assert len(tried) == 4
    assert max(v["completion_hr10"] for v in tried.values()) == validation[EASE]["completion_hr10"]
    assert completion.details["validation_queries"] > 0


def test_validation_comes_from_the_training_side_and_is_deterministic():
    baskets = planted_baskets(800, seed=1)
    split = EvaluationParams(validation_fraction=0.2)
    first, second = validation_mask(baskets, split), validation_mask(list(reversed(baskets)), split)[::-1]
    assert first.tolist() == second.tolist()
    assert 0.1 < first.mean() < 0.3
    fit, validation = split_validation(baskets, split)
    assert len(fit) + len(validation) == len(baskets)


def test_the_completion_scorer_round_trips_through_its_files(chosen, tmp_path):
    completion, embeddings = chosen
    embeddings.save(tmp_path)
    ease = CompletionModel(embeddings, EASE, completion.ease_weights, completion.details)
    ease.save(tmp_path)
    loaded = CompletionModel.load(tmp_path)
    assert loaded.scorer == EASE and loaded.details == json.loads(json.dumps(completion.details))
    assert (loaded.ease_weights != ease.ease_weights).nnz == 0
    assert loaded.complete(["basil", "tomato"], 5) == ease.complete(["basil", "tomato"], 5)
    assert all(name not in {"basil", "tomato"} for name, _ in loaded.complete(["basil", "tomato"], 20))


def test_ease_scores_are_the_mean_of_the_context_rows(chosen):
    completion, embeddings = chosen
    model = CompletionModel(embeddings, EASE, completion.ease_weights)
    rows = [embeddings.index_of(n) for n in ("basil", "tomato")]
    expected = completion.ease_weights.toarray()[rows].mean(axis=0)
    np.testing.assert_allclose(model.scores(["basil", "tomato"]), expected, rtol=1e-6)


def test_a_version_without_completion_files_completes_with_item2vec(chosen, tmp_path):
    _, embeddings = chosen
    embeddings.save(tmp_path)
    loaded = CompletionModel.load(tmp_path)
    assert loaded.scorer == ITEM2VEC
    assert loaded.complete(["lime"], 5) == embeddings.complete(["lime"], 5)


def test_a_version_that_names_ease_without_weights_is_refused(chosen, tmp_path):
    _, embeddings = chosen
    embeddings.save(tmp_path)
    (tmp_path / COMPLETION_FILE).write_text(json.dumps({"scorer": "ease"}))
    assert not (tmp_path / EASE_WEIGHTS_FILE).exists()
    with pytest.raises(ModelLoadError, match="no EASE weights"):
        CompletionModel.load(tmp_path)
    (tmp_path / COMPLETION_FILE).write_text(json.dumps({"scorer": "magic"}))
    with pytest.raises(ModelLoadError, match="unknown completion scorer 'magic'"):
        CompletionModel.load(tmp_path)


def test_twenty_thousand_ingredients_keep_a_small_model(tmp_path):
    # EASE fitted over 2,000 of 20,000 ingredients (a long tail), its top 100 weights per row kept,
    # saved with a version: the file grows with the weights kept, not with the vocabulary squared.
    n, fitted, k = 20_000, 2_000, 100
    rng = np.random.default_rng(0)
    items = np.sort(rng.choice(n, fitted, replace=False))
    weights = expand(sparsify_rows(rng.standard_normal((fitted, fitted)), k), items, n)
    assert weights.shape == (n, n) and np.diff(weights.indptr).max() <= k
    vectors = rng.standard_normal((n, 4)).astype(np.float32)
    names = tuple(f"ingredient {i}" for i in range(n))
    embeddings = IngredientEmbeddings(names, vectors, vectors, np.ones(n, dtype=np.int64))
    CompletionModel(embeddings, EASE, weights).save(tmp_path)
    size = (tmp_path / EASE_WEIGHTS_FILE).stat().st_size
    # About 5 bytes per kept weight, compressed; all 2,000 x 2,000 weights would take ten times more.
    assert size < weights.nnz * 8
    assert CompletionModel.load(tmp_path, embeddings).ease_weights.nnz == weights.nnz
