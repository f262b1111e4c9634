"""Where flavor-ml keeps its files: a folder under ``home`` or an S3-compatible bucket.

``ArtifactStore`` stores files under keys such as ``snapshots/<sha256>.jsonl`` and hands
back uris: ``file:///…/home/snapshots/…`` by default, ``s3://bucket/prefix/snapshots/…`` when
``FLAVOR_S3_BUCKET`` is set. Keys are meant to be written once (content-addressed or
versioned), which is what lets ``local_copy`` reuse a download it already holds.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from flavor_ml.atomic import atomic_path
from flavor_ml.errors import DiskFullError, StorageError
from flavor_ml.settings import StorageSettings, load_settings

S3Client = Any  # a boto3 "s3" client; boto3 builds its classes at run time

_CHUNK = 1 << 20


def s3_client(settings: StorageSettings) -> S3Client:
    """A boto3 S3 client for the configured endpoint, with path-style addressing.

    Credentials come from the standard ``AWS_*`` environment variables (or any other source
    boto3 looks at); ``FLAVOR_S3_ENDPOINT_URL`` points it at an S3-compatible server.
    """
    session = boto3.session.Session()  # one per client: the default session is not thread-safe
    return session.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3}),
    )


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``; ValueError for anything else."""
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise ValueError(f"{uri!r} is not an s3://bucket/key uri")
    return parts.netloc, key


def local_path_of(uri: str) -> Path:
    """The path named by a ``file://`` uri or a plain path."""
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"{uri!r} names a file on another host ({parts.netloc})")
        return Path(url2pathname(parts.path))
    return Path(uri).expanduser()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def naming_a_full_disk(where: Path, doing: str) -> Iterator[None]:
    """Turn "no space left on device" (or over quota), from Python or from polars' writers, into a
    :class:`DiskFullError` naming the folder and the fix. Writes go through temporary files and
    renames, so a step that fails this way has left nothing partial behind."""
    try:
        yield
    except Exception as error:
        if not _is_disk_full(error):
            raise
        raise DiskFullError(
            f"no space left on the disk of {where} while {doing}: free space there (`df -h {where}`) or set "
            f"FLAVOR_HOME to a folder on a larger disk, then retry the run. Nothing of this step was kept"
        ) from error


def _is_disk_full(error: Exception) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    # polars' writers report the OS error in their message: "... (os error 28)".
    return any(f"(os error {code})" in str(error) for code in (errno.ENOSPC, errno.EDQUOT))


