"""From what callers ask that the model lacks back to the normalizer's synonym table.

The inference API counts unknown ingredient names (normalized, bounded; see
:mod:`flavor_ml.serving.unknown`) and lists them at ``GET /admin/unknown`` with close known
names. This module pulls that list, proposes a synonym-table row (``variant,canonical``) for
each unknown name with a close enough known name, and writes the rows as a CSV that
``FLAVOR_NORMALIZE_EXTRA_SYNONYMS`` (``--extra-synonyms``) reads: after a review, the next
training run and the API map those spellings to the known ingredient.
"""

from __future__ import annotations

import csv
import difflib
import io
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import BaseModel, Field

from flavor_ml.atomic import atomic_path
from flavor_ml.errors import ConfigError, ServiceError
from flavor_ml.settings import ApiClientSettings
from flavor_ml.visualize import markdown_cell as _cell

DEFAULT_LIMIT = 100
#: difflib ratio from which a close known name is proposed as the canonical form of an unknown one.
DEFAULT_MIN_SIMILARITY = 0.8


class UnknownName(BaseModel):
    name: str
    count: int
    error: int = 0
    did_you_mean: list[str] = Field(default_factory=list)
    known_now: bool = False  # the version served now knows it (counted while an older one was served)


class UnknownSnapshot(BaseModel):
    """What ``GET /admin/unknown`` answered."""

    api_url: str
    model_name: str | None = None
    model_version: str | None = None
    since: datetime
    capacity: int
    tracked: int
    total_unknown_queries: int
    unnamed_queries: int
    unknown: list[UnknownName]


class SynonymSuggestion(BaseModel):
    variant: str
    canonical: str
    similarity: float
    count: int


class UnknownReport(BaseModel):
    snapshot: UnknownSnapshot
    min_similarity: float
    suggestions: list[SynonymSuggestion]
    synonyms_csv: str | None = None


def fetch_unknown(
    settings: ApiClientSettings, limit: int = DEFAULT_LIMIT, transport: httpx.BaseTransport | None = None
) -> UnknownSnapshot:
    """The API's unknown-name counts; ServiceError (ConfigError without a token) naming the URL otherwise."""
    if settings.api_admin_token is None:
        raise ConfigError(
            "reading unknown names needs the API's admin token: set FLAVOR_API_ADMIN_TOKEN "
            "(`flavor-ml stack env` prints it for the native stack)"
        )
    url = f"{settings.api_url.rstrip('/')}/admin/unknown"
    headers = {"Authorization": f"Bearer {settings.api_admin_token.get_secret_value()}"}
    try:
        with httpx.Client(timeout=settings.api_timeout_seconds, transport=transport) as client:
            response = client.get(url, params={"limit": limit}, headers=headers)
    except httpx.HTTPError as exc:
        raise ServiceError(f"cannot reach the inference API at {url}: {exc}") from exc
    if response.status_code != 200:
        raise ServiceError(f"GET {url} answered {response.status_code}: {_error_text(response)}")
    try:
        return UnknownSnapshot.model_validate({**response.json(), "api_url": settings.api_url})
    except ValueError as exc:
        raise ServiceError(f"GET {url} answered something that is not an unknown-name list: {exc}") from exc


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body.get('error')}: {body.get('detail')}"
    except ValueError:
        return response.text[:200]


def closest_known(name: str, candidates: list[str]) -> tuple[str, float] | None:
    """The most similar known name and its difflib ratio (ties: the first the API listed)."""
    scored = [(candidate, difflib.SequenceMatcher(None, name, candidate).ratio()) for candidate in candidates]
    return max(scored, key=lambda pair: pair[1]) if scored else None


def suggest_synonyms(snapshot: UnknownSnapshot, min_similarity: float = DEFAULT_MIN_SIMILARITY) -> UnknownReport:
    """A ``variant,canonical`` proposal for each unknown name with a known name at least ``min_similarity`` alike."""
    suggestions = []
    for unknown in snapshot.unknown:
        if unknown.known_now:
            continue
        best = closest_known(unknown.name, unknown.did_you_mean)
        if best is not None and best[1] >= min_similarity and best[0] != unknown.name:
            suggestions.append(
                SynonymSuggestion(
                    variant=unknown.name, canonical=best[0], similarity=round(best[1], 3), count=unknown.count
                )
            )
    return UnknownReport(snapshot=snapshot, min_similarity=min_similarity, suggestions=suggestions)


def synonyms_csv(report: UnknownReport) -> str:
    """The proposals as an extra synonym table (header ``variant,canonical``; the other columns are ignored)."""
    buffer = io.StringIO()
    buffer.write(
        f"# Proposed by flavor-ml report-unknown from {report.snapshot.api_url} "
        f"(model {report.snapshot.model_name} version {report.snapshot.model_version}, counts since "
        f"{report.snapshot.since.isoformat()}). Review before use: FLAVOR_NORMALIZE_EXTRA_SYNONYMS=<this file>\n"
    )
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["variant", "canonical", "asked", "similarity"])
    for s in report.suggestions:
        writer.writerow([s.variant, s.canonical, s.count, f"{s.similarity:.3f}"])
    return buffer.getvalue()


def write_synonyms_csv(report: UnknownReport, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(synonyms_csv(report), encoding="utf-8")
    return path


def report_markdown(report: UnknownReport, top: int = 50) -> str:
    """The top unknown names and the proposed synonym rows, for a Prefect artifact or a terminal."""
    snap = report.snapshot
    proposed = {s.variant: s for s in report.suggestions}
    lines = [
        "# Unknown ingredients asked for",
        "",
        (
            f"{snap.total_unknown_queries:,} queries for unknown names since {snap.since.isoformat(timespec='seconds')} "
            f"at {_cell(snap.api_url)} (model {_cell(str(snap.model_name))} version {_cell(str(snap.model_version))}); "
            f"{snap.tracked:,} distinct names tracked (at most {snap.capacity:,}), {snap.unnamed_queries:,} queries "
            "with nothing left after normalizing. Counts are upper bounds within the error shown."
        ),
        "",
        f"{len(report.suggestions)} synonym rows proposed (close known name, similarity >= {report.min_similarity}).",
        "",
    ]
    if not snap.unknown:
        return "\n".join(lines + ["No unknown names were asked for."])
    lines += [
        "| unknown (normalized) | asked | ± | proposed synonym | other close known names |",
        "|---|---:|---:|---|---|",
    ]
    for entry in snap.unknown[:top]:
        suggestion = proposed.get(entry.name)
        proposal = f"→ {_cell(suggestion.canonical)} ({suggestion.similarity:.2f})" if suggestion else "-"
        if entry.known_now:
            proposal = "known to the version served now"
        others = ", ".join(_cell(n) for n in entry.did_you_mean if not suggestion or n != suggestion.canonical) or "-"
        lines.append(f"| {_cell(entry.name)} | {entry.count} | {entry.error} | {proposal} | {others} |")
    return "\n".join(lines)
