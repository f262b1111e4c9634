"""Probes of trained embeddings on held-out recipes, each beside its baselines.

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

``served/…`` — the completion scorer the model version serves (:mod:`flavor_ml.completion`:
    Item2Vec or EASE, whichever won on the validation split), on the same queries. ``ease/…``
    is EASE as a baseline: the weights the version carries, or, when none are given, EASE
    fitted here on the training baskets with the middle penalty of :data:`~flavor_ml.eval.ease.L2_GRID`.

Slices (``slice/<name>/<metric>``, each for the model, the served scorer and the EASE,
    PPMI-SVD and popularity baselines; queries from :mod:`flavor_ml.eval.queries`): ``known_2`` .. ``known_7``
    (HR@k with exactly that many known ingredients), ``hidden_2``, ``hidden_3`` (recall@k
    with that many ingredients missing at once), ``rare_targets`` (leave-one-out queries
    whose target is among the rarest quarter of the eligible ingredients by training count),
    ``cuisine_<label>`` (leave-one-out queries of that cuisine's baskets, when the held-out
    baskets have cuisine labels; the largest cuisines with at least ``MIN_SLICE_QUERIES``).

Intervals (``<metric>/ci95_low``, ``<metric>/ci95_high``): 95% cluster-bootstrap intervals
    (:mod:`flavor_ml.eval.intervals`) of completion HR@k for every scorer, MRR of the model
    and the served scorer, and category kNN accuracy.

Speed: ranks are counted on the scores as computed (no copy with the context masked out;
the context's cells are subtracted from the counts), which gives exactly the numbers of
masking them (tests/test_evaluation_speed.py compares with the reference implementation).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, Field

from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import EvaluationError
from flavor_ml.eval.baselines import PairScorer, build_baselines, model_scorer
from flavor_ml.eval.cooccurrence import basket_gram
from flavor_ml.eval.intervals import ClusterBootstrap
from flavor_ml.eval.queries import (
    CompletionQueries,
    KnownBaskets,
    known_baskets,
    leave_one_out,
    with_hidden,
    with_known,
)
from flavor_ml.settings import EvaluationParams

if TYPE_CHECKING:
    from flavor_ml.completion import CompletionModel

KNN_NEIGHBOURS = 5
KNOWN_SLICES = (2, 3, 4, 5, 6, 7)
HIDDEN_SLICES = (2, 3)
MIN_SLICE_QUERIES = 100
# Slices compare the model with the baselines that say something per slice: the random floor and raw
# co-occurrence (which EASE supersedes) are left out, which saves a third of the slices' cost.
SLICED_SCORERS = ("model", "ease", "ppmi_svd", "popularity")
MAX_CUISINE_SLICES = 12
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
    served_scorer: str | None = Field(None, description="the completion scorer the model version serves")
    served: dict[str, float] = Field(default_factory=dict, description="the served scorer's completion metrics")
    slices: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="slice -> scorer (model, served, baselines) -> metric -> value"
    )
    slice_queries: dict[str, int] = Field(default_factory=dict, description="slice -> number of queries")
    intervals: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="flat metric name -> 95% bootstrap interval (low, high)"
    )

    def digest(self) -> str:
        """sha256 of everything the report says: two runs with equal digests were judged identically."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def flat(self) -> dict[str, float]:
        """One level of names for MLflow and promotion gates: the model's metrics under their
        own names (``completion_hr10``, ``completion_mrr``, ``eval_precision``,
        ``category_knn_acc``), each baseline's as ``<scorer>/<metric>``, the served scorer's as
        ``served/<metric>``, slices as ``slice/<slice>/[<scorer>/]<metric>`` and intervals as
        ``<metric>/ci95_low`` and ``<metric>/ci95_high``."""
        flat = dict(self.metrics)
        for scorer, values in self.baselines.items():
            flat.update({f"{scorer}/{metric}": value for metric, value in values.items()})
        flat.update({f"served/{metric}": value for metric, value in self.served.items()})
        for name, by_scorer in self.slices.items():
            for scorer, values in by_scorer.items():
                prefix = f"slice/{name}/" if scorer == "model" else f"slice/{name}/{scorer}/"
                flat.update({prefix + metric: value for metric, value in values.items()})
        for metric, (low, high) in self.intervals.items():
            flat[f"{metric}/ci95_low"], flat[f"{metric}/ci95_high"] = low, high
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

    Cells set in ``excluded`` are not candidates (``scores`` is left as it is). With ``g``
    candidates scoring above the target and ``t`` others tying with it, the rank is uniform
    on ``g+1 .. g+t+1``.
    """
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets]
    column = target_scores[:, np.newaxis]
    greater = np.count_nonzero(scores > column, axis=1)
    at_least = np.count_nonzero(scores >= column, axis=1)
    # The context is no candidate: take its cells out of both counts instead of masking a copy.
    ex_rows, ex_cols = excluded.nonzero()
    ex_scores, ex_targets = scores[ex_rows, ex_cols], target_scores[ex_rows]
    greater = greater - np.bincount(ex_rows[ex_scores > ex_targets], minlength=len(targets))
    at_least = at_least - np.bincount(ex_rows[ex_scores >= ex_targets], minlength=len(targets))
    ties = at_least - greater - 1
    hits = np.clip((k - greater) / (ties + 1), 0.0, 1.0)
    reciprocal = (harmonic[greater + ties + 1] - harmonic[greater]) / (ties + 1)
    return hits, reciprocal


def completion_ranks(scorer: PairScorer, queries: CompletionQueries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: expected hit@k and reciprocal rank of ``scorer`` (see :func:`rank_hits`)."""
    n_items = queries.weights.shape[1]
    harmonic = _harmonic(n_items + 1)
    hits = np.empty(len(queries))
    reciprocal = np.empty(len(queries))
    step = _chunk_rows(n_items)
    for start in range(0, len(queries), step):
        weights = queries.weights[start : start + step]
        targets = queries.targets[start : start + step]
        stop = start + len(targets)
        hits[start:stop], reciprocal[start:stop] = rank_hits(scorer.scores(weights), targets, weights, k, harmonic)
    return hits, reciprocal


