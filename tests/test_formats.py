"""Corpus formats: every format reads into the same table; bad rows are kept with a reason;
files that cannot be read at all say why, naming the file, the row and the field."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest

from flavor_ml.data.formats import RECIPE_SCHEMA, detect_format, read_recipes
from flavor_ml.errors import CorpusFormatError

RECIPES = [
    {
        "id": "r1",
        "title": "Guacamole",
        "cuisine": "mexican",
        "ingredients": ["2 ripe avocados, mashed", "1 lime, juiced", "1/4 cup chopped fresh cilantro"],
    },
    {
        "id": "r2",
        "title": "Pesto",
        "cuisine": "italian",
        "ingredients": ["2 cups fresh basil leaves", "1/2 cup grated parmesan", "1 clove garlic"],
    },
    {
        "id": "r3",
        "title": "Miso soup",
        "cuisine": "japanese",
        "ingredients": ["4 cups dashi", "3 tbsp white miso paste", "1 (14 oz) package silken tofu, cubed"],
    },
]
LINES = [r["ingredients"] for r in RECIPES]


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, recipes: list[dict]) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in recipes))


def _csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


# --------------------------------------------------------------------------- every format


def test_json_lines_read_into_the_recipe_table(tmp_path: Path) -> None:
    frame = read_recipes(_jsonl(tmp_path / "r.jsonl", RECIPES), "jsonl")

    assert frame.schema == pl.Schema(RECIPE_SCHEMA)
    assert frame.rows() == [
        (1, "r1", "Guacamole", "mexican", LINES[0], None),
        (2, "r2", "Pesto", "italian", LINES[1], None),
        (3, "r3", "Miso soup", "japanese", LINES[2], None),
    ]


def test_a_json_array_of_recipes_reads_like_json_lines(tmp_path: Path) -> None:
    frame = read_recipes(_write(tmp_path / "r.json", json.dumps(RECIPES, indent=2)), "json")

    assert frame["recipe_id"].to_list() == ["r1", "r2", "r3"]
    assert frame["lines"].to_list() == LINES
    assert frame["row"].to_list() == [1, 2, 3]


def test_a_json_object_keyed_by_recipe_id_uses_the_keys_as_ids(tmp_path: Path) -> None:
    keyed = {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in RECIPES}
    frame = read_recipes(_write(tmp_path / "r.json", json.dumps(keyed)), "json")

    assert frame.select("recipe_id", "title", "cuisine").rows() == [
        ("r1", "Guacamole", "mexican"),
        ("r2", "Pesto", "italian"),
        ("r3", "Miso soup", "japanese"),
    ]
    assert frame["lines"].to_list() == LINES


def test_tab_separated_baskets_have_a_cuisine_then_ingredients(tmp_path: Path) -> None:
    text = "# flavor-network style\nCanada\tegg\tyeast\twheat\n\nItaly\tbasil\t olive_oil \t\tgarlic\r\nJapan\n"
    frame = read_recipes(_write(tmp_path / "r.tsv", text), "tsv")

    assert frame.rows() == [
        (2, "row-2", None, "Canada", ["egg", "yeast", "wheat"], None),
        (4, "row-4", None, "Italy", ["basil", "olive_oil", "garlic"], None),
        (5, "row-5", None, "Japan", [], None),
    ], "comments and blank lines are skipped, rows are line numbers, a basket may be empty"


@pytest.mark.parametrize("style", ["json list", "newlines", "pipes"])
def test_csv_ingredients_may_be_a_json_list_or_separated_lines(tmp_path: Path, style: str) -> None:
    def cell(lines: list[str]) -> str:
        return {"json list": json.dumps(lines), "newlines": "\n".join(lines), "pipes": " | ".join(lines)}[style]

    rows = [["id", "title", "cuisine", "ingredients"]] + [
        [r["id"], r["title"], r["cuisine"], cell(r["ingredients"])] for r in RECIPES
    ]
    frame = read_recipes(_csv(tmp_path / "r.csv", rows), "csv")

    assert frame["recipe_id"].to_list() == ["r1", "r2", "r3"]
    assert frame["cuisine"].to_list() == ["mexican", "italian", "japanese"]
    assert frame["lines"].to_list() == LINES
    assert frame["error"].null_count() == 3


def test_csv_rows_are_the_line_a_record_starts_on(tmp_path: Path) -> None:
    rows = [["ingredients", "Title"], ["a\nb", "first"], ["c", "second"]]
    frame = read_recipes(_csv(tmp_path / "r.csv", rows), "csv")

    assert frame.select("row", "recipe_id", "title", "lines").rows() == [
        (2, "row-2", "first", ["a", "b"]),
        (4, "row-4", "second", ["c"]),
    ], "a header in any case is recognised; ids default to row-<line>"


def test_parquet_reads_the_same_columns(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pl.DataFrame(
        {
            "id": [1, 2, None],
            "title": ["Guacamole", "Pesto", "Miso soup"],
            "ingredients": [LINES[0], LINES[1], LINES[2]],
        }
    ).write_parquet(path)
    frame = read_recipes(path, "parquet")

    assert frame.schema == pl.Schema(RECIPE_SCHEMA)
    assert frame.select("row", "recipe_id", "title", "cuisine").rows() == [
        (1, "1", "Guacamole", None),
        (2, "2", "Pesto", None),
        (3, "row-3", "Miso soup", None),
    ]
    assert frame["lines"].to_list() == LINES


def test_parquet_rows_without_a_list_of_strings_are_rejects(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pl.DataFrame(
        {"ingredients": [["salt", " pepper "], None, ["oil", None]]}, schema={"ingredients": pl.List(pl.String)}
    ).write_parquet(path)
    frame = read_recipes(path, "parquet")

    assert frame.select("lines", "error").rows() == [
        (["salt", "pepper"], None),
        (None, "field 'ingredients' is missing"),
        (None, "field 'ingredients' is not a list of strings (it holds a null)"),
    ]


def test_the_same_recipes_read_alike_in_every_format(tmp_path: Path) -> None:
    _jsonl(tmp_path / "a.jsonl", RECIPES)
    _write(tmp_path / "a.json", json.dumps(RECIPES))
    _csv(
        tmp_path / "a.csv",
        [["id", "title", "cuisine", "ingredients"]]
        + [[r["id"], r["title"], r["cuisine"], json.dumps(r["ingredients"])] for r in RECIPES],
    )
    pl.DataFrame(RECIPES).write_parquet(tmp_path / "a.parquet")

    frames = {fmt: read_recipes(tmp_path / f"a.{fmt}", fmt).drop("row") for fmt in ("jsonl", "json", "csv", "parquet")}
    for fmt, frame in frames.items():
        assert frame.equals(frames["jsonl"]), fmt


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("recipes.tsv", "tsv"),
        ("recipes.JSONL", "jsonl"),
        ("r.ndjson", "jsonl"),
        ("r.json", "json"),
        ("r.csv", "csv"),
        ("r.parquet", "parquet"),
        ("https://example.org/data/recipes.jsonl?token=abc", "jsonl"),
        ("s3://bucket/corpora/r.csv", "csv"),
    ],
)
def test_the_format_comes_from_the_name_when_it_has_a_known_extension(tmp_path: Path, name: str, expected: str) -> None:
    path = _write(tmp_path / "download.part", "anything")
    assert detect_format(path, name_hint=name) == expected


def test_without_a_telling_name_the_format_is_sniffed_from_the_content(tmp_path: Path) -> None:
    _jsonl(tmp_path / "jsonl.txt", RECIPES)
    _write(tmp_path / "one-line.txt", json.dumps(RECIPES[0]))
    _write(tmp_path / "array.txt", json.dumps(RECIPES, indent=1))
    _write(tmp_path / "keyed.txt", json.dumps({"r1": RECIPES[0]}))
    _write(tmp_path / "pretty-keyed.txt", json.dumps({"r1": RECIPES[0]}, indent=2))
    _write(tmp_path / "baskets.txt", "# comment\nCanada\tegg\tmilk\n")
    _write(tmp_path / "table.txt", "id,Ingredients\n1,salt|pepper\n")
    pl.DataFrame(RECIPES).write_parquet(tmp_path / "table.bin")

    detected = {p.name: detect_format(p) for p in sorted(tmp_path.iterdir())}
    assert detected == {
        "array.txt": "json",
        "baskets.txt": "tsv",
        "jsonl.txt": "jsonl",
        "keyed.txt": "json",
        "one-line.txt": "jsonl",
        "pretty-keyed.txt": "json",
        "table.bin": "parquet",
        "table.txt": "csv",
    }


@pytest.mark.shared_data
def test_the_flavor_network_file_is_detected_and_read_as_baskets(shared_datasets: Path) -> None:
    path = shared_datasets / "flavor-network" / "allr_recipes.txt"
    assert detect_format(path) == "tsv"

    frame = read_recipes(path, "tsv")

    assert frame.height == 41_825
    assert frame["error"].null_count() == frame.height
    assert frame.row(0) == (1, "row-1", None, "Canada", ["egg", "yeast", "wheat", "milk", "lard"], None)


def test_45k_json_lines_recipes_are_read_whole_and_in_order(tmp_path: Path) -> None:
    # Reading speed is a benchmark's business (bench/), not a timed test's: this checks scale only.
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(45_000):
            recipe = RECIPES[i % 3]
            handle.write(json.dumps({**recipe, "id": f"r{i}"}) + "\n")

    frame = read_recipes(path, "jsonl")

    assert frame.height == 45_000
    assert frame["recipe_id"].head(3).to_list() == ["r0", "r1", "r2"] and frame["recipe_id"][-1] == "r44999"
    assert frame["error"].null_count() == frame.height


# --------------------------------------------------------------------------- bad rows


def test_bad_json_lines_are_kept_as_rejects_with_the_reason(tmp_path: Path) -> None:
    text = (
        "\n".join(
            [
                json.dumps(RECIPES[0]),
                '{"id": "broken", "ingredients": ["salt"',
                json.dumps({"id": "no-list", "ingredients": "salt, pepper"}),
                json.dumps({"id": "numbers", "ingredients": ["salt", 3]}),
                json.dumps({"id": "missing", "title": "Water"}),
                json.dumps(["not", "an", "object"]),
                json.dumps({"id": 7, "ingredients": []}),
            ]
        )
        + "\n"
    )
    frame = read_recipes(_write(tmp_path / "r.jsonl", text), "jsonl")

    assert frame.select("row", "recipe_id", "error").rows() == [
        (1, "r1", None),
        (2, "row-2", "not valid JSON: Expecting ',' delimiter at column 40"),
        (3, "no-list", "field 'ingredients' is not a list of strings (it is a string)"),
        (4, "numbers", "field 'ingredients' is not a list of strings (item 2 is a number)"),
        (5, "missing", "field 'ingredients' is missing"),
        (6, "row-6", "not a JSON object (it is a list)"),
        (7, "7", None),
    ]
    assert frame.filter(pl.col("error").is_not_null())["lines"].null_count() == 5
    assert frame.filter(pl.col("recipe_id") == "7")["lines"].to_list() == [[]]


def test_a_line_that_is_not_utf8_is_a_reject_that_says_where(tmp_path: Path) -> None:
    data = b"Canada\tegg\tmilk\nFrance\tcr\xe8me fra\xeeche\tbutter\nItaly\tbasil\n"
    frame = read_recipes(_write(tmp_path / "r.tsv", data), "tsv")

    assert frame.select("row", "cuisine", "error").rows() == [
        (1, "Canada", None),
        (2, None, "not UTF-8 at byte 10 of the line (0xe8)"),
        (3, "Italy", None),
    ]


def test_non_utf8_bytes_in_json_lines_and_csv_are_rejects_too(tmp_path: Path) -> None:
    jsonl = _write(tmp_path / "r.jsonl", b'{"ingredients": ["salt"]}\n{"ingredients": ["cr\xe8me"]}\n')
    assert read_recipes(jsonl, "jsonl")["error"].to_list() == [None, "not UTF-8 at byte 21 of the line (0xe8)"]

    table = _write(tmp_path / "r.csv", b"title,ingredients\nok,salt\nbad,cr\xe8me\n")
    assert read_recipes(table, "csv").select("row", "error").rows() == [
        (2, None),
        (3, "not UTF-8: field 'ingredients' holds the byte 0xe8"),
    ]


def test_csv_rows_with_the_wrong_number_of_fields_or_bad_lists_are_rejects(tmp_path: Path) -> None:
    text = 'id,ingredients\nr1,salt|pepper\nr2,salt,extra\nr3,"[""salt"", 2]"\nr4,"[""salt"""\n'
    frame = read_recipes(_write(tmp_path / "r.csv", text), "csv")

    assert frame.select("recipe_id", "lines", "error").rows() == [
        ("r1", ["salt", "pepper"], None),
        ("row-3", None, "has 3 fields where the header has 2"),
        ("r3", None, "field 'ingredients' is not a list of strings (item 2 is a number)"),
        ("r4", ['["salt"'], None),
    ], "a cell that does not end in ']' is not a JSON list: it is split as text"


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "json", "csv", "parquet"])
def test_an_empty_file_is_an_error_that_names_it(tmp_path: Path, fmt: str) -> None:
    path = _write(tmp_path / f"empty.{fmt}", b"")
    with pytest.raises(CorpusFormatError, match=r"empty\.\w+ is empty: expected .+ with at least one recipe"):
        read_recipes(path, fmt)
    with pytest.raises(CorpusFormatError, match="is empty"):
        detect_format(_write(tmp_path / "empty.txt", b""))


