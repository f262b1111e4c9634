"""The sample corpus that ships with the package: synthetic recipes with planted structure.

``flavor-ml train`` runs on it when no corpus is given, with no data and no network, and the
tests check that trained embeddings recover what was planted (:data:`PLANTED`). It is generated,
never copied: every random decision of a recipe is keyed by what it decides (:class:`_Draws`),
so the same seed gives the same bytes and editing one table changes only what uses it.
Regenerate the bundled files with ``python -m flavor_ml.data.sample``; docs/sample-corpus.md
describes the recipes, the planted structure and the facts a model should show.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from flavor_ml.atomic import atomic_path

_RESOURCES = Path(__file__).with_name("resources")
SAMPLE_CORPUS_PATH = _RESOURCES / "sample-recipes.jsonl"
"""The bundled corpus: ``write_sample_corpus(SAMPLE_CORPUS_PATH)`` with the defaults."""
SAMPLE_CATEGORIES_PATH = _RESOURCES / "sample-categories.csv"
"""The bundled ``ingredient,category`` table for every ingredient of the sample corpus."""

DEFAULT_RECIPES = 3000
DEFAULT_SEED = 7
_FILE_MODE = 0o644  # an ordinary data file, not the 0600 of the temporary file it starts as


# --------------------------------------------------------------------------------------------
# What is planted
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cuisine:
    """A cuisine: its share of recipes, its core ingredients (name -> probability of being in a
    recipe), its adjustments to the staples' probabilities and the dish words of its titles."""

    name: str
    share: float
    core: Mapping[str, float]
    staples: Mapping[str, float] = field(default_factory=dict)
    dishes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pair:
    """A strong pair at the heart of a dish of one cuisine.

    A recipe of ``cuisine`` is that dish with probability ``dish``; the dish has each of
    ``companions`` with probability ``company``, both ``first`` and ``second`` with
    probability ``both``, else one of them (so they go together *and* stand in for each
    other: basil and oregano with tomato and mozzarella), and the rest of the cuisine's core
    at ``rest`` times its usual rate. Outside the dish each of the two appears with
    probability ``alone``.
    """

    cuisine: str
    first: str
    second: str
    companions: tuple[str, ...]
    dish: float = 0.4
    both: float = 0.2
    company: float = 0.8
    rest: float = 0.03
    alone: float = 0.02


@dataclass(frozen=True)
class NeighbourFact:
    """``neighbour`` is among the ``k`` nearest neighbours of ``ingredient``."""

    ingredient: str
    neighbour: str
    k: int = 5

    def __str__(self) -> str:
        return f"{self.ingredient}'s {self.k} nearest neighbours include {self.neighbour}"


@dataclass(frozen=True)
class CompletionFact:
    """Completing ``basket`` (a ``cuisine`` basket) ranks ``better`` above ``worse``."""

    cuisine: str
    basket: tuple[str, ...]
    better: str
    worse: str

    def __str__(self) -> str:
        article = "an" if self.cuisine[0] in "aeiou" else "a"
        return f"{article} {self.cuisine} basket {list(self.basket)} completes with {self.better} before {self.worse}"


@dataclass(frozen=True)
class InvarianceFact:
    """``line`` and ``variant`` (the same line with a harmless change) name ``ingredient``."""

    line: str
    variant: str
    ingredient: str

    def __str__(self) -> str:
        return f"{self.line!r} and {self.variant!r} are both {self.ingredient}"


@dataclass(frozen=True)
class PlantedStructure:
    """Everything the generator plants, as data for the tests."""

    cuisines: tuple[Cuisine, ...]
    staples: Mapping[str, float]
    pairs: tuple[Pair, ...]
    categories: Mapping[str, str]
    noise_rate: float
    neighbours: tuple[NeighbourFact, ...]
    completions: tuple[CompletionFact, ...]
    invariances: tuple[InvarianceFact, ...]

    def cuisine(self, name: str) -> Cuisine:
        return next(c for c in self.cuisines if c.name == name)

    @property
    def ingredients(self) -> tuple[str, ...]:
        return tuple(self.categories)


# --------------------------------------------------------------------------------------------
# Ingredients and how their lines are written
# --------------------------------------------------------------------------------------------
# A measure says how an amount is written: "count" (2 large onions), "mass" / "mass_small"
# (500g/1lb 2oz), "volume" / "volume_small" for liquids (1½ cups, 250ml), "cups" /
# "cups_small" for solids (1½ cups, ¼ cup), "spoon" (1 tsp), "pinch", "knob", "taste" (salt,
# to taste), "herb" (a handful of, 1 bunch), "can" (1 (15 oz) can), "piece" (2.5cm/1in piece)
# and "unit" (3 garlic cloves / 3 cloves garlic / 3 cloves of garlic). A measure listed twice
# is drawn twice as often.


@dataclass(frozen=True)
class _Unit:
    singular: str
    plural: str
    styles: tuple[str, ...] = ("lead", "trail", "of")  # 3 cloves garlic / 3 garlic cloves / 3 cloves of garlic


@dataclass(frozen=True)
class _Ingredient:
    name: str
    category: str
    forms: tuple[tuple[str, str], ...]  # (singular, plural) surface names, regional variants included
    measures: tuple[str, ...]
    before: tuple[str, ...] = ()  # descriptors before the name that keep the ingredient
    after: tuple[str, ...] = ()  # preparations after a comma
    sizes: tuple[str, ...] = ()
    unit: _Unit | None = None
    variants: int = 36  # how many distinct lines to write for it


def _forms(*specs: str) -> tuple[tuple[str, str], ...]:
    """``"onion|onions"`` is a countable name, ``"rice"`` a mass noun (same in the plural)."""
    return tuple((s.split("|")[0], s.split("|")[-1]) for s in specs)


def _ing(
    name: str,
    category: str,
    forms: str | tuple[str, ...],
    measures: str,
    *,
    before: str = "",
    after: str = "",
    sizes: str = "",
    unit: _Unit | None = None,
    variants: int = 36,
) -> _Ingredient:
    def split(text: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in text.split(";") if part.strip())

    return _Ingredient(
        name,
        category,
        _forms(*((forms,) if isinstance(forms, str) else forms)),
        split(measures),
        split(before),
        split(after),
        split(sizes),
        unit,
        variants,
    )


_PRODUCE_SIZES = "small; medium; large"
_CHOPPED = "chopped; finely chopped; diced; roughly chopped"
_HERB_AFTER = "chopped; finely chopped; roughly chopped; leaves picked; to garnish; plus extra to serve"

