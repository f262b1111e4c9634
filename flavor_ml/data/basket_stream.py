"""Baskets as a stream: the held-out split and the training passes without the corpus in memory.

The merged baskets (Parquet) are read a slice at a time and split by :func:`holdout_mask` into
chunk files on disk (``train/part-00000.parquet``, ...). :class:`BasketChunks` re-reads them as
often as gensim asks: each pass visits the chunks in a new seeded order and shuffles baskets
within a window of chunks, the bounded-memory equivalent of reshuffling the whole corpus each
epoch (for a corpus smaller than the window it is exactly a full reshuffle).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from flavor_ml.data.split import holdout_mask
from flavor_ml.settings import EvaluationParams

CHUNK_ROWS = 16_384
WINDOW_CHUNKS = 16  # baskets shuffled together: 16 x 16,384 = 262,144


class BasketChunks:
    """A re-iterable, sized corpus of baskets held in Parquet chunk files.

    ``seed=None`` reads the chunks in order (for counting and baselines); with a seed, pass
    ``n`` uses ``numpy.random.default_rng([seed, n])`` for the order of chunks and the shuffle
    within each window of ``window_chunks`` chunks. ``keep`` drops names outside it and
    baskets left with fewer than ``min_size`` names.
    """

    def __init__(
        self,
        chunks: list[Path],
        rows: int,
        seed: int | None = None,
        window_chunks: int = WINDOW_CHUNKS,
        keep: frozenset[str] | None = None,
        min_size: int = 0,
    ) -> None:
        self.chunks, self.rows, self.seed = list(chunks), rows, seed
        self.window_chunks, self.keep, self.min_size = window_chunks, keep, min_size
        self.passes = 0

    def __len__(self) -> int:
        return self.rows

    def __iter__(self) -> Iterator[list[str]]:
        if self.seed is None:
            for chunk in self.chunks:
                yield from self._filtered(_read_chunk(chunk))
            return
        rng = np.random.default_rng([self.seed, self.passes])
        self.passes += 1
        # A corpus of one window is shuffled whole, with the very draws of an in-memory shuffle
        # (ShuffledBaskets in flavor_ml.training.train_embeddings): the same vectors either way.
        if len(self.chunks) <= self.window_chunks:
            order = self.chunks
        else:
            order = [self.chunks[i] for i in rng.permutation(len(self.chunks))]
        for start in range(0, len(order), self.window_chunks):
            window = [
                b for chunk in order[start : start + self.window_chunks] for b in self._filtered(_read_chunk(chunk))
            ]
            for i in rng.permutation(len(window)):
                yield window[i]

    def _filtered(self, baskets: list[list[str]]) -> Iterator[list[str]]:
        for basket in baskets:
            if self.keep is not None:
                basket = [name for name in basket if name in self.keep]
            if len(basket) >= self.min_size:
                yield basket

    def column(self, name: str) -> list[object]:
        """Another column of the chunk files (``None`` where a chunk lacks it), in the order of the baskets."""
        values: list[object] = []
        for chunk in self.chunks:
            frame = pl.read_parquet(chunk)
            values.extend(frame[name].to_list() if name in frame.columns else [None] * frame.height)
        return values

    def with_order(
        self, seed: int, keep: frozenset[str] | None = None, min_size: int = 0, rows: int | None = None
    ) -> BasketChunks:
        """The same chunks, reshuffled on every pass, filtered as given."""
        return BasketChunks(self.chunks, self.rows if rows is None else rows, seed, self.window_chunks, keep, min_size)


def _read_chunk(path: Path) -> list[list[str]]:
    return pl.read_parquet(path, columns=["ingredients"])["ingredients"].to_list()


@dataclass(frozen=True)
class SplitBaskets:
    train: BasketChunks
    held_out: BasketChunks


def split_baskets(merged: Path, params: EvaluationParams, work: Path, chunk_rows: int = CHUNK_ROWS) -> SplitBaskets:
    """Split the baskets of ``merged`` into training and held-out chunk files under ``work``,
    reading ``chunk_rows`` baskets at a time."""
    total = pl.scan_parquet(merged).select(pl.len()).collect().item()
    # The cuisine labels travel with the baskets: the evaluation's cuisine slices read them per held-out basket.
    columns = [c for c in ("ingredients", "cuisine") if c in pl.scan_parquet(merged).collect_schema().names()]
    chunks = (
        pl.scan_parquet(merged).select(columns).slice(offset, chunk_rows).collect()
        for offset in range(0, total, chunk_rows)
    )
    train, held_out = split_chunks(
        chunks, lambda baskets: holdout_mask(baskets, params), work / "train", work / "held_out"
    )
    return SplitBaskets(train=train, held_out=held_out)


def split_chunks(
    chunks: Iterable[pl.DataFrame], mask: Callable[[list[list[str]]], np.ndarray], kept: Path, taken: Path
) -> tuple[BasketChunks, BasketChunks]:
    """Each chunk's rows into chunk files under ``kept`` and ``taken`` (where ``mask`` of its baskets is
    true), in order, one chunk in memory at a time."""
    sides: dict[Path, list[Path]] = {kept: [], taken: []}
    rows = dict.fromkeys(sides, 0)
    for folder in sides:
        folder.mkdir(parents=True, exist_ok=True)
    for number, chunk in enumerate(chunks):
        held = pl.Series(mask(chunk["ingredients"].to_list()))
        for folder, part in ((kept, chunk.filter(~held)), (taken, chunk.filter(held))):
            if part.height:
                path = folder / f"part-{number:05d}.parquet"
                part.write_parquet(path, statistics=False)
                sides[folder].append(path)
                rows[folder] += part.height
    return BasketChunks(sides[kept], rows[kept]), BasketChunks(sides[taken], rows[taken])


@dataclass(frozen=True)
class TrainingCorpus:
    """What gensim trains on: the usable baskets as a reshuffled stream, and their statistics."""

    baskets: BasketChunks
    counts: Counter[str]
    total_words: int
    longest: int
    given: int
    distinct_given: int


def training_corpus(train: BasketChunks, min_count: int, seed: int) -> TrainingCorpus:
    """The usable training baskets (names in at least ``min_count`` baskets, two or more names
    left), counted in two passes over the chunk files: memory is bounded by a chunk and the vocabulary."""
    given: Counter[str] = Counter()
    for basket in BasketChunks(train.chunks, train.rows):
        given.update(set(basket))
    kept = frozenset(name for name, n in given.items() if n >= min_count)
    # A list.filter(is_in(...)) in polars held every row's copy of the kept names: gigabytes at 200,000 baskets.
    keep = None if len(kept) == len(given) else kept
    counts: Counter[str] = Counter()
    rows = words = longest = 0
    for basket in BasketChunks(train.chunks, train.rows, keep=keep, min_size=2):
        counts.update(basket)
        rows, words, longest = rows + 1, words + len(basket), max(longest, len(basket))
    return TrainingCorpus(
        baskets=train.with_order(seed, keep=keep, min_size=2, rows=rows),
        counts=counts,
        total_words=words,
        longest=longest,
        given=len(train),
        distinct_given=len(given),
    )
