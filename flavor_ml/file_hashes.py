"""The sha256 of a local file, hashed once per version of the file.

Cache keys and the checks of cached results hash the same unchanged files on every run: a warm
run over a 40-partition corpus hashed 170 MB of sources and as much again of its own snapshots,
half a second of CPU for nothing. :func:`remembered_sha256` keeps each file's hash in a small
SQLite table under ``home`` beside what identifies that version of the file (device, inode,
size, modification and change times in nanoseconds), and hashes again when any of them differs:
the way git's index and DVC's state database avoid re-reading files.

A write changes the size or the times (the change time cannot be set back from user space), so
a replaced, truncated or edited file is hashed again. A file modified in the last two seconds is
not remembered (a write in the same clock tick as the hash could leave the times as they were:
git's "racy clean" files), and a file whose stat changed while it was hashed is not remembered.
When the table cannot be used (a read-only home, a locked database) the file is simply hashed.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from flavor_ml.storage import sha256_file

MEMO_FILE = "file-hashes.sqlite"
#: Files modified this recently are hashed every time (see the module's docstring).
RACY_SECONDS = 2.0

_SCHEMA = "CREATE TABLE IF NOT EXISTS file_hash (path TEXT PRIMARY KEY, version TEXT NOT NULL, sha256 TEXT NOT NULL)"


def remembered_sha256(path: Path, home: Path) -> str:
    """``sha256_file(path)``, from the table under ``home`` when this version of the file was hashed before."""
    path = Path(os.path.abspath(path))
    before = path.stat()  # FileNotFoundError naming the path when it is gone
    memo = _open(home)
    if memo is None:
        return sha256_file(path)
    try:
        row = _read(memo, path)
        if row is not None and row[0] == _version(before):
            return row[1]
        digest = sha256_file(path)
        after = path.stat()
        if _version(after) == _version(before) and not _racy(after):
            _write(memo, path, _version(after), digest)
        return digest
    finally:
        memo.close()


def _version(stat: os.stat_result) -> str:
    """What changes whenever the file's content can have changed."""
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"


def _racy(stat: os.stat_result) -> bool:
    return time.time() - max(stat.st_mtime, stat.st_ctime) < RACY_SECONDS


def _open(home: Path) -> sqlite3.Connection | None:
    try:
        home.mkdir(parents=True, exist_ok=True)
        memo = sqlite3.connect(home / MEMO_FILE, timeout=1.0, isolation_level=None)
        memo.execute(_SCHEMA)
        return memo
    except (OSError, sqlite3.Error):
        return None


def _read(memo: sqlite3.Connection, path: Path) -> tuple[str, str] | None:
    try:
        row = memo.execute("SELECT version, sha256 FROM file_hash WHERE path = ?", (str(path),)).fetchone()
    except sqlite3.Error:
        return None
    return (str(row[0]), str(row[1])) if row else None


def _write(memo: sqlite3.Connection, path: Path, version: str, digest: str) -> None:
    try:
        memo.execute("INSERT OR REPLACE INTO file_hash VALUES (?, ?, ?)", (str(path), version, digest))
    except sqlite3.Error:
        pass  # not remembered: the next run hashes the file again
