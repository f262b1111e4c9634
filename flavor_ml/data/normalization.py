"""Turn raw recipe ingredient lines into canonical ingredient names.

``"1 (15 oz) can black beans, drained and rinsed"`` -> ``"black bean"``. The whole job is one
polars expression (:meth:`Normalizer.names_expr`) of string operations, Aho-Corasick passes and
named-group regexes (:class:`Rewrite`), so a corpus is normalized without a Python call per row;
the list functions run the same expression on distinct lines. Word lists are data in
``flavor_ml/data/resources/``; the rules and the choices behind them are in docs/normalization.md.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from flavor_ml.errors import ConfigError, NormalizationError

__all__ = [
    "NAMES_COLUMN",
    "Normalizer",
    "default_normalizer",
    "ingredient_names",
    "label_agreement",
    "name_expr",
    "names_expr",
    "normalize_frame",
    "normalize_lines",
]

#: Column that :func:`normalize_frame` adds.
NAMES_COLUMN = "names"

#: Bump when the rules in this module change meaning; it is part of the fingerprint.
RULES_VERSION = "1"

_RESOURCE_FILES = (
    "synonyms.csv",
    "descriptors.txt",
    "brands.txt",
    "phrases.txt",
    "plurals.csv",
    "units.csv",
    "quantity_words.txt",
    "comment_markers.txt",
    "heads.csv",
    "equipment.txt",
    "part_words.txt",
)

# Internal characters that never reach the output: the marker that keeps invariant words
# ("asparagus") away from the plural suffix rules, and the joiner of protected phrases.
_KEEP = "\ue000"
_JOIN = "_"

# Internal column holding the lines while a frame is normalized.
_LINE_KEY = "__flavor_ml_line"
#: Fewer distinct lines than this are normalized on one thread: slicing would cost more than it saves.
_PARALLEL_LINES = 20_000

# Words that may open or close a name part without being part of it ("pinch of salt",
# "salt and", "oil for").
_FILLERS = ("of", "the", "a", "an", "and", "or", "with", "in", "for", "to", "from", "each", "x", "plus", "about")


def _char_map() -> dict[str, str]:
    """Single characters -> replacement, applied after lowercasing.

    Built from Unicode compatibility decomposition with marks removed, so accented
    Latin letters fold to ASCII (``é`` -> ``e``) and vulgar fractions become digits
    (``½`` -> ``1⁄2``), plus punctuation that the later stages treat as separators.
    """
    mapping: dict[str, str] = {}
    for start, stop in ((0x00A0, 0x0250), (0x1E00, 0x1F00), (0x2000, 0x2070), (0x2150, 0x2190), (0xFB00, 0xFB07)):
        for code in range(start, stop):
            ch = chr(code)
            folded = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            if folded != ch:
                mapping[ch] = folded.lower()
    for code in range(0x0300, 0x0370):  # stray combining marks (text already decomposed)
        mapping[chr(code)] = ""
    # Possessives and quotes go; a spaced dash (en dash from here on) may start a comment,
    # other dashes and hyphens separate words; ';' splits like ','; internal characters
    # cannot come in from the input.
    mapping.update(
        {
            "\u2019s ": " ",
            "'s ": " ",
            "\u2019": "",
            "\u2018": "",
            "'": "",
            "`": "",
            "\u00b4": "",
            "\u201c": " ",
            "\u201d": " ",
            '"': " ",
            " - ": " \u2013 ",
            " -- ": " \u2013 ",
            " \u2013 ": " \u2013 ",
            "\u2014": " \u2013 ",
            "\u2013": " ",
            "\u2212": " ",
            "\u2010": " ",
            "\u2011": " ",
            "-": " ",
            ".": " ",
            ",": " , ",
            ";": " , ",
            "/": " / ",
            "_": " ",
            "&": " and ",
            "+": " and ",
            "\t": " ",
            "\n": " ",
            "\r": " ",
            "\u00a0": " ",
            "\u00d7": " x ",
            "*": " ",
            "#": " ",
            "[": "(",
            "]": ")",
            "{": "(",
            "}": ")",
            _KEEP: " ",
            "\ue001": " ",
            "\ue002": " ",
        }
    )
    return mapping


_CHAR_MAP = _char_map()
_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def _rx(word: str) -> str:
    """A regex fragment matching ``word`` literally, words separated by spaces."""
    escaped = "".join("\\" + ch if ch in _REGEX_META else ch for ch in word)
    return " +".join(escaped.split())


def _alternation(words: Iterable[str]) -> str:
    # Longest first, so that "fl oz" is tried before "fl".
    ordered = sorted(set(words), key=lambda w: (-len(w), w))
    if not ordered:
        return "(?:\ue001)"  # matches nothing that can occur in the text
    return "(?:" + "|".join(_rx(w) for w in ordered) + ")"


def _padded(phrase: str) -> str:
    """The form a phrase takes in padded text, where every word has its own spaces."""
    return " " + "  ".join(phrase.split()) + " "


# ---------------------------------------------------------------------------------------
# Rewrites: a regex and what a match becomes, its groups named


_GROUP_NAME = re.compile(r"\(\?P<(\w+)>")
_UNNAMED_GROUP = re.compile(r"(?<!\\)\((?!\?)")


@dataclass(frozen=True)
class Rewrite:
    """A regex and its replacement (``${name}`` refers to the group ``(?P<name>...)``).

    Every group is named, so adding an alternative cannot shift what the replacement keeps.
    """

    pattern: str
    replacement: str

    def __post_init__(self) -> None:
        unknown = set(re.findall(r"\$\{(\w+)\}", self.replacement)) - set(_GROUP_NAME.findall(self.pattern))
        if unknown or re.search(r"\$(?!\{)", self.replacement) or _UNNAMED_GROUP.search(self.pattern):
            raise ValueError(f"rewrite {self.pattern!r} -> {self.replacement!r}: use named groups only")

    @classmethod
    def keeping_any(cls, pattern: str) -> Rewrite:
        """Keep whichever groups took part in the match: each alternative of ``pattern`` has
        its own groups, so only the matching alternative's are non-empty."""
        return cls(pattern, "".join(f"${{{name}}}" for name in _GROUP_NAME.findall(pattern)))

    def first(self, e: pl.Expr) -> pl.Expr:
        return e.str.replace(self.pattern, self.replacement)

    def every(self, e: pl.Expr) -> pl.Expr:
        return e.str.replace_all(self.pattern, self.replacement)


