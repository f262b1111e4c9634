"""Close spellings of an unknown ingredient, found in bounded time whatever the vocabulary size."""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterable


class CloseSpellings:
    """Suggests vocabulary names that look like a misspelt query.

    A small vocabulary is compared whole with :func:`difflib.get_close_matches`. A large one
    (more than ``2 * window`` names) is compared only with the ``window`` names either side of
    the query in alphabetical order, so a 404 costs the same on 100k ingredients as on 2k; the
    price is that a typo in the first letters can be missed there.
    """

    def __init__(self, names: Iterable[str], window: int = 1000) -> None:
        self._sorted = sorted(names)
        self._window = window

    def __call__(self, word: str, n: int = 5, cutoff: float = 0.6) -> list[str]:
        word = word.strip().lower()
        if not word:
            return []
        candidates = self._sorted
        if len(candidates) > 2 * self._window:
            at = bisect.bisect_left(candidates, word)
            candidates = candidates[max(0, at - self._window) : at + self._window]
        return difflib.get_close_matches(word, candidates, n=n, cutoff=cutoff)
