"""Item2Vec training on baskets with planted structure: what the embeddings must recover."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flavor_ml.errors import TrainingError
from flavor_ml.settings import TrainingParams
from flavor_ml.training.train_embeddings import ShuffledBaskets, train_embeddings

ROOT = Path(__file__).resolve().parents[1]

CUISINES: dict[str, list[str]] = {
    "italian": [
        "basil",
        "oregano",
        "tomato",
        "parmesan",
        "mozzarella",
        "pasta",
        "olive oil",
        "pine nut",
        "ricotta",
        "balsamic vinegar",
        "prosciutto",
        "rosemary",
    ],
    "mexican": [
        "lime",
        "cilantro",
        "jalapeno",
        "tortilla",
        "cumin",
        "avocado",
        "black bean",
        "chili powder",
        "queso fresco",
        "corn",
        "chipotle",
        "tomatillo",
    ],
    "japanese": [
        "soy sauce",
        "mirin",
        "sake",
        "nori",
        "wasabi",
        "dashi",
        "miso",
        "rice vinegar",
        "ginger",
        "sesame oil",
        "bonito flake",
        "shiitake",
    ],
    "indian": [
        "garam masala",
        "turmeric",
        "cardamom",
        "ghee",
        "paneer",
        "fenugreek",
        "mustard seed",
        "curry leaf",
        "tamarind",
        "lentil",
        "coriander seed",
        "asafoetida",
    ],
}
STAPLES = ["salt", "onion", "garlic"]
CUISINE_OF = {name: cuisine for cuisine, names in CUISINES.items() for name in names}


def planted_baskets(n: int = 1200, seed: int = 0) -> list[list[str]]:
    """Recipes from four cuisines with disjoint ingredient groups, plus staples used by all.

    Each recipe takes 3-6 ingredients of one cuisine (the first ones of each list more
    often) and each staple with probability 0.5, so that popularity alone is a weak guess.
    """
    rng = np.random.default_rng(seed)
    names = list(CUISINES)
    weights = 1.0 / np.arange(1, 13)
    weights /= weights.sum()
    baskets = []
    for _ in range(n):
        group = CUISINES[names[rng.integers(len(names))]]
        picked = rng.choice(len(group), size=rng.integers(3, 7), replace=False, p=weights)
        basket = [group[i] for i in picked] + [s for s in STAPLES if rng.random() < 0.5]
        baskets.append([str(x) for x in rng.permutation(basket)])
    return baskets


FAST = TrainingParams(epochs=10, vector_size=16, deterministic=True)


@pytest.fixture(scope="module")
def embeddings():
    return train_embeddings(planted_baskets(), FAST)


def test_vocabulary_counts_and_vector_shapes(embeddings):
    baskets = planted_baskets()
    assert set(embeddings.vocabulary) == {name for b in baskets for name in b}
    expected = {name: sum(name in b for b in baskets) for name in embeddings.vocabulary}
    assert dict(zip(embeddings.vocabulary, embeddings.counts.tolist())) == expected
    assert list(embeddings.counts) == sorted(embeddings.counts, reverse=True), "most frequent first"
    assert embeddings.input_vectors.shape == embeddings.output_vectors.shape == (len(embeddings.vocabulary), 16)
    assert embeddings.is_finite()
    assert not np.allclose(embeddings.input_vectors, embeddings.output_vectors)


def test_nearest_neighbours_stay_within_the_planted_cuisine(embeddings):
    for name, cuisine in CUISINE_OF.items():
        neighbours = [other for other, _ in embeddings.similar(name, k=3)]
        assert all(CUISINE_OF.get(other) == cuisine for other in neighbours), (name, neighbours)


def test_completion_with_input_times_output_vectors_stays_within_the_cuisine(embeddings):
    for query, cuisine in (
        (["basil", "tomato"], "italian"),
        (["lime", "cilantro"], "mexican"),
        (["miso", "dashi"], "japanese"),
    ):
        completed = [name for name, _ in embeddings.complete(query, k=6)]
        assert all(name in STAPLES or CUISINE_OF[name] == cuisine for name in completed), (query, completed)
        assert sum(name not in STAPLES for name in completed) >= 3, (query, completed)


def test_the_window_spans_the_whole_basket():
    # "first" and "last" sit at the two ends of every 14-ingredient list, 13 positions apart:
    # with a word2vec window of 5 they would never form a training pair.
    rng = np.random.default_rng(1)
    fillers = [f"filler {i}" for i in range(60)]
    baskets = [["first", *map(str, rng.choice(fillers, 12, replace=False)), "last"] for _ in range(200)]
    embeddings = train_embeddings(baskets, FAST)
    assert embeddings.complete(["first"], k=1)[0][0] == "last"
    assert embeddings.complete(["last"], k=1)[0][0] == "first"


def test_baskets_are_reshuffled_every_epoch_reproducibly():
    baskets = [[f"a{i}", f"b{i}"] for i in range(50)]
    corpus = ShuffledBaskets(baskets, seed=7)
    first, second = list(corpus), list(corpus)
    assert sorted(first) == sorted(second) == sorted(baskets)
    assert first != second and first != baskets
    again = ShuffledBaskets(baskets, seed=7)
    assert list(again) == first and list(again) == second


def test_training_reads_every_basket_once_per_epoch_in_a_new_order(monkeypatch, caplog):
    import flavor_ml.training.train_embeddings as training

    orders: list[list[tuple[str, ...]]] = []

    class Recording(ShuffledBaskets):
        def __iter__(self):
            order = list(super().__iter__())
            orders.append([tuple(b) for b in order])
            return iter(order)

    monkeypatch.setattr(training, "ShuffledBaskets", Recording)
    baskets = planted_baskets(300)
    with caplog.at_level("WARNING", logger="gensim"):
        training.train_embeddings(baskets, FAST.model_copy(update={"epochs": 4, "head_epochs": 3}))
    assert len(orders) == 4 + 3  # the vectors' epochs, then the completion head's
    assert all(sorted(order) == sorted(tuple(b) for b in baskets) for order in orders)
    assert len({tuple(order) for order in orders}) == 7
    # gensim decays the learning rate by the share of the corpus seen: it warns when the
    # example or word counts it was given do not match what each epoch yields.
    assert not [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_deterministic_mode_repeats_bit_for_bit_in_process():
    baskets = planted_baskets(400)
    params = FAST.model_copy(update={"workers": 2})
    first, second = train_embeddings(baskets, params), train_embeddings(baskets, params)
    assert first.vocabulary == second.vocabulary
    assert np.array_equal(first.input_vectors, second.input_vectors)
    assert np.array_equal(first.output_vectors, second.output_vectors)
    other_seed = train_embeddings(baskets, params.model_copy(update={"seed": 43}))
    assert not np.array_equal(first.input_vectors, other_seed.input_vectors)


_FINGERPRINT = """
import hashlib
from tests.test_training import FAST, planted_baskets
from flavor_ml.training.train_embeddings import train_embeddings
e = train_embeddings(planted_baskets(400), FAST)
digest = hashlib.sha256()
digest.update("|".join(e.vocabulary).encode())
digest.update(e.input_vectors.tobytes())
digest.update(e.output_vectors.tobytes())
print(digest.hexdigest())
"""


@pytest.mark.slow
def test_deterministic_mode_repeats_bit_for_bit_in_fresh_processes_whatever_the_hash_seed():
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _FINGERPRINT],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        for hash_seed in ("0", "98765")
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    e = train_embeddings(planted_baskets(400), FAST)
    here = hashlib.sha256()
    here.update("|".join(e.vocabulary).encode())
    here.update(e.input_vectors.tobytes())
    here.update(e.output_vectors.tobytes())
    assert [out.strip() for out, _ in outputs] == [here.hexdigest()] * 2


def test_repeated_ingredients_in_a_basket_count_once():
    baskets = [["egg", "flour", "egg", "sugar"], ["egg", "flour"], ["sugar", "butter"]] * 20
    embeddings = train_embeddings(baskets, FAST)
    counts = dict(zip(embeddings.vocabulary, embeddings.counts.tolist()))
    assert counts == {"egg": 40, "flour": 40, "sugar": 40, "butter": 20}


def test_min_count_drops_rare_ingredients():
    baskets = planted_baskets(400) + [["saffron", "salt"]]
    embeddings = train_embeddings(baskets, FAST.model_copy(update={"min_count": 2}))
    assert "saffron" not in embeddings


@pytest.mark.parametrize(
    ("baskets", "message"),
    [
        ([], "no baskets"),
        ([["salt"], ["salt", "salt"]], "1 distinct ingredient"),
        ([["salt"], ["pepper"], ["egg"]], "no pairs"),
        (["salt pepper"], "is a string"),
        ([["salt", None]], "not an ingredient name"),
        ([["salt", " "]], "not an ingredient name"),
    ],
)
def test_unusable_corpora_are_refused_with_a_clear_message(baskets, message):
    with pytest.raises(TrainingError, match=message):
        train_embeddings(baskets, FAST)


def test_min_count_that_leaves_too_few_ingredients_is_refused():
    with pytest.raises(TrainingError, match="min_count=5"):
        train_embeddings([["salt", "pepper"], ["salt", "egg"]], FAST.model_copy(update={"min_count": 5}))


def test_the_completion_head_retrains_only_the_output_vectors():
    baskets = planted_baskets(600)
    params = FAST.model_copy(update={"deterministic": True, "workers": 1, "epochs": 5})
    with_head = train_embeddings(baskets, params)
    without = train_embeddings(baskets, params.model_copy(update={"completion_head": False}))
    # Substitutes come from the input vectors: the head leaves them exactly as the skip-gram made them.
    np.testing.assert_array_equal(with_head.input_vectors, without.input_vectors)
    assert not np.allclose(with_head.output_vectors, without.output_vectors)


def test_the_completion_head_runs_its_own_number_of_passes(monkeypatch):
    import flavor_ml.training.train_embeddings as training

    passes: list[int] = []

    class Counting(ShuffledBaskets):
        def __iter__(self):
            passes.append(1)
            return super().__iter__()

    monkeypatch.setattr(training, "ShuffledBaskets", Counting)
    baskets = planted_baskets(200)
    training.train_embeddings(baskets, FAST.model_copy(update={"epochs": 2, "head_epochs": 5}))
    assert len(passes) == 2 + 5
    passes.clear()
    training.train_embeddings(baskets, FAST.model_copy(update={"epochs": 2, "completion_head": False}))
    assert len(passes) == 2


def test_the_completion_head_sees_every_basket_with_its_ingredients_reshuffled_each_pass():
    from flavor_ml.training.train_embeddings import ShuffledIngredients

    baskets = [["a", "b", "c", "d", "e", "f"], ["g", "h", "i", "j", "k", "l"]]
    corpus = ShuffledIngredients(baskets, seed=3)
    first, second = list(corpus), list(corpus)
    assert [sorted(b) for b in first] == [sorted(b) for b in second] == baskets  # same baskets, same order
    assert first != second  # a new order of ingredients on each pass
    assert list(ShuffledIngredients(baskets, seed=3)) == first  # seeded: the same on a re-run
    assert baskets == [["a", "b", "c", "d", "e", "f"], ["g", "h", "i", "j", "k", "l"]]  # the corpus is untouched
