"""Ingredient -> category tables for the category kNN probe.

Two layouts are read:

- tab-separated ``id, ingredient name, category`` with an optional ``#`` header, as
  ``ingr_info.tsv`` of the flavor-network data (Ahn et al. 2011);
- comma-separated ``ingredient,category`` with an optional ``ingredient,category`` header.

Names are put in the vocabulary's form: lower case, underscores as spaces, runs of spaces
collapsed (``olive_oil`` -> ``olive oil``). A name listed twice with different categories
is an error; blank lines and ``#`` comment lines are skipped.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from flavor_ml.errors import CorpusFormatError

_CSV_HEADERS = {("ingredient", "category"), ("name", "category")}


def canonical_name(name: str) -> str:
    """``Olive_Oil `` -> ``olive oil``."""
    return " ".join(name.replace("_", " ").lower().split())


def read_categories(path: Path) -> dict[str, str]:
    """Ingredient name -> category from a TSV (id, name, category) or CSV (name, category) table.

    Raises :class:`CorpusFormatError` naming the file and row when a row does not fit.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusFormatError(f"{path}: category table is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise CorpusFormatError(f"{path}: cannot read category table: {exc.strerror or exc}") from exc
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    tab_separated = "\t" in first or path.suffix.lower() in {".tsv", ".tab"}
    reader = csv.reader(io.StringIO(text), delimiter="\t" if tab_separated else ",")
    layout = "id<TAB>name<TAB>category" if tab_separated else "name,category"
    expected = 3 if tab_separated else 2

    categories: dict[str, str] = {}
    for row_number, row in enumerate(reader, start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in row]
        if not tab_separated and row_number == 1 and tuple(f.lower() for f in fields) in _CSV_HEADERS:
            continue
        if len(fields) != expected:
            raise CorpusFormatError(
                f"{path}, row {row_number}: expected {expected} fields ({layout}), found {len(fields)}: {row!r:.120}"
            )
        name, category = canonical_name(fields[-2]), fields[-1]
        if not name or not category:
            raise CorpusFormatError(f"{path}, row {row_number}: empty ingredient name or category: {row!r:.120}")
        if categories.get(name, category) != category:
            raise CorpusFormatError(
                f"{path}, row {row_number}: {name!r} is listed as {categories[name]!r} earlier and {category!r} here"
            )
        categories[name] = category
    if not categories:
        raise CorpusFormatError(f"{path}: no ingredient categories found (expected rows of {layout})")
    return categories