def test_a_file_of_only_comments_holds_no_recipes(tmp_path: Path) -> None:
    with pytest.raises(CorpusFormatError, match=r"r\.tsv holds no recipes"):
        read_recipes(_write(tmp_path / "r.tsv", "# nothing here\n\n"), "tsv")


def test_a_file_that_is_not_the_format_it_claims_says_so(tmp_path: Path) -> None:
    baskets = _write(tmp_path / "baskets.jsonl", "Canada\tegg\tmilk\nItaly\tbasil\n")
    with pytest.raises(
        CorpusFormatError,
        match=r"baskets\.jsonl is not JSON Lines: no line holds a JSON object "
        r"\(line 1: not valid JSON: Expecting value at column 1\)",
    ):
        read_recipes(baskets, "jsonl")

    recipes = _jsonl(tmp_path / "recipes.tsv", RECIPES)
    with pytest.raises(CorpusFormatError, match=r"recipes\.tsv is not tab-separated baskets: it looks like JSON"):
        read_recipes(recipes, "tsv")

    prose = _write(tmp_path / "prose.tsv", "just some words\nand more words\n")
    with pytest.raises(
        CorpusFormatError,
        match=r"prose\.tsv is not tab-separated baskets: no line has a tab "
        r"\(line 1: 'just some words'\)",
    ):
        read_recipes(prose, "tsv")

    with pytest.raises(CorpusFormatError, match=r"recipes\.tsv is not a readable Parquet file"):
        read_recipes(recipes, "parquet")

    pl.DataFrame(RECIPES).write_parquet(tmp_path / "table.csv")
    with pytest.raises(CorpusFormatError, match=r"table\.csv is not CSV: it looks like Parquet"):
        read_recipes(tmp_path / "table.csv", "csv")


