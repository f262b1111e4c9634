"""Baseline scorers the probes compare the model with, built from the TRAINING baskets only.

Every scorer, the model included, is a :class:`PairScorer`: given a batch of queries, each a
weighted set of context ingredients (a row of a sparse matrix ``W``, weights summing to 1),
it returns a score for every ingredient,

    scores = (W @ left) @ right.T + bias

so a batch of queries is two matrix products, never a loop over the vocabulary. A scorer
with ``vectors`` also takes part in the nearest-neighbour probe (cosine similarity).

- ``popularity``: how many training baskets hold the ingredient, whatever the context.
- ``cooccurrence``: mean over the context of how many training baskets hold both.
- ``random``: seeded random Gaussian vectors of the model's dimension (a floor: any probe
  a random scorer does well on measures the data, not the embeddings).
- ``ppmi_svd``: positive pointwise mutual information of basket co-occurrence with the
  context distribution smoothed to the power 0.75, factorised by truncated SVD
  ``PPMI ~ U S Vt`` to at most 100 dimensions (Levy, Goldberg & Dagan 2015). Completion
  scores are the mean of the context's rows of the rank-d reconstruction ``(U S) Vt``; its
  vectors are ``U sqrt(S)``. Without the smoothing PPMI ranks rare partners first and
  completes recipes badly (HR@10 0.12 instead of 0.56 on the flavor-network corpus), which
  would make a straw man of this baseline. Skipped, with the reason recorded, when the
  vocabulary is too small for a reduced-rank factorisation or nothing co-occurs above chance.
  Vocabularies above ``_DENSE_SVD_LIMIT`` (1,000) get a randomized truncated SVD (Halko, Martinsson
  & Tropp 2011; ``_SVD_OVERSAMPLES`` extra directions, ``_SVD_POWER_ITERATIONS`` power
  iterations), an approximation of the exact top singular triplets: on the flavor-network
  vocabulary it moves PPMI-SVD's figures by less than 0.005 (tests/test_evaluation_speed.py).
- ``ease``: EASE item-item weights (:mod:`flavor_ml.eval.ease`): the ones the model version
  carries, or fitted here on the training baskets (middle penalty of the grid).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.eval.cooccurrence import BasketGram, basket_gram
from flavor_ml.eval.ease import L2_GRID, fit_ease, l2_candidates

PPMI_SVD_DIMENSIONS = 100
PPMI_CONTEXT_SMOOTHING = 0.75  # Levy et al.'s recommended context-distribution smoothing
_DENSE_SVD_LIMIT = 1000  # vocabularies up to this size get an exact dense SVD (O(n³): 3,000 take minutes)
_SVD_OVERSAMPLES = 20
_SVD_POWER_ITERATIONS = 4
EASE_TOP_K = 100  # TrainingParams' defaults, for an EASE baseline fitted at evaluation
EASE_MAX_ITEMS = 8000

Matrix = np.ndarray | sp.csr_array  # dense vectors, or sparse item-item weights


@dataclass(frozen=True, eq=False)
class PairScorer:
    """Scores every ingredient for batches of contexts: ``(W @ left) @ right.T + bias``."""

    name: str
    left: Matrix | None = None
    right: Matrix | None = None
    bias: np.ndarray | None = None
    vectors: np.ndarray | None = None

    def scores(self, weights: sp.csr_array) -> np.ndarray:
        """Dense (queries x vocabulary) float64 scores for the context rows of ``weights``."""
        n_queries, n_items = weights.shape
        if self.left is None:
            out = np.zeros((n_queries, n_items), dtype=np.float64)
        else:
            # Written straight into the product (no zero-filled buffer to add to): the same numbers, one pass fewer.
            if isinstance(self.left, np.ndarray):
                projected = weights @ self.left
            else:
                projected = (weights @ self.left).toarray()
            if self.right is None:
                out = np.array(projected, dtype=np.float64)
            else:
                out = np.asarray(projected, dtype=np.float64) @ self._right64().T
        if self.bias is not None:
            out += self.bias[np.newaxis, :]
        return out

    def _right64(self) -> np.ndarray:
        cached = self.__dict__.get("_right_float64")
        if cached is None:
            cached = np.asarray(self.right, dtype=np.float64)
            object.__setattr__(self, "_right_float64", cached)
        return cached


def model_scorer(embeddings: IngredientEmbeddings, name: str = "model") -> PairScorer:
    """The trained model: mean input vector of the context x output vectors, as
    :meth:`IngredientEmbeddings.completion_scores` does, and input vectors for neighbours."""
    return PairScorer(
        name=name,
        left=embeddings.input_vectors,
        right=embeddings.output_vectors,
        vectors=embeddings.input_vectors,
    )


def cooccurrence_counts(gram: BasketGram) -> tuple[sp.csr_array, np.ndarray]:
    """(pair counts with a zero diagonal, basket count of each ingredient) from the baskets' ``XᵀX``."""
    counts = gram.counts
    pairs = gram.matrix.copy()
    pairs.setdiag(0)
    pairs.eliminate_zeros()
    return pairs, counts


