"""A corpus is a set of partitions: how they are found, read (compressed or not), named in errors and merged."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from flavor_ml import pipeline
from flavor_ml.data.basket_stream import split_baskets, training_corpus
from flavor_ml.data.partitions import list_partitions
from flavor_ml.errors import CorpusFormatError, FetchError, NormalizationError
from flavor_ml.settings import (
    EvaluationParams,
    FetchParams,
    NormalizationParams,
    StorageSettings,
)
from tests.support.s3_server import S3Endpoint, moto_endpoint_url, s3_server  # noqa: F401  (fixtures)


def recipes(prefix: str, n: int = 6) -> str:
    return "".join(
        json.dumps(
            {
                "id": f"{prefix}{i}",
                "title": f"{prefix} dish {i}",
                "ingredients": ["2 cloves garlic, minced", "1 onion, chopped", f"{i + 1} cups flour"],
            }
        )
        + "\n"
        for i in range(n)
    )


def names(parts) -> list[str]:
    return [part.name for part in parts]


@pytest.fixture
def storage(tmp_path: Path) -> StorageSettings:
    return StorageSettings(home=tmp_path / "home")


def normalize_corpus(corpus: str, storage: StorageSettings) -> pipeline.NormalizedCorpus:
    parts = pipeline.list_corpus(corpus, storage)
    raws = [pipeline.fetch_partition(part, FetchParams(), storage) for part in parts]
    return pipeline.merge(corpus, [pipeline.normalize(raw, NormalizationParams(), storage) for raw in raws], storage)


# --------------------------------------------------------------------------- finding partitions


def test_a_single_file_is_one_partition_named_after_it(tmp_path: Path) -> None:
    path = tmp_path / "recipes.jsonl"
    path.write_text(recipes("a"))

    [part] = list_partitions(str(path))

    assert (part.name, part.source, part.member) == ("recipes.jsonl", str(path), None)


def test_a_directory_is_every_file_under_it_named_by_relative_path_hidden_files_skipped(tmp_path: Path) -> None:
    (tmp_path / "2024").mkdir()
    (tmp_path / "b.jsonl").write_text(recipes("b"))
    (tmp_path / "2024" / "a.jsonl.gz").write_bytes(gzip.compress(recipes("a").encode()))
    (tmp_path / ".DS_Store").write_text("junk")
    (tmp_path / "_SUCCESS").write_text("")

    assert names(list_partitions(str(tmp_path))) == ["2024/a.jsonl.gz", "b.jsonl"]


def test_a_glob_lists_the_files_it_matches(tmp_path: Path) -> None:
    for name in ("recipes-01.jsonl.gz", "recipes-02.jsonl.gz", "notes.txt"):
        (tmp_path / name).write_bytes(gzip.compress(recipes("x").encode()))

    assert names(list_partitions(str(tmp_path / "recipes-*.jsonl.gz"))) == [
        "recipes-01.jsonl.gz",
        "recipes-02.jsonl.gz",
    ]
    with pytest.raises(FetchError, match=r"recipes-\*\.csv: the pattern matches no file"):
        list_partitions(str(tmp_path / "recipes-*.csv"))


def test_every_member_of_a_zip_archive_is_a_partition(tmp_path: Path) -> None:
    archive = tmp_path / "train.json.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("train.jsonl", recipes("t"))
        zipped.writestr("extra/more.jsonl", recipes("m"))
        zipped.writestr("__MACOSX/._train.jsonl", "resource fork")

    parts = list_partitions(str(archive))

    assert names(parts) == ["train.json.zip/extra/more.jsonl", "train.json.zip/train.jsonl"]
    assert {part.member for part in parts} == {"train.jsonl", "extra/more.jsonl"}


def test_a_manifest_lists_sources_one_per_line_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "one.jsonl").write_text(recipes("o"))
    (tmp_path / "two.jsonl").write_text(recipes("t"))
    manifest = tmp_path / "corpus.manifest"
    manifest.write_text(f"# our sources\ndata/one.jsonl\n\n{(tmp_path / 'two.jsonl').as_uri()}\n")

    assert names(list_partitions(str(manifest))) == ["one.jsonl", "two.jsonl"]
    manifest.write_text("data/one.jsonl\ndata/missing.jsonl\n")
    with pytest.raises(FetchError, match=r"corpus.manifest: line 2 names data/missing.jsonl, which is not a file"):
        list_partitions(str(manifest))


def test_a_missing_corpus_and_an_empty_directory_are_reported_by_what_the_user_gave(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"nowhere: no such file or directory"):
        list_partitions(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FetchError, match=r"empty: no files to read"):
        list_partitions(str(tmp_path / "empty"))


def test_an_s3_prefix_is_every_object_under_it(s3_server: S3Endpoint, tmp_path: Path) -> None:
    client = s3_server.client()
    for key in ("corpora/week-1.jsonl", "corpora/week-2.jsonl.gz", "other/x.jsonl"):
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=recipes("s").encode())
    storage = s3_server.settings(tmp_path / "home")

    for corpus in (f"s3://{s3_server.bucket}/corpora/", f"s3://{s3_server.bucket}/corpora"):
        assert names(pipeline.list_corpus(corpus, storage)) == ["week-1.jsonl", "week-2.jsonl.gz"]
    assert names(pipeline.list_corpus(f"s3://{s3_server.bucket}/corpora/week-1.jsonl", storage)) == ["week-1.jsonl"]
    with pytest.raises(FetchError, match=r"/nothing/: no objects under this prefix"):
        pipeline.list_corpus(f"s3://{s3_server.bucket}/nothing/", storage)


# --------------------------------------------------------------------------- reading them


@pytest.mark.parametrize(
    "suffix, compress",
    [
        (".gz", gzip.compress),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
    ],
)
def test_compressed_partitions_are_read_transparently(
    tmp_path: Path, storage: StorageSettings, suffix, compress
) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / f"a.jsonl{suffix}").write_bytes(compress(recipes("a").encode()))
    (tmp_path / "corpus" / "b.jsonl").write_text(recipes("b"))

    merged = normalize_corpus(str(tmp_path / "corpus"), storage)

    assert [(p.name, p.rows) for p in merged.partitions] == [(f"a.jsonl{suffix}", 6), ("b.jsonl", 6)]
    assert merged.counts.recipes_out == 12


def test_a_zipped_json_file_trains_like_the_file_itself(tmp_path: Path, storage: StorageSettings) -> None:
    document = json.dumps([json.loads(line) for line in recipes("k").splitlines()])
    with zipfile.ZipFile(tmp_path / "train.json.zip", "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("train.json", document)
    (tmp_path / "train.json").write_text(document)

    zipped_corpus = normalize_corpus(str(tmp_path / "train.json.zip"), storage)
    plain = normalize_corpus(str(tmp_path / "train.json"), storage)

    assert zipped_corpus.partitions[0].name == "train.json.zip/train.json"
    assert (
        pl.read_parquet(zipped_corpus.uri.removeprefix("file://"))["ingredients"].to_list()
        == pl.read_parquet(plain.uri.removeprefix("file://"))["ingredients"].to_list()
    )


def test_a_format_error_names_the_file_the_user_gave_and_the_line_not_the_snapshot(
    tmp_path: Path, storage: StorageSettings
) -> None:
    bad = tmp_path / "recipes.tsv"
    bad.write_text("just words\nno tabs at all\n")
    raw = pipeline.fetch_partition(pipeline.list_corpus(str(bad), storage)[0], FetchParams(), storage)

    with pytest.raises(CorpusFormatError) as error:
        pipeline.normalize(raw, NormalizationParams(), storage)

    message = str(error.value)
    assert message.startswith(f"{bad} is not tab-separated baskets: no line has a tab (line 1: 'just words')")
    assert "snapshots/" in message.split("(read from", 1)[1]  # the snapshot only as a detail at the end


def test_an_error_in_one_partition_names_the_partition_and_its_source(tmp_path: Path, storage: StorageSettings) -> None:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "good.jsonl").write_text(recipes("g"))
    broken = tmp_path / "corpus" / "day-2.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"ingredients": ["1 egg", "2 cups flour"]}\n' + b"{not json\n" * 9))
    parts = pipeline.list_corpus(str(tmp_path / "corpus"), storage)
    raw = pipeline.fetch_partition(parts[0], FetchParams(), storage)

    with pytest.raises(NormalizationError, match=rf"9 of 10 recipes \(90%\) in {broken} were rejected"):
        pipeline.normalize(raw, NormalizationParams(), storage)


def test_a_truncated_gzip_partition_is_reported_as_such(tmp_path: Path, storage: StorageSettings) -> None:
    path = tmp_path / "cut.jsonl.gz"
    data = gzip.compress(recipes("c", 200).encode())
    path.write_bytes(data[: len(data) // 2])
    raw = pipeline.fetch_partition(pipeline.list_corpus(str(path), storage)[0], FetchParams(format="jsonl"), storage)

    with pytest.raises(CorpusFormatError, match=rf"{path} cannot be decompressed \(gzip\)"):
        pipeline.normalize(raw, NormalizationParams(), storage)


def test_zstd_is_refused_with_a_message_that_says_what_to_use(tmp_path: Path) -> None:
    path = tmp_path / "recipes.jsonl.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)
    with pytest.raises(CorpusFormatError, match=r"recipes.jsonl.zst is zstd-compressed.*use .gz, .bz2 or .xz"):
        pipeline.fetch_partition(list_partitions(str(path))[0], FetchParams(), StorageSettings(home=tmp_path / "h"))


# --------------------------------------------------------------------------- merging them


def test_a_recipe_in_two_partitions_is_kept_once_and_the_copy_is_kept_aside(
    tmp_path: Path, storage: StorageSettings
) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.jsonl").write_text(recipes("r", 4))
    (tmp_path / "c" / "b.jsonl").write_text(recipes("r", 6))  # r0..r3 again, plus r4, r5
    (tmp_path / "c" / "c.jsonl").write_text(recipes("r", 4).replace('"r dish 2"', '"another dish"'))

    merged = normalize_corpus(str(tmp_path / "c"), storage)

    assert [(p.name, p.rows, p.duplicates) for p in merged.partitions] == [
        ("a.jsonl", 4, 0),
        ("b.jsonl", 2, 4),
        ("c.jsonl", 1, 3),
    ]
    assert merged.counts.rejects == {"duplicate": 7}
    rejects = pl.read_parquet(merged.rejects_uri.removeprefix("file://"))
    assert rejects.filter(pl.col("partition") == "c.jsonl")["detail"].to_list() == [
        "the same recipe as r0 in partition a.jsonl",
        "the same recipe as r1 in partition a.jsonl",
        "the same recipe as r3 in partition a.jsonl",
    ]


def test_copies_inside_one_partition_are_left_alone(tmp_path: Path, storage: StorageSettings) -> None:
    path = tmp_path / "twice.jsonl"
    path.write_text(recipes("r", 3) + recipes("r", 3))

    assert normalize_corpus(str(path), storage).counts.recipes_out == 6


def test_each_partition_records_its_name_source_sha256_and_rows(tmp_path: Path, storage: StorageSettings) -> None:
    import hashlib

    path = tmp_path / "one.jsonl"
    path.write_text(recipes("o"))

    [record] = normalize_corpus(str(path), storage).partitions

    assert record.model_dump() == {
        "name": "one.jsonl",
        "source": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "rows": 6,
        "recipes_in": 6,
        "rejected": 0,
        "duplicates": 0,
    }


# --------------------------------------------------------------------------- streaming them


def write_baskets(path: Path, baskets: list[list[str]]) -> Path:
    pl.DataFrame({"ingredients": baskets}, schema={"ingredients": pl.List(pl.String)}).write_parquet(path)
    return path


def test_the_split_is_the_in_memory_split_made_a_slice_at_a_time(tmp_path: Path) -> None:
    from flavor_ml.data.split import holdout_mask

    baskets = [[f"i{i % 17}", f"i{i % 5}", f"j{i % 11}"] for i in range(1000)]
    params = EvaluationParams(holdout_fraction=0.2)

    sides = split_baskets(write_baskets(tmp_path / "b.parquet", baskets), params, tmp_path / "work", chunk_rows=64)

    mask = holdout_mask(baskets, params)
    assert list(sides.train) == [b for b, held in zip(baskets, mask) if not held]
    assert list(sides.held_out) == [b for b, held in zip(baskets, mask) if held]
    assert len(sides.train) + len(sides.held_out) == 1000 and len(sides.train.chunks) == 16


def test_the_training_stream_reshuffles_every_pass_reproducibly_and_drops_what_cannot_train(tmp_path: Path) -> None:
    baskets = [[f"a{i % 50}", f"b{i % 3}", f"once{i}"] for i in range(300)] + [["lonely"], ["rare", "b0"]]
    sides = split_baskets(
        write_baskets(tmp_path / "b.parquet", baskets),
        EvaluationParams(holdout_fraction=0.01),
        tmp_path / "work",
        chunk_rows=32,
    )

    corpus = training_corpus(sides.train, min_count=2, seed=5)
    first, second = list(corpus.baskets), list(corpus.baskets)

    assert first != second and sorted(first) == sorted(second)  # a new order on each pass, the same baskets
    assert all(len(b) == 2 and all(corpus.counts[n] >= 2 for n in b) for b in first)  # once<i> and rare dropped
    assert len(first) == len(corpus.baskets) == len([b for b in sides.train if len(b) == 3])  # lonely too
    assert "once7" not in corpus.counts and corpus.longest == 2 and corpus.total_words == 2 * len(first)
    again = training_corpus(sides.train, min_count=1, seed=5)
    assert list(again.baskets) == list(training_corpus(sides.train, min_count=1, seed=5).baskets)
    assert len(list(again.baskets)) == len(again.baskets) == len([b for b in sides.train if len(b) >= 2])


def test_counting_training_and_co_occurrence_hold_a_window_of_baskets_not_the_corpus(tmp_path: Path) -> None:
    """tracemalloc counts Python's allocations exactly (no timing, no RSS): the baskets as lists are what
    grows with the corpus, so the streamed steps must peak well below the corpus held as a list."""
    import tracemalloc

    from flavor_ml.data.basket_stream import BasketChunks
    from flavor_ml.eval.cooccurrence import basket_gram

    baskets = [[f"n{(i * 7 + j * 13) % 500}" for j in range(8)] for i in range(40_000)]
    sides = split_baskets(
        write_baskets(tmp_path / "b.parquet", baskets), EvaluationParams(), tmp_path / "work", chunk_rows=500
    )
    del baskets
    train = BasketChunks(sides.train.chunks, len(sides.train), window_chunks=2)  # 1,000 baskets shuffled at once

    def peak(step: Callable[[], object]) -> int:
        tracemalloc.start()
        try:
            step()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole = peak(lambda: list(train))

    def streamed() -> None:
        corpus = training_corpus(train, min_count=2, seed=3)
        assert sum(1 for _ in corpus.baskets) == len(corpus.baskets) > 30_000  # one training pass
        index = {name: i for i, name in enumerate(sorted(corpus.counts))}
        assert basket_gram(corpus.baskets, index, batch=1_000).baskets == len(corpus.baskets)

    assert peak(streamed) < whole / 4  # measured: about a tenth


def test_partitions_whose_fetch_ran_are_normalized_first_and_their_results_come_back_in_corpus_order():
    """A new or changed partition must not wait behind the cache lookups of all the others."""
    from types import SimpleNamespace

    from flows.partitioned import in_given_order, ran_first

    fetched = [
        SimpleNamespace(state=SimpleNamespace(name=name)) for name in ("Cached", "Completed", "Cached", "Completed")
    ]
    order = ran_first(fetched)  # type: ignore[arg-type]
    assert order == [1, 3, 0, 2]  # those that ran first, each group in corpus order
    normalized_in_that_order = ["day-1", "day-3", "day-0", "day-2"]
    assert in_given_order(normalized_in_that_order, order) == ["day-0", "day-1", "day-2", "day-3"]