_INGREDIENTS: tuple[_Ingredient, ...] = (
    # staples
    _ing(
        "salt",
        "spice",
        ("salt", "sea salt", "kosher salt", "fine sea salt", "flaky sea salt"),
        "spoon; pinch; taste",
        after="plus more to taste; to season; divided",
        variants=40,
    ),
    _ing(
        "black pepper",
        "spice",
        "black pepper",
        "spoon; pinch; taste",
        before="freshly ground; ground; cracked; coarsely ground",
        after="to taste; plus more to taste",
        variants=40,
    ),
    _ing(
        "onion",
        "vegetable",
        ("onion|onions", "yellow onion|yellow onions", "brown onion|brown onions"),
        "count; count; mass",
        after=_CHOPPED + "; thinly sliced; peeled and chopped; halved and sliced",
        sizes=_PRODUCE_SIZES,
        variants=60,
    ),
    _ing(
        "garlic",
        "vegetable",
        "garlic",
        "unit",
        before="fresh",
        after="minced; crushed; finely chopped; thinly sliced; peeled and grated; peeled",
        unit=_Unit("clove", "cloves"),
        variants=60,
    ),
    _ing(
        "olive oil",
        "oil",
        ("olive oil", "extra-virgin olive oil", "extra virgin olive oil"),
        "spoon; spoon; volume_small",
        after="plus extra for drizzling; plus extra for greasing; divided; for frying",
        variants=50,
    ),
    _ing(
        "vegetable oil",
        "oil",
        "vegetable oil",
        "spoon; volume_small",
        after="for frying; plus extra for greasing; for deep-frying",
    ),
    _ing(
        "butter",
        "dairy",
        ("butter", "unsalted butter", "salted butter"),
        "mass_small; spoon; knob",
        after="softened; melted; cubed; at room temperature; plus extra for greasing",
        variants=40,
    ),
    _ing(
        "sugar",
        "sweetener",
        ("sugar", "granulated sugar", "white sugar"),
        "spoon; cups; mass_small",
        after="plus extra for sprinkling",
    ),
    _ing("brown sugar", "sweetener", "brown sugar", "spoon; cups", before="packed", variants=16),
    _ing(
        "egg",
        "dairy",
        "egg|eggs",
        "count",
        after="lightly beaten; beaten; at room temperature; separated",
        sizes="large; medium; extra-large; free-range",
        variants=30,
    ),
    _ing(
        "flour",
        "grain",
        ("flour", "all-purpose flour", "plain flour"),
        "cups; mass_small; spoon",
        after="sifted; plus extra for dusting",
    ),
    _ing(
        "chicken stock",
        "stock",
        ("chicken stock", "chicken broth", "low-sodium chicken broth"),
        "volume",
        after="hot; warmed",
    ),
    _ing("lemon", "fruit", "lemon|lemons", "count", after="juiced; zested and juiced; cut into wedges; halved"),
    _ing("milk", "dairy", ("milk", "whole milk"), "volume", after="warmed", variants=20),
    # italian
    _ing(
        "tomato",
        "vegetable",
        "tomato|tomatoes",
        "count; count; can; mass",
        before="ripe",
        after=_CHOPPED + "; halved; quartered; deseeded and chopped",
        sizes=_PRODUCE_SIZES,
        variants=50,
    ),
    _ing(
        "parmesan cheese",
        "dairy",
        ("parmesan", "Parmesan", "Parmesan cheese", "Parmigiano-Reggiano", "parmigiano reggiano"),
        "cups_small; mass_small",
        before="grated; freshly grated; shaved",
        after="finely grated; plus extra to serve; to serve",
        variants=40,
    ),
    _ing(
        "basil",
        "herb",
        ("basil", "basil leaves"),
        "herb; herb; spoon",
        before="fresh; chopped; torn",
        after=_HERB_AFTER + "; torn",
        variants=40,
    ),
    _ing(
        "oregano",
        "herb",
        "oregano",
        "spoon; spoon; herb",
        before="fresh; chopped fresh",
        after="chopped; crumbled",
        variants=30,
    ),
    _ing("spaghetti", "grain", "spaghetti", "mass", variants=24),
    _ing(
        "mozzarella cheese",
        "dairy",
        ("mozzarella", "mozzarella cheese"),
        "mass_small; cups; unit",
        before="fresh; shredded; grated",
        after="torn; drained and torn; sliced",
        unit=_Unit("ball", "balls", ("lead", "of")),
    ),
    _ing("pine nut", "nut", "pine nut|pine nuts", "spoon; cups_small; mass_small", variants=24),
    _ing("balsamic vinegar", "condiment", "balsamic vinegar", "spoon", before="good-quality", variants=20),
    _ing("red wine", "alcohol", ("red wine", "dry red wine"), "volume", variants=20),
    _ing(
        "zucchini",
        "vegetable",
        ("zucchini|zucchini", "courgette|courgettes"),
        "count; mass",
        after=_CHOPPED + "; sliced into rounds; grated; trimmed and sliced",
        sizes=_PRODUCE_SIZES,
    ),
    _ing(
        "eggplant",
        "vegetable",
        ("eggplant|eggplants", "aubergine|aubergines"),
        "count; mass",
        after="cut into 2cm/¾in cubes; sliced; cubed; halved lengthways",
        sizes=_PRODUCE_SIZES,
    ),
    _ing(
        "prosciutto",
        "meat",
        "prosciutto",
        "unit; mass_small",
        after="torn; roughly chopped",
        unit=_Unit("slice", "slices", ("lead", "of")),
    ),
    _ing("ricotta", "dairy", ("ricotta", "ricotta cheese", "whole-milk ricotta"), "cups; mass_small"),
    _ing(
        "rosemary",
        "herb",
        "rosemary",
        "herb; unit",
        before="fresh; chopped fresh",
        after="leaves finely chopped; finely chopped",
        unit=_Unit("sprig", "sprigs"),
    ),
    _ing(
        "anchovy",
        "seafood",
        "anchovy|anchovies",
        "unit; count; can",
        after="drained; finely chopped; chopped",
        unit=_Unit("fillet", "fillets", ("trail",)),
    ),
    _ing(
        "parsley",
        "herb",
        ("parsley", "flat-leaf parsley", "flat leaf parsley"),
        "herb; herb; spoon",
        before="fresh; chopped; chopped fresh",
        after=_HERB_AFTER,
    ),
    # mexican
    _ing(
        "tortilla",
        "grain",
        "tortilla|tortillas",
        "count",
        after="warmed; to serve; cut into wedges",
        sizes="small; large; (6-inch); (8-inch)",
    ),
    _ing(
        "lime",
        "fruit",
        "lime|limes",
        "count",
        after="juiced; zested and juiced; cut into wedges; halved; to serve",
        variants=40,
    ),
    _ing(
        "cilantro",
        "herb",
        ("cilantro", "fresh cilantro", "cilantro leaves", "coriander leaves"),
        "herb; herb; spoon",
        before="fresh; chopped; chopped fresh",
        after=_HERB_AFTER,
        variants=50,
    ),
    _ing(
        "black bean",
        "legume",
        "black bean|black beans",
        "can; can; cups; mass",
        before="cooked",
        after="drained; drained and rinsed; rinsed and drained",
    ),
    _ing(
        "avocado",
        "fruit",
        "avocado|avocados",
        "count",
        before="ripe",
        after="peeled, stoned and diced; pitted and sliced; mashed; diced; halved, pitted and sliced",
    ),
    _ing(
        "jalapeno",
        "vegetable",
        ("jalapeño|jalapeños", "jalapeno|jalapenos"),
        "count",
        after="seeded and minced; finely chopped; deseeded and finely chopped; thinly sliced",
    ),
    _ing("cumin", "spice", ("cumin", "ground cumin"), "spoon", variants=30),
    _ing("chili powder", "spice", ("chili powder", "chilli powder"), "spoon", variants=20),
    _ing("ground beef", "meat", ("ground beef", "minced beef", "beef mince", "lean ground beef"), "mass"),
    _ing("sour cream", "dairy", ("sour cream", "soured cream"), "cups_small; spoon", after="to serve", variants=24),
    _ing("queso fresco", "dairy", "queso fresco", "mass_small; cups_small", after="crumbled", variants=20),
    _ing(
        "corn",
        "vegetable",
        ("corn", "sweetcorn", "corn kernels"),
        "cups; can; unit",
        before="frozen",
        after="thawed; drained",
        unit=_Unit("ear", "ears", ("of",)),
    ),
    _ing(
        "red onion",
        "vegetable",
        "red onion|red onions",
        "count",
        after=_CHOPPED + "; thinly sliced",
        sizes=_PRODUCE_SIZES,
    ),
    _ing(
        "bell pepper",
        "vegetable",
        ("bell pepper|bell peppers", "capsicum|capsicums"),
        "count",
        after=_CHOPPED + "; deseeded and sliced; cut into strips",
        sizes=_PRODUCE_SIZES,
    ),
    _ing(
        "chicken breast",
        "meat",
        ("chicken breast|chicken breasts", "boneless skinless chicken breast|boneless skinless chicken breasts"),
        "count; mass",
        after="cut into strips; diced; cut into bite-sized pieces; sliced",
    ),
    _ing(
        "chicken thigh",
        "meat",
        ("chicken thigh|chicken thighs", "boneless skinless chicken thigh|boneless skinless chicken thighs"),
        "count; mass",
        after="cut into bite-sized pieces; diced; trimmed of fat",
    ),
    # japanese
    _ing(
        "soy sauce",
        "condiment",
        ("soy sauce", "low-sodium soy sauce", "reduced-salt soy sauce", "shoyu"),
        "spoon; spoon; volume_small",
        after="plus extra to serve; divided",
        variants=40,
    ),
    _ing(
        "ginger",
        "spice",
        ("ginger", "ginger root"),
        "piece; piece; spoon",
        before="fresh",
        after="peeled and grated; grated; finely chopped; peeled and minced; julienned",
        variants=50,
    ),
    _ing("mirin", "condiment", "mirin", "spoon; volume_small", variants=20),
    _ing("rice vinegar", "condiment", ("rice vinegar", "rice wine vinegar"), "spoon", variants=20),
    _ing("sesame oil", "oil", "sesame oil", "spoon", variants=16),
    _ing("sake", "alcohol", "sake", "spoon; volume_small", variants=20),
    _ing("dashi", "stock", ("dashi", "dashi stock"), "volume", variants=20),
    _ing("miso", "condiment", ("miso", "miso paste"), "spoon", variants=24),
    _ing(
        "scallion",
        "vegetable",
        ("scallion|scallions", "spring onion|spring onions", "green onion|green onions"),
        "count; count; herb",
        after="thinly sliced; finely chopped; trimmed and sliced; sliced on the diagonal",
        variants=50,
    ),
    _ing("rice", "grain", ("rice", "cooked rice", "steamed rice"), "cups; mass", after="to serve; rinsed"),
    _ing(
        "nori",
        "seafood",
        "nori",
        "unit",
        after="cut into strips; toasted; torn",
        unit=_Unit("sheet", "sheets", ("lead", "trail", "of")),
        variants=20,
    ),
    _ing(
        "tofu",
        "legume",
        ("tofu", "firm tofu", "extra-firm tofu"),
        "mass; unit",
        after="drained and cubed; cut into cubes; pressed and cubed",
        unit=_Unit("block", "blocks", ("lead",)),
    ),
    _ing("sesame seed", "nut", "sesame seed|sesame seeds", "spoon", after="to garnish; toasted", variants=20),
    _ing(
        "salmon",
        "seafood",
        "salmon",
        "unit; mass",
        before="skinless; skin-on",
        after="pin-boned; cut into chunks; cut into 2cm/¾in cubes",
        unit=_Unit("fillet", "fillets", ("trail",)),
    ),
    _ing(
        "shiitake mushroom",
        "vegetable",
        "shiitake mushroom|shiitake mushrooms",
        "count; mass",
        before="fresh",
        after="stems removed; sliced; stems removed and sliced",
    ),
    _ing("wasabi", "condiment", ("wasabi", "wasabi paste"), "spoon", after="to serve", variants=16),
    # indian
    _ing("garam masala", "spice", "garam masala", "spoon", variants=20),
    _ing("turmeric", "spice", ("turmeric", "ground turmeric"), "spoon", variants=24),
    _ing(
        "cardamom",
        "spice",
        "cardamom",
        "unit; spoon",
        before="ground",
        after="lightly crushed; bruised",
        unit=_Unit("pod", "pods", ("trail",)),
        variants=24,
    ),
    _ing(
        "chili",
        "vegetable",
        ("chili|chilies", "chilli|chillies", "chile|chiles"),
        "count",
        before="fresh",
        after="finely chopped; deseeded and finely chopped; thinly sliced; slit lengthways",
        variants=50,
    ),
    _ing(
        "yogurt",
        "dairy",
        ("yogurt", "yoghurt", "plain yogurt", "natural yoghurt", "full-fat yogurt"),
        "cups; spoon; mass_small",
        after="to serve; whisked",
    ),
    _ing("ghee", "dairy", "ghee", "spoon", variants=16),
    _ing(
        "basmati rice", "grain", "basmati rice", "cups; mass", after="rinsed; rinsed and drained; soaked for 30 minutes"
    ),
    _ing(
        "chickpea",
        "legume",
        ("chickpea|chickpeas", "garbanzo bean|garbanzo beans"),
        "can; can; cups",
        before="cooked",
        after="drained; drained and rinsed",
        variants=40,
    ),
    _ing(
        "red lentil",
        "legume",
        ("red lentil|red lentils", "split red lentil|split red lentils"),
        "cups; mass",
        after="rinsed",
    ),
    _ing("coconut milk", "nut", ("coconut milk", "full-fat coconut milk"), "can; can; volume"),
    _ing("mustard seed", "spice", "mustard seed|mustard seeds", "spoon", variants=16),
    _ing("curry leaf", "herb", "curry leaf|curry leaves", "count; herb", before="fresh", variants=20),
    _ing(
        "spinach",
        "vegetable",
        ("spinach", "spinach leaves"),
        "mass; cups",
        before="fresh",
        after="washed; roughly chopped; chopped",
    ),
    _ing("paneer", "dairy", "paneer", "mass", after="cut into cubes; cubed", variants=20),
    # french
    _ing(
        "shallot",
        "vegetable",
        "shallot|shallots",
        "count",
        after=_CHOPPED + "; thinly sliced; peeled and halved",
        sizes=_PRODUCE_SIZES,
    ),
    _ing(
        "thyme",
        "herb",
        ("thyme", "thyme leaves"),
        "herb; unit; spoon",
        before="fresh",
        after="leaves picked; leaves stripped",
        unit=_Unit("sprig", "sprigs"),
        variants=40,
    ),
    _ing("bay leaf", "herb", "bay leaf|bay leaves", "count", before="fresh", variants=16),
    _ing("white wine", "alcohol", ("white wine", "dry white wine"), "volume", variants=24),
    _ing("heavy cream", "dairy", ("heavy cream", "double cream"), "volume; spoon"),
    _ing("dijon mustard", "condiment", ("Dijon mustard", "dijon mustard"), "spoon", variants=20),
    _ing(
        "tarragon",
        "herb",
        "tarragon",
        "herb; spoon",
        before="fresh; chopped fresh",
        after="leaves chopped",
        variants=24,
    ),
    _ing(
        "leek",
        "vegetable",
        "leek|leeks",
        "count",
        after="trimmed and sliced; thinly sliced; washed and chopped",
        sizes=_PRODUCE_SIZES,
    ),
    _ing(
        "mushroom",
        "vegetable",
        "mushroom|mushrooms",
        "mass; count",
        after="sliced; quartered; thinly sliced; wiped and sliced",
    ),
    _ing(
        "gruyere cheese",
        "dairy",
        ("gruyère", "Gruyère", "Gruyere cheese", "gruyère cheese"),
        "mass_small; cups_small",
        before="grated",
        after="grated; coarsely grated",
    ),
    _ing("creme fraiche", "dairy", ("crème fraîche", "creme fraiche"), "spoon; volume_small", variants=20),
    _ing(
        "carrot",
        "vegetable",
        "carrot|carrots",
        "count; mass",
        after=_CHOPPED + "; peeled and diced; peeled and sliced",
        sizes=_PRODUCE_SIZES,
    ),
    _ing(
        "potato",
        "vegetable",
        "potato|potatoes",
        "count; mass",
        after="peeled and cubed; peeled and quartered; cut into chunks; scrubbed",
        sizes=_PRODUCE_SIZES,
    ),
    _ing("beef", "meat", "beef", "mass", before="lean", after="cut into 4cm/1½in chunks; cubed; trimmed and diced"),
    _ing("vegetable stock", "stock", ("vegetable stock", "vegetable broth"), "volume", after="hot"),
    # thai
    _ing("fish sauce", "condiment", ("fish sauce", "Thai fish sauce", "nam pla"), "spoon; volume_small", variants=30),
    _ing(
        "lemongrass",
        "herb",
        "lemongrass",
        "unit; spoon",
        before="fresh",
        after="bruised; finely chopped; trimmed and finely sliced; outer leaves removed",
        unit=_Unit("stalk", "stalks"),
    ),
    _ing(
        "makrut lime leaf",
        "herb",
        ("makrut lime leaf|makrut lime leaves", "kaffir lime leaf|kaffir lime leaves"),
        "count",
        before="fresh",
        after="shredded; torn; finely shredded",
        variants=30,
    ),
    _ing(
        "thai basil",
        "herb",
        ("Thai basil", "Thai basil leaves"),
        "herb",
        after="to garnish; leaves picked",
        variants=20,
    ),
    _ing(
        "palm sugar",
        "sweetener",
        "palm sugar",
        "spoon; mass_small",
        before="grated",
        after="grated; finely chopped",
        variants=20,
    ),
    _ing(
        "galangal", "spice", "galangal", "piece", before="fresh", after="peeled and sliced; thinly sliced", variants=16
    ),
    _ing(
        "peanut",
        "nut",
        "peanut|peanuts",
        "cups_small; spoon",
        before="unsalted",
        after="roughly chopped; crushed; to garnish",
    ),
    _ing(
        "bean sprout",
        "vegetable",
        "bean sprout|bean sprouts",
        "cups; mass_small",
        before="fresh",
        after="to serve; trimmed",
        variants=20,
    ),
    _ing(
        "shrimp",
        "seafood",
        ("shrimp|shrimp", "prawn|prawns", "king prawn|king prawns"),
        "mass; count",
        before="raw; large",
        after="peeled and deveined; peeled, tails left on; deveined",
        variants=40,
    ),
    _ing(
        "rice noodle",
        "grain",
        "rice noodle|rice noodles",
        "mass",
        after="soaked in warm water; cooked according to packet instructions",
    ),
    _ing("red curry paste", "condiment", ("red curry paste", "Thai red curry paste"), "spoon", variants=20),
    _ing("jasmine rice", "grain", "jasmine rice", "cups; mass", after="rinsed; to serve", variants=20),
    # moroccan
    _ing(
        "cinnamon",
        "spice",
        ("cinnamon", "ground cinnamon"),
        "spoon; unit",
        after="broken in half",
        unit=_Unit("stick", "sticks", ("trail",)),
        variants=30,
    ),
    _ing("paprika", "spice", "paprika", "spoon", variants=16),
    _ing("couscous", "grain", "couscous", "cups; mass_small", after="to serve", variants=24),
    _ing(
        "preserved lemon",
        "fruit",
        "preserved lemon|preserved lemons",
        "count",
        after="rind finely chopped; flesh discarded, rind thinly sliced; quartered",
        variants=20,
    ),
    _ing(
        "dried apricot",
        "fruit",
        ("dried apricot|dried apricots", "ready-to-eat dried apricot|ready-to-eat dried apricots"),
        "cups_small; mass_small",
        after="chopped; halved; roughly chopped",
        variants=24,
    ),
    _ing(
        "lamb",
        "meat",
        ("lamb", "diced lamb", "boneless lamb"),
        "mass",
        after="cut into 3cm/1¼in cubes; trimmed and cubed; cubed",
    ),
    _ing("harissa", "condiment", ("harissa", "harissa paste"), "spoon", variants=16),
    _ing("mint", "herb", ("mint", "mint leaves"), "herb; spoon", before="fresh; chopped fresh", after=_HERB_AFTER),
    _ing(
        "almond",
        "nut",
        (
            "almond|almonds",
            "flaked almond|flaked almonds",
            "slivered almond|slivered almonds",
            "blanched almond|blanched almonds",
        ),
        "cups_small; mass_small",
        after="toasted; roughly chopped",
    ),
    _ing("saffron", "spice", ("saffron", "saffron threads"), "pinch", after="soaked in 2 tbsp hot water", variants=16),
    _ing("honey", "sweetener", "honey", "spoon; volume_small", before="runny", variants=20),
)

