"""From raw recipes to baskets: one recipe becomes one set of canonical ingredient names.

Recipes that cannot be used are never dropped silently: each gets a reason, the reasons are
counted, and the rejected rows are written beside the output so they can be inspected.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from pydantic import BaseModel

from flavor_ml.atomic import atomic_path
from flavor_ml.data.formats import read_recipes
from flavor_ml.data.normalization import Normalizer
from flavor_ml.errors import NormalizationError
from flavor_ml.settings import NormalizationParams

BASKET_SCHEMA = pl.Schema(
    {"recipe_id": pl.String(), "title": pl.String(), "cuisine": pl.String(), "ingredients": pl.List(pl.String())}
)


class BasketCounts(BaseModel):
    """What normalization did to a corpus."""

    recipes_in: int
    recipes_out: int
    rejects: dict[str, int]
    vocabulary_size: int

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())


def _reason_for_rows(recipes: pl.DataFrame, params: NormalizationParams) -> pl.Expr:
    """The first reason a raw recipe cannot be used, or null; checked before normalizing."""
    n_lines = pl.col("lines").list.len()
    longest = pl.col("lines").list.eval(pl.element().str.len_chars()).list.max()
    return (
        pl.when(pl.col("error").is_not_null())
        .then(pl.lit("unreadable"))
        .when(pl.col("lines").is_null() | (n_lines == 0))
        .then(pl.lit("no_ingredients"))
        .when(n_lines > params.max_lines_per_recipe)
        .then(pl.lit("too_many_lines"))
        .when(longest > params.max_line_chars)
        .then(pl.lit("line_too_long"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _detail_for_rows(params: NormalizationParams) -> pl.Expr:
    return (
        pl.when(pl.col("reason") == "unreadable")
        .then(pl.col("error"))
        .when(pl.col("reason") == "too_many_lines")
        .then(
            pl.format(
                "{} lines, more than the limit of {}", pl.col("lines").list.len(), pl.lit(params.max_lines_per_recipe)
            )
        )
        .when(pl.col("reason") == "line_too_long")
        .then(pl.lit(f"a line is longer than {params.max_line_chars} characters"))
        .when(pl.col("reason") == "no_ingredients")
        .then(pl.lit("the recipe lists no ingredient lines"))
        .otherwise(pl.col("error"))
    )


def _baskets_from_lines(usable: pl.DataFrame, normalizer: Normalizer) -> pl.DataFrame:
    """Normalize every line (each distinct line once) and gather unique names per recipe, in order."""
    lines = usable.select("row", pl.col("lines").alias("line")).explode("line")
    named = normalizer.normalize_frame(lines, "line").select("row", pl.col("names").alias("name")).explode("name")
    return (
        named.drop_nulls("name")
        .group_by("row", maintain_order=True)
        .agg(pl.col("name").unique(maintain_order=True).alias("ingredients"))
    )


def build_baskets(
    raw_path: Path, fmt: str, params: NormalizationParams, output: Path, rejects_output: Path, label: str | None = None
) -> BasketCounts:
    """Read ``raw_path`` in format ``fmt``, write baskets to ``output`` (Parquet) and rejected
    recipes with their reason to ``rejects_output`` (Parquet); both atomically. Errors about
    the file name ``label`` (what the user gave) when given.

    Check the counts with :func:`check_reject_share` once the rejects are where users can see them.
    """
    recipes = read_recipes(raw_path, fmt, label=label)
    normalizer = Normalizer(params.extra_synonyms)
    checked = recipes.with_columns(reason=_reason_for_rows(recipes, params))
    usable = checked.filter(pl.col("reason").is_null())

    baskets = usable.select("row", "recipe_id", "title", "cuisine").join(
        _baskets_from_lines(usable, normalizer), on="row", how="left"
    )
    baskets = baskets.with_columns(pl.col("ingredients").fill_null(pl.lit([], dtype=pl.List(pl.String))))
    too_small = pl.col("ingredients").list.len() < params.min_ingredients

    small = (
        baskets.filter(too_small)
        .join(checked.select("row", "lines", "error"), on="row")
        .with_columns(
            reason=pl.lit("too_few_ingredients"),
            error=pl.format(
                "{} usable ingredient(s), fewer than {}",
                pl.col("ingredients").list.len(),
                pl.lit(params.min_ingredients),
            ),
        )
    )
    rejects = (
        pl.concat(
            [
                checked.filter(pl.col("reason").is_not_null()).select("row", "recipe_id", "reason", "error", "lines"),
                small.select("row", "recipe_id", "reason", "error", "lines"),
            ]
        )
        .sort("row")
        .with_columns(detail=_detail_for_rows(params))
        .select("row", "recipe_id", "reason", "detail", "lines")
    )
    kept = baskets.filter(~too_small).sort("row").select(list(BASKET_SCHEMA)).cast(BASKET_SCHEMA)

    _write_parquet(rejects, rejects_output)
    counts = BasketCounts(
        recipes_in=recipes.height,
        recipes_out=kept.height,
        rejects=dict(sorted(rejects.group_by("reason").len().iter_rows())),
        vocabulary_size=kept.select(pl.col("ingredients").explode().n_unique()).item() if kept.height else 0,
    )
    _write_parquet(kept, output)
    return counts


def check_reject_share(corpus: str, counts: BasketCounts, params: NormalizationParams, rejects_location: str) -> None:
    """Raise NormalizationError, with the reasons and where the rejected rows are, when too many were rejected."""
    if counts.recipes_in == 0:
        raise NormalizationError(f"{corpus} holds no recipes")
    share = counts.rejected / counts.recipes_in
    if counts.recipes_out == 0 or share > params.max_reject_share:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in counts.rejects.items())
        raise NormalizationError(
            f"{counts.rejected} of {counts.recipes_in} recipes ({share:.0%}) in {corpus} were rejected, more than the "
            f"allowed {params.max_reject_share:.0%} ({reasons}). The rejected rows and their reasons are in {rejects_location}; "
            "raise FLAVOR_NORMALIZE_MAX_REJECT_SHARE to accept them."
        )


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, statistics=False)


def read_baskets(path: Path) -> pl.DataFrame:
    """Baskets written by :func:`build_baskets`: ``recipe_id``, ``cuisine``, ``ingredients``."""
    return pl.read_parquet(path)
