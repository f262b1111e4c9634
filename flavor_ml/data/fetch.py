"""Fetch a recipe corpus into a content-addressed snapshot, completely and verifiably.

A source is ``http(s)://…``, ``s3://bucket/key``, ``file://…`` or a plain path. The bytes go
to a temporary file in the store's staging folder while their sha256 is computed; only a
complete download that matches ``FetchParams.expected_sha256``/``expected_bytes`` (when
given) is moved into the store as ``snapshots/<sha256><ext>``. Anything else raises
``FetchError`` and leaves nothing behind.

Connection errors, timeouts, bodies cut short and 5xx answers are retried (tenacity) up to
``max_attempts`` times, waiting ``backoff_seconds`` and then twice as long each time; 4xx
answers are not retried. From S3, only a body cut short is retried here: boto3 already retries
the requests themselves. ``timeout_seconds`` bounds connecting and each wait for data.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
from pydantic import BaseModel, ConfigDict
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from flavor_ml.data.compression import Compression, compression_of, decompress_to, file_name, inner_name, zip_members
from flavor_ml.data.formats import EXTENSIONS, Format, detect_format
from flavor_ml.errors import FetchError
from flavor_ml.file_hashes import remembered_sha256
from flavor_ml.settings import FetchParams, load_settings
from flavor_ml.storage import ArtifactStore, S3Client, local_path_of, s3_client, split_s3_uri

logger = logging.getLogger("flavor_ml.fetch")

#: Local files up to this size are fingerprinted by their sha256, larger ones by size + mtime.
FINGERPRINT_HASH_LIMIT = 64 * 1024 * 1024
_MAX_BACKOFF_SECONDS = 60.0
_CHUNK = 1 << 20
_SNIFF_HEAD = 64 * 1024
_USER_AGENT = "flavor-ml (corpus fetch)"

T = TypeVar("T")


class CorpusRef(BaseModel):
    """Where a fetched corpus snapshot lives and what it is; never the data itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    snapshot: str
    sha256: str
    bytes: int
    format: Format | Literal["mixed"]  # "mixed": a corpus whose partitions differ in format
    #: How the snapshot is compressed (it is stored as fetched); the format is that of the content.
    compression: Compression | None = None
    #: The partition this is, when the corpus has several; for a zip archive, which member.
    partition: str | None = None
    member: str | None = None
    #: What identified the source's content when it was fetched (see :func:`source_fingerprint`).
    fingerprint: dict[str, str] = {}

    @property
    def label(self) -> str:
        """How errors name this corpus: the partition and the source the user gave."""
        if self.partition and self.partition != file_name(self.source):
            return f"partition {self.partition} ({self.source})"
        return f"{self.source}!{self.member}" if self.member else self.source


class _Retryable(Exception):
    """An attempt failed in a way that another attempt may fix."""


def fetch_corpus(
    source: str, params: FetchParams, store: ArtifactStore, *, partition: str | None = None, member: str | None = None
) -> CorpusRef:
    """Fetch ``source`` into ``store`` as ``snapshots/<sha256><ext>`` and describe the snapshot.

    The format is ``params.format``, or detected from the source's name and then its content
    (of ``member`` for a zip archive); a compressed file is stored compressed. ``partition``
    names the partition of a corpus that this file is. Raises FetchError when the corpus
    cannot be fetched completely and verifiably, CorpusFormatError when it cannot be read.
    """
    kind = _kind_of(source)
    fd, name = tempfile.mkstemp(dir=store.staging_dir, prefix="fetch-", suffix=".part")
    os.close(fd)
    staging = Path(name)
    try:
        if kind == "http":
            digest, size = _fetch_http(source, staging, params)
        elif kind == "s3":
            digest, size = _fetch_s3(source, staging, params, store.s3)
        else:
            digest, size = _copy_local(source, staging)
        _verify(source, digest, size, params)
        label = f"{source}!{member}" if member else source
        compression = compression_of(file_name(source), staging)
        fmt = params.format if params.format != "auto" else _content_format(staging, compression, member, source, label)
        suffix = ".zip" if compression == "zip" else EXTENSIONS[fmt] + (f".{compression}" if compression else "")
        uri = store.put_file(staging, f"snapshots/{digest}{suffix}", sha256=digest, move=True)
    finally:
        staging.unlink(missing_ok=True)
    logger.info("fetched %s: %d bytes, sha256 %s, format %s -> %s", label, size, digest, fmt, uri)
    return CorpusRef(
        source=source,
        snapshot=uri,
        sha256=digest,
        bytes=size,
        format=fmt,
        compression=compression,
        partition=partition,
        member=member,
    )