STAPLES: Mapping[str, float] = {
    "salt": 0.5,
    "onion": 0.38,
    "garlic": 0.4,
    "olive oil": 0.28,
    "black pepper": 0.3,
    "butter": 0.14,
    "sugar": 0.12,
    "vegetable oil": 0.12,
    "egg": 0.08,
    "flour": 0.06,
    "chicken stock": 0.08,
    "lemon": 0.08,
    "milk": 0.03,
    "brown sugar": 0.03,
}

CUISINES: tuple[Cuisine, ...] = (
    Cuisine(
        "italian",
        0.22,
        {
            "tomato": 0.45,
            "parmesan cheese": 0.4,
            "spaghetti": 0.3,
            "mozzarella cheese": 0.15,
            "pine nut": 0.08,
            "balsamic vinegar": 0.08,
            "red wine": 0.08,
            "zucchini": 0.1,
            "eggplant": 0.08,
            "prosciutto": 0.07,
            "ricotta": 0.07,
            "rosemary": 0.1,
            "anchovy": 0.05,
            "parsley": 0.18,
        },
        {"olive oil": 0.7, "butter": 0.1, "vegetable oil": 0.02},
        ("pasta", "bake", "salad", "soup", "risotto"),
    ),
    Cuisine(
        "mexican",
        0.18,
        {
            "tortilla": 0.45,
            "black bean": 0.3,
            "avocado": 0.3,
            "jalapeno": 0.3,
            "cumin": 0.35,
            "chili powder": 0.25,
            "ground beef": 0.15,
            "sour cream": 0.15,
            "queso fresco": 0.1,
            "corn": 0.12,
            "red onion": 0.25,
            "bell pepper": 0.15,
            "chicken breast": 0.15,
            "tomato": 0.3,
        },
        {"olive oil": 0.15, "vegetable oil": 0.25, "butter": 0.04},
        ("tacos", "burrito bowl", "enchiladas", "salsa", "quesadillas"),
    ),
    Cuisine(
        "indian",
        0.15,
        {
            "cumin": 0.4,
            "cardamom": 0.15,
            "chili": 0.35,
            "yogurt": 0.2,
            "ghee": 0.15,
            "basmati rice": 0.2,
            "red lentil": 0.15,
            "coconut milk": 0.1,
            "mustard seed": 0.1,
            "curry leaf": 0.08,
            "spinach": 0.1,
            "paneer": 0.08,
            "tomato": 0.35,
            "cilantro": 0.05,
            "chicken thigh": 0.15,
            "eggplant": 0.05,
        },
        {"olive oil": 0.03, "vegetable oil": 0.4, "black pepper": 0.1, "butter": 0.05},
        ("curry", "dal", "biryani", "masala", "tikka"),
    ),
    Cuisine(
        "french",
        0.13,
        {
            "shallot": 0.35,
            "white wine": 0.25,
            "heavy cream": 0.25,
            "dijon mustard": 0.2,
            "parsley": 0.2,
            "tarragon": 0.1,
            "leek": 0.12,
            "mushroom": 0.2,
            "gruyere cheese": 0.12,
            "creme fraiche": 0.1,
            "carrot": 0.15,
            "potato": 0.15,
            "beef": 0.1,
            "chicken thigh": 0.1,
        },
        {"butter": 0.55, "olive oil": 0.15, "flour": 0.2, "egg": 0.18, "chicken stock": 0.15},
        ("gratin", "ragout", "tart", "fricassee", "soup"),
    ),
    Cuisine(
        "japanese",
        0.12,
        {
            "mirin": 0.35,
            "rice vinegar": 0.2,
            "sesame oil": 0.2,
            "sake": 0.2,
            "dashi": 0.15,
            "miso": 0.15,
            "scallion": 0.35,
            "rice": 0.35,
            "nori": 0.1,
            "tofu": 0.12,
            "sesame seed": 0.15,
            "salmon": 0.1,
            "shiitake mushroom": 0.1,
            "wasabi": 0.05,
            "chicken thigh": 0.12,
        },
        {"olive oil": 0.02, "black pepper": 0.05, "salt": 0.3, "sugar": 0.35, "butter": 0.03, "lemon": 0.03},
        ("donburi", "ramen", "teriyaki", "stir-fry", "miso soup"),
    ),
    Cuisine(
        "thai",
        0.11,
        {
            "fish sauce": 0.55,
            "coconut milk": 0.4,
            "thai basil": 0.15,
            "palm sugar": 0.2,
            "galangal": 0.1,
            "peanut": 0.15,
            "bean sprout": 0.1,
            "shrimp": 0.2,
            "rice noodle": 0.15,
            "red curry paste": 0.15,
            "jasmine rice": 0.15,
            "chili": 0.35,
            "cilantro": 0.08,
            "lime": 0.08,
            "shallot": 0.15,
            "chicken thigh": 0.12,
        },
        {"olive oil": 0.02, "vegetable oil": 0.35, "sugar": 0.25, "salt": 0.2, "black pepper": 0.05, "butter": 0.01},
        ("curry", "stir-fry", "noodle salad", "soup", "noodles"),
    ),
    Cuisine(
        "moroccan",
        0.09,
        {
            "cumin": 0.35,
            "cinnamon": 0.3,
            "paprika": 0.25,
            "preserved lemon": 0.15,
            "dried apricot": 0.15,
            "lamb": 0.25,
            "harissa": 0.12,
            "mint": 0.15,
            "almond": 0.1,
            "saffron": 0.08,
            "carrot": 0.15,
            "parsley": 0.2,
            "honey": 0.12,
            "zucchini": 0.08,
            "vegetable stock": 0.12,
        },
        {"olive oil": 0.5, "lemon": 0.2, "butter": 0.06},
        ("tagine", "couscous salad", "stew", "harira"),
    ),
)

