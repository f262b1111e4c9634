"""A corpus is a set of partitions: list them from what the user gave.

``--corpus`` names one file (a path, ``file://``, ``http(s)://`` or ``s3://`` URI), a local
directory (every file under it), a glob (``data/recipes-*.jsonl.gz``), an S3 prefix
(``s3://bucket/recipes/``: every object under it), or a manifest (a ``.manifest``/``.urls``
file, or a ``.txt`` file whose lines are all URLs) listing one source per line. Every file is
a partition; every file in a zip archive is a partition of its own (``train.json.zip/train.json``).

Partitions are named by their path relative to the directory, prefix or glob they were found
under (the file name for a single file or a manifest entry), so names stay the same when a
corpus grows, and a task run can be named after its partition.
"""

from __future__ import annotations

import glob
from pathlib import Path, PurePosixPath

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from flavor_ml.data.compression import compression_of, file_name, zip_members
from flavor_ml.data.fetch import source_fingerprint
from flavor_ml.errors import FetchError
from flavor_ml.settings import FetchParams
from flavor_ml.storage import S3Client, local_path_of

MANIFEST_SUFFIXES = (".manifest", ".urls")
_GLOB_CHARS = frozenset("*?[")
_SCHEMES = ("http://", "https://", "s3://", "file://")


class PartitionSource(BaseModel):
    """One partition of a corpus: where its file is, and which member of it for a zip archive."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    source: str
    member: str | None = None


def list_partitions(corpus: str, s3: S3Client | None = None) -> list[PartitionSource]:
    """The partitions of ``corpus``, sorted by name. ``s3`` is the client for ``s3://`` corpora.

    Raises FetchError naming ``corpus`` when it lists nothing or cannot be listed.
    """
    lowered = corpus.lower()
    if lowered.startswith("s3://"):
        if s3 is None:
            raise FetchError(f"{corpus}: an s3:// corpus needs an S3 client")
        parts = _s3_partitions(corpus, s3)
    elif lowered.startswith(("http://", "https://")):
        parts = _manifest_partitions(corpus, _http_text(corpus)) if _is_manifest_name(corpus) else [_single(corpus)]
    else:
        parts = _local_partitions(corpus)
    if not parts:
        raise FetchError(f"{corpus}: no files to read (a corpus needs at least one partition)")
    _check_unique(corpus, parts)
    return sorted(parts, key=lambda part: part.name)


def partition_fingerprint(
    partition: PartitionSource, params: FetchParams, s3: S3Client | None = None
) -> dict[str, str]:
    """What identifies a partition's content without downloading it: the fetch step's fingerprint
    of its file (:func:`~flavor_ml.data.fetch.source_fingerprint`) and the archive member."""
    return source_fingerprint(partition.source, params, s3=s3) | (
        {"member": partition.member} if partition.member else {}
    )


def _single(source: str, name: str | None = None) -> PartitionSource:
    return PartitionSource(name=name or file_name(source), source=source)


def _check_unique(corpus: str, parts: list[PartitionSource]) -> None:
    seen: dict[str, str] = {}
    for part in parts:
        if part.name in seen and seen[part.name] != part.source:
            raise FetchError(
                f"{corpus}: two partitions are both named {part.name!r} ({seen[part.name]} and "
                f"{part.source}); give them different file names"
            )
        seen[part.name] = part.source


# --------------------------------------------------------------------------- local


def _local_partitions(corpus: str) -> list[PartitionSource]:
    try:
        path = local_path_of(corpus)
    except ValueError as error:
        raise FetchError(f"{corpus}: {error}") from error
    if _GLOB_CHARS & set(str(path)) and not path.exists():
        return _glob_partitions(corpus, path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        return [part for file in files for part in _file_partitions(file, file.relative_to(path).as_posix())]
    if not path.exists():
        raise FetchError(f"{corpus}: no such file or directory")
    if _is_manifest(path):
        return _manifest_partitions(corpus, _read_text(corpus, path), base=path.parent)
    return _file_partitions(path, path.name, source=corpus)


def _glob_partitions(corpus: str, pattern: Path) -> list[PartitionSource]:
    base = Path(*[part for part in _until_magic(pattern.parts)]) if pattern.parts else Path(".")
    files = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file())
    if not files:
        raise FetchError(f"{corpus}: the pattern matches no file")
    return [part for file in files for part in _file_partitions(file, _relative_name(file, base))]


def _until_magic(parts: tuple[str, ...]) -> list[str]:
    fixed: list[str] = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return fixed or ["."]


def _relative_name(file: Path, base: Path) -> str:
    try:
        return file.relative_to(base).as_posix()
    except ValueError:
        return file.name


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def _file_partitions(path: Path, name: str, source: str | None = None) -> list[PartitionSource]:
    """One partition for a file, one per member for a zip archive."""
    source = source or str(path)
    if compression_of(path.name, path) == "zip":
        return [
            PartitionSource(name=f"{name}/{member}", source=source, member=member)
            for member in zip_members(path, source)
        ]
    return [PartitionSource(name=name, source=source)]


# --------------------------------------------------------------------------- manifests


def _is_manifest_name(source: str) -> bool:
    return PurePosixPath(file_name(source)).suffix.lower() in MANIFEST_SUFFIXES


def _is_manifest(path: Path) -> bool:
    """A ``.manifest``/``.urls`` file, or a small ``.txt`` file whose every line is a URL."""
    if _is_manifest_name(path.name):
        return True
    if path.suffix.lower() != ".txt" or path.stat().st_size > 1 << 20:
        return False
    lines = _entries(path.read_text(encoding="utf-8", errors="replace"))
    return bool(lines) and all(line.lower().startswith(_SCHEMES) for line in lines)


def _entries(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _read_text(corpus: str, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FetchError(f"{corpus}: cannot read the manifest: {error}") from error


def _http_text(url: str) -> str:
    try:
        response = httpx.get(url, follow_redirects=True, timeout=30)
    except httpx.HTTPError as error:
        raise FetchError(f"GET {url} failed: {error}") from error
    if response.status_code >= 400:
        raise FetchError(f"GET {url} answered {response.status_code} {response.reason_phrase}")
    return response.text


def _manifest_partitions(corpus: str, text: str, base: Path | None = None) -> list[PartitionSource]:
    """One partition per line; relative paths are relative to the manifest's folder."""
    parts: list[PartitionSource] = []
    for number, entry in enumerate(_entries(text), 1):
        if entry.lower().startswith(_SCHEMES):
            source = entry
        elif base is not None:
            source = str((base / entry).resolve())
        else:
            raise FetchError(
                f"{corpus}: line {number} ({entry!r}) is not a URL; a manifest fetched over http must list full URLs"
            )
        if "://" not in source or source.startswith("file://"):
            local = local_path_of(source)
            if not local.is_file():
                raise FetchError(f"{corpus}: line {number} names {entry}, which is not a file")
            parts.extend(_file_partitions(local, file_name(entry), source=source))
        else:
            parts.append(_single(source))
    return parts