def _content_format(
    staging: Path, compression: Compression | None, member: str | None, source: str, label: str
) -> Format:
    """The format of what is inside: from the inner name (``x.jsonl.gz``, a zip member), else its first bytes."""
    if compression is None:
        return detect_format(staging, name_hint=source, label=label)
    if compression == "zip" and member is None:
        member = zip_members(staging, label)[0]
    hint = member if compression == "zip" and member else inner_name(file_name(source))
    head = staging.with_suffix(".head")
    try:
        decompress_to(staging, compression, member, head, label, limit=_SNIFF_HEAD)
        return detect_format(head, name_hint=hint, label=label)
    finally:
        head.unlink(missing_ok=True)


def source_fingerprint(source: str, params: FetchParams, *, s3: S3Client | None = None) -> dict[str, str]:
    """What identifies the current content of ``source`` without downloading it (for cache keys).

    - http(s): the ``ETag`` and/or ``Last-Modified`` (with ``Content-Length``) from a HEAD
      request, or from the headers of a GET when HEAD is refused. A server that sends
      neither, or cannot be reached, gives a freshness bucket instead:
      ``time // freshness_seconds`` (``freshness_seconds=0`` means never fresh).
    - local files: the sha256 of the content for files up to 64 MiB, so touching or
      copying a file does not change it; larger files give their size and mtime_ns.
    - s3: the object's ``ETag`` (and ``VersionId`` when versioned) from ``head_object``;
      ``s3`` is the client to use (one for the default storage settings otherwise).

    Raises FetchError for a local file or S3 object that does not exist.
    """
    kind = _kind_of(source)
    if kind == "http":
        return _http_fingerprint(source, params)
    if kind == "s3":
        bucket, key = _split_s3(source)
        client = s3 if s3 is not None else s3_client(load_settings().storage)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            raise FetchError(f"HEAD {source} answered {_s3_status(error)}") from error
        except (BotoCoreError, ValueError) as error:
            raise FetchError(f"HEAD {source} failed: {error}") from error
        fingerprint = {
            "source": source,
            "etag": str(head.get("ETag", "")).strip('"'),
            "bytes": str(head.get("ContentLength", "")),
        }
        if head.get("VersionId"):
            fingerprint["version_id"] = str(head["VersionId"])
        return fingerprint
    path = _local_source_path(source)
    stat = path.stat()
    if stat.st_size <= FINGERPRINT_HASH_LIMIT:
        return {"source": source, "sha256": remembered_sha256(path, load_settings().home)}
    return {"source": source, "bytes": str(stat.st_size), "mtime_ns": str(stat.st_mtime_ns)}


# --------------------------------------------------------------------------- http


def _fetch_http(url: str, staging: Path, params: FetchParams) -> tuple[str, int]:
    with _http_client(params) as client:
        return _with_retries(f"GET {url}", params, lambda: _http_attempt(client, url, staging, params))


def _http_client(params: FetchParams) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(params.timeout_seconds),
        follow_redirects=True,
        headers={"User-Agent": _USER_AGENT},
    )