PAIRS: tuple[Pair, ...] = (
    Pair("italian", "basil", "oregano", ("tomato", "mozzarella cheese")),
    Pair("mexican", "lime", "cilantro", ("jalapeno", "red onion")),
    Pair("japanese", "soy sauce", "ginger", ("scallion", "sesame oil")),
    Pair("indian", "garam masala", "turmeric", ("cumin", "chili")),
    Pair("french", "thyme", "bay leaf", ("carrot", "white wine")),
    Pair("thai", "lemongrass", "makrut lime leaf", ("galangal", "coconut milk")),
    Pair("moroccan", "couscous", "chickpea", ("dried apricot", "almond")),
)

NOISE_RATE = 0.1
"""Share of recipes that get one extra ingredient drawn uniformly from all non-staples."""
MIN_INGREDIENTS = 4
"""Recipes drawn with fewer ingredients are topped up from their cuisine (or dish)."""

PLANTED = PlantedStructure(
    cuisines=CUISINES,
    staples=STAPLES,
    pairs=PAIRS,
    categories={ing.name: ing.category for ing in sorted(_INGREDIENTS, key=lambda i: i.name)},
    noise_rate=NOISE_RATE,
    neighbours=tuple(NeighbourFact(p.first, p.second) for p in PAIRS),
    completions=(
        CompletionFact("mexican", ("tortilla", "jalapeno", "red onion"), better="lime", worse="soy sauce"),
        CompletionFact("italian", ("tomato", "mozzarella cheese", "olive oil"), better="basil", worse="fish sauce"),
        CompletionFact("japanese", ("scallion", "sesame oil", "ginger"), better="soy sauce", worse="parmesan cheese"),
        CompletionFact("indian", ("cumin", "chili", "turmeric"), better="garam masala", worse="mirin"),
        CompletionFact(
            "thai", ("galangal", "coconut milk", "makrut lime leaf"), better="lemongrass", worse="dijon mustard"
        ),
    ),
    invariances=(
        InvarianceFact("2 tbsp chopped basil", "2 tbsp chopped fresh basil", "basil"),
        InvarianceFact("¼ cup chopped cilantro", "¼ cup chopped fresh cilantro", "cilantro"),
        InvarianceFact("2.5cm/1in piece ginger, grated", "2.5cm/1in piece fresh ginger, grated", "ginger"),
        InvarianceFact("3 cloves garlic, minced", "3 cloves fresh garlic, minced", "garlic"),
        InvarianceFact("1 tsp thyme leaves", "1 tsp fresh thyme leaves", "thyme"),
        InvarianceFact("2 chillies, finely chopped", "2 fresh chillies, finely chopped", "chili"),
    ),
)

