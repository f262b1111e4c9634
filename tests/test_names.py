"""How request names meet the vocabulary: the training normalizer, called once per name and cached."""

from __future__ import annotations

from flavor_ml.serving.names import NameResolver

VOCABULARY = {"scallion", "cilantro", "basil"}


def counting_normalizer(calls: list[list[str]]):
    table = {"Green Onions": "scallion", "coriander leaves": "cilantro", "Basil Leaves": "basil"}

    def normalize(names):
        names = list(names)
        calls.append(names)
        return [table.get(n) for n in names]

    return normalize


def test_names_are_normalized_in_one_batch_and_then_answered_from_the_cache():
    calls: list[list[str]] = []
    resolver = NameResolver(counting_normalizer(calls))

    pending = resolver.pending(["Green Onions", "basil", "coriander leaves", "Green Onions"], VOCABULARY)
    resolver.normalize(pending)
    resolver.normalize(["Green Onions"])

    assert pending == ["Green Onions", "coriander leaves"], "a vocabulary name needs no normalizer"
    assert calls == [["Green Onions", "coriander leaves"]]
    assert [resolver.resolve(n, VOCABULARY) for n in ("Green Onions", "coriander leaves", "basil", "nope")] == [
        "scallion",
        "cilantro",
        "basil",
        None,
    ]


def test_the_cache_keeps_the_most_recently_used_names():
    calls: list[list[str]] = []
    resolver = NameResolver(counting_normalizer(calls), cache_size=2)
    resolver.normalize(["Green Onions", "coriander leaves"])
    resolver.resolve("Green Onions", VOCABULARY)  # used again: now the most recent

    resolver.normalize(["Basil Leaves"])

    assert resolver.pending(["Green Onions", "coriander leaves", "Basil Leaves"], VOCABULARY) == ["coriander leaves"]
