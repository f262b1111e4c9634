"""Corpus formats: recognise a recipe file and read it into one table of raw recipes.

Every format reads into the same columns (``RECIPE_SCHEMA``):

- ``row`` — where the recipe is in the file, 1-based: the line number for tab-separated,
  JSON Lines and CSV files (the line the record starts on; the CSV header is line 1), the
  position in the array or object for JSON, the row index for Parquet;
- ``recipe_id`` — the recipe's ``id`` as text, or ``row-<n>`` when it has none;
- ``title``, ``cuisine`` — text or null;
- ``lines`` — the raw ingredient lines, each stripped of surrounding spaces, blank ones
  dropped (an empty list is kept: deciding that a recipe is too small is normalization's job);
- ``error`` — null, or why the row could not be read (then ``lines`` is null).

The formats:

- ``tsv`` — tab-separated baskets: the cuisine, then one ingredient per column (the
  flavor-network files). Blank lines and lines starting with ``#`` are skipped.
- ``jsonl`` — one recipe object per line: ``{"id": …, "title": …, "cuisine": …,
  "ingredients": ["2 cloves garlic", …]}``; only ``ingredients`` is required.
- ``json`` — an array of such objects, an object keyed by recipe id
  (``{"r1": {"ingredients": […]}, …}``), or a single recipe object.
- ``csv`` — a header naming ``ingredients`` and optionally ``id``, ``title``, ``cuisine``
  (case-insensitive). An ``ingredients`` cell is either a JSON list of strings
  (``["1 onion", "2 eggs"]``) or lines separated by newlines (in a quoted cell) or, when
  the cell has no newline, by ``|``.
- ``parquet`` — the same columns; ``ingredients`` a list of strings (or text as in CSV).

A problem with one row (bad JSON on a line, bytes that are not UTF-8, ``ingredients`` not a
list of strings) goes into that row's ``error`` so the pipeline can count and keep it. A
problem with the whole file raises ``CorpusFormatError``: an empty file, a file that is
not in the format it was given or detected as, no ``ingredients`` anywhere, a JSON
document that does not parse.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import polars as pl

from flavor_ml.errors import CorpusFormatError

Format = Literal["tsv", "jsonl", "json", "csv", "parquet"]
FORMATS: tuple[Format, ...] = ("tsv", "jsonl", "json", "csv", "parquet")

FORMAT_NAMES: dict[str, str] = {
    "tsv": "tab-separated baskets",
    "jsonl": "JSON Lines",
    "json": "JSON",
    "csv": "CSV",
    "parquet": "Parquet",
}

#: The extension a snapshot of each format is stored with.
EXTENSIONS: dict[str, str] = {"tsv": ".tsv", "jsonl": ".jsonl", "json": ".json", "csv": ".csv", "parquet": ".parquet"}

_BY_SUFFIX: dict[str, Format] = {
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonlines": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

RECIPE_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(),
    "recipe_id": pl.String(),
    "title": pl.String(),
    "cuisine": pl.String(),
    "lines": pl.List(pl.String()),
    "error": pl.String(),
}

_SNIFF_BYTES = 64 * 1024

# One recipe as the readers produce it: (row, recipe_id, title, cuisine, lines, error).
_Record = tuple[int, str, str | None, str | None, list[str] | None, str | None]


# --------------------------------------------------------------------------- detection


def detect_format(path: Path, name_hint: str | None = None, label: str | None = None) -> Format:
    """The format of ``path``: from the extension of ``name_hint`` (a file name, path or
    URL; ``path``'s own name by default), else by looking at the first 64 KiB.

    ``.txt`` and unknown extensions are sniffed: Parquet's magic bytes, a JSON array or
    object, one JSON object per line, tab-separated lines, a CSV header naming
    ``ingredients``. Raises CorpusFormatError when the file is empty or unrecognisable,
    naming ``label`` (what the user gave) rather than ``path`` when given.
    """
    with _named(path, label):
        return _detect_format(Path(path), name_hint)


def _detect_format(path: Path, name_hint: str | None) -> Format:
    name = path.name
    if name_hint:
        name = PurePosixPath(urlsplit(name_hint).path).name if "://" in name_hint else Path(name_hint).name
    by_name = _BY_SUFFIX.get(PurePosixPath(name).suffix.lower())
    return by_name or _sniff(path)


def _sniff(path: Path) -> Format:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
            truncated = bool(handle.read(1))
    except OSError as error:
        raise CorpusFormatError(f"cannot read {path}: {error.strerror or error}") from error
    if not head.strip():
        raise CorpusFormatError(f"{path} is empty: there are no recipes to read")
    if head.startswith(b"PAR1"):
        return "parquet"
    lines = head.decode("utf-8", errors="replace").lstrip("\ufeff").split("\n")
    if truncated and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut in the middle
    lines = [line.rstrip("\r") for line in lines if line.strip() and not line.startswith("#")]
    if not lines:
        raise CorpusFormatError(f"{path} holds only blank lines and '#' comments: there are no recipes to read")
    first = lines[0].lstrip()
    if first.startswith("["):
        return "json"
    if first.startswith("{"):
        try:
            obj = json.loads(first)
        except ValueError:
            return "json"  # a document spread over several lines
        if isinstance(obj, dict) and (len(lines) > 1 or "ingredients" in obj):
            return "jsonl"
        return "json"
    if "\t" in first:
        return "tsv"
    if "ingredients" in _csv_header(first):
        return "csv"
    if any("\t" in line for line in lines[:50]):
        return "tsv"
    raise CorpusFormatError(
        f"cannot tell the format of {path} from its name or content: it is not Parquet, JSON, "
        f"JSON Lines, tab-separated baskets, or CSV with an 'ingredients' column "
        f"(first line: {_clip(first)!r}); give the format explicitly"
    )


def _csv_header(line: str) -> list[str]:
    try:
        return [cell.strip().lower() for cell in next(csv.reader([line]))]
    except (csv.Error, StopIteration):
        return []


# --------------------------------------------------------------------------- reading


def read_recipes(path: Path, fmt: str, label: str | None = None) -> pl.DataFrame:
    """Read the recipes in ``path`` (format ``fmt``, or ``"auto"`` to detect it) into a
    table with the columns of ``RECIPE_SCHEMA``, one row per recipe in file order.

    Errors name ``label`` (the file, URL or partition the user gave) when given; ``path``,
    where the bytes were read from, follows only as a detail.
    """
    with _named(path, label):
        return _read_recipes(Path(path), fmt)


@contextmanager
def _named(path: Path, label: str | None) -> Iterator[None]:
    """Let a CorpusFormatError name what the user gave instead of the local copy it was read from."""
    try:
        yield
    except CorpusFormatError as error:
        text = str(error)
        if label is None or str(path) not in text:
            raise
        raise CorpusFormatError(f"{text.replace(str(path), label)} (read from {path})") from error


def _read_recipes(path: Path, fmt: str) -> pl.DataFrame:
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMATS:
        raise CorpusFormatError(f"unknown corpus format {fmt!r}: expected one of {', '.join(FORMATS)}")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise CorpusFormatError(f"cannot read {path}: {error.strerror or error}") from error
    if size == 0:
        raise CorpusFormatError(f"{path} is empty: expected {FORMAT_NAMES[fmt]} with at least one recipe")
    frame = _READERS[fmt](path)
    if frame.height == 0:
        raise CorpusFormatError(f"{path} holds no recipes ({FORMAT_NAMES[fmt]})")
    return frame


def _frame(records: Iterable[_Record]) -> pl.DataFrame:
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [])
    for record in records:
        for column, value in zip(columns, record):
            column.append(value)
    try:
        return _columns_to_frame(columns)
    except UnicodeEncodeError:  # a JSON "\ud800" escape: a lone surrogate, not text
        return _columns_to_frame(_drop_surrogates(columns))


def _columns_to_frame(columns: tuple[list[Any], ...]) -> pl.DataFrame:
    *scalars, lines, errors = columns
    schema = {name: dtype for name, dtype in RECIPE_SCHEMA.items() if name != "lines"}
    frame = pl.DataFrame(dict(zip(schema, [*scalars, errors])), schema=schema)
    return frame.with_columns(_list_column(lines)).select(list(RECIPE_SCHEMA)).with_columns(_clean_lines())


def _clean_lines() -> pl.Expr:
    """Strip every ingredient line and drop the blank ones."""
    return (
        pl.col("lines")
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element() != ""))
        .alias("lines")
    )


def _list_column(lines: list[list[str] | None]) -> pl.Series:
    """A list[str] column from Python lists, fast: polars builds nested columns from Python
    objects one list at a time, so join each list with a separator no line contains and
    split it again in one vectorised call."""
    everything = "".join("".join(group) for group in lines if group)
    separator = next((c for c in ("\x1f", "\x1e", "\x00", "\ufdd0") if c not in everything), None)
    if separator is None:
        return pl.Series("lines", lines, dtype=pl.List(pl.String))
    joined = pl.Series([None if group is None else separator.join(group) for group in lines], dtype=pl.String)
    empty = pl.Series([group is not None and not group for group in lines], dtype=pl.Boolean)
    return (
        pl.DataFrame({"joined": joined, "empty": empty})
        .select(
            pl.when(pl.col("empty"))
            .then(pl.lit([], dtype=pl.List(pl.String)))
            .otherwise(pl.col("joined").str.split(separator))
            .alias("lines")
        )
        .to_series()
    )


def _drop_surrogates(columns: tuple[list[Any], ...]) -> tuple[list[Any], ...]:
    rows, ids, titles, cuisines, lines, errors = columns
    for i in range(len(rows)):
        values = [ids[i], titles[i], cuisines[i], *(lines[i] or [])]
        if any(isinstance(v, str) and not _encodable(v) for v in values):
            ids[i] = ids[i] if _encodable(ids[i]) else f"row-{rows[i]}"
            titles[i] = titles[i] if titles[i] is None or _encodable(titles[i]) else None
            cuisines[i] = cuisines[i] if cuisines[i] is None or _encodable(cuisines[i]) else None
            lines[i] = None
            errors[i] = "contains a \\u escape that is not a character (a lone surrogate)"
    return columns


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_lines(path: Path, comments: bool = False) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, error) for every line that is not blank (nor a ``#`` comment when
    ``comments``); text is None when the line is not UTF-8 and error says where."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for number, raw in enumerate(data.split(b"\n"), 1):
            if comments and raw.startswith(b"#"):
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield number, None, f"not UTF-8 at byte {error.start + 1} of the line (0x{raw[error.start]:02x})"
                continue
            if line.strip() and not (comments and line.startswith("#")):
                yield number, line.rstrip("\r"), None
        return
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip() and not (comments and line.startswith("#")):
            yield number, line.rstrip("\r"), None


def _looks_like(path: Path) -> str | None:
    """What a file given as a line format looks like when it is obviously something else."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        return "Parquet"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith((b"{", b"[")):
        return "JSON"
    return None


def _read_tsv(path: Path) -> pl.DataFrame:
    other = _looks_like(path)
    if other:
        raise CorpusFormatError(f"{path} is not tab-separated baskets: it looks like {other}")
    numbers: list[int] = []
    texts: list[str | None] = []
    errors: list[str | None] = []
    for number, line, error in _text_lines(path, comments=True):
        numbers.append(number)
        texts.append(line)
        errors.append(error)
    table = pl.DataFrame(
        {"row": numbers, "text": texts, "error": errors},
        schema={"row": pl.Int64, "text": pl.String, "error": pl.String},
    )
    readable = table.filter(pl.col("text").is_not_null())
    if table.height and readable.height == 0:
        raise CorpusFormatError(f"{path} is not UTF-8 text: no line can be read (line {numbers[0]}: {errors[0]})")
    if readable.height and not readable["text"].str.contains("\t", literal=True).any():
        first = readable.row(0, named=True)
        raise CorpusFormatError(
            f"{path} is not tab-separated baskets: no line has a tab (line {first['row']}: {_clip(first['text'])!r})"
        )
    fields = pl.col("text").str.split("\t")
    return table.select(
        "row",
        recipe_id=pl.format("row-{}", "row"),
        title=pl.lit(None, dtype=pl.String),
        cuisine=fields.list.first().str.strip_chars().replace("", None),
        lines=fields.list.slice(1),
        error="error",
    ).with_columns(_clean_lines())


def _read_jsonl(path: Path) -> pl.DataFrame:
    other = _looks_like(path)
    if other == "Parquet":
        raise CorpusFormatError(f"{path} is not JSON Lines: it looks like Parquet")
    records: list[_Record] = []
    objects = with_ingredients = 0
    first_problem: str | None = None
    for number, line, error in _text_lines(path):
        if line is None:
            records.append((number, f"row-{number}", None, None, None, error))
            first_problem = first_problem or f"line {number}: {error}"
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            error = f"not valid JSON: {exc.msg} at column {exc.colno}"
            records.append((number, f"row-{number}", None, None, None, error))
            first_problem = first_problem or f"line {number}: {error}"
            continue
        if not isinstance(obj, dict):
            records.append((number, f"row-{number}", None, None, None, f"not a JSON object (it is {_kind(obj)})"))
            continue
        objects += 1
        with_ingredients += "ingredients" in obj
        records.append(_from_object(obj, number))
    if records and objects == 0:
        raise CorpusFormatError(
            f"{path} is not JSON Lines: no line holds a JSON object ({first_problem or records[0][5]})"
        )
    if objects and not with_ingredients:
        raise CorpusFormatError(
            f"{path}: no recipe has an 'ingredients' field (looked at {objects} JSON objects); "
            'each line must be an object such as {"ingredients": ["2 eggs", "1 cup flour"]}'
        )
    return _frame(records)


def _read_json(path: Path) -> pl.DataFrame:
    data = path.read_bytes()
    if data.startswith(b"PAR1"):
        raise CorpusFormatError(f"{path} is not JSON: it looks like Parquet")
    try:
        text = data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise CorpusFormatError(
            f"{path} is not UTF-8: byte {error.start + 1} (line {line}) is 0x{data[error.start]:02x}"
        ) from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        hint = ""
        if error.msg == "Extra data" and _first_line_is_object(text):
            hint = "; it looks like JSON Lines (one object per line): name it .jsonl or give format 'jsonl'"
        raise CorpusFormatError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}{hint}"
        ) from error
    items: list[tuple[int, str | None, Any]]
    if isinstance(document, list):
        items = [(n, None, item) for n, item in enumerate(document, 1)]
    elif isinstance(document, dict) and isinstance(document.get("ingredients"), list):
        items = [(1, None, document)]  # a single recipe
    elif isinstance(document, dict):
        items = [(n, str(key), item) for n, (key, item) in enumerate(document.items(), 1)]
    else:
        raise CorpusFormatError(
            f"{path}: expected a JSON array of recipes or an object keyed by recipe id, found {_kind(document)}"
        )
    records: list[_Record] = []
    objects = with_ingredients = 0
    for number, key, item in items:
        if not isinstance(item, dict):
            label = f"row-{number}" if key is None else key
            records.append((number, label, None, None, None, f"not a JSON object (it is {_kind(item)})"))
            continue
        objects += 1
        with_ingredients += "ingredients" in item
        records.append(_from_object(item, number, key))
    if objects and not with_ingredients:
        raise CorpusFormatError(
            f"{path}: no recipe has an 'ingredients' field (looked at {objects} JSON objects); "
            'expected recipes such as {"ingredients": ["2 eggs", "1 cup flour"]}'
        )
    if items and not objects:
        raise CorpusFormatError(f"{path}: expected recipe objects, found {_kind(items[0][2])} (item 1)")
    return _frame(records)


def _read_csv(path: Path) -> pl.DataFrame:
    other = _looks_like(path)
    if other:
        raise CorpusFormatError(f"{path} is not CSV: it looks like {other}")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
        clean = True
    except UnicodeDecodeError:
        text = data.decode("utf-8", errors="surrogateescape")  # bad bytes become U+DC80..U+DCFF
        clean = False
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        while not any(cell.strip() for cell in header):
            header = next(reader)
    except StopIteration:
        raise CorpusFormatError(f"{path} holds no CSV header and no recipes") from None
    except csv.Error as error:
        raise CorpusFormatError(f"{path} is not CSV: line {reader.line_num}: {error}") from error
    names = [cell.strip().lower() for cell in header]
    if "ingredients" not in names:
        raise CorpusFormatError(
            f"{path} has no 'ingredients' column: its header (line {reader.line_num}) is {_clip(','.join(header))!r}; "
            "expected columns id, title, cuisine, ingredients"
        )
    column = {name: names.index(name) for name in ("id", "title", "cuisine", "ingredients") if name in names}
    records: list[_Record] = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise CorpusFormatError(f"{path} is not valid CSV: line {reader.line_num}: {error}") from error
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        default_id = f"row-{start}"
        if len(cells) != len(header):
            records.append(
                (start, default_id, None, None, None, f"has {len(cells)} fields where the header has {len(header)}")
            )
            continue
        if not clean:
            bad = next(((name, cell) for name, cell in zip(header, cells) if not _encodable(cell)), None)
            if bad is not None:
                byte = next(ord(c) - 0xDC00 for c in bad[1] if 0xDC80 <= ord(c) <= 0xDCFF)
                records.append(
                    (
                        start,
                        default_id,
                        None,
                        None,
                        None,
                        f"not UTF-8: field {bad[0].strip()!r} holds the byte 0x{byte:02x}",
                    )
                )
                continue
        recipe_id = cells[column["id"]].strip() if "id" in column else ""
        title = cells[column["title"]].strip() if "title" in column else ""
        cuisine = cells[column["cuisine"]].strip() if "cuisine" in column else ""
        lines, problem = _split_cell(cells[column["ingredients"]])
        records.append((start, recipe_id or default_id, title or None, cuisine or None, lines, problem))
    return _frame(records)


def _split_cell(cell: str) -> tuple[list[str] | None, str | None]:
    """An ``ingredients`` cell: a JSON list of strings, else newline- or ``|``-separated lines."""
    text = cell.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            return None, (
                f"field 'ingredients' looks like a JSON list but is not valid JSON: {error.msg} at column {error.colno}"
            )
        return _ingredient_lines(value)
    separator = "\n" if "\n" in text else "|"
    return text.split(separator), None


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        table = pl.read_parquet(path)
    except Exception as error:  # polars raises several kinds for a file that is not Parquet
        raise CorpusFormatError(f"{path} is not a readable Parquet file: {_clip(str(error), 200)}") from error
    names = {name.strip().lower(): name for name in table.columns}
    if "ingredients" not in names:
        raise CorpusFormatError(
            f"{path} has no 'ingredients' column: its columns are {', '.join(table.columns) or 'none'}; "
            "expected id, title, cuisine, ingredients"
        )
    rows = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)

    def text_column(name: str) -> pl.Expr:
        if name not in names:
            return pl.lit(None, dtype=pl.String)
        dtype = table.schema[names[name]]
        if isinstance(dtype, (pl.List, pl.Array, pl.Struct)):
            raise CorpusFormatError(f"{path}: column {names[name]!r} is {dtype}, expected text")
        return pl.col(names[name]).cast(pl.String).str.strip_chars().replace("", None)

    ingredients = table.schema[names["ingredients"]]
    if isinstance(ingredients, (pl.List, pl.Array)) and ingredients.inner in (pl.String, pl.Null):
        source = pl.col(names["ingredients"]).cast(pl.List(pl.String))
        has_null_item = source.list.eval(pl.element().is_null()).list.any()
        error_text = (
            pl.when(source.is_null())
            .then(pl.lit("field 'ingredients' is missing"))
            .when(has_null_item)
            .then(pl.lit("field 'ingredients' is not a list of strings (it holds a null)"))
            .otherwise(pl.lit(None, dtype=pl.String))
        )
        frame = table.select(
            row=rows,
            recipe_id=pl.coalesce(text_column("id"), pl.format("row-{}", rows)),
            title=text_column("title"),
            cuisine=text_column("cuisine"),
            lines=pl.when(error_text.is_null()).then(source),
            error=error_text,
        )
        return frame.with_columns(_clean_lines()).select(
            [pl.col(name).cast(dtype) for name, dtype in RECIPE_SCHEMA.items()]
        )
    if ingredients == pl.String:
        base = table.select(
            row=rows,
            recipe_id=pl.coalesce(text_column("id"), pl.format("row-{}", rows)),
            title=text_column("title"),
            cuisine=text_column("cuisine"),
            cell=pl.col(names["ingredients"]),
        )
        records = []
        for row, recipe_id, title, cuisine, cell in base.iter_rows():
            lines, problem = _split_cell(cell) if cell is not None else (None, "field 'ingredients' is missing")
            records.append((row, recipe_id, title, cuisine, lines, problem))
        return _frame(records)
    raise CorpusFormatError(f"{path}: column {names['ingredients']!r} is {ingredients}, expected a list of strings")