# --------------------------------------------------------------------------------------------
# Writing lines
# --------------------------------------------------------------------------------------------
# Quantities: (text, takes the plural).
_WHOLE_COUNTS = (
    ("1", False),
    ("2", True),
    ("3", True),
    ("4", True),
    ("6", True),
    ("2-3", True),
    ("1-2", True),
    ("2 to 3", True),
    ("8", True),
    ("3–4", True),
)
_COUNTS = _WHOLE_COUNTS + (("a", False), ("½", False), ("1½", True), ("1 1/2", True), ("1/2", False), ("1 ½", True))
_MASS = (
    "100g/3½oz",
    "150g/5½oz",
    "200g/7oz",
    "250g/9oz",
    "300g/10½oz",
    "400g/14oz",
    "450g/1lb",
    "500g/1lb 2oz",
    "750g/1lb 10oz",
    "1kg/2lb 4oz",
    "500g",
    "400 g",
    "250 grams",
    "1kg",
    "1.5kg",
    "8 oz",
    "12 ounces",
    "1 lb",
    "1½ lb",
    "2 lbs",
    "1 pound",
    "1/2 lb",
    "2 pounds",
)
_MASS_SMALL = (
    "25g/1oz",
    "50g/1¾oz",
    "75g/2½oz",
    "100g/3½oz",
    "125g/4½oz",
    "150g/5¼oz",
    "200g/7oz",
    "50g",
    "100 g",
    "60 grams",
    "2 oz",
    "4 ounces",
    "3 oz",
    "1/4 lb",
    "8 oz",
)
_VOLUME = (
    "1 cup",
    "½ cup",
    "1½ cups",
    "1 1/2 cups",
    "2 cups",
    "3/4 cup",
    "⅓ cup",
    "¾ cup",
    "3 cups",
    "250ml",
    "500ml/18fl oz",
    "100ml/3½fl oz",
    "400ml/14fl oz",
    "1 litre",
    "1 liter",
    "200 ml",
    "2¼ cups",
    "1 to 1½ cups",
)
_CUPS = (
    "1 cup",
    "½ cup",
    "1½ cups",
    "1 1/2 cups",
    "2 cups",
    "3/4 cup",
    "⅓ cup",
    "¾ cup",
    "3 cups",
    "2¼ cups",
    "1 heaping cup",
    "1 1/4 cups",
)
_CUPS_SMALL = ("¼ cup", "½ cup", "⅓ cup", "1/4 cup", "1/3 cup", "2/3 cup", "¾ cup", "1 cup")
_VOLUME_SMALL = (
    "¼ cup",
    "½ cup",
    "⅓ cup",
    "1/4 cup",
    "1/3 cup",
    "2/3 cup",
    "50ml/2fl oz",
    "100ml/3½fl oz",
    "60ml",
    "125 ml",
    "¾ cup",
)
_SPOONS = (
    "1 tsp",
    "½ tsp",
    "¼ tsp",
    "1½ tsp",
    "2 tsp",
    "1 teaspoon",
    "2 teaspoons",
    "1/2 teaspoon",
    "1 tbsp",
    "2 tbsp",
    "3 tbsp",
    "1 tablespoon",
    "2 tablespoons",
    "1 Tbsp",
    "2 Tbsp.",
    "1-2 tbsp",
    "1 to 2 teaspoons",
    "1 heaped tsp",
    "1 level tbsp",
    "2 tsp.",
    "1½ tablespoons",
    "¾ tsp",
    "1/4 teaspoon",
    "2–3 tbsp",
    "4 tbsp",
    "1 1/2 tsp",
)
_PINCHES = ("a pinch of", "pinch of", "1 pinch", "a large pinch of", "a good pinch of", "Pinch of")
_HERB_MEASURES = (
    "1 bunch",
    "½ bunch",
    "1 small bunch",
    "a handful of",
    "a small handful of",
    "a large handful of",
    "2 tbsp chopped",
    "¼ cup chopped",
    "½ cup loosely packed",
    "1 cup",
    "2 tbsp finely chopped",
    "3 tbsp",
    "1 large bunch",
    "small bunch",
    "1/4 cup packed",
)
_CANS = (
    "1 (15 oz) can",
    "1 (15-ounce) can",
    "2 (14.5 oz) cans",
    "1 (400g) tin",
    "1 x 400g tin",
    "400g/14oz tin",
    "1 (13.5 oz) can",
    "1 can",
    "2 x 400g cans",
    "1 (28-ounce) can",
    "2 (15-ounce) cans",
    "400g/14oz can",
)
_CAN_BEFORE = {"tomato": ("diced", "chopped", "whole peeled", "crushed")}
_PIECES = (
    "2.5cm/1in piece",
    "5cm/2in piece",
    "1-inch piece",
    "2-inch piece",
    "a thumb-sized piece of",
    "1 thumb-sized piece",
    "a 3cm/1¼in piece of",
    "1 small piece",
)
_KNOBS = ("a knob of", "a large knob of", "1 stick", "1 stick (½ cup)", "½ cup (1 stick)")
_COUNT_PARENS = ("(about 1 lb)", "(about 450g)", "(about 150g/5½oz each)", "(optional)", "(about 2 cups chopped)")
_HEADERS = (
    "For the sauce:",
    "For the marinade:",
    "For the dressing:",
    "To serve:",
    "For the garnish:",
    "FOR THE TOPPING",
    "Sauce:",
    "For the filling:",
    "For the salsa:",
)
# A bare "pepper" is not guessed to be black pepper by the normalizer, so the sample names it.
_SALT_AND_PEPPER = (
    "Salt and freshly ground black pepper, to taste",
    "Sea salt and freshly ground black pepper",
    "salt and freshly ground black pepper",
    "Kosher salt and freshly ground black pepper",
    "Salt and black pepper",
    "salt & black pepper, to taste",
    "sea salt and black pepper, to season",
    "Salt and ground black pepper",
)


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


