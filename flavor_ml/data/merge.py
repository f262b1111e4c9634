"""Merge the baskets of a corpus's partitions into the baskets training reads.

A recipe that appears in more than one partition (the same normalized basket and the same
title, or the same id when it has no title) is kept in the first partition in name order only; the copies go to the rejects with reason ``duplicate`` and where the kept one is.
What went in is recorded per partition: name, source, sha256 of its raw bytes, and rows.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import BaseModel

from flavor_ml.atomic import atomic_path

ROW_GROUP_ROWS = 16_384
_UNIT = "\x1f"


class PartitionRecord(BaseModel):
    """One partition as it went into a training corpus."""

    name: str
    source: str
    sha256: str
    rows: int  # baskets it contributed to the merged corpus
    recipes_in: int
    rejected: int
    duplicates: int


class PartitionBaskets(BaseModel):
    """A partition's normalized baskets, as the merge needs them."""

    name: str
    path: Path
    rejects_path: Path


def _dedupe_key() -> pl.Expr:
    who = pl.coalesce(pl.col("title").str.strip_chars().str.to_lowercase(), pl.col("recipe_id"))
    basket = pl.col("ingredients").list.sort().list.join(_UNIT)
    return pl.concat_str([who, basket], separator="\x1e")


def merge_baskets(parts: list[PartitionBaskets], output: Path, rejects_output: Path) -> dict[str, tuple[int, int]]:
    """Write the merged baskets (with a ``partition`` column) to ``output`` and every partition's
    rejects plus the dropped duplicates to ``rejects_output``, both atomically.

    Returns, per partition name, (rows kept, duplicates dropped).
    """
    ordered = sorted(parts, key=lambda part: part.name)
    frames = [pl.scan_parquet(part.path).with_columns(partition=pl.lit(part.name)) for part in ordered]
    table = pl.concat(frames, how="diagonal_relaxed").with_columns(_key=_dedupe_key()).collect()
    # Copies inside one partition are the partition's own business (normalization keeps them).
    first = table.select(pl.col("partition") == pl.col("partition").first().over("_key")).to_series()
    kept, copies = table.filter(first), table.filter(~first)
    where = kept.select("_key", kept_in=pl.col("partition"), kept_id=pl.col("recipe_id")).unique("_key", keep="first")
    duplicates = copies.join(where, on="_key", how="left").select(
        "partition",
        pl.lit(None, dtype=pl.Int64).alias("row"),
        "recipe_id",
        reason=pl.lit("duplicate"),
        detail=pl.format("the same recipe as {} in partition {}", "kept_id", "kept_in"),
        lines=pl.col("ingredients"),
    )
    del table
    rejects = [pl.read_parquet(part.rejects_path).with_columns(partition=pl.lit(part.name)) for part in ordered]
    all_rejects = pl.concat([*rejects, duplicates], how="diagonal_relaxed")
    with atomic_path(rejects_output) as tmp:
        all_rejects.write_parquet(tmp, statistics=False)
    with atomic_path(output) as tmp:
        kept.drop("_key").write_parquet(tmp, statistics=False, row_group_size=ROW_GROUP_ROWS)
    rows = dict(kept.group_by("partition").len().iter_rows())
    dropped = dict(copies.group_by("partition").len().iter_rows())
    return {part.name: (int(rows.get(part.name, 0)), int(dropped.get(part.name, 0))) for part in ordered}


def vocabulary_size(path: Path) -> int:
    """Distinct ingredient names in a baskets file."""
    return int(pl.scan_parquet(path).select(pl.col("ingredients").explode().drop_nulls().n_unique()).collect().item())
