"""``flavor-ml promote``, ``flavor-ml rollback`` and ``flavor-ml models``.

``promote`` and ``rollback`` run the ``promote-model``/``rollback-model`` flows in-process, so
they take the same per-stage lock as a deployment and leave the same records. Exit codes:
0 promoted, unchanged, dry run (whatever its verdict) or rolled back; 3 rejected by a gate;
1 anything else that went wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from flavor_ml.cli import app, fail, print_json, settings
from flavor_ml.cli.tables import render_table
from flavor_ml.errors import FlavorError

EXIT_REJECTED = 3

_MODEL_NAME = typer.Option(
    None, "--model-name", help="registered model name [default: FLAVOR_MODEL_NAME, else flavor-ml-embeddings]"
)
_JSON = typer.Option(False, "--json", help="print one JSON object on stdout")


@app.command()
def promote(
    to: str = typer.Option(..., "--to", help="target stage: staging or production (Staging/Production work too)"),
    version: int | None = typer.Option(None, "--version", min=1, help="candidate version [default: the newest]"),
    policy: Path | None = typer.Option(
        None, "--policy", help="promotion policy file (YAML or TOML) [default: the bundled policy]"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="evaluate and report; move and record nothing"),
    json_output: bool = _JSON,
    model_name: str | None = _MODEL_NAME,
) -> None:
    """Promote a model version to a stage if it passes every gate of the policy."""
    from flavor_ml.registry.decisions import GatesFailed, PromotionDecision
    from flows.promote import promote_model

    model_name = settings(model_name=model_name).model_name
    try:
        decision = promote_model(
            stage=to,
            version=version,
            policy_path=str(policy) if policy else None,
            dry_run=dry_run,
            model_name=model_name,
        )
    except GatesFailed as rejected:
        decision = rejected.decision
    except FlavorError as exc:
        fail(str(exc))
    # The flow returns a Failed state on a rejection, which an in-process call raises as GatesFailed.
    assert isinstance(decision, PromotionDecision)
    if json_output:
        print_json(decision.as_json())
    else:
        typer.echo(_gate_table(decision.gates))
        typer.echo(decision.summary())
    if decision.decision == "rejected":
        raise typer.Exit(EXIT_REJECTED)


@app.command()
def rollback(
    stage: str = typer.Option(..., "--stage", help="stage to roll back: staging or production"),
    json_output: bool = _JSON,
    model_name: str | None = _MODEL_NAME,
) -> None:
    """Point a stage back at the version that held it before its last promotion."""
    from flows.promote import rollback_model

    model_name = settings(model_name=model_name).model_name
    try:
        result = rollback_model(stage=stage, model_name=model_name)
    except FlavorError as exc:
        fail(str(exc))
    if json_output:
        print_json(result.as_json())
    else:
        typer.echo(result.summary())


@app.command()
def models(
    json_output: bool = _JSON,
    model_name: str | None = _MODEL_NAME,
    card: int | None = typer.Option(
        None, "--card", min=1, metavar="VERSION", help="print the model card of this version instead"
    ),
) -> None:
    """List a model's versions with their aliases, key metrics and last promotion decision."""
    from flavor_ml.registry.listing import KEY_METRICS, list_models
    from flavor_ml.registry.store import Registry

    model_name = settings(model_name=model_name).model_name
    registry = Registry.at()
    if card is not None:
        import os

        from flavor_ml.model_card import read_model_card

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stdout is the card alone

        try:
            text = read_model_card(registry.client, model_name, card)
        except FlavorError as exc:
            fail(str(exc))
        if json_output:
            print_json({"model_name": model_name, "version": card, "card": text})
        else:
            typer.echo(text, nl=not text.endswith("\n"))
        return
    try:
        versions = list_models(registry, model_name)
    except FlavorError as exc:
        fail(str(exc))
    if json_output:
        print_json(
            {"model_name": model_name, "tracking_uri": registry.uri, "versions": [v.as_json() for v in versions]}
        )
        return
    if not versions:
        typer.echo(f"no versions of {model_name} in {registry.uri} yet")
        return
    rows = []
    for v in versions:
        last = v.last_decision
        rows.append(
            [
                str(v.version),
                ",".join(v.aliases) or "-",
                *(f"{v.metrics[m]:.4f}" if m in v.metrics else "-" for m in KEY_METRICS),
                f"{last['status']} ({last['stage']}, {last['decided_at'][:19]})" if last else "-",
                (v.git_sha or "-")[:10],
            ]
        )
    typer.echo(render_table(["version", "aliases", *KEY_METRICS, "last decision", "git sha"], rows))


def _gate_table(gates: list[Any]) -> str:
    rows = [
        [
            gate.name,
            _number(gate.value),
            f"{gate.op} {_number(gate.threshold)}".strip(),
            "pass" if gate.passed else "FAIL",
            gate.reason,
        ]
        for gate in gates
    ]
    return render_table(["gate", "value", "rule", "result", "reason"], rows)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)
