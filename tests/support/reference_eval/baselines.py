"""The evaluation as it was before the speed-up (verbatim, for the equivalence test). Baseline scorers the probes compare the model with, built from the TRAINING baskets only.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from flavor_ml.embeddings import IngredientEmbeddings

PPMI_SVD_DIMENSIONS = 100
PPMI_CONTEXT_SMOOTHING = 0.75  # Levy et al.'s recommended context-distribution smoothing
_DENSE_SVD_LIMIT = 3000  # vocabularies up to this size get an exact dense SVD

Matrix = np.ndarray | sp.spmatrix | sp.sparray


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
        out = np.zeros((n_queries, n_items), dtype=np.float64)
        if self.left is not None:
            projected = weights @ self.left
            if sp.issparse(projected):
                projected = projected.toarray()
            if self.right is None:
                out += np.asarray(projected, dtype=np.float64)
            else:
                out += np.asarray(projected, dtype=np.float64) @ np.asarray(self.right, dtype=np.float64).T
        if self.bias is not None:
            out += self.bias[np.newaxis, :]
        return out


def model_scorer(embeddings: IngredientEmbeddings, name: str = "model") -> PairScorer:
    """The trained model: mean input vector of the context x output vectors, as
    :meth:`IngredientEmbeddings.completion_scores` does, and input vectors for neighbours."""
    return PairScorer(
        name=name,
        left=embeddings.input_vectors,
        right=embeddings.output_vectors,
        vectors=embeddings.input_vectors,
    )


def incidence_matrix(baskets: Sequence[Sequence[str]], index: dict[str, int]) -> sp.csr_array:
    """Baskets x vocabulary 0/1 matrix; names outside ``index`` are ignored, repeats count once."""
    rows: list[int] = []
    cols: list[int] = []
    for row, basket in enumerate(baskets):
        known = {index[name] for name in basket if name in index}
        rows.extend([row] * len(known))
        cols.extend(known)
    data = np.ones(len(rows), dtype=np.float64)
    return sp.csr_array((data, (rows, cols)), shape=(len(baskets), len(index)))


def cooccurrence_counts(incidence: sp.csr_array) -> tuple[sp.csr_array, np.ndarray]:
    """(pair counts with a zero diagonal, basket count of each ingredient) from an incidence matrix."""
    gram = (incidence.T @ incidence).tocsr()
    counts = np.asarray(gram.diagonal(), dtype=np.float64)
    gram.setdiag(0)
    gram.eliminate_zeros()
    return gram, counts


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
    rng = np.random.default_rng(seed)
    u, s, vt = svds(matrix.astype(np.float64), k=dimensions, v0=rng.standard_normal(n), random_state=seed)
    order = np.argsort(-s)
    return u[:, order], s[order], vt[order]


def build_baselines(
    train_baskets: Sequence[Sequence[str]],
    vocabulary: Sequence[str],
    dimensions: int,
    seed: int,
) -> tuple[dict[str, PairScorer], dict[str, str]]:
    """The baseline scorers over ``vocabulary`` (in its order) from the training baskets,
    and the reasons for any baseline that could not be built.

    ``dimensions`` is the size of the random vectors (use the model's); ``seed`` fixes them.
    """
    index = {name: i for i, name in enumerate(vocabulary)}
    n = len(index)
    cooccurrence, counts = cooccurrence_counts(incidence_matrix(train_baskets, index))
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
    return scorers, skipped