def _is_not_found(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class ArtifactStore:
    """Files under ``home`` (the default) or under ``s3://{s3_bucket}/{s3_prefix}/``.

    Writes are atomic: a local put goes through a temporary file and a rename, an S3 put
    only becomes visible once the upload is complete. Putting a file whose content is
    already stored under that key does nothing.
    """

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.home = Path(settings.home).expanduser().resolve()
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self._s3: S3Client | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: StorageSettings | None = None) -> ArtifactStore:
        """The store the settings describe (the settings root's storage section by default)."""
        return cls(settings if settings is not None else load_settings().storage)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root})"

    @property
    def root(self) -> str:
        """The uri under which every key of this store lives."""
        if self.bucket:
            return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return self.home.as_uri()

    @property
    def s3(self) -> S3Client:
        """The S3 client for this store's endpoint (built on first use)."""
        with self._lock:
            if self._s3 is None:
                self._s3 = s3_client(self.settings)
            return self._s3

    @property
    def staging_dir(self) -> Path:
        """A local folder for files being prepared for the store (same disk as ``home``)."""
        path = self.home / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def uri_for(self, key: str) -> str:
        """The uri that ``key`` has (or would have) in this store."""
        key = _check_key(key)
        if self.bucket:
            return f"{self.root}/{key}"
        return (self.home / key).as_uri()

    def exists(self, uri: str) -> bool:
        """Whether the object or file at ``uri`` exists."""
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            try:
                self.s3.head_object(Bucket=bucket, Key=key)
            except ClientError as error:
                if _is_not_found(error):
                    return False
                raise self._failure("look up", uri, error) from error
            except BotoCoreError as error:
                raise self._failure("look up", uri, error) from error
            return True
        return local_path_of(uri).is_file()

    def put_file(self, local_path: Path | str, key: str, *, sha256: str | None = None, move: bool = False) -> str:
        """Store ``local_path`` under ``key`` and return its uri.

        ``sha256`` is the file's digest when the caller already knows it. With ``move=True``
        the local file is consumed (renamed into place when possible, else removed after
        the copy or upload).
        """
        source = Path(local_path)
        if not source.is_file():
            raise FileNotFoundError(f"cannot store {source}: no such file")
        digest = sha256 or sha256_file(source)
        if self.bucket:
            uri = self._put_s3(source, key, digest)
        else:
            uri = self._put_local(source, key, digest, move)
        if move:
            source.unlink(missing_ok=True)
        return uri

    def local_copy(self, uri: str) -> Path:
        """A local path holding the content of ``uri``.

        Local uris are returned as they are; s3 uris are downloaded (atomically) into
        ``home/cache/<bucket>/<key>`` and that copy is reused on later calls.
        """
        if not uri.startswith("s3://"):
            path = local_path_of(uri)
            if not path.is_file():
                raise FileNotFoundError(f"{uri}: no such file")
            return path
        target = self.cached_copy(uri)
        if target.is_file():
            return target
        bucket, key = split_s3_uri(uri)
        try:
            with atomic_path(target) as tmp:
                self.s3.download_file(bucket, key, str(tmp))
        except ClientError as error:
            if _is_not_found(error):
                raise FileNotFoundError(f"{uri}: no such object") from error
            raise self._failure("read", uri, error) from error
        except BotoCoreError as error:
            raise self._failure("read", uri, error) from error
        return target

    def cached_copy(self, uri: str) -> Path:
        """Where :meth:`local_copy` keeps its copy of an s3 object (it may not exist yet)."""
        bucket, key = split_s3_uri(uri)
        return self.home / "cache" / bucket / PurePosixPath(_check_key(key))

    def recorded_sha256(self, uri: str) -> str | None:
        """The sha256 an s3 object was stored with (its metadata), without downloading it;
        FileNotFoundError when the object is gone."""
        bucket, key = split_s3_uri(uri)
        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                raise FileNotFoundError(f"{uri}: no such object") from error
            raise self._failure("look up", uri, error) from error
        except BotoCoreError as error:
            raise self._failure("look up", uri, error) from error
        sha: str | None = head.get("Metadata", {}).get("sha256")
        return sha

    def _put_local(self, source: Path, key: str, digest: str, move: bool) -> str:
        target = self.home / PurePosixPath(_check_key(key))
        uri = target.as_uri()
        if target.is_file() and target.stat().st_size == source.stat().st_size and sha256_file(target) == digest:
            return uri
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            try:
                os.replace(source, target)
                return uri
            except OSError:  # another file system: copy below
                pass
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        return uri

    def _put_s3(self, source: Path, key: str, digest: str) -> str:
        object_key = f"{self.prefix}/{_check_key(key)}" if self.prefix else _check_key(key)
        uri = self.uri_for(key)
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=object_key)
            if head.get("Metadata", {}).get("sha256") == digest and head.get("ContentLength") == source.stat().st_size:
                return uri
        except ClientError as error:
            if not _is_not_found(error):
                raise self._failure("look up", uri, error) from error
        except BotoCoreError as error:
            raise self._failure("look up", uri, error) from error
        try:
            self.s3.upload_file(str(source), self.bucket, object_key, ExtraArgs={"Metadata": {"sha256": digest}})
        except (BotoCoreError, ClientError, S3UploadFailedError) as error:
            raise self._failure("write", uri, error) from error
        return uri

    def _failure(self, action: str, uri: str, error: Exception) -> StorageError:
        """The error for a request the store did not answer or refused: which store, which object, why."""
        if isinstance(error, ClientError):
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
            why = f"it answered {status} {error.response.get('Error', {}).get('Code', '')}".rstrip()
        elif isinstance(error, EndpointConnectionError):  # refused, or no such host: boto3 retried already
            why = "it does not answer (could not connect)"
        else:
            why = f"{type(error).__name__}: {error}"
        bucket = split_s3_uri(uri)[0]
        return StorageError(
            f"the S3 store at {self.s3.meta.endpoint_url} (bucket {bucket!r}) could not {action} {uri}: {why}. "
            "Check that it is running and reachable (FLAVOR_S3_ENDPOINT_URL), then run again"
        )


def _check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or any(part in ("..", ".") for part in parts):
        raise ValueError(f"{key!r} is not a store key (a relative path such as 'snapshots/<sha256>.jsonl')")
    return key