_AMOUNTS = {
    "mass": _MASS,
    "mass_small": _MASS_SMALL,
    "volume": _VOLUME,
    "volume_small": _VOLUME_SMALL,
    "cups": _CUPS,
    "cups_small": _CUPS_SMALL,
    "spoon": _SPOONS,
    "pinch": _PINCHES,
    "herb": _HERB_MEASURES,
    "knob": _KNOBS,
    "piece": _PIECES,
}


def _render(ing: _Ingredient, rng: random.Random) -> str:
    """One raw line for ``ing``: a measure, maybe a descriptor, a surface name, maybe a preparation."""
    singular, plural = rng.choice(ing.forms)
    before = rng.choice(ing.before) if ing.before and rng.random() < 0.35 else ""
    if before and singular.startswith(before.split()[-1] + " "):  # no "chopped fresh fresh coriander"
        before = ""
    measure = rng.choice(ing.measures)
    after = rng.choice(ing.after) if ing.after and rng.random() < 0.4 else ""
    paren = ""
    if measure == "count":
        quantity, is_plural = rng.choice(_COUNTS if ing.category in ("vegetable", "fruit") else _WHOLE_COUNTS)
        size = rng.choice(ing.sizes) if ing.sizes and rng.random() < 0.4 else ""
        noun = plural if is_plural else singular
        if quantity == "a" and (size or before or noun)[0] in "aeiou":
            quantity = "an"
        if ing.sizes and rng.random() < 0.08:
            paren = rng.choice(_COUNT_PARENS)
        line = _join(quantity, size, before, noun, paren)
    elif measure in _AMOUNTS:
        amounts = _AMOUNTS[measure]
        amount = rng.choice(amounts)
        if measure in ("herb", "spoon") and before in ("chopped", "chopped fresh") and "chopped" in amount:
            before = ""
        if measure == "mass" and rng.random() < 0.25:
            line = _join(amount, "of", before, plural)
        else:
            line = _join(amount, before, plural)
    elif measure == "can":
        can = rng.choice(_CANS)
        before = rng.choice(_CAN_BEFORE.get(ing.name, ("",)))
        line = _join(can, before, plural)
        if ing.name == "chickpea" and plural == "chickpeas" and rng.random() < 0.3:
            line += " (garbanzo beans)"
    elif measure == "unit":
        unit = ing.unit
        assert unit is not None, ing.name
        quantity, is_plural = rng.choice(_WHOLE_COUNTS)
        unit_word = unit.plural if is_plural else unit.singular
        style = rng.choice(unit.styles)
        singular = rng.choice([s for s, _ in ing.forms if not s.startswith("ground ") and "leaves" not in s])
        if style == "lead":
            line = _join(quantity, unit_word, before, singular)
        elif style == "of":
            line = _join(quantity, unit_word, "of", before, singular)
        else:
            line = _join(quantity, before, singular, unit_word)
    elif measure == "taste":
        line = _join(before, singular) + rng.choice((", to taste", " to taste", ", to season"))
        after = ""
    else:  # pragma: no cover - a typo in the table above
        raise ValueError(f"unknown measure {measure!r} for {ing.name}")
    if after and not any(word in after and word in line for word in ("chop", "leaves", "grated", "toasted")):
        line = f"{line}, {after}"
    if rng.random() < 0.12:
        line = line[0].upper() + line[1:]
    return line


