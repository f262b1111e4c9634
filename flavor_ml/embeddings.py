"""Trained ingredient embeddings: input vectors (substitutes) and output vectors (complements).

On disk (one directory):
- ``ingredient-embeddings.bin``: input vectors, word2vec binary format (loadable with gensim's
  ``KeyedVectors.load_word2vec_format(path, binary=True)``). The format cannot hold spaces in a
  key, so spaces in ingredient names are written as underscores (``black_bean``).
- ``ingredient-context-vectors.bin``: output (context) vectors, same format and order.
- ``ingredients.json``: names in vector order with their training counts.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flavor_ml.atomic import atomic_path
from flavor_ml.errors import ModelLoadError

EMBEDDINGS_FILE = "ingredient-embeddings.bin"
CONTEXT_VECTORS_FILE = "ingredient-context-vectors.bin"
VOCABULARY_FILE = "ingredients.json"


def _to_key(name: str) -> str:
    return name.replace(" ", "_")


def _from_key(key: str) -> str:
    return key.replace("_", " ")


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first, without sorting the whole array."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


@contextlib.contextmanager
def _quiet_gensim() -> Iterator[None]:
    """gensim warns that it writes keys in index order when no counts are attached: that order is the point."""
    logger = logging.getLogger("gensim.models.keyedvectors")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _ranked(vocabulary: tuple[str, ...], scores: np.ndarray, k: int) -> list[tuple[str, float]]:
    return [(vocabulary[j], float(scores[j])) for j in _top_k(scores, k) if np.isfinite(scores[j])]


def _keyed_vectors() -> Any:  # gensim is untyped
    """gensim's word2vec file format, imported on first use: importing gensim takes seconds, and a
    run whose model comes from cache never reads or writes vectors."""
    from gensim.models import KeyedVectors

    return KeyedVectors


@dataclass(frozen=True, eq=False)
class IngredientEmbeddings:
    """Vectors of a trained model, with the vectorised queries every consumer needs."""

    vocabulary: tuple[str, ...]
    input_vectors: np.ndarray
    output_vectors: np.ndarray
    counts: np.ndarray
    _index: dict[str, int] = field(init=False, repr=False)
    _unit_inputs: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.vocabulary)
        if self.input_vectors.shape[0] != n or self.output_vectors.shape != self.input_vectors.shape:
            raise ModelLoadError(
                f"embeddings are inconsistent: {n} names, input vectors {self.input_vectors.shape}, "
                f"output vectors {self.output_vectors.shape}"
            )
        if len(self.counts) != n:
            raise ModelLoadError(f"embeddings are inconsistent: {n} names but {len(self.counts)} counts")
        norms = np.linalg.norm(self.input_vectors, axis=1, keepdims=True)
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(self.vocabulary)})
        object.__setattr__(self, "_unit_inputs", self.input_vectors / np.where(norms == 0, 1.0, norms))

    @property
    def dimensions(self) -> int:
        return int(self.input_vectors.shape[1])

    def __len__(self) -> int:
        return len(self.vocabulary)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def index_of(self, name: str) -> int:
        """Position of an ingredient; KeyError if it is not in the vocabulary."""
        return self._index[name]

    def similar(self, name: str, k: int = 10) -> list[tuple[str, float]]:
        """Ingredients whose input vectors are closest by cosine: likely substitutes."""
        i = self._index[name]
        scores = self._unit_inputs @ self._unit_inputs[i]
        scores[i] = -np.inf
        return _ranked(self.vocabulary, scores, k)

    def completion_scores(self, names: list[str]) -> np.ndarray:
        """Score of every ingredient as a complement of ``names``: mean input · output."""
        rows = [self._index[n] for n in names]
        scores: np.ndarray = self.output_vectors @ self.input_vectors[rows].mean(axis=0)
        return scores

    def complete(self, names: list[str], k: int = 10) -> list[tuple[str, float]]:
        """Ingredients that go with ``names`` (input × output vectors), the inputs excluded."""
        known = [n for n in dict.fromkeys(names) if n in self._index]
        if not known:
            return []
        scores = self.completion_scores(known)
        scores[[self._index[n] for n in known]] = -np.inf
        return _ranked(self.vocabulary, scores, k)

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.input_vectors).all() and np.isfinite(self.output_vectors).all())

    def save(self, directory: Path) -> Path:
        """Write the three files into ``directory`` atomically (each file appears whole or not at all)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        keys = [_to_key(n) for n in self.vocabulary]
        for filename, vectors in ((EMBEDDINGS_FILE, self.input_vectors), (CONTEXT_VECTORS_FILE, self.output_vectors)):
            kv = _keyed_vectors()(vector_size=vectors.shape[1], dtype=np.float32)
            kv.add_vectors(keys, vectors.astype(np.float32))
            with atomic_path(directory / filename) as tmp, _quiet_gensim():
                kv.save_word2vec_format(str(tmp), binary=True)
        payload = {"ingredients": list(self.vocabulary), "counts": [int(c) for c in self.counts]}
        with atomic_path(directory / VOCABULARY_FILE) as tmp:
            tmp.write_text(json.dumps(payload))
        return directory

    @classmethod
    def load(cls, directory: Path) -> IngredientEmbeddings:
        directory = Path(directory)
        try:
            keyed_vectors = _keyed_vectors()
            inputs = keyed_vectors.load_word2vec_format(directory / EMBEDDINGS_FILE, binary=True)
            outputs = keyed_vectors.load_word2vec_format(directory / CONTEXT_VECTORS_FILE, binary=True)
            meta = json.loads((directory / VOCABULARY_FILE).read_text())
        except (OSError, ValueError, EOFError) as exc:
            raise ModelLoadError(f"cannot load embeddings from {directory}: {exc}") from exc
        names = tuple(meta["ingredients"])
        if [_from_key(k) for k in inputs.index_to_key] != list(names) or outputs.index_to_key != inputs.index_to_key:
            raise ModelLoadError(f"embeddings in {directory} disagree with {VOCABULARY_FILE} on the ingredient order")
        return cls(
            vocabulary=names,
            input_vectors=np.asarray(inputs.vectors, dtype=np.float32),
            output_vectors=np.asarray(outputs.vectors, dtype=np.float32),
            counts=np.asarray(meta["counts"], dtype=np.int64),
        )
