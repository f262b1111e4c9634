"""The held-out split: which recipes the probes test on, decided before training.

The split is by recipe and depends only on a recipe's set of ingredients and the split seed,
so it is the same in every process (no use of Python's salted ``hash()``), the same when
the corpus is reordered or grows, and duplicate recipes always land on the same side: a
recipe in the test split never has a copy in the training split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from flavor_ml.settings import EvaluationParams

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in a normalized ingredient name
_SCALE = float(2**64)


def basket_fraction(basket: Sequence[str], seed: int) -> float:
    """A number in [0, 1) fixed by the basket's set of ingredients and ``seed``.

    Order and repeats inside the basket do not matter: ``["salt", "egg", "egg"]`` and
    ``["egg", "salt"]`` get the same number.
    """
    key = f"{seed}{_SEPARATOR}{_SEPARATOR.join(sorted(set(basket)))}".encode()
    digest = hashlib.blake2b(key, digest_size=8, person=b"flavor-split").digest()
    return int.from_bytes(digest, "big") / _SCALE


def holdout_mask(baskets: Sequence[Sequence[str]], params: EvaluationParams) -> np.ndarray:
    """Which baskets are held out for evaluation: a boolean array, True = test.

    A basket is held out when :func:`basket_fraction` of it (with ``params.split_seed``) is
    below ``params.holdout_fraction``, so about that share of distinct recipes is held out.
    """
    seed = params.split_seed
    fractions = np.fromiter((basket_fraction(b, seed) for b in baskets), dtype=np.float64, count=len(baskets))
    return fractions < params.holdout_fraction
