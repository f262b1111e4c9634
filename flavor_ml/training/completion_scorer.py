"""Choosing the completion scorer a model version serves, on the validation split.

Both candidates are fitted on the fit side of the training baskets: Item2Vec (already
trained) and EASE for each penalty of the grid (:func:`flavor_ml.eval.ease.l2_candidates`,
or the one set in ``TrainingParams.ease_l2``). The validation baskets' leave-one-out HR@k
picks EASE's penalty, then the scorer: EASE serves only when it completes the validation
baskets better than Item2Vec. The figures go into the version (``completion.json``) so
that anyone can see why it serves what it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import scipy.sparse as sp

from flavor_ml.completion import EASE, ITEM2VEC, CompletionModel
from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.eval.baselines import PairScorer, model_scorer
from flavor_ml.eval.cooccurrence import basket_gram
from flavor_ml.eval.ease import L2_GRID, ease_weights, expand, fitted_items, gram_matrix, l2_candidates, sparsify_rows
from flavor_ml.eval.metrics import completion_metrics
from flavor_ml.eval.queries import leave_one_out
from flavor_ml.settings import EvaluationParams, TrainingParams

logger = logging.getLogger(__name__)


def fit_completion_model(
    embeddings: IngredientEmbeddings,
    fit_baskets: Iterable[Sequence[str]],
    validation_baskets: Sequence[Sequence[str]],
    params: TrainingParams,
    split: EvaluationParams,
) -> CompletionModel:
    """EASE fitted on ``fit_baskets`` (read once: a stream will do) with the penalty that validates best,
    and the better of EASE and Item2Vec."""
    index = {name: i for i, name in enumerate(embeddings.vocabulary)}
    cooccurrence = basket_gram(fit_baskets, index)
    counts = cooccurrence.counts
    queries = leave_one_out(validation_baskets, index, counts >= split.min_count)
    items = fitted_items(counts, params.ease_max_items)
    gram = gram_matrix(cooccurrence.matrix, items)
    del cooccurrence  # only the fitted items' block is needed from here on
    hr = f"completion_hr{split.k}"
    grid = [params.ease_l2] if params.ease_l2 is not None else l2_candidates(counts)

    def fit(l2: float) -> sp.csr_array:
        return expand(sparsify_rows(ease_weights(gram, l2), params.ease_top_k), items, len(index))

    details: dict[str, object] = {"validation_baskets": len(validation_baskets), "validation_queries": len(queries)}
    ease_info: dict[str, object] = {"top_k": params.ease_top_k, "fitted_items": len(items)}
    if len(queries) == 0:
        # Nothing to validate on (a tiny corpus): EASE at the grid's middle penalty, Item2Vec serves.
        l2 = grid[len(grid) // 2] if params.ease_l2 is None else params.ease_l2
        ease_info["l2"] = l2
        details |= {"chosen_by": "no validation queries: Item2Vec by default", "ease": ease_info}
        return CompletionModel(embeddings, ITEM2VEC, fit(l2), details)

    item2vec = completion_metrics(model_scorer(embeddings), queries, split.k)
    tried: dict[str, dict[str, float]] = {}
    best_l2, best_weights, best = grid[0], None, None
    for l2 in grid:
        weights = fit(l2)
        figures = completion_metrics(PairScorer("ease", left=weights), queries, split.k)
        tried[f"{l2:.6g}"] = figures
        if best is None or figures[hr] > best[hr]:
            best_l2, best_weights, best = l2, weights, figures
    assert best is not None and best_weights is not None
    winner = EASE if best[hr] > item2vec[hr] else ITEM2VEC
    ease_info |= {"l2": best_l2, "l2_grid": tried, "l2_grid_multiples": list(L2_GRID) if params.ease_l2 is None else []}
    details |= {"chosen_by": f"validation {hr}", "validation": {ITEM2VEC: item2vec, EASE: best}, "ease": ease_info}
    logger.info(
        "completion scorer: %s (validation %s: item2vec %.3f, EASE %.3f at l2=%.3g)",
        winner,
        hr,
        item2vec[hr],
        best[hr],
        best_l2,
    )
    return CompletionModel(embeddings, winner, best_weights, details)
