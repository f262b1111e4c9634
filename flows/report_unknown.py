"""The ``report-unknown`` flow: what callers asked the API for that the model lacks, and the synonym rows
that would map those names to known ingredients, as a Prefect artifact (and a CSV for the normalizer).

The API's URL and admin token come from the environment of the run (``FLAVOR_API_URL``,
``FLAVOR_API_ADMIN_TOKEN``), never from parameters, so the token is not stored with the flow run.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flavor_ml.errors import ConfigError
from flavor_ml.settings import ApiClientSettings
from flavor_ml.unknown_report import (
    DEFAULT_LIMIT,
    DEFAULT_MIN_SIMILARITY,
    UnknownReport,
    UnknownSnapshot,
    fetch_unknown,
    report_markdown,
    suggest_synonyms,
    write_synonyms_csv,
)


def _not_a_config_error(task, task_run, state) -> bool:
    """Retry what a second attempt may fix (the API restarting), not a missing token."""
    try:
        state.result()
    except ConfigError:
        return False
    except Exception:  # noqa: BLE001  anything else is worth another attempt
        return True
    return True


@task(
    name="fetch-unknown",
    task_run_name="fetch-unknown",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_not_a_config_error,
)
def fetch_unknown_names(api_url: str | None, limit: int) -> UnknownSnapshot:
    settings = ApiClientSettings(**({"api_url": api_url} if api_url else {}))
    return fetch_unknown(settings, limit)


@task(name="suggest-synonyms", task_run_name="suggest-synonyms", cache_policy=NO_CACHE)
def suggest(snapshot: UnknownSnapshot, min_similarity: float, synonyms_out: str | None) -> UnknownReport:
    report = suggest_synonyms(snapshot, min_similarity)
    if synonyms_out:
        report.synonyms_csv = str(write_synonyms_csv(report, Path(synonyms_out)))
    return report


@task(name="publish-unknown", task_run_name="publish-unknown", cache_policy=NO_CACHE)
def publish(report: UnknownReport) -> None:
    create_markdown_artifact(
        report_markdown(report),
        key="unknown-ingredients",
        description="unknown ingredient names callers asked for, and proposed synonym rows",
    )
    proposed = {s.variant: s.canonical for s in report.suggestions}
    create_table_artifact(
        [
            {
                "unknown": u.name,
                "asked": u.count,
                "error": u.error,
                "proposed_canonical": proposed.get(u.name, ""),
                "close_known": ", ".join(u.did_you_mean),
            }
            for u in report.snapshot.unknown
        ],
        key="unknown-ingredients-table",
        description="top unknown ingredient names (normalized)",
    )


@flow(name="report-unknown")
def report_unknown(
    api_url: str | None = None,
    limit: int = DEFAULT_LIMIT,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    synonyms_out: str | None = None,
) -> UnknownReport:
    """Pull the unknown-name counts from the API (``FLAVOR_API_URL`` by default) and propose synonym rows."""
    snapshot = fetch_unknown_names(api_url, limit)
    report = suggest(snapshot, min_similarity, synonyms_out)
    publish(report)
    return report


if __name__ == "__main__":
    print(report_unknown().model_dump_json(indent=2))