def completion_metrics(scorer: PairScorer, queries: CompletionQueries, k: int) -> dict[str, float]:
    """HR@k and MRR of ``scorer`` on the leave-one-out queries."""
    hits, reciprocal = completion_ranks(scorer, queries, k)
    return {
        f"completion_hr{k}": float(hits.sum() / len(queries)),
        "completion_mrr": float(reciprocal.sum() / len(queries)),
    }


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores of each row (unordered), ties broken by index."""
    k = min(k, scores.shape[1])
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def heldout_partners(test_baskets: Iterable[Sequence[str]] | KnownBaskets, index: Mapping[str, int]) -> sp.csr_array:
    """Vocabulary x vocabulary 0/1 matrix of held-out pairs that co-occur more often than chance:
    ``n_ij * N > n_i * n_j`` with ``n`` counts of held-out baskets and ``N`` their number."""
    incidence = known_baskets(test_baskets, index).incidence(len(index))
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
    return float(knn_correct(vectors, labels, neighbours).mean())


def knn_correct(vectors: np.ndarray, labels: np.ndarray, neighbours: int = KNN_NEIGHBOURS) -> np.ndarray:
    """Per row: 1.0 when the majority vote of its ``neighbours`` nearest rows by cosine is its label."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1.0, norms)
    n = len(labels)
    n_classes = int(labels.max()) + 1
    # Closer voters weigh slightly more, which only ever breaks ties in the vote count.
    rank_weights = 1.0 + 1e-3 * np.arange(neighbours, 0, -1)
    correct = np.zeros(n)
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
        correct[start:stop] = votes.argmax(axis=1) == labels[start:stop]
    return correct


