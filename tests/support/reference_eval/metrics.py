"""The evaluation as it was before the speed-up (verbatim, for the equivalence test). Probes of trained embeddings on held-out recipes, each beside its baselines.

All probes use the same split and the same candidate set: the model's vocabulary. Baselines
(:mod:`flavor_ml.eval.baselines`) are built from the training baskets in the same call, so
a model metric and its baselines are always comparable.

Probes (``k`` = ``EvaluationParams.k``, 10 by default):

``completion_hr{k}``, ``completion_mrr`` — leave-one-out completion. For every held-out
    basket and every ingredient in it seen at least ``EvaluationParams.min_count`` times in
    training, hide that ingredient and score every vocabulary ingredient from the rest of
    the basket (at least one other known ingredient is required); the rest of the basket is
    not a candidate. The model scores with input x output vectors (the mean input vector of
    the context dotted with every output vector, as ``IngredientEmbeddings.completion_scores``).
    HR@k is the share of queries whose hidden ingredient ranks in the top k, MRR the mean
    reciprocal rank. Ties are resolved by their expectation under a uniformly random
    tie-break, so constant scorers get chance, not luck.

``eval_precision`` — precision@k of held-out pairs. A held-out pair is two vocabulary
    ingredients that co-occur in the held-out baskets more often than chance
    (``n_ij * N > n_i * n_j``, counts of held-out baskets, ``N`` their number); plain
    co-occurrence is no test, since a common ingredient co-occurs with nearly everything
    and every scorer would score about 0.9. For every ingredient ``i`` seen at least
    ``min_count`` times in training with at least one held-out pair, let ``P_i`` be its
    partners in those pairs. Rank all other ingredients by the pair score of ``i`` alone as
    context (for the model: input vector of ``i`` x output vectors) and take the top k;
    precision is ``|top_k & P_i| / min(k, |P_i|)`` (so a perfect ranker scores 1 even for an
    ingredient with fewer than k partners), averaged over these ingredients.

``category_knn_acc`` — only when a category table is given: over the vocabulary ingredients
    with a category and seen at least ``min_count`` times in training (the vectors of rarer
    ones are mostly noise), the majority vote of the categories of the 5 nearest other such
    ingredients by cosine of input vectors (leave-one-out); ties go to the category whose
    voters rank closer. Accuracy over these ingredients. Baselines: random vectors, PPMI-SVD.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, Field

from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import EvaluationError
from flavor_ml.settings import EvaluationParams
from tests.support.reference_eval.baselines import PairScorer, build_baselines, incidence_matrix, model_scorer

KNN_NEIGHBOURS = 5
_CHUNK_CELLS = 1 << 22  # queries x vocabulary cells scored at once (32 MiB of float64)


class EvaluationReport(BaseModel):
    """What the probes measured on one split: the model's metrics and each baseline's."""

    k: int = Field(description="cut-off of HR@k and precision@k")
    metrics: dict[str, float] = Field(description="model metric name -> value")
    baselines: dict[str, dict[str, float]] = Field(description="baseline scorer -> metric name -> value")
    skipped: dict[str, str] = Field(default_factory=dict, description="probe or baseline not computed -> why")
    vocabulary_size: int
    train_baskets: int
    test_baskets: int
    completion_queries: int
    pair_queries: int
    category_items: int = 0

    def flat(self) -> dict[str, float]:
        """One level of names for MLflow and promotion gates: the model's metrics under their
        own names (``completion_hr10``, ``completion_mrr``, ``eval_precision``,
        ``category_knn_acc``) and each baseline's as ``<scorer>/<metric>``."""
        flat = dict(self.metrics)
        for scorer, values in self.baselines.items():
            flat.update({f"{scorer}/{metric}": value for metric, value in values.items()})
        return flat


