"""A file is hashed once per version: later runs take its sha256 from the table under home, and
any change to the file (a rewrite, a replacement, a truncation) is hashed again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flavor_ml import file_hashes
from flavor_ml.file_hashes import remembered_sha256
from flavor_ml.storage import sha256_file


@pytest.fixture
def hashed(monkeypatch) -> list[Path]:
    """The files actually read to hash them, in order."""
    read: list[Path] = []

    def counting(path: Path) -> str:
        read.append(path)
        return sha256_file(path)

    monkeypatch.setattr(file_hashes, "sha256_file", counting)
    return read


@pytest.fixture
def settled_files(monkeypatch) -> None:
    """Files count as settled at once (by default one written in the last 2 s is always hashed)."""
    monkeypatch.setattr(file_hashes, "RACY_SECONDS", 0.0)


def test_an_unchanged_file_is_hashed_once(tmp_path, hashed, settled_files):
    corpus = tmp_path / "recipes.tsv"
    corpus.write_text("italian\tbasil\ttomato\n")
    assert remembered_sha256(corpus, tmp_path / "home") == sha256_file(corpus)
    assert remembered_sha256(corpus, tmp_path / "home") == sha256_file(corpus)
    assert hashed == [corpus]


def test_a_rewritten_file_is_hashed_again(tmp_path, hashed, settled_files):
    corpus = tmp_path / "recipes.tsv"
    corpus.write_text("italian\tbasil\ttomato\n")
    before = remembered_sha256(corpus, tmp_path / "home")
    stat = corpus.stat()
    corpus.write_text("italian\tbasil\tpotato\n")  # same size
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its modification time put back
    after = remembered_sha256(corpus, tmp_path / "home")
    assert after == sha256_file(corpus) != before
    assert len(hashed) == 2


def test_a_replaced_or_truncated_file_is_hashed_again(tmp_path, hashed, settled_files):
    corpus = tmp_path / "recipes.tsv"
    corpus.write_text("italian\tbasil\ttomato\n")
    remembered_sha256(corpus, tmp_path / "home")
    replacement = tmp_path / "new.tsv"
    replacement.write_text("mexican\tlime\tchili\n")
    os.replace(replacement, corpus)
    assert remembered_sha256(corpus, tmp_path / "home") == sha256_file(corpus)
    with open(corpus, "r+") as handle:
        handle.truncate(8)
    assert remembered_sha256(corpus, tmp_path / "home") == sha256_file(corpus)
    assert len(hashed) == 3


def test_a_file_written_in_the_last_seconds_is_hashed_every_time(tmp_path, hashed):
    """A write in the same clock tick as the hash could leave its times as they were."""
    corpus = tmp_path / "recipes.tsv"
    corpus.write_text("italian\tbasil\ttomato\n")
    remembered_sha256(corpus, tmp_path / "home")
    remembered_sha256(corpus, tmp_path / "home")
    assert hashed == [corpus, corpus]


def test_without_a_usable_home_the_file_is_simply_hashed(tmp_path, settled_files):
    corpus = tmp_path / "recipes.tsv"
    corpus.write_text("italian\tbasil\ttomato\n")
    not_a_folder = tmp_path / "home"
    not_a_folder.write_text("a file where the home folder should be")
    assert remembered_sha256(corpus, not_a_folder) == sha256_file(corpus)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.tsv"):
        remembered_sha256(tmp_path / "gone.tsv", tmp_path / "home")