@functools.cache
def _line_pool(ing: _Ingredient) -> tuple[str, ...]:
    """An ingredient's distinct raw lines, most common first: its own stream, whatever the corpus seed
    or the other ingredients."""
    rng = random.Random(f"flavor-ml sample lines: {ing.name}")
    lines: dict[str, None] = {}
    for _ in range(ing.variants * 20):
        lines.setdefault(_render(ing, rng))
        if len(lines) == ing.variants:
            break
    return tuple(lines)


def _line_pools() -> dict[str, tuple[str, ...]]:
    return {ing.name: _line_pool(ing) for ing in _INGREDIENTS}


@functools.cache
def intended_names() -> Mapping[str, tuple[str, ...]]:
    """Every raw line the generator can write -> the canonical name(s) it was written for.

    Section headers map to ``()``; combined lines such as ``salt and pepper`` to
    ``("salt", "black pepper")``.
    """
    names: dict[str, tuple[str, ...]] = {}

    def add(line: str, intended: tuple[str, ...]) -> None:
        if names.setdefault(line, intended) != intended:
            raise AssertionError(f"{line!r} is written for both {names[line]} and {intended}")

    for name, lines in _line_pools().items():
        for line in lines:
            add(line, (name,))
    for line in _HEADERS:
        add(line, ())
    for line in _SALT_AND_PEPPER:
        add(line, ("salt", "black pepper"))
    return MappingProxyType(names)


def intended_basket(recipe: Mapping[str, Any]) -> list[str]:
    """The canonical names a generated recipe was written with, in line order, each once."""
    names = intended_names()
    return list(dict.fromkeys(n for line in recipe["ingredients"] for n in names[line]))


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------

_LINE_ORDER = {
    category: rank
    for rank, category in enumerate(
        (
            "meat",
            "seafood",
            "legume",
            "grain",
            "vegetable",
            "fruit",
            "dairy",
            "nut",
            "stock",
            "alcohol",
            "condiment",
            "sweetener",
            "oil",
            "herb",
            "spice",
        )
    )
}
_TITLE_MAIN = ("meat", "seafood", "legume", "vegetable", "grain", "dairy", "fruit")
_TITLE_ADJECTIVES = ("Easy", "Quick", "Weeknight", "Classic", "Spicy", "Simple", "Rustic", "Family")


@dataclass(frozen=True, eq=False)  # compared (and cached) by identity: the tables hold dicts
class SampleTables:
    """What the generator draws from. Each recipe's draws are keyed by what they are about (see
    :class:`_Draws`), so editing one table changes only the recipes, lines or titles that use it."""

    cuisines: tuple[Cuisine, ...]
    staples: Mapping[str, float]
    pairs: tuple[Pair, ...]
    ingredients: tuple[_Ingredient, ...]

    def replace(self, **changes: object) -> SampleTables:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


class _Plan:
    """Everything the recipe loop needs, precomputed once per set of tables."""

    def __init__(self, tables: SampleTables) -> None:
        self.cuisines = tables.cuisines
        self.cuisine_cum = list(itertools.accumulate(c.share for c in tables.cuisines))
        self.core = {c.name: tuple(c.core.items()) for c in tables.cuisines}
        self.core_names = {c.name: tuple(c.core) for c in tables.cuisines}
        self.staples = {c.name: tuple({**tables.staples, **c.staples}.items()) for c in tables.cuisines}
        self.staple_names = frozenset(tables.staples)
        self.pair = {p.cuisine: p for p in tables.pairs}
        if len(self.pair) != len(tables.pairs):
            raise ValueError("one dish (Pair) per cuisine at most")
        self.noise = tuple(i.name for i in tables.ingredients if i.name not in tables.staples)
        self.pools = {ing.name: _line_pool(ing) for ing in tables.ingredients}
        self.pool_cum = {
            name: list(itertools.accumulate(1.0 / (rank + 1) ** 0.7 for rank in range(len(lines))))
            for name, lines in self.pools.items()
        }
        self.rank = {i.name: (_LINE_ORDER[i.category], i.name) for i in tables.ingredients}
        self.category = {i.name: i.category for i in tables.ingredients}


@functools.cache
def _plan(tables: SampleTables) -> _Plan:
    return _Plan(tables)