# Plural suffix rules (irregular and invariant words are handled before them).
IES_PLURAL = Rewrite(r"(?P<stem>[a-z]{2,})ies ", "${stem}y ")
ES_PLURAL = Rewrite(r"(?P<stem>[a-z]+(?:ch|sh|x|ss|zz|o))es ", "${stem} ")
S_PLURAL = Rewrite(r"(?P<stem>[a-z]{2,}[a-rtv-z])s ", "${stem} ")
# A spaced dash between words starts a comment: "1 lemon - juice only".
SPACED_DASH_COMMENT = Rewrite(r"(?P<before>[a-z]) +\u2013 +[a-z].*$", "${before}")
# "Garnish: parsley" -> parsley (a short label before a colon).
LABEL = Rewrite(r"^\s*[^\d\s:]+(?:\s+[^\d\s:]+){0,3}\s*:(?P<rest>.*)$", "${rest}")
# "salt / pepper" reads as an alternative.
SLASH_ALTERNATIVE = Rewrite(r"(?P<left>\pL) +/ +(?P<right>\pL)", "${left} or ${right}")
# Comma parts held as lines: the first one.
FIRST_LINE = Rewrite(r"(?s)^\n*(?P<first>[^\n]*).*$", "${first}")
# Only the first two alternatives matter: "rum or orange or coffee liqueur" -> rum.
THIRD_ALTERNATIVE = Rewrite(r"^(?P<first_two>.*? or [^\n]*?) or .*$", "${first_two}")
# Hand labels that name alternatives or a pair: the first alone, or sharing the rest.
LABEL_FIRST_ALONE = Rewrite(r"^(?P<first>.*?) (?:or|and) .*$", "${first}")
LABEL_FIRST_SHARED = Rewrite(
    r"^(?P<first>[^ ]+) (?:or|and) [^ _]+[ _](?P<rest>.*?)(?: (?:or|and) .*)?$", "${first} ${rest}"
)


# ---------------------------------------------------------------------------------------
# Tables


def _read_resource(name: str) -> str:
    return resources.files("flavor_ml.data").joinpath("resources", name).read_text(encoding="utf-8")


def _data_lines(text: str) -> list[str]:
    return [s for s in (raw.strip() for raw in text.splitlines()) if s and not s.startswith("#")]