def _write_hashed(chunks: Iterable[bytes], staging: Path, what: str, expected_bytes: int | None) -> tuple[str, int]:
    """Write ``chunks`` to ``staging`` while hashing them; (sha256, bytes). Stops as soon as more
    than ``expected_bytes`` arrive."""
    digest = hashlib.sha256()
    size = 0
    with open(staging, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            if expected_bytes is not None and size > expected_bytes:
                raise FetchError(f"{what} sent more than the expected {expected_bytes} bytes; nothing was kept")
    return digest.hexdigest(), size


def _http_attempt(client: httpx.Client, url: str, staging: Path, params: FetchParams) -> tuple[str, int]:
    size = 0
    declared: int | None = None
    response: httpx.Response | None = None
    try:
        with client.stream("GET", url) as response:
            _raise_for_status(response, f"GET {url}")
            if "content-encoding" not in response.headers:  # else it counts encoded bytes
                declared = _int_or_none(response.headers.get("content-length"))
            sha, size = _write_hashed(response.iter_bytes(), staging, f"GET {url}", params.expected_bytes)
    except httpx.TimeoutException as error:
        raise _Retryable(f"timed out after {params.timeout_seconds:g} s ({type(error).__name__})") from error
    except httpx.RemoteProtocolError as error:
        received = response.num_bytes_downloaded if response is not None else 0
        if declared is not None and received < declared:
            raise _Retryable(
                f"the body was cut short: received {received} of {declared} bytes (Content-Length)"
            ) from error
        raise _Retryable(f"the server broke the connection: {error}") from error
    except httpx.TransportError as error:
        raise _Retryable(f"{_describe_transport_error(error)}") from error
    except httpx.HTTPError as error:
        raise FetchError(f"GET {url} failed: {error}") from error
    if declared is not None and size != declared:
        raise _Retryable(f"the body was cut short: received {size} of {declared} bytes (Content-Length)")
    return sha, size


def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    answer = f"{status} {response.reason_phrase}".strip()
    if status >= 500:
        raise _Retryable(f"answered {answer}")
    raise FetchError(f"{what} answered {answer}; not retried")


def _http_fingerprint(url: str, params: FetchParams) -> dict[str, str]:
    headers: httpx.Headers | None = None
    problem = ""
    try:
        with _http_client(params) as client:
            response = client.head(url)
            if response.status_code >= 400:  # some servers (and presigned URLs) refuse HEAD
                with client.stream("GET", url) as streamed:
                    response = streamed
            if response.status_code < 400:
                headers = response.headers
            else:
                problem = f"answered {response.status_code} {response.reason_phrase}"
    except httpx.HTTPError as error:
        problem = _describe_transport_error(error)
    fingerprint = {"source": url}
    if headers is not None:
        for header in ("etag", "last-modified"):
            if header in headers:
                fingerprint[header.replace("-", "_")] = headers[header]
        if len(fingerprint) > 1:
            if "content-length" in headers and "content-encoding" not in headers:
                fingerprint["bytes"] = headers["content-length"]
            return fingerprint
    else:
        logger.warning("could not read validators of %s (%s); using the freshness window", url, problem)
    if params.freshness_seconds == 0:
        fingerprint["fetched_at_ns"] = str(time.time_ns())
    else:
        fingerprint["freshness_bucket"] = str(int(time.time() // params.freshness_seconds))
    return fingerprint


def _describe_transport_error(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectError):
        return f"could not connect: {error}"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    return f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------- s3


def _fetch_s3(uri: str, staging: Path, params: FetchParams, client: S3Client) -> tuple[str, int]:
    bucket, key = _split_s3(uri)
    return _with_retries(f"GET {uri}", params, lambda: _s3_attempt(client, uri, bucket, key, staging, params))


def _s3_attempt(
    client: S3Client, uri: str, bucket: str, key: str, staging: Path, params: FetchParams
) -> tuple[str, int]:
    # The request itself is retried by boto3 (its standard retry mode, see storage.s3_client): an
    # error here is final. Only a body cut short while streaming is worth another attempt.
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        after = " after boto3's retries" if status >= 500 else "; not retried"
        raise FetchError(f"GET {uri} answered {_s3_status(error)}{after}") from error
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise FetchError(f"GET {uri}: {error} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)") from error
    except BotoCoreError as error:  # connection errors and timeouts, already retried by boto3
        raise FetchError(f"GET {uri} failed after boto3's retries: {type(error).__name__}: {error}") from error
    declared = int(obj["ContentLength"])
    try:
        sha, size = _write_hashed(obj["Body"].iter_chunks(_CHUNK), staging, f"GET {uri}", params.expected_bytes)
    except BotoCoreError as error:  # the connection dropped or stalled mid-body
        raise _Retryable(f"{type(error).__name__}: {error}") from error
    if size != declared:
        raise _Retryable(f"the body was cut short: received {size} of {declared} bytes")
    return sha, size


def _s3_status(error: ClientError) -> str:
    """``404 NoSuchKey``; HEAD answers carry no error code, so ``404 Not Found`` for those."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code.isdigit():
        try:
            code = HTTPStatus(int(code)).phrase
        except ValueError:
            pass
    return f"{status or code} {code}".strip() if status else code


def _split_s3(uri: str) -> tuple[str, str]:
    try:
        return split_s3_uri(uri)
    except ValueError as error:
        raise FetchError(f"{uri}: not a valid source: {error}") from error


# --------------------------------------------------------------------------- local files


def _local_source_path(source: str) -> Path:
    try:
        path = local_path_of(source)
    except ValueError as error:
        raise FetchError(f"{source}: {error}") from error
    if not path.exists():
        raise FetchError(f"{source}: no such file")
    if not path.is_file():
        raise FetchError(f"{source}: not a file")
    return path


def _copy_local(source: str, staging: Path) -> tuple[str, int]:
    path = _local_source_path(source)
    try:
        with open(path, "rb") as src:
            return _write_hashed(iter(lambda: src.read(_CHUNK), b""), staging, source, expected_bytes=None)
    except OSError as error:
        raise FetchError(f"{source}: cannot read it: {error.strerror or error}") from error


# --------------------------------------------------------------------------- shared


def _kind_of(source: str) -> str:
    lowered = source.lower()
    if lowered.startswith(("http://", "https://")):
        return "http"
    if lowered.startswith("s3://"):
        return "s3"
    if "://" in source and not lowered.startswith("file://"):
        scheme = source.split("://", 1)[0]
        raise FetchError(f"{source}: unsupported scheme {scheme!r}; use http(s)://, s3://, file:// or a path")
    return "local"


def _with_retries(what: str, params: FetchParams, attempt: Callable[[], T]) -> T:
    """Run ``attempt`` until it succeeds, raises FetchError, or ``max_attempts`` is spent."""

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.2g s",
            what,
            state.attempt_number,
            params.max_attempts,
            error,
            wait,
        )

    def give_up(state: RetryCallState) -> T:
        error = state.outcome.exception() if state.outcome else None
        tries = "1 attempt" if state.attempt_number == 1 else f"{state.attempt_number} attempts"
        raise FetchError(f"{what} failed after {tries}: {error}; nothing was kept") from error

    retrying = Retrying(
        retry=retry_if_exception_type(_Retryable),
        stop=stop_after_attempt(params.max_attempts),
        wait=wait_exponential(multiplier=params.backoff_seconds, exp_base=2, max=_MAX_BACKOFF_SECONDS),
        before_sleep=log_retry,
        retry_error_callback=give_up,
    )
    return retrying(attempt)


def _verify(source: str, digest: str, size: int, params: FetchParams) -> None:
    if params.expected_bytes is not None and size != params.expected_bytes:
        raise FetchError(f"{source}: got {size} bytes, expected {params.expected_bytes}; nothing was kept")
    if params.expected_sha256 is not None and digest != params.expected_sha256.lower():
        raise FetchError(
            f"{source}: sha256 is {digest}, expected {params.expected_sha256.lower()} "
            "(the source changed or the download is corrupt); nothing was kept"
        )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
