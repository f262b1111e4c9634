"""A step's result is usable only while the stored files it refers to hold what it recorded."""

from __future__ import annotations

import pytest

from flavor_ml.data.fetch import CorpusRef
from flavor_ml.integrity import damage
from flavor_ml.settings import StorageSettings
from flavor_ml.storage import ArtifactStore, local_path_of, sha256_file


@pytest.fixture
def snapshot(tmp_path) -> tuple[CorpusRef, StorageSettings]:
    storage = StorageSettings(home=tmp_path / "home")
    recipes = tmp_path / "recipes.tsv"
    recipes.write_text("italian\tbasil\ttomato\n")
    digest = sha256_file(recipes)
    uri = ArtifactStore.from_settings(storage).put_file(recipes, f"snapshots/{digest}.tsv")
    return CorpusRef(source=str(recipes), snapshot=uri, sha256=digest, bytes=22, format="tsv"), storage


def test_an_intact_result_has_no_damage(snapshot):
    ref, storage = snapshot
    assert damage(ref, storage) is None


def test_a_deleted_file_is_named(snapshot):
    ref, storage = snapshot
    local_path_of(ref.snapshot).unlink()
    assert damage(ref, storage) == f"{ref.snapshot}: no such file"


def test_a_file_that_changed_is_named_with_what_was_recorded(snapshot):
    ref, storage = snapshot
    local_path_of(ref.snapshot).write_text("italian\tbasil\n")
    assert damage(ref, storage) == f"{ref.snapshot} does not hold what was recorded (sha256 {ref.sha256[:12]}…)"
