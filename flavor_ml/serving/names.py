"""How a name in a request becomes an ingredient of the model: the training normalizer.

A model's vocabulary is made of canonical names, which the normalizer leaves unchanged, so a
name that is already one (after lower-casing and collapsing spaces) is taken as it is; any
other name goes through the normalizer (``Green Onions`` → ``scallion``). The normalizer runs
a polars expression (tens of milliseconds a call), so callers batch the names of a request
into one call off the event loop (:meth:`NameResolver.normalize`), and results are cached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Container, Iterable, Sequence

from cachetools import LRUCache

logger = logging.getLogger(__name__)

Normalize = Callable[[Iterable[str]], list[str | None]]


def training_normalizer() -> Normalize:
    """The normalizer the training corpus went through."""
    from flavor_ml.data.normalization import normalize_lines

    return normalize_lines


def plain(name: str) -> str:
    """Lower-cased, spaces collapsed: the form compared with the vocabulary before normalizing."""
    return " ".join(name.split()).lower()


class NameResolver:
    """Maps request names to vocabulary names, remembering the ``cache_size`` most recently used normalizations."""

    def __init__(self, normalize: Normalize, cache_size: int = 65_536) -> None:
        self._normalize = normalize
        self._cache: LRUCache[str, str | None] = LRUCache(maxsize=cache_size)
        self._lock = threading.Lock()  # an LRU cache reorders itself on reads too

    def pending(self, names: Iterable[str], vocabulary: Container[str]) -> list[str]:
        """The names that need the normalizer before :meth:`resolve` can answer for them."""
        with self._lock:
            return [n for n in dict.fromkeys(names) if plain(n) not in vocabulary and n not in self._cache]

    def normalize(self, names: Sequence[str]) -> None:
        """Normalize ``names`` in one call and cache the results (blocking: run it off the event loop)."""
        with self._lock:
            names = [n for n in dict.fromkeys(names) if n not in self._cache]
        if not names:
            return
        try:
            normalized = self._normalize(names)
        except Exception:  # a name the normalizer chokes on is an unknown ingredient, not a server error
            logger.warning("the normalizer failed on %r; treating them as unknown", names, exc_info=True)
            normalized = [None] * len(names)
        with self._lock:
            self._cache.update(zip(names, normalized))

    def resolve(self, name: str, vocabulary: Container[str]) -> str | None:
        """The vocabulary name for ``name``, or None; names from :meth:`pending` must be normalized first."""
        candidate = plain(name)
        if candidate in vocabulary:
            return candidate
        with self._lock:
            normalized = self._cache.get(name)
        return normalized if normalized in vocabulary else None

    def normalized_form(self, name: str) -> str | None:
        """What the normalizer made of ``name`` (None if nothing was left, or it was not normalized)."""
        return self._cache.get(name)

    def lookup_form(self, name: str) -> str:
        """The form to look close spellings up by: the normalized one when there is one."""
        with self._lock:
            cached = self._cache.get(name)
        return cached or plain(name)
