"""``flavor-ml report-unknown``: what callers asked the API for that the model lacks, and proposed synonym rows.

Runs the ``report-unknown`` flow in this process (its artifact lands in Prefect like a deployment's).
The API is ``--api-url`` or ``FLAVOR_API_URL``; its admin token is ``FLAVOR_API_ADMIN_TOKEN``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from flavor_ml.cli import app, fail, print_json, settings
from flavor_ml.errors import FlavorError


@app.command("report-unknown")
def report_unknown(
    api_url: Annotated[
        str | None, typer.Option(help="the inference API [default: FLAVOR_API_URL or http://127.0.0.1:8000]")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="how many of the most asked-for unknown names to read")] = 100,
    min_similarity: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="how alike (difflib ratio) a known name must be to be proposed")
    ] = 0.8,
    synonyms_out: Annotated[
        Path | None, typer.Option(help="write the proposed rows as an extra synonym table (CSV) here")
    ] = None,
    home: Annotated[Path | None, typer.Option(help="the embedded default's folder (FLAVOR_HOME, ./.flavor)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object instead of text")] = False,
) -> None:
    """List the unknown ingredient names the API was asked for and propose synonym-table rows for them."""
    from flavor_ml.settings import ApiClientSettings

    if ApiClientSettings().api_admin_token is None:  # say so now, not after starting Prefect
        fail(
            "reading unknown names needs the API's admin token: set FLAVOR_API_ADMIN_TOKEN "
            "(`flavor-ml stack env` prints it for the native stack)"
        )
    settings(home=home)
    if json_output:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flavor_ml.unknown_report import report_markdown
    from flows.report_unknown import report_unknown as report_flow

    state = report_flow(
        api_url=api_url,
        limit=limit,
        min_similarity=min_similarity,
        synonyms_out=str(synonyms_out) if synonyms_out else None,
        return_state=True,
    )
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result if isinstance(result, FlavorError) else FlavorError(f"the report-unknown flow failed: {result}")
    if json_output:
        print_json(result.model_dump(mode="json"))
        return
    typer.echo(report_markdown(result))
    if result.synonyms_csv:
        typer.echo(
            f"\nproposed synonym rows written to {result.synonyms_csv} "
            "(review them, then FLAVOR_NORMALIZE_EXTRA_SYNONYMS=<file>)"
        )
