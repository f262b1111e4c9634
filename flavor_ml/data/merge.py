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

    Memory is bounded by a 64-bit hash per recipe (16 MB a million) and one partition at a time:
    recipes are compared by the hash of their key (two different recipes collide with a
    probability of about n²/2⁶⁵, 1e-7 for two million), and the output is streamed to Parquet.
    Returns, per partition name, (rows kept, duplicates dropped).
    """
    ordered = sorted(parts, key=lambda part: part.name)
    keys = pl.concat(
        [
            pl.scan_parquet(part.path)
            .select(_h=_dedupe_key().hash(seed=0))
            .with_row_index("_row")
            .with_columns(_part=pl.lit(index, dtype=pl.UInt32))
            for index, part in enumerate(ordered)
        ]
    ).collect(engine="streaming")
    firsts = keys.group_by("_h").agg(_first=pl.col("_part").min())
    # Copies inside one partition are the partition's own business (normalization keeps them).
    copies = keys.join(firsts, on="_h").filter(pl.col("_part") > pl.col("_first"))
    kept_rows = keys.height - copies.height
    del keys
    frames = [
        pl.scan_parquet(part.path)
        .with_row_index("_row")
        .filter(~pl.col("_row").is_in(copies.filter(pl.col("_part") == index)["_row"].implode()))
        .drop("_row")
        .with_columns(partition=pl.lit(part.name))
        for index, part in enumerate(ordered)
    ]
    with atomic_path(output) as tmp:
        pl.concat(frames, how="diagonal_relaxed").sink_parquet(tmp, statistics=False, row_group_size=ROW_GROUP_ROWS)
    rejects = [pl.read_parquet(part.rejects_path).with_columns(partition=pl.lit(part.name)) for part in ordered]
    with atomic_path(rejects_output) as tmp:
        pl.concat([*rejects, _duplicate_rejects(ordered, copies)], how="diagonal_relaxed").write_parquet(
            tmp, statistics=False
        )
    dropped = dict(copies.group_by("_part").len().iter_rows())
    rows = pl.scan_parquet(output).group_by("partition").len().collect()
    kept = dict(rows.iter_rows())
    assert sum(kept.values()) == kept_rows
    return {part.name: (int(kept.get(part.name, 0)), int(dropped.get(index, 0))) for index, part in enumerate(ordered)}


def _duplicate_rejects(ordered: list[PartitionBaskets], copies: pl.DataFrame) -> pl.DataFrame:
    """The dropped copies as rejects, each saying which recipe in which partition was kept."""
    schema = pl.Schema(
        {
            "partition": pl.String(),
            "row": pl.Int64(),
            "recipe_id": pl.String(),
            "reason": pl.String(),
            "detail": pl.String(),
            "lines": pl.List(pl.String()),
        }
    )
    if copies.height == 0:
        return pl.DataFrame(schema=schema)
    wanted = copies.select("_h", "_first").unique()
    originals = []
    for index, part in enumerate(ordered):
        hashes = wanted.filter(pl.col("_first") == index)["_h"]
        if hashes.len():
            originals.append(
                pl.scan_parquet(part.path)
                .with_columns(_h=_dedupe_key().hash(seed=0))
                .filter(pl.col("_h").is_in(hashes.implode()))
                .unique("_h", keep="first")
                .select("_h", kept_id=pl.col("recipe_id"), kept_in=pl.lit(part.name))
                .collect()
            )
    where = pl.concat(originals)
    dropped = []
    for index, part in enumerate(ordered):
        rows = copies.filter(pl.col("_part") == index).select("_row", "_h")
        if rows.height:
            table = (
                pl.scan_parquet(part.path).with_row_index("_row").join(rows.lazy(), on="_row").sort("_row").collect()
            )
            dropped.append(table.with_columns(partition=pl.lit(part.name)))
    return (
        pl.concat(dropped, how="diagonal_relaxed")
        .join(where, on="_h", how="left", maintain_order="left")
        .select(
            "partition",
            pl.lit(None, dtype=pl.Int64).alias("row"),
            "recipe_id",
            reason=pl.lit("duplicate"),
            detail=pl.format("the same recipe as {} in partition {}", "kept_id", "kept_in"),
            lines=pl.col("ingredients"),
        )
        .cast(schema)
    )


def vocabulary_size(path: Path) -> int:
    """Distinct ingredient names in a baskets file."""
    return int(pl.scan_parquet(path).select(pl.col("ingredients").explode().drop_nulls().n_unique()).collect().item())
