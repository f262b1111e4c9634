"""/complete answers with the scorer the version chose, and says which; /similar stays on the vectors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from flavor_ml.completion import EASE, CompletionModel
from tests.support.serving import RegistryStore, small_embeddings, unique_model_name, wait_until
from tests.test_serving import LOAD_ALLOWANCE, serving, version_served

pytestmark = pytest.mark.slow


def ease_favouring(embeddings, favourite: str) -> CompletionModel:
    """EASE weights that vote for ``favourite`` from every ingredient: easy to recognise in answers."""
    n = len(embeddings)
    target = embeddings.index_of(favourite)
    rows = [i for i in range(n) if i != target]
    weights = sp.csr_array((np.ones(len(rows), dtype=np.float32), (rows, [target] * len(rows))), shape=(n, n))
    return CompletionModel(
        embeddings,
        EASE,
        weights,
        {"chosen_by": "validation completion_hr10", "validation": {"ease": {"completion_hr10": 0.7}}},
    )


@pytest.fixture(scope="module")
def ease_version(tmp_path_factory) -> tuple[RegistryStore, str, str]:
    root = tmp_path_factory.mktemp("ease-registry")
    store = RegistryStore.create(f"sqlite:///{root / 'mlflow.db'}", root / "scratch", (root / "artifacts").as_uri())
    embeddings = small_embeddings(seed=3)
    original = store.scratch / "model"
    embeddings.save(original)
    ease_favouring(embeddings, "lemon").save(original)
    name = unique_model_name()
    with store.active():
        version = store.log_directory(name, original)
        store.promote(name, version)
    return store, name, version


def test_complete_uses_the_versions_scorer_and_names_it(ease_version):
    store, name, version = ease_version
    with store.active(), serving(name) as client:
        wait_until(lambda: version_served(client) == version, LOAD_ALLOWANCE, "the first load")
        body = client.post("/complete", json={"ingredients": ["basil", "tomato"], "k": 3}).json()
        assert body["scorer"] == "ease"
        assert body["complements"][0]["ingredient"] == "lemon"
        info = client.get("/model").json()
        assert info["completion_scorer"] == "ease"
        assert info["completion"]["chosen_by"] == "validation completion_hr10"
        similar = client.get("/similar/basil?k=3").json()["similar"]
        assert [hit["ingredient"] for hit in similar] == [n for n, _ in small_embeddings(seed=3).similar("basil", 3)]
