"""Each rewrite of the normalizer on its own: what its pattern matches and what a match becomes.

The rewrites see text at the stage where they run (lowercased, padded or collapsed, protected
phrases joined with ``_``); these cases are written in that form. Every group is named, so a
new alternative in one pattern cannot silently shift what another part of it keeps.
"""

from __future__ import annotations

import polars as pl
import pytest

from flavor_ml.data import normalization
from flavor_ml.data.normalization import Rewrite, default_normalizer


def first(rewrite: Rewrite, *texts: str) -> list[str]:
    return pl.select(rewrite.first(pl.lit(pl.Series(texts, dtype=pl.String)))).to_series().to_list()


def every(rewrite: Rewrite, *texts: str) -> list[str]:
    return pl.select(rewrite.every(pl.lit(pl.Series(texts, dtype=pl.String)))).to_series().to_list()


@pytest.fixture(scope="module")
def rewrites() -> dict[str, Rewrite]:
    return default_normalizer().rewrites


# -- a rewrite only takes named groups -------------------------------------------------------


@pytest.mark.parametrize(
    "pattern, replacement",
    [
        (r"(a)b", "${1}"),
        (r"(?P<a>a)b", "$1"),
        (r"(?P<a>a)b", "$a"),
        (r"(?P<a>a)b", "${b}"),
        (r"(?P<a>a)(b)", "${a}"),
    ],
)
def test_a_positional_or_unknown_group_is_refused(pattern: str, replacement: str) -> None:
    with pytest.raises(ValueError, match="named groups only"):
        Rewrite(pattern, replacement)


def test_keeping_any_keeps_whichever_alternative_matched() -> None:
    rewrite = Rewrite.keeping_any(r"^(?:(?P<x>a)1|(?P<y>b)2|(?P<z>c)3)$")
    assert rewrite.replacement == "${x}${y}${z}"
    assert first(rewrite, "a1", "b2", "c3", "d4") == ["a", "b", "c", "d4"]


def test_the_rewrites_of_every_normalizer_use_named_groups_only() -> None:
    for name, rewrite in default_normalizer().rewrites.items():
        assert "(?P<" in rewrite.pattern and "$" not in rewrite.replacement.replace("${", ""), name


# -- module-level rewrites ---------------------------------------------------------------------


def test_ies_plural_becomes_y() -> None:
    assert every(normalization.IES_PLURAL, " berries ", " cherries  lilies ", " pies ") == [
        " berry ",
        " cherry  lily ",
        " pies ",
    ]


def test_es_plural_drops_es_after_sibilants_and_o() -> None:
    assert every(normalization.ES_PLURAL, " tomatoes ", " peaches ", " boxes ", " glasses ") == [
        " tomato ",
        " peach ",
        " box ",
        " glass ",
    ]


def test_s_plural_drops_s_but_not_after_s_or_u() -> None:
    assert every(normalization.S_PLURAL, " onions ", " carrots  beans ", " asparagus ", " bus ") == [
        " onion ",
        " carrot  bean ",
        " asparagus ",
        " bus ",
    ]


def test_a_spaced_dash_between_words_starts_a_comment() -> None:
    assert first(normalization.SPACED_DASH_COMMENT, "1 lemon \u2013 juice only", "salt \u2013 2") == [
        "1 lemon",
        "salt \u2013 2",
    ]


def test_a_short_label_before_a_colon_is_dropped() -> None:
    assert first(normalization.LABEL, "garnish: parsley", "1kg sugar: regular") == [" parsley", "1kg sugar: regular"]


def test_a_slash_between_words_reads_as_or_but_not_between_amounts() -> None:
    assert every(normalization.SLASH_ALTERNATIVE, "salt / pepper", "10g / 2oz") == ["salt or pepper", "10g / 2oz"]


def test_first_line_is_the_first_non_empty_line() -> None:
    assert first(normalization.FIRST_LINE, "\n\nonion\ngarlic", "chilli") == ["onion", "chilli"]


def test_a_third_alternative_is_dropped() -> None:
    assert first(normalization.THIRD_ALTERNATIVE, "rum or orange or coffee liqueur", "salt or pepper") == [
        "rum or orange",
        "salt or pepper",
    ]


def test_a_labelled_pair_is_read_as_its_first_alone_or_sharing_the_rest() -> None:
    assert first(normalization.LABEL_FIRST_ALONE, "chicken or vegetable stock", "salt and pepper", "butter") == [
        "chicken",
        "salt",
        "butter",
    ]
    assert first(normalization.LABEL_FIRST_SHARED, "chicken or vegetable stock", "olive or sunflower oil") == [
        "chicken stock",
        "olive oil",
    ]


# -- rewrites built from the word tables ---------------------------------------------------


def test_comment_cut_runs_from_the_first_marker_but_never_from_the_first_word(rewrites) -> None:
    assert first(rewrites["comment_cut"], "salt to taste ", "oil for frying ", "to taste ") == [
        "salt",
        "oil",
        "to taste ",
    ]


def test_a_lone_modifier_part_joins_the_next_part(rewrites) -> None:
    assert first(rewrites["lone_modifier"], "dried\nhot red chilli", "\ndried\nhot red chilli", "onion\ngarlic") == [
        "dried hot red chilli",
        "dried hot red chilli",
        "onion\ngarlic",
    ]


def test_same_head_keeps_the_first_when_the_second_is_a_kind_of_it(rewrites) -> None:
    assert first(rewrites["same_head"], "onion or spring onion", "tomato or cherry tomato", "onion or shallot") == [
        "onion",
        "tomato",
        "onion or shallot",
    ]


@pytest.mark.parametrize(
    "text, kept",
    [
        ("butter or olive_oil", "butter"),  # a whole ingredient first
        ("red or white wine vinegar", "red wine vinegar"),  # two modifiers share the head
        ("red or white", "red"),  # two modifiers alone
        ("roasted or chicken", "roasted chicken"),  # a modifier shares a bare name
        ("chicken or vegetable stock", "chicken stock"),  # one word shares a head noun
        ("chicken or vegetable_stock", "chicken stock"),  # ... also of a protected phrase
        ("onion or shallot", "onion"),  # otherwise the first
    ],
)
def test_alternatives_keep_the_first_sharing_a_head_where_the_tables_say(rewrites, text: str, kept: str) -> None:
    assert first(rewrites["alternatives"], text) == [kept]


def test_and_after_a_whole_ingredient_splits_the_line(rewrites) -> None:
    assert first(rewrites["and_whole"], "salt and pepper", "green and red chili") == [
        "salt\npepper",
        "green and red chili",
    ]


def test_and_between_modifiers_shares_the_head(rewrites) -> None:
    assert first(
        rewrites["and_shared_head"], "green and red chili", "chicken and vegetable_stock", "salt and pepper"
    ) == ["green chili\nred chili", "chicken stock\nvegetable stock", "salt and pepper"]


def test_a_trailing_past_participle_is_dropped(rewrites) -> None:
    assert every(rewrites["participle"], "double cream whipped", "peas thawed", "cooked rice") == [
        "double cream",
        "peas",
        "cooked rice",
    ]


def test_a_trailing_part_word_is_dropped(rewrites) -> None:
    assert every(rewrites["part_word"], "fennel bulb", "garlic clove", "salmon fillet piece", "sea bass") == [
        "fennel",
        "garlic",
        "salmon",
        "sea bass",
    ]