def evaluate_embeddings(
    embeddings: IngredientEmbeddings,
    train_baskets: Iterable[Sequence[str]],
    test_baskets: Iterable[Sequence[str]],
    params: EvaluationParams,
    categories: Mapping[str, str] | None = None,
    completion: CompletionModel | None = None,
    test_cuisines: Sequence[str | None] | None = None,
) -> EvaluationReport:
    """Run every probe on the model, the served scorer and every baseline, on the same split.

    ``train_baskets`` must be the baskets the model was trained on (baselines and the
    ``min_count`` eligibility are computed from them; read once, so a stream will do),
    ``test_baskets`` the held-out ones (read once too: they are kept as vocabulary indices).
    ``completion`` is the scorer the version serves (its EASE weights are the EASE baseline);
    ``test_cuisines`` (one label or None per test basket) enables the cuisine slices.
    Raises :class:`EvaluationError` when the split leaves nothing to probe.
    """
    vocabulary = embeddings.vocabulary
    index = {name: i for i, name in enumerate(vocabulary)}
    known = KnownBaskets(test_baskets, index)
    if len(known) == 0:
        raise EvaluationError(
            "the held-out split is empty: no test baskets to evaluate on "
            "(raise holdout_fraction or use a larger corpus)"
        )
    if not embeddings.is_finite():
        raise EvaluationError("the embeddings hold non-finite values (NaN or infinity); retrain the model")
    k = params.k
    ease = completion.ease_weights if completion is not None else None
    train_gram = basket_gram(train_baskets, index)
    baselines, skipped = build_baselines(
        train_gram, vocabulary, embeddings.dimensions, params.split_seed, ease_weights=ease
    )
    train_counts = train_gram.counts
    eligible = train_counts >= params.min_count
    queries = leave_one_out(known, index, eligible)
    if len(queries) == 0:
        raise EvaluationError(
            f"no completion queries: none of the {len(known)} held-out baskets has an ingredient seen "
            f"at least min_count={params.min_count} times in training next to another known ingredient "
            f"({int(eligible.sum())} of {len(vocabulary)} ingredients are eligible; lower min_count?)"
        )
    partners = heldout_partners(known, index)
    has_partner = np.diff(partners.indptr) > 0
    pair_queries = np.flatnonzero(eligible & has_partner)

    model = model_scorer(embeddings)
    scorers: dict[str, PairScorer] = {"model": model, **baselines}
    served_name = completion.scorer if completion is not None else "item2vec"
    served_as = "model" if served_name == "item2vec" else served_name  # the served scorer's results are these
    slice_sets = _slice_queries(known, index, eligible, train_counts, queries, params, test_cuisines)
    bootstrap = ClusterBootstrap(queries.baskets, params.split_seed)
    results: dict[str, dict[str, float]] = {}
    slices: dict[str, dict[str, dict[str, float]]] = {name: {} for name in slice_sets}
    intervals: dict[str, tuple[float, float]] = {}
    for name, scorer in scorers.items():
        hits, reciprocal = completion_ranks(scorer, queries, k)
        results[name] = {
            f"completion_hr{k}": float(hits.mean()),
            "completion_mrr": float(reciprocal.mean()),
            "eval_precision": pair_precision(scorer, pair_queries, partners, k),
        }
        prefix = "" if name == "model" else f"{name}/"
        intervals[f"{prefix}completion_hr{k}"] = bootstrap.interval(hits)
        if name in ("model", served_as):
            intervals[f"{prefix}completion_mrr"] = bootstrap.interval(reciprocal)
        for slice_name, (metric, subset) in slice_sets.items():
            if name not in SLICED_SCORERS:
                continue
            slice_hits = hits[subset] if isinstance(subset, np.ndarray) else completion_ranks(scorer, subset, k)[0]
            slices[slice_name][name] = {metric: float(slice_hits.mean())}

    category_items = _category_probe(categories, vocabulary, eligible, scorers, results, intervals, skipped, params)
    served = {m: v for m, v in results[served_as].items() if m.startswith("completion_")}
    for metric in (f"completion_hr{k}", "completion_mrr"):
        source = metric if served_as == "model" else f"{served_as}/{metric}"
        if source in intervals:
            intervals[f"served/{metric}"] = intervals[source]
    for by_scorer in slices.values():
        by_scorer["served"] = dict(by_scorer[served_as])
    metrics = {name: float(value) for name, value in results.pop("model").items()}
    return EvaluationReport(
        k=k,
        metrics=metrics,
        baselines={name: {m: float(v) for m, v in values.items()} for name, values in results.items()},
        skipped=skipped,
        vocabulary_size=len(vocabulary),
        train_baskets=train_gram.baskets,
        test_baskets=len(known),
        completion_queries=len(queries),
        pair_queries=len(pair_queries),
        category_items=category_items,
        served_scorer=served_name,
        served=served,
        slices=slices,
        slice_queries={
            name: int(subset.sum()) if isinstance(subset, np.ndarray) else len(subset)
            for name, (_, subset) in slice_sets.items()
        },
        intervals=intervals,
    )