_MASK64 = (1 << 64) - 1


@functools.lru_cache(maxsize=65536)
def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _mix64(x: int) -> int:
    """SplitMix64's finaliser: one recipe hash and one key hash -> an independent-looking draw."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class _Draws:
    """The random numbers of one recipe, each keyed by what it decides (``("core", "basil")``,
    ``("line", "salt")``, ``("title",)``): a draw never depends on how many came before it, so a
    changed probability or an added ingredient moves only the decisions about that ingredient."""

    def __init__(self, seed: int, number: int) -> None:
        self._recipe = _hash64(f"{seed}/{number}")

    def uniform(self, *about: str) -> float:
        return _mix64(self._recipe ^ _hash64("/".join(about))) / 2.0**64

    def pick(self, options: tuple[str, ...], *about: str) -> str:
        """One of ``options`` by rendezvous hashing: adding an option changes the pick only where it wins."""
        return min(options, key=lambda option: self.uniform(*about, option))

    def index(self, length: int, *about: str) -> int:
        return int(self.uniform(*about) * length)


def _draw_basket(cuisine: Cuisine, plan: _Plan, draws: _Draws) -> list[str]:
    pair = plan.pair.get(cuisine.name)
    if pair is not None and draws.uniform("dish") < pair.dish:
        basket = [c for c in pair.companions if draws.uniform("companion", c) < pair.company]
        u = draws.uniform("pair")
        if u < pair.both:
            basket += [pair.first, pair.second]
        else:
            basket.append(pair.first if u < (1 + pair.both) / 2 else pair.second)
        basket += [name for name, p in plan.core[cuisine.name] if draws.uniform("core", name) < p * pair.rest]
        fillers = pair.companions + (pair.first, pair.second)
    else:
        basket = [name for name, p in plan.core[cuisine.name] if draws.uniform("core", name) < p]
        if pair is not None:
            basket += [name for name in (pair.first, pair.second) if draws.uniform("core", name) < pair.alone]
        fillers = plan.core_names[cuisine.name]
    basket += [name for name, p in plan.staples[cuisine.name] if draws.uniform("staple", name) < p]
    if draws.uniform("noise") < NOISE_RATE:
        basket.append(draws.pick(plan.noise, "noise"))
    for round_ in itertools.count():
        if len(set(basket)) >= MIN_INGREDIENTS:
            break
        basket.append(draws.pick(fillers, "filler", str(round_)))
    return sorted(dict.fromkeys(basket), key=plan.rank.__getitem__)


def _write_lines(basket: list[str], plan: _Plan, draws: _Draws) -> list[str]:
    lines = []
    combined = "salt" in basket and "black pepper" in basket and draws.uniform("salt and pepper") < 0.5
    for name in basket:
        if name == "black pepper" and combined:
            continue
        if name == "salt" and combined:
            lines.append(_SALT_AND_PEPPER[draws.index(len(_SALT_AND_PEPPER), "salt and pepper line")])
            continue
        cum = plan.pool_cum[name]
        lines.append(plan.pools[name][bisect.bisect(cum, draws.uniform("line", name) * cum[-1])])
    if len(lines) >= 6 and draws.uniform("header") < 0.1:
        at = 2 + draws.index(len(lines) - 3, "header at")
        lines.insert(at, _HEADERS[draws.index(len(_HEADERS), "header line")])
    return lines


def _title(cuisine: Cuisine, basket: list[str], plan: _Plan, draws: _Draws) -> str:
    mains = [n for n in basket if n not in plan.staple_names and plan.category[n] in _TITLE_MAIN]
    main = mains[0] if mains else cuisine.name.capitalize()
    title = f"{main} {cuisine.dishes[draws.index(len(cuisine.dishes), 'dish word')]}"
    if draws.uniform("adjective") < 0.2:
        title = f"{_TITLE_ADJECTIVES[draws.index(len(_TITLE_ADJECTIVES), 'adjective word')]} {title}"
    return title[0].upper() + title[1:]


SAMPLE_TABLES = SampleTables(CUISINES, STAPLES, PAIRS, _INGREDIENTS)
"""The tables of the bundled corpus."""


def iter_sample_recipes(
    n_recipes: int = DEFAULT_RECIPES, seed: int = DEFAULT_SEED, tables: SampleTables | None = None
) -> Iterator[dict[str, Any]]:
    """The recipes of :func:`generate_sample_corpus`, one at a time."""
    if n_recipes < 0:
        raise ValueError(f"n_recipes must be 0 or more, not {n_recipes}")
    plan = _plan(tables or SAMPLE_TABLES)
    width = max(6, len(str(n_recipes)))  # r000001: a smaller corpus is the start of a bigger one
    for number in range(1, n_recipes + 1):
        draws = _Draws(seed, number)
        cuisine = plan.cuisines[bisect.bisect(plan.cuisine_cum, draws.uniform("cuisine") * plan.cuisine_cum[-1])]
        basket = _draw_basket(cuisine, plan, draws)
        yield {
            "id": f"r{number:0{width}d}",
            "title": _title(cuisine, basket, plan, draws),
            "cuisine": cuisine.name,
            "ingredients": _write_lines(basket, plan, draws),
        }


def generate_sample_corpus(
    n_recipes: int = DEFAULT_RECIPES, seed: int = DEFAULT_SEED, tables: SampleTables | None = None
) -> list[dict[str, Any]]:
    """``n_recipes`` synthetic recipes with the structure of :data:`PLANTED`; the same seed gives the same recipes.

    Each recipe is ``{"id", "title", "cuisine", "ingredients"}`` with ``ingredients`` a list
    of raw lines; :func:`intended_names` says which ingredient each line was written for.
    """
    return list(iter_sample_recipes(n_recipes, seed, tables))


def write_sample_corpus(path: Path | str, n_recipes: int = DEFAULT_RECIPES, seed: int = DEFAULT_SEED) -> Path:
    """Write :func:`generate_sample_corpus` as JSON Lines (UTF-8, one recipe a line), atomically.

    The same arguments give a byte-identical file. Returns ``path``.
    """
    path = Path(path)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            batch: list[str] = []
            for recipe in iter_sample_recipes(n_recipes, seed):
                batch.append(dumps(recipe))
                if len(batch) == 10_000:
                    out.write("\n".join(batch) + "\n")
                    batch.clear()
            if batch:
                out.write("\n".join(batch) + "\n")
        tmp.chmod(_FILE_MODE)
    return path


def categories_csv() -> str:
    """The ``ingredient,category`` table of every sample ingredient, sorted by ingredient."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("ingredient", "category"))
    writer.writerows(PLANTED.categories.items())
    return buffer.getvalue()


def write_sample_categories(path: Path | str) -> Path:
    """Write :func:`categories_csv` to ``path`` atomically. Returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(categories_csv(), encoding="utf-8", newline="\n")
        tmp.chmod(_FILE_MODE)
    return path


if __name__ == "__main__":  # regenerate the bundled files after changing this module
    print(write_sample_corpus(SAMPLE_CORPUS_PATH))
    print(write_sample_categories(SAMPLE_CATEGORIES_PATH))