def test_json_lines_named_json_get_a_hint(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "recipes.json", RECIPES)
    with pytest.raises(
        CorpusFormatError,
        match=r"recipes\.json is not valid JSON: Extra data at line 2 column 1; "
        r"it looks like JSON Lines",
    ):
        read_recipes(path, "json")


def test_a_json_document_that_does_not_parse_names_the_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", '[\n  {"ingredients": ["salt"]},\n  {"ingredients": ["oil"]\n]\n')
    with pytest.raises(
        CorpusFormatError, match=r"r\.json is not valid JSON: Expecting ',' delimiter at line 4 column 1"
    ):
        read_recipes(path, "json")


def test_a_json_document_that_is_not_utf8_names_the_byte_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.json", b'[\n{"ingredients": ["cr\xe8me"]}\n]')
    with pytest.raises(CorpusFormatError, match=r"r\.json is not UTF-8: byte 23 \(line 2\) is 0xe8"):
        read_recipes(path, "json")


def test_a_json_document_of_the_wrong_shape_says_what_it_found(tmp_path: Path) -> None:
    with pytest.raises(
        CorpusFormatError, match=r"expected a JSON array of recipes or an object keyed by recipe id, found a string"
    ):
        read_recipes(_write(tmp_path / "r.json", '"recipes"'), "json")


