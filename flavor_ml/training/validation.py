"""The validation split: carved from the training side, never from the test split.

Tuning trials, EASE's penalty and the choice of the served completion scorer are all decided
on it; every scorer (Item2Vec, EASE, the baselines) is then fitted on the rest, the *fit*
side, so the test split stays unseen by every decision. Like the held-out split it depends
only on each recipe's set of ingredients (and a seed derived from the split seed), so it is
the same in every process and duplicates land on the same side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from flavor_ml.data.basket_stream import BasketChunks, split_chunks
from flavor_ml.data.split import basket_fraction
from flavor_ml.settings import EvaluationParams

_VALIDATION_SEED_OFFSET = 7919  # any fixed offset: the validation draw must not repeat the test draw


def validation_mask(baskets: Sequence[Sequence[str]], params: EvaluationParams) -> np.ndarray:
    """Which training baskets are held out for validation (True = validation)."""
    seed = params.split_seed + _VALIDATION_SEED_OFFSET
    fractions = np.fromiter((basket_fraction(b, seed) for b in baskets), dtype=np.float64, count=len(baskets))
    return fractions < params.validation_fraction


def split_validation(
    train_baskets: Sequence[list[str]], params: EvaluationParams
) -> tuple[list[list[str]], list[list[str]]]:
    """(fit baskets, validation baskets) from the training side of the held-out split."""
    mask = validation_mask(train_baskets, params)
    return ([b for b, v in zip(train_baskets, mask) if not v], [b for b, v in zip(train_baskets, mask) if v])


def split_validation_chunks(
    train: BasketChunks, params: EvaluationParams, work: Path
) -> tuple[BasketChunks, BasketChunks]:
    """(fit, validation) chunk files under ``work``: :func:`split_validation` of the training side
    a chunk at a time, in the same order."""
    chunks = (pl.read_parquet(path) for path in train.chunks)
    return split_chunks(chunks, lambda baskets: validation_mask(baskets, params), work / "fit", work / "validation")