def _chunk_rows(n_items: int) -> int:
    """How many query rows to score at once so a chunk holds about _CHUNK_CELLS cells."""
    return max(1, _CHUNK_CELLS // max(1, n_items))


def _harmonic(n: int) -> np.ndarray:
    """H[m] = 1 + 1/2 + ... + 1/m for m = 0..n."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def rank_hits(
    scores: np.ndarray, targets: np.ndarray, excluded: sp.csr_array, k: int, harmonic: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expected hit@k and reciprocal rank of ``targets`` in each row of ``scores``.

    Cells set in ``excluded`` are not candidates. With ``g`` candidates scoring above the
    target and ``t`` others tying with it, the rank is uniform on ``g+1 .. g+t+1``.
    """
    scores = scores.copy()
    rows, cols = excluded.nonzero()
    scores[rows, cols] = -np.inf
    target_scores = scores[np.arange(len(targets)), targets][:, np.newaxis]
    greater = (scores > target_scores).sum(axis=1)
    ties = (scores == target_scores).sum(axis=1) - 1
    hits = np.clip((k - greater) / (ties + 1), 0.0, 1.0)
    reciprocal = (harmonic[greater + ties + 1] - harmonic[greater]) / (ties + 1)
    return hits, reciprocal


class _CompletionQueries:
    """Leave-one-out queries from held-out baskets: context weights, hidden targets."""

    def __init__(self, test_baskets: Sequence[Sequence[str]], index: Mapping[str, int], eligible: np.ndarray) -> None:
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        targets: list[int] = []
        for basket in test_baskets:
            known = list(dict.fromkeys(index[name] for name in basket if name in index))
            if len(known) < 2:
                continue
            share = 1.0 / (len(known) - 1)
            for target in known:
                if not eligible[target]:
                    continue
                query = len(targets)
                context = [i for i in known if i != target]
                rows.extend([query] * len(context))
                cols.extend(context)
                vals.extend([share] * len(context))
                targets.append(target)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.weights = sp.csr_array((vals, (rows, cols)), shape=(len(targets), len(index)))

    def __len__(self) -> int:
        return len(self.targets)


def completion_metrics(scorer: PairScorer, queries: _CompletionQueries, k: int) -> dict[str, float]:
    """HR@k and MRR of ``scorer`` on the leave-one-out queries."""
    n_items = queries.weights.shape[1]
    harmonic = _harmonic(n_items + 1)
    hits_sum = reciprocal_sum = 0.0
    step = _chunk_rows(n_items)
    for start in range(0, len(queries), step):
        weights = queries.weights[start : start + step]
        targets = queries.targets[start : start + step]
        hits, reciprocal = rank_hits(scorer.scores(weights), targets, weights, k, harmonic)
        hits_sum += hits.sum()
        reciprocal_sum += reciprocal.sum()
    return {f"completion_hr{k}": hits_sum / len(queries), "completion_mrr": reciprocal_sum / len(queries)}


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores of each row (unordered), ties broken by index."""
    k = min(k, scores.shape[1])
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def heldout_partners(test_baskets: Sequence[Sequence[str]], index: Mapping[str, int]) -> sp.csr_array:
    """Vocabulary x vocabulary 0/1 matrix of held-out pairs that co-occur more often than chance:
    ``n_ij * N > n_i * n_j`` with ``n`` counts of held-out baskets and ``N`` their number."""
    incidence = incidence_matrix(test_baskets, index)
    together = (incidence.T @ incidence).tocoo()
    counts = np.asarray(incidence.sum(axis=0)).ravel()
    keep = (together.row != together.col) & (
        together.data * incidence.shape[0] > counts[together.row] * counts[together.col]
    )
    shape = together.shape
    return sp.csr_array((np.ones(int(keep.sum())), (together.row[keep], together.col[keep])), shape=shape)


def pair_precision(scorer: PairScorer, queries: np.ndarray, partners: sp.csr_array, k: int) -> float:
    """Mean over ``queries`` of |top-k by pair score & partners| / min(k, |partners|)."""
    n_items = partners.shape[1]
    total = 0.0
    step = _chunk_rows(n_items)
    for start in range(0, len(queries), step):
        batch = queries[start : start + step]
        onehot = sp.csr_array((np.ones(len(batch)), (np.arange(len(batch)), batch)), shape=(len(batch), n_items))
        scores = scorer.scores(onehot)
        scores[np.arange(len(batch)), batch] = -np.inf
        top = _top_k(scores, k)
        truth = partners[batch].toarray() > 0
        hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
        total += (hits / np.minimum(k, truth.sum(axis=1))).sum()
    return total / len(queries)


def knn_accuracy(vectors: np.ndarray, labels: np.ndarray, neighbours: int = KNN_NEIGHBOURS) -> float:
    """Leave-one-out majority-vote accuracy of the ``neighbours`` nearest rows by cosine.

    ``labels`` are integer category codes, one per row of ``vectors``.
    """
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    n = len(labels)
    n_classes = int(labels.max()) + 1
    # Closer voters weigh slightly more, which only ever breaks ties in the vote count.
    rank_weights = 1.0 + 1e-3 * np.arange(neighbours, 0, -1)
    correct = 0
    step = _chunk_rows(n)
    for start in range(0, n, step):
        stop = min(n, start + step)
        similarity = unit[start:stop] @ unit.T
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        top = _top_k(similarity, neighbours)
        order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1, kind="stable")
        nearest = np.take_along_axis(top, order, axis=1)
        votes = np.zeros((stop - start, n_classes))
        np.add.at(votes, (np.arange(stop - start)[:, np.newaxis], labels[nearest]), rank_weights)
        correct += int((votes.argmax(axis=1) == labels[start:stop]).sum())
    return correct / n


def evaluate_embeddings(
    embeddings: IngredientEmbeddings,
    train_baskets: Sequence[Sequence[str]],
    test_baskets: Sequence[Sequence[str]],
    params: EvaluationParams,
    categories: Mapping[str, str] | None = None,
) -> EvaluationReport:
    """Run every probe on the model and on every baseline, on the same split.

    ``train_baskets`` must be the baskets the model was trained on (baselines and the
    ``min_count`` eligibility are computed from them), ``test_baskets`` the held-out ones.
    Raises :class:`EvaluationError` when the split leaves nothing to probe.
    """
    if len(test_baskets) == 0:
        raise EvaluationError(
            "the held-out split is empty: no test baskets to evaluate on "
            "(raise holdout_fraction or use a larger corpus)"
        )
    if not embeddings.is_finite():
        raise EvaluationError("the embeddings hold non-finite values (NaN or infinity); retrain the model")
    vocabulary = embeddings.vocabulary
    index = {name: i for i, name in enumerate(vocabulary)}
    k = params.k
    baselines, skipped = build_baselines(train_baskets, vocabulary, embeddings.dimensions, params.split_seed)
    train_counts = np.asarray(incidence_matrix(train_baskets, index).sum(axis=0)).ravel()
    eligible = train_counts >= params.min_count
    queries = _CompletionQueries(test_baskets, index, eligible)
    if len(queries) == 0:
        raise EvaluationError(
            f"no completion queries: none of the {len(test_baskets)} held-out baskets has an ingredient seen "
            f"at least min_count={params.min_count} times in training next to another known ingredient "
            f"({int(eligible.sum())} of {len(vocabulary)} ingredients are eligible; lower min_count?)"
        )
    partners = heldout_partners(test_baskets, index)
    has_partner = np.diff(partners.indptr) > 0
    pair_queries = np.flatnonzero(eligible & has_partner)

    model = model_scorer(embeddings)
    scorers: dict[str, PairScorer] = {"model": model, **baselines}
    results: dict[str, dict[str, float]] = {}
    for name, scorer in scorers.items():
        values = completion_metrics(scorer, queries, k)
        values["eval_precision"] = pair_precision(scorer, pair_queries, partners, k)
        results[name] = values

    category_items = 0
    if categories is not None:
        labelled = [i for i, name in enumerate(vocabulary) if name in categories and eligible[i]]
        names = sorted({categories[vocabulary[i]] for i in labelled})
        if len(labelled) <= KNN_NEIGHBOURS or len(names) < 2:
            skipped["category_knn_acc"] = (
                f"{len(labelled)} vocabulary ingredients seen at least min_count={params.min_count} times have a "
                f"category, in {len(names)} categories; kNN@{KNN_NEIGHBOURS} needs more than {KNN_NEIGHBOURS} "
                "in at least 2 categories"
            )
        else:
            category_items = len(labelled)
            code = {c: j for j, c in enumerate(names)}
            labels = np.array([code[categories[vocabulary[i]]] for i in labelled], dtype=np.int64)
            rows = np.asarray(labelled)
            for name, scorer in scorers.items():
                if scorer.vectors is not None:
                    results[name]["category_knn_acc"] = knn_accuracy(np.asarray(scorer.vectors)[rows], labels)

    metrics = {name: float(value) for name, value in results.pop("model").items()}
    return EvaluationReport(
        k=k,
        metrics=metrics,
        baselines={name: {m: float(v) for m, v in values.items()} for name, values in results.items()},
        skipped=skipped,
        vocabulary_size=len(vocabulary),
        train_baskets=len(train_baskets),
        test_baskets=len(test_baskets),
        completion_queries=len(queries),
        pair_queries=len(pair_queries),
        category_items=category_items,
    )