def ppmi_matrix(cooccurrence: sp.csr_array, context_smoothing: float = PPMI_CONTEXT_SMOOTHING) -> sp.csr_array:
    """Positive PMI of a co-occurrence matrix with a smoothed context distribution:
    ``max(0, log(c_ij / (c_i P_a(j))))`` with ``c_i`` the row sums and
    ``P_a(j) = c_j^a / sum_l c_l^a`` (``a = 1``: plain PPMI)."""
    coo = cooccurrence.tocoo()
    row_sums = np.asarray(cooccurrence.sum(axis=1)).ravel()
    context = row_sums**context_smoothing
    if context.sum() == 0:
        return sp.csr_array(cooccurrence.shape, dtype=np.float64)
    context_probability = context / context.sum()
    pmi = np.log(coo.data / (row_sums[coo.row] * context_probability[coo.col]))
    keep = pmi > 0
    return sp.csr_array((pmi[keep], (coo.row[keep], coo.col[keep])), shape=cooccurrence.shape)


def truncated_svd(matrix: sp.csr_array, dimensions: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``dimensions`` largest singular triplets (U, S, Vt), largest first, deterministic."""
    n = matrix.shape[0]
    if n <= _DENSE_SVD_LIMIT:
        u, s, vt = np.linalg.svd(matrix.toarray(), full_matrices=False)
        return u[:, :dimensions], s[:dimensions], vt[:dimensions]
    return randomized_svd(matrix, dimensions, seed)


def randomized_svd(matrix: sp.csr_array, dimensions: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``dimensions`` singular triplets by a seeded randomized range finder with power iterations."""
    n_cols = matrix.shape[1]
    width = min(n_cols, dimensions + _SVD_OVERSAMPLES)
    sketch = matrix @ np.random.default_rng(seed).standard_normal((n_cols, width))
    for _ in range(_SVD_POWER_ITERATIONS):
        # LU-normalised power iterations (as scikit-learn's range finder): keeps small directions alive at a
        # fraction of a QR's cost; one QR at the end makes the basis orthonormal.
        sketch = scipy.linalg.lu(sketch, permute_l=True, check_finite=False)[0]
        sketch = matrix @ scipy.linalg.lu(matrix.T @ sketch, permute_l=True, check_finite=False)[0]
    basis, _ = np.linalg.qr(sketch)
    u_small, s, vt = np.linalg.svd((matrix.T @ basis).T, full_matrices=False)
    return (basis @ u_small)[:, :dimensions], s[:dimensions], vt[:dimensions]


def build_baselines(
    train_baskets: Iterable[Sequence[str]] | BasketGram,
    vocabulary: Sequence[str],
    dimensions: int,
    seed: int,
    ease_weights: sp.csr_array | None = None,
) -> tuple[dict[str, PairScorer], dict[str, str]]:
    """The baseline scorers over ``vocabulary`` (in its order) from the training baskets (or their
    :class:`BasketGram` over ``vocabulary``), and the reasons for any baseline that could not be built.

    ``dimensions`` is the size of the random vectors (use the model's); ``seed`` fixes them.
    """
    index = {name: i for i, name in enumerate(vocabulary)}
    n = len(index)
    gram = train_baskets if isinstance(train_baskets, BasketGram) else basket_gram(train_baskets, index)
    cooccurrence, counts = cooccurrence_counts(gram)
    scorers: dict[str, PairScorer] = {
        "popularity": PairScorer("popularity", bias=counts),
        "cooccurrence": PairScorer("cooccurrence", left=cooccurrence),
    }
    random_vectors = np.random.default_rng(seed).standard_normal((n, dimensions))
    scorers["random"] = PairScorer("random", left=random_vectors, right=random_vectors, vectors=random_vectors)
    skipped: dict[str, str] = {}
    rank = min(PPMI_SVD_DIMENSIONS, n - 1)
    positive = ppmi_matrix(cooccurrence)
    if rank < 2:
        skipped["ppmi_svd"] = f"the vocabulary has {n} ingredient(s); a reduced-rank SVD needs at least 3"
    elif positive.nnz == 0:
        skipped["ppmi_svd"] = "no two ingredients co-occur more often than chance in the training baskets"
    else:
        u, s, vt = truncated_svd(positive, rank, seed)
        scorers["ppmi_svd"] = PairScorer("ppmi_svd", left=u * s, right=vt.T, vectors=u * np.sqrt(s))
    if ease_weights is None and n >= 2:
        ease_weights = fit_ease(
            gram.matrix, l2_candidates(counts)[len(L2_GRID) // 2], top_k=EASE_TOP_K, max_items=EASE_MAX_ITEMS
        )
    if ease_weights is not None:
        # scipy-stubs lack csr_array(sparse, dtype=...), which scipy accepts (it converts the data).
        scorers["ease"] = PairScorer("ease", left=sp.csr_array(ease_weights, dtype=np.float64))  # type: ignore[call-overload]
    return scorers, skipped
