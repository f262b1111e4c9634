"""What callers ask for that the model does not know, counted in bounded memory.

Only the normalized form of an unknown name is kept (``2 Cups Yuzu Kosho`` → ``yuzu kosho``),
never a request body, an address or a time per request. A name the normalizer reduces to
nothing is counted without its text. Memory is bounded by the Space-Saving algorithm
(Metwally et al., 2005): at most ``capacity`` names are tracked; a new name when full replaces
the least counted one and inherits its count as an upper bound of its error, so every name
asked for more than ``total / capacity`` times is in the table, with its count within ``error``.
"""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NotRequired, TypedDict

DEFAULT_CAPACITY = 2_000


class DescribedUnknown(TypedDict):
    """An unknown name as reported; /admin/unknown adds what the served model says about it."""

    name: str
    count: int
    error: int
    did_you_mean: NotRequired[list[str]]
    known_now: NotRequired[bool]


@dataclass(frozen=True)
class UnknownCount:
    name: str
    count: int  # an upper bound: the true count is between count - error and count
    error: int

    def describe(self) -> DescribedUnknown:
        return {"name": self.name, "count": self.count, "error": self.error}


class UnknownTable(TypedDict):
    """The counter's totals and its most asked-for names (``unknown``: :meth:`UnknownCount.describe` each)."""

    since: str
    capacity: int
    tracked: int
    total_unknown_queries: int
    unnamed_queries: int
    unknown: list[DescribedUnknown]


class UnknownCounter:
    """A thread-safe Space-Saving counter of unknown ingredient names."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._counts: dict[str, list[int]] = {}  # name -> [count, error]
        self._heap: list[tuple[int, str]] = []  # (count, name), lazily updated: stale entries are skipped
        self._unnamed = 0
        self._total = 0
        self._since = datetime.now(UTC)
        self._lock = threading.Lock()

    def add(self, normalized: str | None) -> None:
        """Count one query for an unknown name, given in its normalized form (None: nothing was left of it)."""
        with self._lock:
            self._total += 1
            if not normalized:
                self._unnamed += 1
                return
            entry = self._counts.get(normalized)
            if entry is None:
                if len(self._counts) >= self.capacity:
                    smallest, evicted = self._pop_smallest()
                    entry = self._counts[normalized] = [smallest + 1, smallest]
                    del self._counts[evicted]
                else:
                    entry = self._counts[normalized] = [1, 0]
            else:
                entry[0] += 1
            heapq.heappush(self._heap, (entry[0], normalized))
            if len(self._heap) > 4 * self.capacity:  # stale entries pile up under a skewed load
                self._heap = [(c, n) for n, (c, _) in self._counts.items()]
                heapq.heapify(self._heap)

    def _pop_smallest(self) -> tuple[int, str]:
        while True:
            count, name = heapq.heappop(self._heap)
            entry = self._counts.get(name)
            if entry is not None and entry[0] == count:
                return count, name

    def top(self, limit: int | None = None) -> list[UnknownCount]:
        """The most asked-for unknown names, most first (ties by name)."""
        with self._lock:
            ranked = sorted(self._counts.items(), key=lambda item: (-item[1][0], item[0]))
        return [UnknownCount(name, count, error) for name, (count, error) in ranked[:limit]]

    def snapshot(self, limit: int | None = None) -> UnknownTable:
        with self._lock:
            total, unnamed, tracked, since = self._total, self._unnamed, len(self._counts), self._since
        return {
            "since": since.isoformat(),
            "capacity": self.capacity,
            "tracked": tracked,
            "total_unknown_queries": total,
            "unnamed_queries": unnamed,
            "unknown": [entry.describe() for entry in self.top(limit)],
        }

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._heap.clear()
            self._unnamed = self._total = 0
            self._since = datetime.now(UTC)
