"""How a name in a request becomes an ingredient of the model: the training normalizer first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Sequence
from functools import lru_cache

logger = logging.getLogger(__name__)

Normalize = Callable[[Iterable[str]], list[str | None]]


def training_normalizer() -> Normalize:
    """The normalizer the training corpus went through (``Green Onions`` → ``scallion``)."""
    from flavor_ml.data.normalization import normalize_lines

    return normalize_lines


class NameResolver:
    """Maps request names to vocabulary names, remembering recent normalizations.

    A name resolves to its normalized form when the model knows it, else to the name itself
    lower-cased and trimmed (so a model trained on un-normalized names still answers).
    """

    def __init__(self, normalize: Normalize, cache_size: int = 16_384) -> None:
        self._normalize = normalize
        self._normalized = lru_cache(maxsize=cache_size)(self._normalize_one)

    def candidates(self, name: str) -> list[str]:
        """Vocabulary names to try for ``name``, best first."""
        plain = " ".join(name.split()).lower()
        normalized = self._normalized(name)
        return list(dict.fromkeys(c for c in (normalized, plain) if c))

    def resolve(self, name: str, vocabulary: Container[str]) -> str | None:
        return next((c for c in self.candidates(name) if c in vocabulary), None)

    def resolve_all(self, names: Sequence[str], vocabulary: Container[str]) -> list[str | None]:
        return [self.resolve(name, vocabulary) for name in names]

    def _normalize_one(self, name: str) -> str | None:
        try:
            return self._normalize([name])[0]
        except Exception:  # a query the normalizer chokes on is just an unknown ingredient
            logger.warning("the normalizer failed on %r; treating it as unknown", name, exc_info=True)
            return None

