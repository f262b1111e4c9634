"""A step's result is usable only while the stored files it refers to hold what it recorded."""

from __future__ import annotations

import pytest

from flavor_ml.data.fetch import CorpusRef
from flavor_ml.integrity import damage
from flavor_ml.settings import StorageSettings
from flavor_ml.storage import ArtifactStore, local_path_of, sha256_file, split_s3_uri
from tests.support.s3_server import S3Endpoint, moto_endpoint_url, s3_server  # noqa: F401  (fixtures)


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


@pytest.fixture
def s3_snapshot(s3_server: S3Endpoint, tmp_path) -> tuple[CorpusRef, StorageSettings, S3Endpoint]:  # noqa: F811
    storage = s3_server.settings(tmp_path / "home")
    recipes = tmp_path / "recipes.tsv"
    recipes.write_text("italian\tbasil\ttomato\n")
    digest = sha256_file(recipes)
    uri = ArtifactStore.from_settings(storage).put_file(recipes, f"snapshots/{digest}.tsv")
    return CorpusRef(source=str(recipes), snapshot=uri, sha256=digest, bytes=22, format="tsv"), storage, s3_server


def test_an_object_in_the_bucket_is_checked_without_downloading_it(s3_snapshot):
    ref, storage, _ = s3_snapshot
    assert damage(ref, storage) is None
    assert not ArtifactStore.from_settings(storage).cached_copy(ref.snapshot).exists()


@pytest.mark.faults("cache-damaged")
def test_an_object_deleted_or_overwritten_in_the_bucket_is_named(s3_snapshot):
    ref, storage, server = s3_snapshot
    bucket, key = split_s3_uri(ref.snapshot)
    server.client().put_object(Bucket=bucket, Key=key, Body=b"italian\tbasil\n")  # another writer
    assert damage(ref, storage) == f"{ref.snapshot} does not hold what was recorded (sha256 {ref.sha256[:12]}…)"
    server.client().delete_object(Bucket=bucket, Key=key)
    assert damage(ref, storage) == f"{ref.snapshot}: no such object"


@pytest.mark.faults("cache-damaged")
def test_a_damaged_local_copy_of_an_object_is_dropped_so_the_next_read_fetches_it_afresh(s3_snapshot):
    ref, storage, _ = s3_snapshot
    store = ArtifactStore.from_settings(storage)
    store.local_copy(ref.snapshot).write_text("damaged")
    assert damage(ref, storage) is not None
    assert not store.cached_copy(ref.snapshot).exists()
    assert damage(ref, storage) is None and sha256_file(store.local_copy(ref.snapshot)) == ref.sha256
