"""The held-out split: by recipe, deterministic everywhere, duplicates on one side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flavor_ml.data.split import basket_fraction, holdout_mask
from flavor_ml.settings import EvaluationParams

ROOT = Path(__file__).resolve().parents[1]


def random_baskets(n: int, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    pool = [f"ingredient {i}" for i in range(200)]
    return [list(rng.choice(pool, size=rng.integers(2, 12), replace=False)) for _ in range(n)]


def test_mask_is_one_boolean_per_basket():
    baskets = random_baskets(50)
    mask = holdout_mask(baskets, EvaluationParams())
    assert mask.dtype == np.bool_
    assert mask.shape == (50,)


def test_no_baskets_gives_an_empty_mask():
    assert holdout_mask([], EvaluationParams()).shape == (0,)


def test_about_the_requested_share_is_held_out():
    baskets = random_baskets(5000)
    for fraction in (0.1, 0.25):
        share = holdout_mask(baskets, EvaluationParams(holdout_fraction=fraction)).mean()
        assert share == pytest.approx(fraction, abs=0.02)


def test_duplicate_baskets_always_land_on_the_same_side():
    baskets = random_baskets(400)
    # Every basket again, reordered and with a repeated ingredient: the same recipe.
    copies = [list(reversed(b)) + [b[0]] for b in baskets]
    mask = holdout_mask(baskets + copies, EvaluationParams(holdout_fraction=0.3))
    assert mask[:400].any() and not mask[:400].all()
    assert np.array_equal(mask[:400], mask[400:])


def test_a_basket_side_does_not_depend_on_the_rest_of_the_corpus():
    baskets = random_baskets(300)
    params = EvaluationParams(holdout_fraction=0.3)
    alone = holdout_mask(baskets[:100], params)
    together = holdout_mask(baskets[::-1], params)[::-1]
    assert np.array_equal(alone, together[:100])


def test_the_split_seed_changes_the_split():
    baskets = random_baskets(1000)
    first = holdout_mask(baskets, EvaluationParams(split_seed=1))
    second = holdout_mask(baskets, EvaluationParams(split_seed=2))
    assert not np.array_equal(first, second)


def test_the_split_of_a_recipe_never_changes_between_versions():
    # Pinned: changing the hashing scheme would silently move recipes between the sides
    # and make metrics of old and new models incomparable.
    assert basket_fraction(["salt", "egg"], 13) == pytest.approx(0.3527447423078236, abs=1e-15)
    assert basket_fraction(["egg", "salt", "salt"], 13) == basket_fraction(["salt", "egg"], 13)
    assert basket_fraction(["salt", "egg"], 14) != basket_fraction(["salt", "egg"], 13)


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_the_split_is_the_same_in_a_fresh_process_whatever_the_hash_seed(hash_seed):
    baskets = random_baskets(300)
    expected = holdout_mask(baskets, EvaluationParams(holdout_fraction=0.3)).tolist()
    script = (
        "import json, sys\n"
        "from flavor_ml.data.split import holdout_mask\n"
        "from flavor_ml.settings import EvaluationParams\n"
        "baskets = json.load(sys.stdin)\n"
        "print(json.dumps(holdout_mask(baskets, EvaluationParams(holdout_fraction=0.3)).tolist()))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(baskets),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == expected
