"""Fetching a corpus: over real HTTP on loopback, from S3 (moto's server), from local files.

A fetch either stores the complete, verified bytes as a content-addressed snapshot or
raises FetchError and leaves nothing behind.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import pytest

from flavor_ml.data.fetch import CorpusRef, fetch_corpus, source_fingerprint
from flavor_ml.errors import CorpusFormatError, FetchError
from flavor_ml.settings import FetchParams, StorageSettings
from flavor_ml.storage import ArtifactStore, local_path_of
from tests.support.http_server import Reply, ScriptedHTTPServer, http_server  # noqa: F401  (fixture)
from tests.support.s3_server import S3Endpoint, moto_endpoint_url, s3_server  # noqa: F401  (fixtures)

BODY = "".join(
    json.dumps({"id": f"r{i}", "ingredients": ["2 cloves garlic, minced", f"{i} cups flour"]}) + "\n" for i in range(50)
).encode()
SHA = hashlib.sha256(BODY).hexdigest()


def params(**overrides: object) -> FetchParams:
    """Fast retries for tests: four attempts, 10 ms apart at first."""
    return FetchParams(**{"max_attempts": 4, "backoff_seconds": 0.01, "timeout_seconds": 5.0, **overrides})


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_settings(StorageSettings(home=tmp_path / "home"))


def stored_files(store: ArtifactStore) -> list[str]:
    """Every file in the store's home, temporary ones included."""
    return sorted(str(p.relative_to(store.home)) for p in store.home.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- http


def test_an_http_corpus_becomes_a_content_addressed_snapshot(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    url = http_server.serve("/recipes.jsonl", Reply(200, BODY))

    ref = fetch_corpus(url, params(), store)

    assert ref == CorpusRef(
        source=url,
        snapshot=(store.home / "snapshots" / f"{SHA}.jsonl").as_uri(),
        sha256=SHA,
        bytes=len(BODY),
        format="jsonl",
    )
    assert local_path_of(ref.snapshot).read_bytes() == BODY
    assert stored_files(store) == [f"snapshots/{SHA}.jsonl"]


def test_a_compressed_transfer_is_stored_decompressed(http_server: ScriptedHTTPServer, store: ArtifactStore) -> None:
    url = http_server.serve("/recipes.jsonl", Reply(200, gzip.compress(BODY), headers={"Content-Encoding": "gzip"}))

    ref = fetch_corpus(url, params(), store)

    assert (ref.sha256, ref.bytes) == (SHA, len(BODY))
    assert local_path_of(ref.snapshot).read_bytes() == BODY


def test_a_server_that_fails_twice_then_succeeds_is_retried(
    http_server: ScriptedHTTPServer, store: ArtifactStore, caplog: pytest.LogCaptureFixture
) -> None:
    url = http_server.serve("/flaky.jsonl", Reply(500), Reply(503), Reply(200, BODY))

    with caplog.at_level(logging.WARNING, logger="flavor_ml.fetch"):
        ref = fetch_corpus(url, params(), store)

    assert ref.sha256 == SHA
    assert http_server.count("/flaky.jsonl") == 3
    retries = [r.getMessage() for r in caplog.records if r.name == "flavor_ml.fetch"]
    assert retries == [
        f"GET {url} failed (attempt 1 of 4): answered 500 Internal Server Error; retrying in 0.01 s",
        f"GET {url} failed (attempt 2 of 4): answered 503 Service Unavailable; retrying in 0.02 s",
    ]


def test_a_server_that_keeps_failing_gives_up_after_max_attempts(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    url = http_server.serve("/down.jsonl", Reply(502))

    with pytest.raises(FetchError) as raised:
        fetch_corpus(url, params(max_attempts=3), store)

    assert str(raised.value) == f"GET {url} failed after 3 attempts: answered 502 Bad Gateway; nothing was kept"
    assert http_server.count("/down.jsonl") == 3
    assert stored_files(store) == []


def test_a_404_is_not_retried(http_server: ScriptedHTTPServer, store: ArtifactStore) -> None:
    url = http_server.url("/missing.jsonl")

    with pytest.raises(FetchError) as raised:
        fetch_corpus(url, params(), store)

    assert str(raised.value) == f"GET {url} answered 404 Not Found; not retried"
    assert http_server.count("/missing.jsonl") == 1
    assert stored_files(store) == []


def test_a_403_is_not_retried_either(http_server: ScriptedHTTPServer, store: ArtifactStore) -> None:
    url = http_server.serve("/private.jsonl", Reply(403, b"no"))

    with pytest.raises(FetchError, match="answered 403 Forbidden; not retried"):
        fetch_corpus(url, params(), store)
    assert http_server.count("/private.jsonl") == 1


def test_a_body_cut_short_is_an_error_never_a_partial_corpus(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    url = http_server.serve("/cut.jsonl", Reply(200, BODY[:100], content_length=len(BODY)))

    with pytest.raises(FetchError) as raised:
        fetch_corpus(url, params(max_attempts=2), store)

    assert str(raised.value) == (
        f"GET {url} failed after 2 attempts: the body was cut short: "
        f"received 100 of {len(BODY)} bytes (Content-Length); nothing was kept"
    )
    assert http_server.count("/cut.jsonl") == 2, "a cut connection is worth another attempt"
    assert stored_files(store) == []


def test_a_body_cut_short_once_is_fetched_whole_on_the_retry(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    url = http_server.serve("/cut-once.jsonl", Reply(200, BODY[:10], content_length=len(BODY)), Reply(200, BODY))

    assert fetch_corpus(url, params(), store).sha256 == SHA
    assert stored_files(store) == [f"snapshots/{SHA}.jsonl"]


def test_a_checksum_mismatch_is_an_error_and_keeps_nothing(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    url = http_server.serve("/recipes.jsonl", Reply(200, BODY))
    wrong = "0" * 64

    with pytest.raises(FetchError) as raised:
        fetch_corpus(url, params(expected_sha256=wrong), store)

    assert str(raised.value) == (
        f"{url}: sha256 is {SHA}, expected {wrong} (the source changed or the download is corrupt); nothing was kept"
    )
    assert http_server.count("/recipes.jsonl") == 1, "a checksum mismatch is not retried"
    assert stored_files(store) == []


def test_the_expected_checksum_and_size_are_accepted_when_they_match(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    url = http_server.serve("/recipes.jsonl", Reply(200, BODY))

    ref = fetch_corpus(url, params(expected_sha256=SHA.upper(), expected_bytes=len(BODY)), store)

    assert ref.sha256 == SHA


def test_a_size_mismatch_is_an_error(http_server: ScriptedHTTPServer, store: ArtifactStore) -> None:
    url = http_server.serve("/recipes.jsonl", Reply(200, BODY))

    with pytest.raises(FetchError, match=f"{url}: got {len(BODY)} bytes, expected {len(BODY) + 1}; nothing was kept"):
        fetch_corpus(url, params(expected_bytes=len(BODY) + 1), store)
    with pytest.raises(FetchError, match=f"GET {url} sent more than the expected 10 bytes; nothing was kept"):
        fetch_corpus(url, params(expected_bytes=10), store)
    assert stored_files(store) == []


def test_a_server_slower_than_the_timeout_is_retried_then_reported(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    url = http_server.serve("/slow.jsonl", Reply(200, BODY, delay=5.0))

    started = time.perf_counter()
    with pytest.raises(FetchError) as raised:
        fetch_corpus(url, params(timeout_seconds=0.2, max_attempts=2), store)

    assert (
        str(raised.value) == f"GET {url} failed after 2 attempts: timed out after 0.2 s (ReadTimeout); nothing was kept"
    )
    assert http_server.count("/slow.jsonl") == 2
    assert time.perf_counter() - started < 2.0
    assert stored_files(store) == []


def test_a_slow_first_answer_then_a_quick_one_succeeds(http_server: ScriptedHTTPServer, store: ArtifactStore) -> None:
    url = http_server.serve("/slow-once.jsonl", Reply(200, BODY, delay=5.0), Reply(200, BODY))

    assert fetch_corpus(url, params(timeout_seconds=0.2), store).sha256 == SHA


def test_a_server_that_is_not_listening_is_a_connection_error(store: ArtifactStore) -> None:
    with ScriptedHTTPServer() as server:  # started and stopped: its port is now closed
        url = server.url("/recipes.jsonl")

    with pytest.raises(
        FetchError, match=rf"GET {url} failed after 2 attempts: could not connect: .+; nothing was kept"
    ):
        fetch_corpus(url, params(max_attempts=2), store)


def test_the_format_comes_from_the_url_or_from_the_content(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    named = http_server.serve("/corpus.tsv", Reply(200, b"Canada\tegg\tmilk\n"))
    anonymous = http_server.serve("/download", Reply(200, BODY))

    assert fetch_corpus(named + "?version=3", params(), store).format == "tsv"
    ref = fetch_corpus(anonymous, params(), store)
    assert (ref.format, ref.snapshot.rsplit("/", 1)[1]) == ("jsonl", f"{SHA}.jsonl")


def test_a_given_format_overrides_detection_and_names_the_snapshot(
    http_server: ScriptedHTTPServer, store: ArtifactStore
) -> None:
    url = http_server.serve("/corpus.txt", Reply(200, BODY))

    ref = fetch_corpus(url, params(format="json"), store)

    assert ref.format == "json"
    assert ref.snapshot.endswith(f"/snapshots/{SHA}.json")


def test_an_empty_download_is_refused_and_keeps_nothing(http_server: ScriptedHTTPServer, store: ArtifactStore) -> None:
    url = http_server.serve("/empty", Reply(200, b""))

    with pytest.raises(CorpusFormatError, match="is empty"):
        fetch_corpus(url, params(), store)
    assert stored_files(store) == []


def test_the_same_content_from_two_places_is_one_snapshot(
    http_server: ScriptedHTTPServer, store: ArtifactStore, tmp_path: Path
) -> None:
    url = http_server.serve("/recipes.jsonl", Reply(200, BODY))
    local = tmp_path / "copy.jsonl"
    local.write_bytes(BODY)

    first = fetch_corpus(url, params(), store)
    second = fetch_corpus(str(local), params(), store)

    assert first.snapshot == second.snapshot
    assert (first.source, second.source) == (url, str(local))
    assert stored_files(store) == [f"snapshots/{SHA}.jsonl"]


# --------------------------------------------------------------------------- local files


def test_a_plain_path_and_a_file_uri_fetch_the_same_snapshot(store: ArtifactStore, tmp_path: Path) -> None:
    path = tmp_path / "my recipes.jsonl"
    path.write_bytes(BODY)

    by_path = fetch_corpus(str(path), params(), store)
    by_uri = fetch_corpus(path.as_uri(), params(), store)

    assert by_path.snapshot == by_uri.snapshot
    assert by_path.bytes == len(BODY)
    assert path.read_bytes() == BODY, "the source file is left alone"


def test_a_missing_local_file_is_reported(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"nothing\.jsonl: no such file"):
        fetch_corpus(str(tmp_path / "nothing.jsonl"), params(), store)
    with pytest.raises(FetchError, match=": not a file"):
        fetch_corpus(str(tmp_path), params(), store)


def test_an_unsupported_scheme_is_reported(store: ArtifactStore) -> None:
    with pytest.raises(FetchError, match=r"ftp://example\.org/r\.jsonl: unsupported scheme 'ftp'"):
        fetch_corpus("ftp://example.org/r.jsonl", params(), store)


# --------------------------------------------------------------------------- s3


def test_an_s3_corpus_is_fetched_into_an_s3_store(s3_server: S3Endpoint, tmp_path: Path) -> None:
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="corpora/recipes.jsonl", Body=BODY)
    store = ArtifactStore.from_settings(s3_server.settings(tmp_path / "home"))

    ref = fetch_corpus(f"s3://{s3_server.bucket}/corpora/recipes.jsonl", params(), store)

    assert ref.snapshot == f"s3://{s3_server.bucket}/flavor-ml/snapshots/{SHA}.jsonl"
    assert (ref.sha256, ref.bytes, ref.format) == (SHA, len(BODY), "jsonl")
    assert store.local_copy(ref.snapshot).read_bytes() == BODY
    assert not any(store.staging_dir.iterdir()), "the staging file is gone"


def test_an_s3_corpus_can_be_fetched_into_a_local_store(s3_server: S3Endpoint, tmp_path: Path) -> None:
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="r.tsv", Body=b"Canada\tegg\tmilk\n")
    settings = s3_server.settings(tmp_path / "home").model_copy(update={"s3_bucket": None})
    store = ArtifactStore.from_settings(settings)

    ref = fetch_corpus(f"s3://{s3_server.bucket}/r.tsv", params(), store)

    assert ref.snapshot.startswith("file://")
    assert ref.format == "tsv"


def test_a_missing_s3_object_is_not_retried(s3_server: S3Endpoint, tmp_path: Path) -> None:
    store = ArtifactStore.from_settings(s3_server.settings(tmp_path / "home"))
    gets: list[str] = []
    store.s3.meta.events.register("before-call.s3.GetObject", lambda **kwargs: gets.append("GetObject"))
    source = f"s3://{s3_server.bucket}/nothing.jsonl"

    with pytest.raises(FetchError, match=rf"GET {source} answered 404 NoSuchKey; not retried"):
        fetch_corpus(source, params(), store)
    assert gets == ["GetObject"]
    assert stored_files(store) == []


def test_an_s3_server_error_is_retried_by_boto3_alone_not_again_on_top(
    s3_server: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.awsrequest import AWSResponse
    from botocore.retries.standard import ExponentialBackoff

    # boto3 waits up to 1, 2 and 4 s between its retries; what counts here is how many it makes.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)

    store = ArtifactStore.from_settings(s3_server.settings(tmp_path / "home"))
    sent: list[str] = []

    class Body:
        def stream(self, **kwargs):
            yield b"<Error><Code>ServiceUnavailable</Code><Message>busy</Message></Error>"

    def answer_503(**kwargs) -> AWSResponse:
        sent.append("GetObject")
        return AWSResponse(kwargs["request"].url, 503, {}, Body())

    store.s3.meta.events.register("before-send.s3.GetObject", answer_503)
    source = f"s3://{s3_server.bucket}/busy.jsonl"

    with pytest.raises(FetchError, match=rf"GET {source} answered 503 .*after boto3's retries"):
        fetch_corpus(source, params(max_attempts=2), store)
    assert len(sent) == 4, "boto3's attempt and 3 retries (storage.s3_client), not twice that"
    assert stored_files(store) == []


# --------------------------------------------------------------------------- fingerprints


def test_an_http_fingerprint_uses_the_etag_and_last_modified(http_server: ScriptedHTTPServer) -> None:
    validators = {"ETag": '"v1"', "Last-Modified": "Wed, 21 Oct 2026 07:28:00 GMT"}
    url = http_server.serve("/recipes.jsonl", Reply(200, BODY, headers=validators))

    assert source_fingerprint(url, params()) == {
        "source": url,
        "etag": '"v1"',
        "last_modified": "Wed, 21 Oct 2026 07:28:00 GMT",
        "bytes": str(len(BODY)),
    }
    assert http_server.count("/recipes.jsonl", "HEAD") == 1
    assert http_server.count("/recipes.jsonl", "GET") == 0, "nothing is downloaded"

    http_server.serve("/recipes.jsonl", Reply(200, BODY, headers={**validators, "ETag": '"v2"'}))
    assert source_fingerprint(url, params())["etag"] == '"v2"'


def test_a_server_without_validators_gets_a_freshness_window(http_server: ScriptedHTTPServer) -> None:
    url = http_server.serve("/recipes.jsonl", Reply(200, BODY))

    before = int(time.time() // 3600)
    fingerprint = source_fingerprint(url, params(freshness_seconds=3600))

    assert fingerprint["source"] == url
    assert int(fingerprint["freshness_bucket"]) in (before, before + 1)
    assert source_fingerprint(url, params(freshness_seconds=0)) != source_fingerprint(
        url, params(freshness_seconds=0)
    ), "a zero window is never fresh"


def test_an_unreachable_server_falls_back_to_the_freshness_window(caplog: pytest.LogCaptureFixture) -> None:
    with ScriptedHTTPServer() as server:
        url = server.url("/recipes.jsonl")

    with caplog.at_level(logging.WARNING, logger="flavor_ml.fetch"):
        fingerprint = source_fingerprint(url, params())

    assert set(fingerprint) == {"source", "freshness_bucket"}
    assert "could not read validators" in caplog.text


def test_a_local_fingerprint_follows_the_content_not_the_mtime(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(BODY)
    first = source_fingerprint(str(path), params())

    os.utime(path, ns=(1, 1))
    assert source_fingerprint(str(path), params()) == first == {"source": str(path), "sha256": SHA}

    path.write_bytes(BODY + b"\n")
    assert source_fingerprint(str(path), params()) != first


def test_a_fingerprint_of_a_missing_local_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="no such file"):
        source_fingerprint(str(tmp_path / "nothing.jsonl"), params())


def test_an_s3_fingerprint_is_the_objects_etag(
    s3_server: S3Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAVOR_S3_ENDPOINT_URL", s3_server.url)
    client = s3_server.client()
    client.put_object(Bucket=s3_server.bucket, Key="r.jsonl", Body=BODY)
    source = f"s3://{s3_server.bucket}/r.jsonl"

    first = source_fingerprint(source, params())  # a client for the environment's settings
    assert first == {"source": source, "etag": hashlib.md5(BODY).hexdigest(), "bytes": str(len(BODY))}

    client.put_object(Bucket=s3_server.bucket, Key="r.jsonl", Body=BODY + b"\n")
    store = ArtifactStore.from_settings(s3_server.settings(tmp_path))
    assert source_fingerprint(source, params(), s3=store.s3)["etag"] != first["etag"]

    with pytest.raises(FetchError, match=rf"HEAD s3://{s3_server.bucket}/nothing answered 404 Not Found$"):
        source_fingerprint(f"s3://{s3_server.bucket}/nothing", params(), s3=store.s3)