_READERS = {"tsv": _read_tsv, "jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet}


# --------------------------------------------------------------------------- helpers


def _from_object(obj: dict[str, Any], row: int, key: str | None = None) -> _Record:
    """One recipe object -> a record; type problems become the record's error."""
    default_id = f"row-{row}"
    raw_id = obj.get("id") if key is None else key
    problems: list[str] = []
    if raw_id is None or raw_id == "":
        recipe_id = default_id
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        recipe_id = str(raw_id).strip() or default_id
    else:
        recipe_id = default_id
        problems.append(f"field 'id' is not a string or an integer (it is {_kind(raw_id)})")
    title, title_problem = _optional_text(obj, "title")
    cuisine, cuisine_problem = _optional_text(obj, "cuisine")
    problems += [p for p in (title_problem, cuisine_problem) if p]
    lines: list[str] | None
    problem: str | None
    if "ingredients" not in obj or obj["ingredients"] is None:
        lines, problem = None, "field 'ingredients' is missing"
    else:
        lines, problem = _ingredient_lines(obj["ingredients"])
    if problem:
        problems.append(problem)
    if problems:
        return row, recipe_id, title, cuisine, None, "; ".join(problems)
    return row, recipe_id, title, cuisine, lines, None


def _optional_text(obj: dict[str, Any], field: str) -> tuple[str | None, str | None]:
    value = obj.get(field)
    if value is None:
        return None, None
    if isinstance(value, str):
        return value.strip() or None, None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value), None
    return None, f"field {field!r} is not a string (it is {_kind(value)})"


def _ingredient_lines(value: Any) -> tuple[list[str] | None, str | None]:
    if not isinstance(value, list):
        return None, f"field 'ingredients' is not a list of strings (it is {_kind(value)})"
    if all(type(item) is str for item in value):
        return value, None
    for index, item in enumerate(value, 1):
        if not isinstance(item, str):
            return None, f"field 'ingredients' is not a list of strings (item {index} is {_kind(item)})"
    return value, None


def _first_line_is_object(text: str) -> bool:
    first = next((line for line in text.split("\n") if line.strip()), "")
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