def test_no_ingredients_field_anywhere_is_an_error_not_a_file_of_rejects(tmp_path: Path) -> None:
    lines = _jsonl(tmp_path / "r.jsonl", [{"id": "1", "items": ["salt"]}, {"id": "2", "items": ["oil"]}])
    with pytest.raises(
        CorpusFormatError, match=r"r\.jsonl: no recipe has an 'ingredients' field \(looked at 2 JSON objects\)"
    ):
        read_recipes(lines, "jsonl")

    document = _write(tmp_path / "r.json", json.dumps([{"name": "soup"}]))
    with pytest.raises(CorpusFormatError, match=r"r\.json: no recipe has an 'ingredients' field"):
        read_recipes(document, "json")

    table = _csv(tmp_path / "r.csv", [["id", "title", "items"], ["1", "soup", "salt"]])
    with pytest.raises(
        CorpusFormatError, match=r"r\.csv has no 'ingredients' column: its header \(line 1\) is 'id,title,items'"
    ):
        read_recipes(table, "csv")

    pl.DataFrame({"id": ["1"], "items": [["salt"]]}).write_parquet(tmp_path / "r.parquet")
    with pytest.raises(CorpusFormatError, match=r"r\.parquet has no 'ingredients' column: its columns are id, items"):
        read_recipes(tmp_path / "r.parquet", "parquet")


def test_an_unrecognisable_file_asks_for_the_format(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.txt", "salt and pepper\nto taste\n")
    with pytest.raises(
        CorpusFormatError,
        match=r"cannot tell the format of .*notes\.txt from its name or content.*give the format explicitly",
    ):
        detect_format(path)


def test_an_unknown_format_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        CorpusFormatError, match=r"unknown corpus format 'xml': expected one of tsv, jsonl, json, csv, parquet"
    ):
        read_recipes(_jsonl(tmp_path / "r.jsonl", RECIPES), "xml")
