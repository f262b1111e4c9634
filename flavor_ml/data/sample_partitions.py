"""A large partitioned corpus for benchmarks and tests: gzipped JSON Lines with a long-tailed vocabulary.

Real collections (RecipeNLG: 2.2M recipes) name tens of thousands of ingredients with Zipf-like
frequencies; the bundled sample's 114 names understate what training and evaluation cost at
scale. :func:`write_partitioned_sample` writes ``recipes-000.jsonl.gz``, ``recipes-001.jsonl.gz``,
... with ``ingredients`` made-up names (syllables that the normalizer keeps as they are) drawn
with frequency ~ 1/rank, and some structure to learn: each of a dozen cuisines prefers its own
slice of the vocabulary. Lines look like recipe lines (``2 cups kavelo mita, chopped``).

Each partition is generated from ``(seed, index)`` alone, so partition 40 written later is the
same file as partition 40 written with the others: a corpus can grow one partition at a time.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from flavor_ml.atomic import atomic_path

ZIPF_EXPONENT = 1.07
CUISINES = ("akan", "belu", "cora", "duna", "elio", "faro", "gima", "hiro", "ilia", "juno", "kemi", "lora")
_CONSONANTS = "bdfgklmnprtvz"
_VOWELS = "aeiou"
_QUANTITIES = ("1", "2", "3", "½", "1½", "1/2", "2-3", "¼", "4", "6")
_UNITS = ("cup", "cups", "tbsp", "tsp", "g", "ml", "oz", "", "", "")
_PREPARATIONS = ("", "", "", ", chopped", ", sliced", ", finely chopped", ", diced", ", to taste")
_CUISINE_SHARE = 0.5  # of a basket's names drawn from its cuisine's own slice


def partition_name(index: int) -> str:
    return f"recipes-{index:03d}.jsonl.gz"


def ingredient_names(count: int, seed: int) -> list[str]:
    """``count`` distinct made-up names of one or two words of three consonant-vowel syllables."""
    rng = np.random.default_rng([seed, 0xF1A])
    names: dict[str, None] = {}
    while len(names) < count:
        words = [
            "".join(
                _CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(len(_VOWELS))] for _ in range(3)
            )  # three syllables: no real word such as "fine" or "kilo"
            for _ in range(int(rng.integers(1, 3)))
        ]
        names.setdefault(" ".join(words), None)
    return list(names)


def _zipf_probabilities(count: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** ZIPF_EXPONENT
    total: float = weights.sum()
    return weights / total


def write_partition(out: Path, index: int, recipes: int, names: list[str], seed: int) -> Path:
    """Write partition ``index`` (``recipes`` recipes) under ``out``, atomically; its path."""
    rng = np.random.default_rng([seed, index])
    vocabulary = len(names)
    global_p = _zipf_probabilities(vocabulary)
    slice_size = max(8, vocabulary // (2 * len(CUISINES)))
    local_p = _zipf_probabilities(slice_size)
    cuisines = rng.integers(len(CUISINES), size=recipes)
    sizes = rng.integers(5, 15, size=recipes)
    slots = int(sizes.sum())
    # All draws at once (a per-recipe weighted choice would rebuild the distribution each time).
    owner = np.repeat(cuisines, sizes)
    own = (rng.choice(slice_size, size=slots, p=local_p) * len(CUISINES) + owner) % vocabulary  # interleaved slices
    picked = np.where(rng.random(slots) < _CUISINE_SHARE, own, rng.choice(vocabulary, size=slots, p=global_p))
    quantities = rng.integers(len(_QUANTITIES), size=slots)
    units = rng.integers(len(_UNITS), size=slots)
    preparations = rng.integers(len(_PREPARATIONS), size=slots)
    ends = np.cumsum(sizes)
    path = out / partition_name(index)
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as handle:
        for number in range(recipes):
            cuisine, end = int(cuisines[number]), int(ends[number])
            first_slot = end - int(sizes[number])
            seen: set[int] = set()
            lines = []
            for slot in range(first_slot, end):
                name = int(picked[slot])
                if name in seen:
                    continue
                seen.add(name)
                quantity, unit = _QUANTITIES[quantities[slot]], _UNITS[units[slot]]
                lines.append(f"{quantity} {unit} {names[name]}" if unit else f"{quantity} {names[name]}")
                lines[-1] += _PREPARATIONS[preparations[slot]]
            recipe = {
                "id": f"p{index:03d}-{number}",
                "title": f"{CUISINES[cuisine]} dish {index}-{number}",
                "cuisine": CUISINES[cuisine],
                "ingredients": lines,
            }
            handle.write(json.dumps(recipe, ensure_ascii=False) + "\n")
    return path


def write_partitioned_sample(
    out: Path, recipes: int, partitions: int, ingredients: int = 10_000, seed: int = 7, first: int = 0
) -> list[Path]:
    """Write ``recipes`` recipes split evenly over ``partitions`` files named from index ``first`` on."""
    if partitions < 1 or recipes < partitions:
        raise ValueError(f"cannot split {recipes} recipes into {partitions} partitions")
    out.mkdir(parents=True, exist_ok=True)
    names = ingredient_names(ingredients, seed)
    base, extra = divmod(recipes, partitions)
    return [write_partition(out, first + i, base + (1 if i < extra else 0), names, seed) for i in range(partitions)]
