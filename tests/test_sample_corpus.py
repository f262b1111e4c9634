"""The sample corpus: deterministic, bundled exactly as generated, any size, lines as real
recipes have them, the planted structure visible in the raw data, and every line written
for an ingredient the normalizer reads back."""

from __future__ import annotations

import collections
import json
import re
from itertools import combinations

import pytest

from flavor_ml.data import sample
from flavor_ml.data.sample import (
    DEFAULT_RECIPES,
    PLANTED,
    SAMPLE_CATEGORIES_PATH,
    SAMPLE_CORPUS_PATH,
    categories_csv,
    generate_sample_corpus,
    intended_basket,
    intended_names,
    write_sample_corpus,
)

REGENERATE = "regenerate the bundled files with `python -m flavor_ml.data.sample`"


@pytest.fixture(scope="module")
def bundled() -> list[dict]:
    with open(SAMPLE_CORPUS_PATH, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def baskets(bundled) -> list[list[str]]:
    return [intended_basket(recipe) for recipe in bundled]


def _pair_counts(baskets: list[list[str]]) -> tuple[collections.Counter, collections.Counter]:
    singles = collections.Counter(name for basket in baskets for name in basket)
    pairs = collections.Counter(frozenset(p) for basket in baskets for p in combinations(basket, 2))
    return singles, pairs


# --- deterministic, bundled as generated, any size ------------------------------------------


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    first = write_sample_corpus(tmp_path / "a.jsonl", 500, seed=3)
    second = write_sample_corpus(tmp_path / "b.jsonl", 500, seed=3)
    assert first.read_bytes() == second.read_bytes()


def test_a_different_seed_writes_a_different_corpus(tmp_path):
    first = write_sample_corpus(tmp_path / "a.jsonl", 500, seed=3)
    second = write_sample_corpus(tmp_path / "b.jsonl", 500, seed=4)
    assert first.read_bytes() != second.read_bytes()


def test_the_bundled_corpus_is_what_the_generator_makes(tmp_path):
    fresh = write_sample_corpus(tmp_path / "sample.jsonl")
    assert fresh.read_bytes() == SAMPLE_CORPUS_PATH.read_bytes(), f"the bundled corpus is stale: {REGENERATE}"


def test_the_bundled_category_table_is_what_the_code_writes():
    assert SAMPLE_CATEGORIES_PATH.read_text(encoding="utf-8") == categories_csv(), (
        f"the bundled category table is stale: {REGENERATE}"
    )


def test_the_bundled_corpus_is_small(bundled):
    assert len(bundled) == DEFAULT_RECIPES
    assert SAMPLE_CORPUS_PATH.stat().st_size < 1_000_000


def test_the_file_is_json_lines_and_the_list_is_the_same_recipes(tmp_path):
    path = write_sample_corpus(tmp_path / "sample.jsonl", 200, seed=5)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == generate_sample_corpus(200, seed=5)


@pytest.mark.parametrize("n_recipes", [0, 1, 20_000])
def test_any_size_works(tmp_path, n_recipes):
    path = write_sample_corpus(tmp_path / "sample.jsonl", n_recipes, seed=11)
    recipes = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(recipes) == n_recipes
    assert len({r["id"] for r in recipes}) == n_recipes


def test_a_smaller_corpus_is_the_start_of_a_bigger_one():
    assert generate_sample_corpus(1000, seed=2)[:100] == generate_sample_corpus(100, seed=2)


def test_a_negative_size_is_refused():
    with pytest.raises(ValueError, match="n_recipes"):
        generate_sample_corpus(-1)


def test_a_failed_write_leaves_the_previous_file_as_it_was(tmp_path, monkeypatch):
    target = write_sample_corpus(tmp_path / "sample.jsonl", 10)
    before = target.read_bytes()
    first_five = generate_sample_corpus(5)

    def breaks_halfway(n_recipes, seed):
        yield from first_five
        raise RuntimeError("disk full")

    monkeypatch.setattr(sample, "iter_sample_recipes", breaks_halfway)
    with pytest.raises(RuntimeError, match="disk full"):
        write_sample_corpus(target, 10_000)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["sample.jsonl"]


# --- the recipes ----------------------------------------------------------------------------


def test_every_recipe_has_an_id_a_title_a_cuisine_and_ingredient_lines(bundled):
    cuisines = {c.name for c in PLANTED.cuisines}
    for recipe in bundled:
        assert list(recipe) == ["id", "title", "cuisine", "ingredients"]
        assert recipe["id"] and recipe["title"] and recipe["cuisine"] in cuisines
        assert recipe["ingredients"] and all(isinstance(line, str) and line.strip() for line in recipe["ingredients"])
    assert len({r["id"] for r in bundled}) == len(bundled)


def test_every_line_is_written_for_known_ingredients(bundled):
    names = intended_names()
    lines = {line for recipe in bundled for line in recipe["ingredients"]}
    unknown = sorted(lines - set(names))
    assert not unknown, f"lines without an intended ingredient: {unknown[:10]}"
    unnamed = sorted({n for line in lines for n in names[line]} - set(PLANTED.categories))
    assert not unnamed, f"intended names without a category: {unnamed}"


def test_every_recipe_names_at_least_three_ingredients(baskets):
    assert min(len(b) for b in baskets) >= 3


@pytest.mark.parametrize(
    ("feature", "pattern"),
    [
        ("unicode fraction", r"[½¼¾⅓⅔]"),
        ("ASCII fraction", r"\b\d/\d\b"),
        ("mixed number", r"\b1 1/2\b|\b1½"),
        ("range", r"\b\d\s*(-|–|to)\s*\d\b"),
        ("dual metric/imperial unit", r"\d+g/\d+[½¼¾]?oz|\d+ml/\d+[½]?fl oz"),
        ("can with a parenthetical size", r"^\d \(\d+(\.\d)?[- ]?(oz|ounce)\) cans?\b"),
        ("abbreviated units", r"\b(tbsp|tsp|Tbsp\.?|oz|lb|ml|g)\b"),
        ("preparation after a comma", r", (finely )?chopped$|, drained and rinsed$|, peeled and "),
        ("section header", r"^(For the [a-z]+:|To serve:|FOR THE )"),
        ("salt and pepper", r"^[Ss]alt and (freshly ground )?(black )?pepper"),
        ("irregular plural", r"\b(tomatoes|potatoes|leaves|anchovies|chillies)\b"),
        ("spring onions", r"\bspring onions?\b"),
        ("green onions", r"\bgreen onions?\b"),
        ("scallions", r"\bscallions?\b"),
        ("coriander for cilantro", r"\bcoriander\b"),
        ("aubergine", r"\baubergines?\b"),
        ("prawns", r"\bprawns\b"),
        ("fresh", r"\bfresh (basil|cilantro|coriander|ginger|thyme|parsley|mint)\b"),
    ],
)
def test_the_lines_look_like_real_recipe_lines(bundled, feature, pattern):
    lines = [line for recipe in bundled for line in recipe["ingredients"]]
    assert any(re.search(pattern, line) for line in lines), f"no {feature} in the bundled corpus"


# --- the planted structure in the raw data --------------------------------------------------


def test_the_cuisines_have_their_planted_shares(bundled):
    counts = collections.Counter(r["cuisine"] for r in bundled)
    for cuisine in PLANTED.cuisines:
        assert counts[cuisine.name] / len(bundled) == pytest.approx(cuisine.share, abs=0.03), cuisine.name


def test_the_staples_are_the_most_common_ingredients(baskets):
    singles, _ = _pair_counts(baskets)
    top = [name for name, _ in singles.most_common(4)]
    assert set(top) <= {"salt", "onion", "garlic", "olive oil", "black pepper"}, top
    median = sorted(singles.values())[len(singles) // 2]
    assert singles["salt"] >= 8 * median, "staples should be far more popular than a typical ingredient"


def test_each_cuisine_has_ingredients_of_its_own(bundled, baskets):
    homes = collections.defaultdict(set)
    for cuisine in PLANTED.cuisines:
        for name in cuisine.core:
            homes[name].add(cuisine.name)
    for pair in PLANTED.pairs:
        for name in (pair.first, pair.second, *pair.companions):
            homes[name].add(pair.cuisine)
    recipes_of = collections.Counter(r["cuisine"] for r in bundled)
    for name, cuisines in homes.items():
        if len(cuisines) != 1 or name in PLANTED.staples:
            continue
        (home,) = cuisines
        inside = sum(name in b for r, b in zip(bundled, baskets) if r["cuisine"] == home) / recipes_of[home]
        outside = sum(name in b for r, b in zip(bundled, baskets) if r["cuisine"] != home) / (
            len(bundled) - recipes_of[home]
        )
        assert inside >= 5 * outside, f"{name}: {inside:.3f} of {home} recipes, {outside:.3f} of the others"


@pytest.mark.parametrize("pair", PLANTED.pairs, ids=lambda p: f"{p.first}-{p.second}")
def test_the_planted_pairs_go_together(baskets, pair):
    singles, pairs = _pair_counts(baskets)
    together = pairs[frozenset((pair.first, pair.second))]
    lift = together * len(baskets) / (singles[pair.first] * singles[pair.second])
    assert together >= 20, f"{pair.first} and {pair.second} are together in only {together} recipes"
    assert lift >= 4, f"{pair.first}-{pair.second}: lift {lift:.1f}"


def test_lime_goes_with_cilantro_not_with_soy_sauce(baskets):
    _, pairs = _pair_counts(baskets)
    assert pairs[frozenset(("lime", "cilantro"))] >= 10 * max(1, pairs[frozenset(("lime", "soy sauce"))])


def test_every_ingredient_has_a_category():
    assert set(PLANTED.categories) == {n for names in intended_names().values() for n in names}
    members = collections.Counter(PLANTED.categories.values())
    assert len(members) >= 10
    assert min(members.values()) >= 3, members


def test_the_behavioural_facts_are_about_planted_ingredients():
    known = set(PLANTED.categories)
    assert {(f.ingredient, f.neighbour) for f in PLANTED.neighbours} == {(p.first, p.second) for p in PLANTED.pairs}
    assert any(f.ingredient == "basil" and f.neighbour == "oregano" for f in PLANTED.neighbours)
    for fact in PLANTED.completions:
        cuisine = PLANTED.cuisine(fact.cuisine)
        dish = next(p for p in PLANTED.pairs if p.cuisine == fact.cuisine)
        assert set(fact.basket) <= known
        assert fact.better in {*cuisine.core, dish.first, dish.second, *dish.companions}
        assert fact.worse in known and fact.worse not in cuisine.core
    assert any(f.cuisine == "mexican" and (f.better, f.worse) == ("lime", "soy sauce") for f in PLANTED.completions)
    for fact in PLANTED.invariances:
        assert fact.ingredient in known
        assert fact.variant.replace("fresh ", "", 1) == fact.line


# --- every raw line reads back as the ingredient it was written for -------------------------


def _disagreements(lines: list[str], intended: list[tuple[str, ...]]) -> list[str]:
    from flavor_ml.data.normalization import ingredient_names, normalize_lines

    firsts, alls = normalize_lines(lines), ingredient_names(lines)
    wrong = []
    for line, want, first, names in zip(lines, intended, firsts, alls):
        agrees = set(names) == set(want) and (first is None if not want else first in want)
        if not agrees:
            wrong.append(f"{line!r}: want {list(want)}, normalize_lines={first!r}, ingredient_names={names}")
    return wrong


def test_every_raw_line_normalizes_to_the_ingredient_it_was_written_for():
    names = intended_names()
    lines = sorted(names)
    wrong = _disagreements(lines, [names[line] for line in lines])
    agreement = 1 - len(wrong) / len(lines)
    assert agreement >= 0.98, (
        f"the normalizer reads {len(wrong)} of {len(lines)} distinct sample lines ({1 - agreement:.1%}) "
        "differently from the ingredient they were written for:\n" + "\n".join(wrong)
    )


def test_adding_fresh_to_a_line_does_not_change_its_ingredient():
    facts = PLANTED.invariances
    lines = [line for f in facts for line in (f.line, f.variant)]
    wrong = _disagreements(lines, [(f.ingredient,) for f in facts for _ in (0, 1)])
    assert not wrong, "\n".join(wrong)


# --- stable generation: editing one table changes only what depends on it --------------------


def _generate(tables: sample.SampleTables, n: int = 1500) -> list[dict]:
    return generate_sample_corpus(n, seed=7, tables=tables)


def _lines_for(recipe: dict) -> dict[str, str]:
    names = intended_names()
    return {name: line for line in recipe["ingredients"] for name in names.get(line, ())}


def _with_cuisine(tables: sample.SampleTables, name: str, **changes) -> sample.SampleTables:
    import dataclasses

    return tables.replace(
        cuisines=tuple(dataclasses.replace(c, **changes) if c.name == name else c for c in tables.cuisines)
    )


def _only_recipes_with(ingredient: str, before: list[dict], after: list[dict]) -> None:
    """Recipes with ``ingredient`` in neither version are identical; in the others every other
    ingredient is written with the same line."""
    changed = 0
    for old, new in zip(before, after, strict=True):
        involved = ingredient in intended_basket(old) or ingredient in intended_basket(new)
        if not involved:
            assert old == new
            continue
        changed += old != new
        assert (old["id"], old["cuisine"]) == (new["id"], new["cuisine"])
        old_lines, new_lines = _lines_for(old), _lines_for(new)
        shared = old_lines.keys() & new_lines.keys() - {ingredient, "salt", "black pepper"}
        assert {n: old_lines[n] for n in shared} == {n: new_lines[n] for n in shared}
    assert changed, f"the edit was meant to change recipes with {ingredient}"


def test_a_changed_ingredient_probability_changes_only_recipes_with_that_ingredient():
    italian = sample.SAMPLE_TABLES.cuisines[0]
    assert italian.name == "italian"
    edited = _with_cuisine(sample.SAMPLE_TABLES, "italian", core={**italian.core, "pine nut": 0.3})
    _only_recipes_with("pine nut", _generate(sample.SAMPLE_TABLES), _generate(edited))


def test_an_ingredient_added_to_a_cuisine_changes_only_the_recipes_it_joins():
    italian = sample.PLANTED.cuisine("italian")
    edited = _with_cuisine(sample.SAMPLE_TABLES, "italian", core={**italian.core, "mint": 0.1})
    _only_recipes_with("mint", _generate(sample.SAMPLE_TABLES), _generate(edited))


def test_new_ways_of_writing_an_ingredient_change_only_its_own_lines():
    import dataclasses

    tables = sample.SAMPLE_TABLES
    edited = tables.replace(
        ingredients=tuple(
            dataclasses.replace(i, after=i.after + ("very finely shredded",)) if i.name == "basil" else i
            for i in tables.ingredients
        )
    )
    before, after = _generate(tables), _generate(edited)
    for old, new in zip(before, after, strict=True):
        if "basil" not in intended_basket(old):
            assert old == new
        else:  # the same recipe, but maybe for the basil line
            basil_at = next(i for i, line in enumerate(old["ingredients"]) if intended_names()[line] == ("basil",))
            assert old["ingredients"][:basil_at] == new["ingredients"][:basil_at]
            assert old["ingredients"][basil_at + 1 :] == new["ingredients"][basil_at + 1 :]
            assert {**old, "ingredients": []} == {**new, "ingredients": []}
    assert before != after


def test_a_new_ingredient_in_the_table_only_appears_as_noise_where_it_wins():
    import dataclasses

    tables = sample.SAMPLE_TABLES
    newcomer = dataclasses.replace(
        next(i for i in tables.ingredients if i.name == "mint"), name="lovage", forms=(("lovage", "lovage"),)
    )
    before, after = _generate(tables), _generate(tables.replace(ingredients=tables.ingredients + (newcomer,)))
    differing = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert differing, "a tenth of the recipes draw one noise ingredient; some should now draw lovage"
    for _old, new in differing:
        assert any("lovage" in line for line in new["ingredients"])
    assert len(differing) < 0.02 * len(before)


def test_changed_dish_words_change_only_that_cuisines_titles():
    before = _generate(sample.SAMPLE_TABLES)
    after = _generate(_with_cuisine(sample.SAMPLE_TABLES, "thai", dishes=("larb", "som tam")))
    for old, new in zip(before, after, strict=True):
        if old["cuisine"] != "thai":
            assert old == new
        else:
            assert {**old, "title": ""} == {**new, "title": ""}
