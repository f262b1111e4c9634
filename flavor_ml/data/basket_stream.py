"""Baskets as a stream: the held-out split and the training passes without the corpus in memory.

The merged baskets (Parquet) are read a slice at a time and split by :func:`holdout_mask` into
chunk files on disk (``train/part-00000.parquet``, ...). :class:`BasketChunks` re-reads them as
often as gensim asks: each pass visits the chunks in a new seeded order and shuffles baskets
within a window of chunks, the bounded-memory equivalent of reshuffling the whole corpus each
epoch (for a corpus smaller than the window it is exactly a full reshuffle).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
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
        order = [self.chunks[i] for i in rng.permutation(len(self.chunks))]
        for start in range(0, len(order), self.window_chunks):
            window = [basket for chunk in order[start : start + self.window_chunks] for basket in _read_chunk(chunk)]
            for i in rng.permutation(len(window)):
                basket = window[i]
                if self.keep is not None:
                    basket = [name for name in basket if name in self.keep]
                if len(basket) >= self.min_size:
                    yield basket

    def _filtered(self, baskets: list[list[str]]) -> Iterator[list[str]]:
        for basket in baskets:
            if self.keep is not None:
                basket = [name for name in basket if name in self.keep]
            if len(basket) >= self.min_size:
                yield basket

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
    sides: dict[str, list[Path]] = {"train": [], "held_out": []}
    rows = {"train": 0, "held_out": 0}
    for side in sides:
        (work / side).mkdir(parents=True, exist_ok=True)
    total = pl.scan_parquet(merged).select(pl.len()).collect().item()
    for number, offset in enumerate(range(0, total, chunk_rows)):
        chunk = pl.scan_parquet(merged).select("ingredients").slice(offset, chunk_rows).collect()
        held = pl.Series(holdout_mask(chunk["ingredients"].to_list(), params))
        for side, part in (("train", chunk.filter(~held)), ("held_out", chunk.filter(held))):
            if part.height:
                path = work / side / f"part-{number:05d}.parquet"
                part.write_parquet(path, statistics=False)
                sides[side].append(path)
                rows[side] += part.height
    return SplitBaskets(
        train=BasketChunks(sides["train"], rows["train"]), held_out=BasketChunks(sides["held_out"], rows["held_out"])
    )


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
    left), counted with polars over the chunk files without loading them all."""
    if not train.chunks:
        return TrainingCorpus(train.with_order(seed, rows=0), Counter(), 0, 0, 0, 0)
    scan = pl.scan_parquet(train.chunks).select(pl.col("ingredients").list.unique(maintain_order=True))
    given_counts = (
        scan.select(pl.col("ingredients").explode().drop_nulls().value_counts(sort=True))
        .collect(engine="streaming")
        .unnest("ingredients")
    )
    kept = given_counts.filter(pl.col("count") >= min_count)["ingredients"]
    usable = scan.select(pl.col("ingredients").list.filter(pl.element().is_in(kept.implode()))).filter(
        pl.col("ingredients").list.len() >= 2
    )
    stats = (
        usable.select(
            rows=pl.len(), words=pl.col("ingredients").list.len().sum(), longest=pl.col("ingredients").list.len().max()
        )
        .collect(engine="streaming")
        .row(0)
    )
    counts = (
        usable.select(pl.col("ingredients").explode().value_counts()).collect(engine="streaming").unnest("ingredients")
    )
    keep = None if given_counts.height == kept.len() else frozenset(kept.to_list())
    return TrainingCorpus(
        baskets=train.with_order(seed, keep=keep, min_size=2, rows=int(stats[0] or 0)),
        counts=Counter(dict(counts.iter_rows())),
        total_words=int(stats[1] or 0),
        longest=int(stats[2] or 0),
        given=len(train),
        distinct_given=given_counts.height,
    )
