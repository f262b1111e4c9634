"""The artifact store: files under a local home by default, or in an S3 bucket."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest

from flavor_ml.errors import DiskFullError
from flavor_ml.settings import StorageSettings
from flavor_ml.storage import ArtifactStore, local_path_of, naming_a_full_disk, s3_client, split_s3_uri
from tests.support.s3_server import S3Endpoint, moto_endpoint_url, s3_server  # noqa: F401  (fixtures)


def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _count_calls(store: ArtifactStore, operation: str) -> list[str]:
    """Record every ``operation`` (e.g. PutObject) the store's S3 client sends."""
    calls: list[str] = []
    store.s3.meta.events.register(f"before-call.s3.{operation}", lambda **kwargs: calls.append(operation))
    return calls


# --------------------------------------------------------------------------- local


def test_a_local_store_keeps_files_under_home_and_returns_file_uris(tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(StorageSettings(home=tmp_path / "home"))
    uri = store.put_file(_file(tmp_path / "a.txt", b"hello"), "snapshots/a.txt")

    assert uri == (tmp_path / "home" / "snapshots" / "a.txt").as_uri()
    assert store.exists(uri)
    assert store.local_copy(uri).read_bytes() == b"hello"
    assert store.local_copy(uri) == tmp_path / "home" / "snapshots" / "a.txt"
    assert (tmp_path / "a.txt").exists(), "a put copies unless asked to move"


def test_putting_the_same_content_again_does_not_rewrite_the_file(tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(StorageSettings(home=tmp_path / "home"))
    uri = store.put_file(_file(tmp_path / "a.txt", b"hello"), "k/a.txt")
    before = local_path_of(uri).stat()

    store.put_file(_file(tmp_path / "b.txt", b"hello"), "k/a.txt")

    after = local_path_of(uri).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_putting_new_content_under_a_key_replaces_it_whole(tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(StorageSettings(home=tmp_path / "home"))
    store.put_file(_file(tmp_path / "a.txt", b"old"), "k/a.txt")
    uri = store.put_file(_file(tmp_path / "b.txt", b"new content"), "k/a.txt")

    assert local_path_of(uri).read_bytes() == b"new content"
    assert sorted(p.name for p in (tmp_path / "home" / "k").iterdir()) == ["a.txt"], "no temporary files left"


def test_a_put_with_move_consumes_the_local_file(tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(StorageSettings(home=tmp_path / "home"))
    staged = _file(store.staging_dir / "x.part", b"payload")
    uri = store.put_file(staged, "snapshots/x.bin", move=True)

    assert not staged.exists()
    assert local_path_of(uri).read_bytes() == b"payload"


def test_keys_cannot_escape_the_store(tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(StorageSettings(home=tmp_path / "home"))
    source = _file(tmp_path / "a.txt", b"x")
    for key in ("../outside.txt", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(ValueError, match="is not a store key"):
            store.put_file(source, key)


def test_missing_files_are_reported_not_invented(tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(StorageSettings(home=tmp_path / "home"))
    missing = (tmp_path / "home" / "nothing.txt").as_uri()

    assert not store.exists(missing)
    with pytest.raises(FileNotFoundError, match="no such file"):
        store.local_copy(missing)
    with pytest.raises(FileNotFoundError, match="no such file"):
        store.put_file(tmp_path / "nothing.txt", "k")


def test_uris_name_their_location(tmp_path: Path) -> None:
    assert split_s3_uri("s3://bucket/a/b.txt") == ("bucket", "a/b.txt")
    with pytest.raises(ValueError, match="not an s3://bucket/key uri"):
        split_s3_uri("s3://bucket")
    assert local_path_of("file:///tmp/a%20b.txt") == Path("/tmp/a b.txt")
    assert local_path_of("relative/x.txt") == Path("relative/x.txt")


# --------------------------------------------------------------------------- s3


def test_s3_client_uses_path_style_addressing_and_the_environment_credentials(
    s3_server: S3Endpoint, tmp_path: Path
) -> None:
    client = s3_client(s3_server.settings(tmp_path))

    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.endpoint_url == s3_server.url
    assert s3_server.bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_an_s3_store_uploads_under_its_prefix(s3_server: S3Endpoint, tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(s3_server.settings(tmp_path / "home", prefix="runs/flavor"))
    uri = store.put_file(_file(tmp_path / "a.txt", b"hello s3"), "snapshots/a.txt")

    assert uri == f"s3://{s3_server.bucket}/runs/flavor/snapshots/a.txt"
    assert store.exists(uri)
    obj = s3_server.client().get_object(Bucket=s3_server.bucket, Key="runs/flavor/snapshots/a.txt")
    assert obj["Body"].read() == b"hello s3"
    assert obj["Metadata"]["sha256"] == hashlib.sha256(b"hello s3").hexdigest()


def test_an_s3_put_of_content_already_there_uploads_nothing(s3_server: S3Endpoint, tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(s3_server.settings(tmp_path / "home"))
    puts = _count_calls(store, "PutObject")
    store.put_file(_file(tmp_path / "a.txt", b"same"), "k/a.txt")
    store.put_file(_file(tmp_path / "b.txt", b"same"), "k/a.txt")
    assert len(puts) == 1

    store.put_file(_file(tmp_path / "c.txt", b"different"), "k/a.txt")
    assert len(puts) == 2


def test_a_local_copy_of_an_s3_object_is_downloaded_once_into_the_cache(s3_server: S3Endpoint, tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(s3_server.settings(tmp_path / "home"))
    uri = store.put_file(_file(tmp_path / "a.txt", b"cached bytes"), "snapshots/a.txt")
    gets = _count_calls(store, "GetObject")

    first = store.local_copy(uri)
    second = store.local_copy(uri)

    assert first == second == tmp_path / "home" / "cache" / s3_server.bucket / "flavor-ml" / "snapshots" / "a.txt"
    assert first.read_bytes() == b"cached bytes"
    assert len(gets) == 1


def test_a_fresh_store_in_another_home_reads_what_the_first_one_wrote(s3_server: S3Endpoint, tmp_path: Path) -> None:
    writer = ArtifactStore.from_settings(s3_server.settings(tmp_path / "one"))
    uri = writer.put_file(_file(tmp_path / "a.txt", b"shared"), "models/a.bin")

    reader = ArtifactStore.from_settings(s3_server.settings(tmp_path / "two"))
    assert reader.local_copy(uri).read_bytes() == b"shared"


def test_missing_s3_objects_are_reported(s3_server: S3Endpoint, tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(s3_server.settings(tmp_path / "home"))
    uri = store.uri_for("nothing/here.txt")

    assert not store.exists(uri)
    with pytest.raises(FileNotFoundError, match="no such object"):
        store.local_copy(uri)
    cache = tmp_path / "home" / "cache"
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()], "a failed download leaves nothing"


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        RuntimeError("parquet: File out of specification: underlying IO error: No space left on device (os error 28)"),
    ],
)
def test_a_full_disk_is_named_with_the_folder_and_the_fix(tmp_path, error):
    with pytest.raises(DiskFullError, match=rf"^no space left on the disk of {tmp_path} while writing a test"):
        with naming_a_full_disk(tmp_path, "writing a test"):
            raise error


def test_other_write_errors_pass_through_as_they_are(tmp_path):
    with pytest.raises(PermissionError):
        with naming_a_full_disk(tmp_path, "writing a test"):
            raise PermissionError(errno.EACCES, "Permission denied")