def _slice_queries(
    test_baskets: KnownBaskets,
    index: Mapping[str, int],
    eligible: np.ndarray,
    train_counts: np.ndarray,
    queries: CompletionQueries,
    params: EvaluationParams,
    test_cuisines: Sequence[str | None] | None,
) -> dict[str, tuple[str, CompletionQueries | np.ndarray]]:
    """slice name -> (metric name, its own queries or a mask over the leave-one-out queries)."""
    k, seed = params.k, params.split_seed
    sets: dict[str, tuple[str, CompletionQueries | np.ndarray]] = {}
    for m in KNOWN_SLICES:
        known = with_known(test_baskets, index, eligible, m, seed)
        if len(known):
            sets[f"known_{m}"] = (f"completion_hr{k}", known)
    for h in HIDDEN_SLICES:
        hidden = with_hidden(test_baskets, index, eligible, h, seed)
        if len(hidden):
            sets[f"hidden_{h}"] = (f"recall{k}", hidden)
    eligible_counts = train_counts[eligible]
    if len(eligible_counts) >= 4:
        rare = train_counts[queries.targets] <= np.quantile(eligible_counts, 0.25)
        if rare.any():
            sets["rare_targets"] = (f"completion_hr{k}", rare)
    if test_cuisines is not None:
        # Labels as integer codes per query: an object array of strings per query would outgrow the rest.
        names, codes = np.unique([_slice_label(c) for c in test_cuisines], return_inverse=True)
        query_codes = codes.ravel()[queries.baskets]
        sizes = np.bincount(query_codes, minlength=len(names))
        for code in [
            c
            for c in sorted(range(len(names)), key=lambda c: (-sizes[c], names[c]))
            if names[c] != "" and sizes[c] >= MIN_SLICE_QUERIES
        ][:MAX_CUISINE_SLICES]:
            sets[f"cuisine_{names[code]}"] = (f"completion_hr{k}", query_codes == code)
    return sets


def _slice_label(cuisine: str | None) -> str:
    """A cuisine label as part of a metric name: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", (cuisine or "").lower()).strip("_")


def _category_probe(
    categories: Mapping[str, str] | None,
    vocabulary: Sequence[str],
    eligible: np.ndarray,
    scorers: Mapping[str, PairScorer],
    results: dict[str, dict[str, float]],
    intervals: dict[str, tuple[float, float]],
    skipped: dict[str, str],
    params: EvaluationParams,
) -> int:
    """Category kNN accuracy (and its interval) for every scorer with vectors; the number of items probed."""
    if categories is None:
        return 0
    labelled = [i for i, name in enumerate(vocabulary) if name in categories and eligible[i]]
    names = sorted({categories[vocabulary[i]] for i in labelled})
    if len(labelled) <= KNN_NEIGHBOURS or len(names) < 2:
        skipped["category_knn_acc"] = (
            f"{len(labelled)} vocabulary ingredients seen at least min_count={params.min_count} times have a "
            f"category, in {len(names)} categories; kNN@{KNN_NEIGHBOURS} needs more than {KNN_NEIGHBOURS} "
            "in at least 2 categories"
        )
        return 0
    code = {c: j for j, c in enumerate(names)}
    labels = np.array([code[categories[vocabulary[i]]] for i in labelled], dtype=np.int64)
    rows = np.asarray(labelled)
    bootstrap = ClusterBootstrap(np.arange(len(labelled)), params.split_seed)
    for name, scorer in scorers.items():
        if scorer.vectors is not None:
            correct = knn_correct(np.asarray(scorer.vectors)[rows], labels)
            results[name]["category_knn_acc"] = float(correct.mean())
            prefix = "" if name == "model" else f"{name}/"
            intervals[f"{prefix}category_knn_acc"] = bootstrap.interval(correct)
    return len(labelled)
