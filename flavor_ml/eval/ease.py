"""EASE: closed-form item-item weights for completing baskets (Steck, "Embarrassingly Shallow
Autoencoders for Sparse Data", WWW 2019).

With ``X`` the baskets x ingredients 0/1 matrix and ``G = XᵀX``, the weights that best
reconstruct each ingredient from the others under an L2 penalty ``λ``, with a zero diagonal
(an ingredient may not predict itself), are

    P = (G + λI)⁻¹,   B = I − P · diag(1 / diag(P))   (so B_ij = −P_ij / P_jj, B_jj = 0)

and a basket's completion scores are ``x_context · B``. One inversion of an
ingredients x ingredients matrix: seconds for a few thousand ingredients.

Only the ``top_k`` largest positive weights of each row (what one context ingredient votes
for) are kept, as a sparse matrix: 20,000 ingredients x 100 weights is 16 MB where the dense
matrix would be 3.2 GB, and a basket's top 10 is decided by the large positive weights
anyway. The fit covers at most ``max_items`` ingredients, the most frequent: the inversion
grows with the cube of the vocabulary, and the rarest ingredients have too few baskets to
weigh anything reliably (they are neither suggested nor counted as context by EASE).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg.lapack
import scipy.sparse as sp

from flavor_ml.errors import TrainingError

# λ candidates as multiples of the mean basket count of an ingredient (the mean of diag(G)):
# a penalty relative to the data's own scale carries over between corpora of any size.
L2_GRID = (0.005, 0.03, 0.15, 0.8)


def l2_candidates(counts: np.ndarray, grid: tuple[float, ...] = L2_GRID) -> list[float]:
    """The λ values to try on this training data (``counts``: baskets per ingredient, the diagonal of
    ``XᵀX``): ``grid`` x the mean count of an ingredient."""
    scale = float(counts.mean()) if counts.size else 1.0
    return [max(1e-6, g * scale) for g in grid]


def gram_matrix(gram: sp.csr_array, items: np.ndarray) -> np.ndarray:
    """Dense ``XᵀX`` over the ingredients ``items``, from the sparse ``XᵀX`` of the whole vocabulary."""
    block = gram[items][:, items] if len(items) < gram.shape[1] else gram
    return np.asarray(block.toarray(), dtype=np.float64)


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """Dense EASE weights ``B`` (zero diagonal) from ``G = XᵀX`` and the penalty ``l2``."""
    # Fortran order: LAPACK factorises the copy in place and writes the inverse over the identity,
    # two matrices where numpy's inv holds four. G is symmetric, so the transpose is the same matrix.
    regularised = np.array(gram.T, dtype=np.float64, order="F")
    regularised[np.diag_indices_from(regularised)] += l2
    # The LU solve numpy's inv runs (dgesv on the identity), the same numbers; on this machine's
    # OpenBLAS twice as fast as scipy's Cholesky potrf/potri pair.
    _, _, precision, info = scipy.linalg.lapack.dgesv(
        regularised, np.eye(len(regularised), order="F"), overwrite_a=True, overwrite_b=True
    )
    del regularised
    if info != 0:
        raise TrainingError(
            f"EASE: the co-occurrence matrix with l2={l2:g} cannot be inverted (LAPACK dgesv info={info}); "
            "use a larger l2"
        )
    weights: np.ndarray = precision
    np.divide(weights, -np.diag(weights).copy()[np.newaxis, :], out=weights)  # in place: one matrix fewer
    np.fill_diagonal(weights, 0.0)
    return weights


def sparsify_rows(weights: np.ndarray, top_k: int, block_rows: int = 1024) -> sp.csr_array:
    """Keep the ``top_k`` largest positive weights of each row; the rest become 0.

    Rows are ranked ``block_rows`` at a time: the ranking's copies stay small beside the weights."""
    n = weights.shape[0]
    k = min(top_k, n - 1)
    if k <= 0:
        # scipy-stubs have no (rows, cols) shape overload for float32 and read the shape as 1-D data.
        return sp.csr_array((n, weights.shape[1]), dtype=np.float32)  # type: ignore[return-value]
    tops, kept = [], []
    for start in range(0, n, block_rows):
        block = weights[start : start + block_rows]
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(block, top, axis=1)
        tops.append(top)
        kept.append(values)
    top, values = np.concatenate(tops), np.concatenate(kept)
    keep = values > 0
    rows = np.repeat(np.arange(n), k).reshape(n, k)[keep]
    return sp.csr_array((values[keep].astype(np.float32), (rows, top[keep])), shape=weights.shape)


def expand(weights: sp.csr_array, items: np.ndarray, n_items: int) -> sp.csr_array:
    """Weights over ``items`` (a subset of the vocabulary) placed in a full vocabulary x vocabulary matrix."""
    if len(items) == n_items:
        return weights.tocsr()
    coo = weights.tocoo()
    return sp.csr_array((coo.data, (items[coo.row], items[coo.col])), shape=(n_items, n_items))


def fitted_items(counts: np.ndarray, max_items: int) -> np.ndarray:
    """The ingredients EASE is fitted over (``counts``: baskets per ingredient): every ingredient that
    occurs, at most the ``max_items`` most frequent."""
    present = np.flatnonzero(counts > 0)
    if len(present) <= max_items:
        return present
    order = np.lexsort((present, -counts[present]))  # most frequent first, ties by position
    return np.sort(present[order[:max_items]])


def fit_ease(gram: sp.csr_array, l2: float, top_k: int, max_items: int) -> sp.csr_array:
    """Sparse top-k EASE weights (vocabulary x vocabulary, float32) from the baskets' sparse ``XᵀX``."""
    items = fitted_items(np.asarray(gram.diagonal(), dtype=np.float64), max_items)
    if len(items) < 2:
        raise TrainingError(f"EASE needs at least 2 ingredients that occur in the training baskets, found {len(items)}")
    return expand(sparsify_rows(ease_weights(gram_matrix(gram, items), l2), top_k), items, gram.shape[1])