def _csv_rows(text: str, source: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    lines = _data_lines(text)
    if not lines:
        raise ConfigError(f"{source} is empty; expected a header line {','.join(columns)!r}")
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    header = tuple((h or "").strip().lower() for h in (reader.fieldnames or ()))
    if header[: len(columns)] != columns:
        raise ConfigError(f"{source} must start with the header {','.join(columns)!r}, found {','.join(header)!r}")
    rows = []
    for number, row in enumerate(reader, start=1):
        values = {key.strip().lower(): (value or "").strip() for key, value in row.items() if isinstance(key, str)}
        if not all(values.get(c) for c in columns):
            needs = " and ".join(columns)
            raise ConfigError(f"{source}, data row {number}: every row needs {needs}, got {lines[number]!r}")
        rows.append(values)
    return rows


class _Tables:
    """The raw word tables in effect, read once; their text feeds the fingerprint."""

    def __init__(self, extra_synonyms: Path | None) -> None:
        self.texts = {name: _read_resource(name) for name in _RESOURCE_FILES}
        self.extra_synonyms_path = None if extra_synonyms is None else Path(extra_synonyms)
        self.extra_synonyms_text = ""
        if self.extra_synonyms_path is not None:
            try:
                self.extra_synonyms_text = self.extra_synonyms_path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the extra synonym table {self.extra_synonyms_path}: {exc}") from exc

    def lines(self, name: str) -> list[str]:
        return _data_lines(self.texts[name])

    def rows(self, name: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
        return _csv_rows(self.texts[name], f"packaged table {name}", columns)

    def synonym_rows(self) -> list[tuple[str, str, str]]:
        """(variant, canonical, source) rows, the user's after the packaged ones."""
        columns = ("variant", "canonical")
        rows = [(r["variant"], r["canonical"], "synonyms.csv") for r in self.rows("synonyms.csv", columns)]
        if self.extra_synonyms_path is not None:
            source = str(self.extra_synonyms_path)
            extra = _csv_rows(self.extra_synonyms_text, source, columns)
            rows += [(r["variant"], r["canonical"], source) for r in extra]
        return rows

    def digest(self) -> str:
        digest = hashlib.sha256(f"rules={RULES_VERSION}\n".encode())
        for name in _RESOURCE_FILES:
            digest.update(f"\n--{name}\n".encode() + "\n".join(self.lines(name)).encode())
        digest.update(b"\n--extra synonyms\n" + "\n".join(_data_lines(self.extra_synonyms_text)).encode())
        return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# The normalizer


class Normalizer:
    """Raw ingredient lines -> canonical ingredient names, with a given synonym table.

    ``extra_synonyms`` is an optional CSV with a ``variant,canonical`` header whose rows
    extend (and, for the same variant, override) the packaged ``synonyms.csv``. Variants
    and canonical names may be written naturally (``Spring Onions,Scallion``): both are
    normalized like ingredient text. Raises :class:`~flavor_ml.errors.ConfigError` for a
    table that cannot be read, lacks the header, or maps names in a cycle.
    """

    def __init__(self, extra_synonyms: Path | None = None) -> None:
        self._tables = _Tables(extra_synonyms)
        self._build()

    def __repr__(self) -> str:
        extra = self._tables.extra_synonyms_path
        return f"Normalizer(extra_synonyms={str(extra) if extra else None!r}, fingerprint={self.fingerprint()!r})"

    # -- public API ----------------------------------------------------------------------

    def fingerprint(self) -> str:
        """A short hash of the rules and every word table in effect (for cache keys)."""
        return self._tables.digest()[:16]

    def names_expr(self, expr: pl.Expr) -> pl.Expr:
        """Expression: each raw line -> list[str] of the ingredient names it gives ([] for none)."""
        return self._names(self._first_part(self._line(expr)))

    def name_expr(self, expr: pl.Expr) -> pl.Expr:
        """Expression: each raw line -> its first ingredient name, or null for none."""
        return self.names_expr(expr).list.first()

    def normalize_lines(self, lines: Iterable[str | None]) -> list[str | None]:
        """One canonical name per line (the first it names), None for non-ingredient lines."""
        return self._run(lines, first_only=True)

    def ingredient_names(self, lines: Iterable[str | None]) -> list[list[str]]:
        """Every ingredient name each line gives, in order; [] for non-ingredient lines."""
        return self._run(lines, first_only=False)

    def normalize_frame(self, df: pl.DataFrame, column: str) -> pl.DataFrame:
        """``df`` with a ``names`` list[str] column; each distinct line is normalized once.

        Work and memory for the normalization itself grow with the number of distinct
        lines, not with the number of rows: repeated lines are looked up by a join.
        """
        if column not in df.columns:
            raise NormalizationError(f"cannot normalize column {column!r}: the frame only has {df.columns}")
        if NAMES_COLUMN in df.columns:
            raise NormalizationError(f"the frame already has a {NAMES_COLUMN!r} column; drop or rename it first")
        dtype = df.schema[column]
        if not (dtype == pl.String or dtype == pl.Null or isinstance(dtype, (pl.Categorical, pl.Enum))):
            raise NormalizationError(f"column {column!r} holds {dtype}, not text lines")
        key = _LINE_KEY
        keyed = df.with_columns(pl.col(column).cast(pl.String).alias(key))
        distinct = self._names_of(keyed.select(pl.col(key).unique()))
        joined = keyed.join(distinct, on=key, how="left", nulls_equal=True, maintain_order="left")
        return joined.drop(key)

    def _names_of(self, distinct: pl.DataFrame) -> pl.DataFrame:
        """``distinct`` lines plus their names, on every core: polars runs one expression over a
        column on one thread, so the lines go in one slice per thread of its pool (a corpus that
        changed in one partition is normalized with all cores, not one)."""
        slices = pl.thread_pool_size() if distinct.height >= _PARALLEL_LINES else 1
        size = -(-distinct.height // slices)
        named = [
            distinct.slice(i * size, size).lazy().with_columns(self._key_names_expr.alias(NAMES_COLUMN))
            for i in range(slices)
        ]
        return pl.concat(pl.collect_all(named))

    def comparison_key(self, texts: Iterable[str | None]) -> list[set[str]]:
        """Forms of hand-labelled names to compare normalizer output against.

        A text is lowercased, singularised, stripped of the descriptor and brand words the
        normalizer drops, and mapped through the same synonym table; nothing else is cut.
        A label that names alternatives or a pair (``chicken or vegetable stock``, ``salt
        and pepper``) stands for its first one, read either alone (``chicken``) or sharing
        the rest of the phrase (``chicken stock``), so it may give two acceptable keys.
        """
        frame = pl.DataFrame({"t": list(texts)}, schema={"t": pl.String})
        words = self._words(self._clean(pl.col("t"))).str.replace_all(r"[^\pL _]", " ")
        readings = frame.select(self._collapse(words).alias("w")).select(
            LABEL_FIRST_ALONE.first(pl.col("w")).alias("alone"),
            pl.when(pl.col("w").str.contains(r"^[^ ]+ (?:or|and) [^ _]+[ _][^ ]"))
            .then(LABEL_FIRST_SHARED.first(pl.col("w")))
            .otherwise(pl.lit(""))
            .alias("shared"),
        )
        keys = readings.select(self._finish(pl.col(c)).alias(c) for c in ("alone", "shared"))
        return [{k for k in row if k} for row in keys.iter_rows()]

    @property
    def rewrites(self) -> dict[str, Rewrite]:
        """The rewrites built from this normalizer's word tables, by name (each has its own tests)."""
        return {
            "comment_cut": self._cut,
            "lone_modifier": self._modifier,
            "same_head": self._same_head,
            "alternatives": self._or,
            "and_whole": self._and_alone,
            "and_shared_head": self._and_shared,
            "participle": self._participle,
            "part_word": self._part,
        }

    @cached_property
    def _key_names_expr(self) -> pl.Expr:
        return self.names_expr(pl.col(_LINE_KEY))

    # -- running on Python lists -------------------------------------------------------------

    def _run(self, lines: Iterable[str | None], *, first_only: bool) -> list[Any]:
        values = lines if isinstance(lines, list) else list(lines)
        for index, value in enumerate(values):
            if value is not None and not isinstance(value, str):
                raise NormalizationError(f"ingredient line {index} is a {type(value).__name__}, not text: {value!r}")
        if not values:
            return []
        frame = self.normalize_frame(pl.DataFrame({"line": values}, schema={"line": pl.String}), "line")
        names = frame.get_column(NAMES_COLUMN)
        return (names.list.first() if first_only else names).to_list()

    # -- building the tables ---------------------------------------------------------------

    def _build(self) -> None:
        t = self._tables
        plural_rows = t.rows("plurals.csv", ("plural", "singular"))
        self._irregular = {
            r["plural"].lower(): r["singular"].lower() for r in plural_rows if r["plural"] != r["singular"]
        }
        self._invariant = sorted({r["plural"].lower() for r in plural_rows if r["plural"] == r["singular"]})

        unit_rows = t.rows("units.csv", ("unit", "position"))
        for r in unit_rows:
            if r["position"] not in ("after_number", "leading") or r.get("alone", "drop") not in ("drop", "name"):
                raise ConfigError(f"units.csv: bad row {r}; position is after_number|leading, alone is drop|name")
        units_any = self._forms([r["unit"] for r in unit_rows])
        units_leading = self._forms([r["unit"] for r in unit_rows if r["position"] == "leading"])
        lone_units = self._forms([r["unit"] for r in unit_rows if r.get("alone", "drop") == "drop"])
        self._lone_units = sorted(set(lone_units))
        quantity_words = self._forms(t.lines("quantity_words.txt"))
        heads = t.rows("heads.csv", ("word", "role"))
        shared_heads = self._forms([r["word"] for r in heads if r["role"] == "shared"])
        standalone = self._forms([r["word"] for r in heads if r["role"] == "standalone"])
        modifiers = self._forms([r["word"] for r in heads if r["role"] == "modifier"])
        self._descriptors = self._forms(t.lines("descriptors.txt") + t.lines("brands.txt"))
        equipment = self._forms(t.lines("equipment.txt"))
        markers = self._forms(t.lines("comment_markers.txt"))

        self._synonyms = self._resolve_synonyms(t.synonym_rows())
        phrases = self._forms(t.lines("phrases.txt"))
        protected = {p for p in {*phrases, *self._synonyms, *self._synonyms.values()} if " " in p}
        self._protected = sorted(protected, key=lambda p: (-len(p), p))
        self._protected_marked = self._normal_forms(self._protected, marked=True)

        # Regexes built once from the tables.
        units = _alternation(units_any)
        number = r"[^\s]*\d[^\s]*(?: +(?:to|or) +[^\s]*\d[^\s]*)?"
        leading = _alternation(units_leading)
        worded = rf"{_alternation(quantity_words)}(?: +{units})?"
        token = rf"(?:{number}(?: +{units})?(?: +{leading})?|{worded}|{leading}|[/x\u2013-])"
        # Every token must be followed by a space, so the last word of a line is never
        # stripped: a unit with nothing after it is the name ("6 cloves" is the spice).
        self._lead_rx = rf"(?m)^(?:{token} +)+"
        fillers = _alternation(_FILLERS)
        self._fillers_rx = rf"(?m)^(?:{fillers} +)+|(?: +{fillers})+$|^(?:{fillers}|{_alternation(lone_units)})$"
        # Cut from the first comment marker to the end; a line's first word is never a marker.
        # Leading amounts are stripped before the cut, so "1 to 2 tbsp" never reaches it.
        self._cut = Rewrite(rf"(?s)(?:(?P<before>[^\s]) |\n){_alternation(markers)} .*$", "${before}")
        alone, head = _alternation(standalone), _alternation(shared_heads)
        # "dried, hot red chillies": a lone modifier before a comma joins what follows.
        modifier = rf"(?:{_alternation(modifiers)}|[a-z]+[^e\s]ed)"
        self._modifier = Rewrite(rf"^\n*(?P<modifier>{modifier})\n+", "${modifier} ")
        # "onion or spring onion", "tomato or cherry tomato": the first is whole already.
        self._same_head = Rewrite.keeping_any(
            "^(?:"
            + "|".join(
                rf"(?P<head{i}>{_rx(h)}) or (?:[^ ]*[ _])?{_rx(h)}(?: (?:or|and) .*)?"
                for i, h in enumerate(shared_heads)
            )
            + ")$"
        )
        # The head is shared when the first alternative is one word and the second ends in
        # a head noun; the second's first word is a whole token ("long_grain rice") or the
        # first word of a protected phrase ("vegetable_stock"). The result is plain words.
        shared_tail = rf"(?:[^ ]+ (?P<word_head>(?:[^ ]+ )*?{head})|[^ _]+_(?P<phrase_head>(?:[^ _]+_)*?{head}))"
        # Two modifiers share what follows the second ("red or white wine vinegar" -> red wine
        # vinegar); a modifier before a bare name shares it ("roasted or poached chicken" ->
        # roasted chicken once "poached" is dropped); two modifiers alone keep the first.
        self._or = Rewrite.keeping_any(
            rf"^(?:(?P<whole>{alone}) or .*"
            rf"|(?P<modifier_a>{modifier})(?P<space_a> )or {modifier}[ _](?P<head_a>(?:[^ _]+[ _])*?{head})(?: and .*)?"
            rf"|(?P<modifier_alone>{modifier}) or {modifier}"
            rf"|(?P<modifier_b>{modifier})(?P<space_b> )or (?P<name_b>[^ ]+)"
            rf"|(?P<word>[^ _]+)(?P<space_c> )or {shared_tail}(?: and .*)?"
            rf"|(?P<first>.*?) or .*)$"
        )
        self._and_alone = Rewrite(rf"^(?P<whole>{alone}) and ", "${whole}\n")
        self._and_shared = Rewrite(
            rf"^(?P<first>[^ _]+) and (?P<second>[^ ]+?)"
            rf"(?: (?P<word_head>(?:[^ ]+ )*?{head})|_(?P<phrase_head>(?:[^ _]+_)*?{head}))$",
            "${first} ${word_head}${phrase_head}\n${second} ${word_head}${phrase_head}",
        )
        # Trailing past participles ("double cream whipped") and part words ("fennel bulb",
        # "sea bass fillet pieces"); equipment is recognised between the two steps.
        participle = rf"(?:[a-z]{{2,}}[^e\s_]ed|{fillers})"
        self._participle = Rewrite(rf"(?m)(?P<last>[^ \n])(?: {participle})+$", "${last}")
        parts = _alternation(self._forms(t.lines("part_words.txt")))
        self._part = Rewrite(rf"(?m)(?P<last>[^ \n])(?: (?:{parts}|{participle}))+$", "${last}")
        self._equipment_rx = rf"(?m)^(?:[^\n]* )?{_alternation(equipment)}$"

    def _normal_forms(self, texts: list[str], *, marked: bool = False) -> list[str]:
        """Each text as lines read at the point where words are matched: cleaned up and
        singularised, with invariant-word markers only if ``marked``."""
        if not texts:
            return []
        singular = self._singular(self._pad(self._collapse(self._clean(pl.col("t")))))
        expr = self._collapse(singular if marked else self._unmark(singular))
        return pl.DataFrame({"t": texts}, schema={"t": pl.String}).select(expr).to_series().to_list()

    def _forms(self, texts: list[str]) -> list[str]:
        """The distinct non-empty normal forms of a word list."""
        return [w for w in dict.fromkeys(self._normal_forms(texts)) if w]

    def _resolve_synonyms(self, rows: list[tuple[str, str, str]]) -> dict[str, str]:
        variants = self._normal_forms([r[0] for r in rows])
        canonicals = self._normal_forms([r[1] for r in rows])
        mapping: dict[str, str] = {}
        origin: dict[str, str] = {}
        for variant, canonical, (raw_v, raw_c, source) in zip(variants, canonicals, rows, strict=True):
            if not variant or not canonical:
                raise ConfigError(f"{source}: the synonym row {raw_v!r},{raw_c!r} is empty once normalized")
            if any(ch.isdigit() for ch in raw_v + raw_c):
                raise ConfigError(f"{source}: the synonym row {raw_v!r},{raw_c!r} holds digits, which names never do")
            if source != "synonyms.csv" and origin.get(canonical) == "synonyms.csv":
                # The user's canonical name is final, even where the packaged table maps it on.
                del mapping[canonical]
            if variant != canonical:
                mapping[variant] = canonical  # later rows (the user's) override earlier ones
                origin[variant] = source
            else:
                mapping.pop(variant, None)
        resolved: dict[str, str] = {}
        for variant, target in mapping.items():
            seen = [variant]
            while target in mapping:
                if target in seen:
                    raise ConfigError(f"the synonym tables map names in a cycle: {' -> '.join([*seen, target])}")
                seen.append(target)
                target = mapping[target]
            resolved[variant] = target
        return resolved

    # -- expression building blocks ---------------------------------------------------------
    #
    # Each stage is one linear chain of string operations on one expression: no stage uses
    # its input twice (polars would evaluate the shared upstream work once per use). The
    # comma parts of a line, and later the names it gives, are held as lines of a single
    # string and handled by multi-line regexes rather than per-element list evaluation.

    @staticmethod
    def _collapse(e: pl.Expr) -> pl.Expr:
        """Single spaces, none around line breaks or at the ends."""
        return e.str.replace_all(r" {2,}", " ").str.replace_all(r" ?\n ?", "\n").str.strip_chars(" ")

    @staticmethod
    def _pad(e: pl.Expr) -> pl.Expr:
        """Collapsed text -> padded text in which every word has its own surrounding spaces."""
        return pl.concat_str([pl.lit(" "), e.str.replace_many([" ", "\n"], ["  ", " \n "]), pl.lit(" ")])

    @staticmethod
    def _clean(e: pl.Expr) -> pl.Expr:
        """Lowercase and fold characters (accents, fractions, quotes, dashes, separators)."""
        e = e.cast(pl.String).fill_null("").str.to_lowercase()
        return e.str.replace_many(list(_CHAR_MAP), list(_CHAR_MAP.values()), leftmost=True)

    def _singular(self, padded: pl.Expr) -> pl.Expr:
        """Singularise every word of padded text; invariant words get a marker."""
        patterns = [_padded(p) for p in self._irregular] + [_padded(w) for w in self._invariant]
        values = [_padded(s) for s in self._irregular.values()] + [" " + w + _KEEP + " " for w in self._invariant]
        e = padded.str.replace_many(patterns, values, leftmost=True)
        return S_PLURAL.every(ES_PLURAL.every(IES_PLURAL.every(e)))

    @staticmethod
    def _unmark(e: pl.Expr) -> pl.Expr:
        return e.str.replace_all(_KEEP, "", literal=True)

    def _protect(self, padded: pl.Expr, *, marked: bool = True) -> pl.Expr:
        """Join protected phrases with underscores (and drop invariant-word markers)."""
        joined = [" " + p.replace(" ", _JOIN) + " " for p in self._protected]
        if not marked:
            return padded.str.replace_many([_padded(p) for p in self._protected], joined, leftmost=True)
        patterns = [_padded(m) for m in self._protected_marked] + [" " + w + _KEEP + " " for w in self._invariant]
        return padded.str.replace_many(patterns, joined + [" " + w + " " for w in self._invariant], leftmost=True)

    def _drop_descriptors(self, padded: pl.Expr) -> pl.Expr:
        ordered = sorted(set(self._descriptors), key=lambda p: (-len(p), p))
        return padded.str.replace_many([_padded(p) for p in ordered], [" "] * len(ordered), leftmost=True)

    def _words(self, e: pl.Expr) -> pl.Expr:
        """Cleaned text -> collapsed, singular, protected, descriptor-free words (one line)."""
        e = self._singular(self._pad(self._collapse(e)))
        return self._collapse(self._drop_descriptors(self._protect(e)))

    def _strip(self, e: pl.Expr) -> pl.Expr:
        """Per line: the leading amount, punctuation and digits, opening/closing fillers."""
        e = e.str.replace_all(self._lead_rx, "").str.replace_all(r"[^\s]*\d[^\s]*|[^\pL\n _]", " ")
        return self._collapse(self._collapse(e).str.replace_all(self._fillers_rx, ""))

    def _line(self, expr: pl.Expr) -> pl.Expr:
        """Raw line -> its comma parts as cleaned lines of text ('' for a non-ingredient line)."""
        e = self._clean(expr)
        # A spaced dash between words starts a comment: "1 lemon - juice only".
        e = SPACED_DASH_COMMENT.first(e)
        # Section headers and equipment notes give nothing.
        e = e.str.replace(
            r"^(?:.*:\s*|\s*(?:for|to)\s[^\d]*|\s*(?:you will need|youll need|you need|you also need|"
            r"special equipment|equipment|serves|makes|method)(?:[\s:].*)?)$",
            "",
        )
        # "Garnish: parsley" -> parsley; "1kg sugar: regular, not pectin" -> 1kg sugar.
        e = LABEL.first(e).str.replace(r":.*$", "")
        # Parentheticals (one level of nesting); an unclosed bracket or ';' ends the line.
        e = e.str.replace_all(r"\([^()]*\)", " ").str.replace_all(r"\([^()]*\)", " ").str.replace(r"[(;].*$", "")
        e = e.str.replace_all(r"\d+\s*%(?:\s*(?:fat|cocoa solids|cocoa|proof|abv|vol))?", " ")
        e = SLASH_ALTERNATIVE.every(e.str.replace_all(r"[^\pL\pN\s,/⁄_\ue000\u2013]", " "))
        e = self._words(e)
        # Comma parts become lines. Amounts go before the comment cut ("2 tbsp or so honey"
        # keeps honey); the cut runs from the first marker to the end of the line's text.
        e = e.str.replace_all(r" ?, ?", "\n").str.strip_chars(" ").str.replace_all(self._lead_rx, "")
        return self._cut.first(e + " ").str.strip_chars(" ")

    def _first_part(self, parts: pl.Expr) -> pl.Expr:
        """Comma parts (lines) -> the first one that still names something, or ''."""
        # "juice of 1 lemon", "grated zest and juice of 2 limes" -> the fruit.
        e = parts.str.replace_all(r"(?m)^ *(?:(?:juice|zest|rind|peel) +(?:and +)?)+of +", "")
        return FIRST_LINE.first(self._modifier.first(self._strip(e)))

    def _names(self, part: pl.Expr) -> pl.Expr:
        """First comma part -> list of canonical names."""
        # An alternative or a second ingredient may have its own amount ("tuna or 4 x 175g
        # tuna steaks", "salt and a pinch of pepper"): strip it as at the start of a line.
        e = part.str.replace_many([" or ", " and "], [" \ue001\n", " \ue002\n"])
        e = e.str.replace_all(self._lead_rx, "").str.replace_many(
            [" \ue001\n", " \ue002\n", "\ue001\n", "\ue002\n"], [" or ", " and ", "or ", "and "]
        )
        e = self._or.first(self._same_head.first(THIRD_ALTERNATIVE.first(e)))
        e = self._and_shared.first(self._and_alone.first(e))
        e = self._finish(e.str.replace_all(" and ", "\n", literal=True))
        # A unit alone names nothing, wherever it is left over ("& to tbs or tbs"), as at a line's start.
        named = (pl.element() != "") & ~pl.element().is_in(self._lone_units)
        return e.str.split("\n").list.eval(pl.element().filter(named)).list.unique(maintain_order=True)

    def _finish(self, e: pl.Expr) -> pl.Expr:
        """Lines of cleaned names -> canonical names ('' when nothing is left or equipment)."""
        e = self._participle.every(self._strip(e)).str.replace_all(self._equipment_rx, "")
        e = self._part.every(e).str.replace_all(_JOIN, " ", literal=True)
        # Phrases are protected afresh (a shared head may have split one), then synonyms map
        # them to padded canonical names; a second pass catches a canonical name that forms
        # a new phrase with its neighbour ("cooking chorizo sausage" -> "chorizo sausage" ->
        # chorizo), so the result is a fixed point.
        table = {p: p for p in self._protected} | self._synonyms
        ordered = sorted(table, key=lambda p: (-len(p), p))
        patterns = [" " + k.replace(" ", _JOIN) + " " for k in ordered]
        values = [_padded(table[k]) for k in ordered]
        e = self._protect(self._pad(e), marked=False).str.replace_many(patterns, values, leftmost=True)
        e = self._protect(e, marked=False).str.replace_many(patterns, values, leftmost=True)
        return self._collapse(e.str.replace_all(_JOIN, " ", literal=True))


# ---------------------------------------------------------------------------------------
# Module-level API on a default instance

_default: Normalizer | None = None


def tables_fingerprint(extra_synonyms: Path | None = None) -> str:
    """:meth:`Normalizer.fingerprint` without building a normalizer (~30 ms): for cache keys, one per
    partition. A table that cannot be read raises ConfigError; other problems surface when it is used."""
    return _Tables(extra_synonyms).digest()[:16]


def default_normalizer() -> Normalizer:
    """The shared :class:`Normalizer` with the packaged tables only."""
    global _default
    if _default is None:
        _default = Normalizer()
    return _default


def normalize_lines(lines: Iterable[str | None]) -> list[str | None]:
    """One canonical name per raw line (its first ingredient), None for non-ingredient lines."""
    return default_normalizer().normalize_lines(lines)


def ingredient_names(lines: Iterable[str | None]) -> list[list[str]]:
    """Every ingredient name each raw line gives; [] for non-ingredient lines."""
    return default_normalizer().ingredient_names(lines)


def names_expr(expr: pl.Expr) -> pl.Expr:
    """Polars expression: raw line -> list[str] of ingredient names."""
    return default_normalizer().names_expr(expr)


def name_expr(expr: pl.Expr) -> pl.Expr:
    """Polars expression: raw line -> first ingredient name, or null."""
    return default_normalizer().name_expr(expr)


def normalize_frame(df: pl.DataFrame, column: str) -> pl.DataFrame:
    """``df`` plus a ``names`` list[str] column, normalizing each distinct line once."""
    return default_normalizer().normalize_frame(df, column)


def label_agreement(predicted: Iterable[str | None], labels: Iterable[str | None]) -> float:
    """Share of labelled lines whose predicted name matches the hand label.

    Both sides go through :meth:`Normalizer.comparison_key` of the default normalizer and
    a line counts when they share a key. Lines with a missing or blank label are skipped.
    """
    norm = default_normalizer()
    pairs = [(p, lab) for p, lab in zip(predicted, labels, strict=True) if lab and lab.strip()]
    if not pairs:
        raise NormalizationError("no labelled lines to compare against")
    keys_predicted = norm.comparison_key([p for p, _ in pairs])
    keys_label = norm.comparison_key([lab for _, lab in pairs])
    return sum(1 for kp, kl in zip(keys_predicted, keys_label, strict=True) if kp & kl) / len(pairs)
