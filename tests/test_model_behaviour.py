"""What a model trained with the defaults on the bundled planted corpus must do for its users.

The corpus (flavor_ml/data/sample.py) plants pairs, dishes and cuisines; the facts below are
the ones users rely on: substitutes (``/similar``) find the planted partner first, completions
(``/complete``, with the scorer the version serves) put the planted ingredient in the top 10
and above one from another cuisine, and every spelling of an ingredient gets the same answer.
Training is deterministic (one worker, fixed seed), so these run in a few seconds and do not flake.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flavor_ml import pipeline
from flavor_ml.completion import SCORERS, CompletionModel
from flavor_ml.data.sample import PLANTED
from flavor_ml.serving.names import NameResolver, training_normalizer
from flavor_ml.settings import EvaluationParams, FetchParams, NormalizationParams, StorageSettings, TrainingParams

DEFAULTS = TrainingParams(deterministic=True, workers=1)

SPELLINGS = [
    ("scallion", ["scallion", "Scallions", "green onions", "Green Onion", "SCALLION"]),
    ("chickpea", ["chickpea", "Chickpeas", "garbanzo beans", "CHICKPEAS"]),
    ("cilantro", ["cilantro", "Cilantro", "coriander leaves", "CILANTRO"]),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[CompletionModel, pipeline.TrainedModel]:
    storage = StorageSettings(home=tmp_path_factory.mktemp("behaviour-home"))
    corpus = pipeline.fetch(None, FetchParams(), storage)
    baskets = pipeline.normalize(corpus, NormalizationParams(), storage)
    model = pipeline.train(baskets, DEFAULTS, EvaluationParams(), storage)
    completion = pipeline.load_completion_model(model, storage, Path(tmp_path_factory.mktemp("behaviour-model")))
    return completion, model


@pytest.mark.parametrize("fact", PLANTED.neighbours, ids=str)
def test_the_planted_partner_is_among_the_first_substitutes(trained, fact):
    completion, _ = trained
    nearest = [name for name, _ in completion.embeddings.similar(fact.ingredient, fact.k)]
    assert fact.neighbour in nearest, f"{fact.ingredient}: {nearest}"


def test_most_planted_partners_are_the_very_first_substitute(trained):
    completion, _ = trained
    first = [f for f in PLANTED.neighbours if completion.embeddings.similar(f.ingredient, 1)[0][0] == f.neighbour]
    assert len(first) >= len(PLANTED.neighbours) // 2, [str(f) for f in first]


@pytest.mark.parametrize("fact", PLANTED.completions, ids=str)
def test_a_planted_completion_is_in_the_top_10_before_a_foreign_ingredient(trained, fact):
    completion, _ = trained
    ranked = [name for name, _ in completion.complete(list(fact.basket), len(completion.embeddings))]
    assert fact.better in ranked[:10], f"{completion.scorer}: {ranked[:10]}"
    assert ranked.index(fact.better) < ranked.index(fact.worse)
    assert not set(fact.basket) & set(ranked)  # the inputs are never suggested back


@pytest.mark.parametrize("scorer", SCORERS)
def test_both_candidate_scorers_complete_the_planted_dishes(trained, scorer):
    completion, _ = trained
    candidate = CompletionModel(completion.embeddings, scorer, completion.ease_weights, completion.details)
    for fact in PLANTED.completions:
        top = [name for name, _ in candidate.complete(list(fact.basket), 10)]
        assert fact.better in top, f"{scorer}, {fact}: {top}"


def test_the_version_says_which_scorer_it_serves_and_why(trained):
    completion, model = trained
    assert completion.scorer == model.completion_scorer
    described = completion.describe()
    assert described["scorer"] in SCORERS
    assert described["chosen_by"] == "validation completion_hr10"
    validation = described["validation"]
    winner = max(validation, key=lambda name: validation[name]["completion_hr10"])
    assert (
        completion.scorer == winner
        or validation["ease"]["completion_hr10"] == validation["item2vec"]["completion_hr10"]
    )
    assert model.derived["epochs_source"] == "adaptive" and model.derived["epochs"] >= 10


@pytest.mark.parametrize(("ingredient", "spellings"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_every_spelling_of_an_ingredient_gets_the_same_answer(trained, ingredient, spellings):
    completion, _ = trained
    vocabulary = completion.embeddings
    resolver = NameResolver(training_normalizer())
    resolver.normalize(resolver.pending(spellings, vocabulary))
    resolved = {spelling: resolver.resolve(spelling, vocabulary) for spelling in spellings}
    assert set(resolved.values()) == {ingredient}, resolved
    answers = {tuple(vocabulary.similar(name, 5)) for name in resolved.values()}
    completions = {tuple(completion.complete([name, "salt"], 5)) for name in resolved.values()}
    assert len(answers) == 1 and len(completions) == 1
