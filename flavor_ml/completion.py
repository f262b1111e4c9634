"""The completion scorer a model version carries: what ``/complete`` and the pyfunc answer with.

Two scorers can complete a basket: Item2Vec (mean input vector of the basket x output
vectors) and EASE (closed-form item-item weights, :mod:`flavor_ml.eval.ease`). The training
step fits both on the same data and keeps the one that completes the validation baskets
better; the version records which, with the validation figures, and serves it.
Substitutes (``/similar``) always come from the Item2Vec vectors.

On disk, beside the embeddings' files:
- ``completion.json``: ``{"scorer": "ease" | "item2vec", "validation": {...}, "ease": {"l2": ..., "top_k": ...}}``;
- ``ease-weights.npz``: the sparse EASE weights (scipy ``save_npz``, float32, vocabulary order:
  row = a context ingredient, column = the ingredient it votes for).

A model directory without them (a version trained before EASE) completes with Item2Vec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from flavor_ml.atomic import atomic_path
from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import ModelLoadError

COMPLETION_FILE = "completion.json"
EASE_WEIGHTS_FILE = "ease-weights.npz"
ITEM2VEC, EASE = "item2vec", "ease"
SCORERS = (ITEM2VEC, EASE)


@dataclass(frozen=True, eq=False)
class CompletionModel:
    """The served completion scorer over a model's vocabulary."""

    embeddings: IngredientEmbeddings
    scorer: str = ITEM2VEC
    ease_weights: sp.csr_array | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ModelLoadError(f"unknown completion scorer {self.scorer!r}; expected one of {', '.join(SCORERS)}")
        n = len(self.embeddings)
        if self.ease_weights is not None and self.ease_weights.shape != (n, n):
            raise ModelLoadError(f"EASE weights have shape {self.ease_weights.shape}, the vocabulary has {n} names")
        if self.scorer == EASE and self.ease_weights is None:
            raise ModelLoadError("the model says it completes with EASE but carries no EASE weights")

    def scores(self, names: list[str]) -> np.ndarray:
        """Score of every vocabulary ingredient as a complement of ``names`` (all in the vocabulary)."""
        if self.scorer == ITEM2VEC:
            return np.asarray(self.embeddings.completion_scores(names), dtype=np.float64)
        assert self.ease_weights is not None
        rows = [self.embeddings.index_of(n) for n in names]
        return np.asarray(self.ease_weights[rows].sum(axis=0), dtype=np.float64).ravel() / len(rows)

    def complete(self, names: list[str], k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` best complements of ``names`` (unknown names ignored, the inputs excluded)."""
        known = [n for n in dict.fromkeys(names) if n in self.embeddings]
        if not known:
            return []
        scores = self.scores(known)
        scores[[self.embeddings.index_of(n) for n in known]] = -np.inf
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.empty(0, dtype=np.int64)
        top = top[np.lexsort((top, -scores[top]))]  # best first, ties by vocabulary order
        return [(self.embeddings.vocabulary[j], float(scores[j])) for j in top if np.isfinite(scores[j])]

    def describe(self) -> dict[str, Any]:
        """The scorer and how it was chosen, for ``/model`` and the run's tags."""
        return {"scorer": self.scorer, **self.details}

    def save(self, directory: Path) -> None:
        """Write ``completion.json`` (and the EASE weights when present) atomically into ``directory``."""
        directory = Path(directory)
        if self.ease_weights is not None:
            with atomic_path(directory / EASE_WEIGHTS_FILE) as tmp, open(tmp, "wb") as handle:
                sp.save_npz(handle, sp.csr_matrix(self.ease_weights), compressed=True)
        with atomic_path(directory / COMPLETION_FILE) as tmp:
            tmp.write_text(json.dumps({"scorer": self.scorer, **self.details}, indent=1, sort_keys=True))

    @classmethod
    def load(cls, directory: Path, embeddings: IngredientEmbeddings | None = None) -> CompletionModel:
        """The completion scorer saved in ``directory`` (Item2Vec when the directory has none)."""
        directory = Path(directory)
        embeddings = embeddings or IngredientEmbeddings.load(directory)
        meta_path = directory / COMPLETION_FILE
        if not meta_path.exists():
            return cls(embeddings=embeddings, details={"chosen_by": "no completion.json: a version older than EASE"})
        try:
            meta = json.loads(meta_path.read_text())
            weights_path = directory / EASE_WEIGHTS_FILE
            weights = sp.csr_array(sp.load_npz(weights_path)) if weights_path.exists() else None
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the completion scorer from {directory}: {exc}") from exc
        scorer = meta.pop("scorer", ITEM2VEC)
        return cls(embeddings=embeddings, scorer=scorer, ease_weights=weights, details=meta)