# --------------------------------------------------------------------------- s3


def _s3_partitions(corpus: str, s3: S3Client) -> list[PartitionSource]:
    """An object is a single partition; a prefix (``…/`` or no object of that name) lists everything under it."""
    without = corpus[len("s3://") :]
    bucket, _, key = without.partition("/")
    if not bucket:
        raise FetchError(f"{corpus}: not an s3://bucket/prefix URI")
    if key and not key.endswith("/") and _s3_object_exists(corpus, s3, bucket, key):
        return [_single(corpus)]
    prefix = key if not key or key.endswith("/") else key + "/"
    parts: list[PartitionSource] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(prefix) :]
                if relative and not obj["Key"].endswith("/") and not _hidden(Path(relative)):
                    parts.append(_single(f"s3://{bucket}/{obj['Key']}", name=relative))
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise FetchError(
            f"{corpus}: listing the prefix answered {status} {error.response.get('Error', {}).get('Code', '')}".rstrip()
        ) from error
    except BotoCoreError as error:
        raise FetchError(f"{corpus}: listing the prefix failed: {error}") from error
    if not parts:
        raise FetchError(f"{corpus}: no objects under this prefix")
    return parts


def _s3_object_exists(corpus: str, s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise FetchError(
            f"HEAD {corpus} answered {error.response.get('ResponseMetadata', {}).get('HTTPStatusCode')}"
        ) from error
    except BotoCoreError as error:
        raise FetchError(f"HEAD {corpus} failed: {error}") from error
    return True
