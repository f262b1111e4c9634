"""Compressed corpus files: recognise ``.gz``, ``.bz2``, ``.xz`` and ``.zip`` and read them as streams.

A partition is stored as it was fetched (its sha256 is that of the bytes the user gave); it is
decompressed only when it is read, a chunk at a time, so that memory stays bounded by what
the reader keeps, not by the file. Members of a zip archive are partitions of their own
(``train.json.zip/train.json``). ``.zst`` is not supported: neither the standard library nor
polars reads a zstd stream, so such a file is refused with a message that says so.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Literal, Protocol, Self
from urllib.parse import urlsplit

from flavor_ml.errors import CorpusFormatError

Compression = Literal["gz", "bz2", "xz", "zip"]

_BY_SUFFIX: dict[str, Compression] = {".gz": "gz", ".gzip": "gz", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b", "gz"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
)
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20


class ByteStream(Protocol):
    """What reading a partition needs of a decompressed stream: bytes a chunk at a time, closed by ``with``.

    (``gzip.GzipFile`` and a zip member that also closes its archive are streams of bytes but not ``IO[bytes]``.)
    """

    def read(self, size: int = -1, /) -> bytes: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None, /
    ) -> None: ...


def file_name(source: str) -> str:
    """The last part of a path, ``file://`` or ``s3://`` URI or URL (no query string)."""
    path = urlsplit(source).path if "://" in source else source
    return PurePosixPath(path.replace("\\", "/")).name


def compression_of(name: str, path: Path | None = None) -> Compression | None:
    """How ``name`` is compressed, from its extension, else from the magic bytes of ``path``."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in (".zst", ".zstd"):
        raise CorpusFormatError(f"{name} is zstd-compressed, which flavor-ml does not read; use .gz, .bz2 or .xz")
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    if path is None:
        return None
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(_ZSTD_MAGIC):
        raise CorpusFormatError(f"{name} is zstd-compressed, which flavor-ml does not read; use .gz, .bz2 or .xz")
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def inner_name(name: str) -> str:
    """The name without its compression extension: ``recipes-07.jsonl.gz`` → ``recipes-07.jsonl``."""
    path = PurePosixPath(name)
    return path.stem if path.suffix.lower() in _BY_SUFFIX else path.name


def zip_members(path: Path, label: str) -> list[str]:
    """The data members of a zip archive, in archive order (no folders, no ``__MACOSX`` or hidden files)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as error:
        raise CorpusFormatError(f"{label} is not a readable zip archive: {error}") from error
    members = [n for n in names if not n.startswith("__MACOSX/") and not PurePosixPath(n).name.startswith(".")]
    if not members:
        raise CorpusFormatError(f"{label} is a zip archive with no files in it")
    return members


def open_decompressed(path: Path, compression: Compression | None, member: str | None, label: str) -> ByteStream:
    """A binary stream of the decompressed content (of ``member`` for a zip archive)."""
    if compression is None:
        return open(path, "rb")
    if compression == "gz":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    members = zip_members(path, label)
    if member is None:
        if len(members) > 1:
            raise CorpusFormatError(f"{label} holds {len(members)} files; name one (they are partitions of their own)")
        member = members[0]
    if member not in members:
        raise CorpusFormatError(f"{label} has no member {member!r} (it holds {', '.join(members[:10])})")
    archive = zipfile.ZipFile(path)
    try:
        return _ClosingMember(archive.open(member), archive)
    except Exception:
        archive.close()
        raise


def decompress_to(
    path: Path, compression: Compression | None, member: str | None, target: Path, label: str, limit: int | None = None
) -> int:
    """Write the decompressed content (at most ``limit`` bytes) to ``target``; the bytes written."""
    written = 0
    try:
        with open_decompressed(path, compression, member, label) as source, open(target, "wb") as out:
            if limit is None:
                shutil.copyfileobj(source, out, _CHUNK)
                return out.tell()
            while written < limit and (chunk := source.read(min(_CHUNK, limit - written))):
                out.write(chunk)
                written += len(chunk)
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, ValueError) as error:
        kind = {"gz": "gzip", "bz2": "bzip2", "xz": "xz", "zip": "zip"}.get(compression or "", "")
        raise CorpusFormatError(f"{label} cannot be decompressed ({kind}): {error}") from error
    return written


class _ClosingMember:
    """A zip member's stream that also closes its archive."""

    def __init__(self, stream: IO[bytes], archive: zipfile.ZipFile) -> None:
        self._stream, self._archive = stream, archive

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def close(self) -> None:
        self._stream.close()
        self._archive.close()

    def __enter__(self) -> _ClosingMember:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
