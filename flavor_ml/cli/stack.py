"""``flavor-ml stack up|down|status|env|bootstrap|drop-databases``: the full stack as local processes on loopback.

The same services as docker-compose.yml (Prefect server and worker, MLflow, an S3 store, the
inference API), started natively for development and tests; see flavor_ml/stack/.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flavor_ml.cli import app, fail, print_json

if TYPE_CHECKING:
    from flavor_ml.stack.config import StackSettings
    from flavor_ml.stack.native import BootstrapScript, Echo, ServiceStatus

stack_app = typer.Typer(
    help="Run the full stack (Prefect server + worker, MLflow, S3 store, API) as local processes on loopback.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")

HomeOption = Annotated[
    Path | None, typer.Option(help="folder of the stack's state, logs and credentials (FLAVOR_HOME, ./.flavor)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object instead of text")]


def _settings(home: Path | None) -> StackSettings:
    from flavor_ml.stack.config import load_settings

    return load_settings(**({"home": home} if home else {}))


def _table(report: Sequence[ServiceStatus]) -> str:
    from flavor_ml.cli.tables import render_table

    return render_table(
        ("SERVICE", "STATE", "PID", "PORT", "URL", "RUNS"),
        [
            (item.name, item.state, str(item.pid or "-"), str(item.port), item.url, item.implementation)
            for item in report
        ],
    )


def _bootstrap_script() -> BootstrapScript:
    """``deployments/bootstrap.py``: the CLI sits above the deployments, so it names them to the stack."""
    from flavor_ml.stack.native import BootstrapScript

    try:
        import deployments.bootstrap as script
    except ImportError:
        fail(
            "deployments/bootstrap.py is not importable: run from the project folder or reinstall the project "
            "(pip install -e .)"
        )
    return BootstrapScript(script.__name__, Path(script.__file__).resolve().parents[1])


def _echo(quiet: bool) -> Echo:
    return (lambda line: typer.echo(line, err=True)) if quiet else typer.echo


@stack_app.command()
def up(
    home: HomeOption = None,
    api: Annotated[
        bool | None, typer.Option("--api/--no-api", help="run the inference API (default: FLAVOR_STACK_API, auto)")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Start what is not running yet, health-checked, in dependency order (safe to repeat)."""
    from flavor_ml.stack import native

    settings = _settings(home)
    report = native.up(settings, with_api=api, echo=_echo(json_output), bootstrap=_bootstrap_script())
    if json_output:
        print_json({"services": native.as_dicts(report), "logs": str(settings.log_dir)})
    else:
        typer.echo(_table(report))
        typer.echo(f'logs: {settings.log_dir}\nclient environment: eval "$(flavor-ml stack env)"')


@stack_app.command()
def down(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Stop every service of the stack and what it started (SIGTERM, then SIGKILL)."""
    from flavor_ml.stack import native

    results = native.down(_settings(home), echo=_echo(json_output))
    if json_output:
        print_json({"stopped": results})


@stack_app.command()
def status(
    home: HomeOption = None,
    api: Annotated[bool | None, typer.Option("--api/--no-api", help="whether the API is expected")] = None,
    json_output: JsonOption = False,
) -> None:
    """Each service: up, auth-mismatch (refuses the stack's credentials), unhealthy or down, with pid, port and
    URL. Exit status 3 unless all are up."""
    from flavor_ml.stack import native

    report = native.status(_settings(home), with_api=api)
    all_up = all(item.state == "up" for item in report)
    if json_output:
        print_json({"services": native.as_dicts(report), "all_up": all_up})
    else:
        typer.echo(_table(report))
        for item in report:
            if item.problem:
                typer.echo(f"\n{item.name}: {item.problem}")
    if not all_up:
        raise typer.Exit(3)


@stack_app.command("drop-databases")
def drop_databases(
    home: HomeOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Drop this home's Prefect and MLflow databases (run history, registry, MLflow users): to start afresh."""
    from flavor_ml.stack import native
    from flavor_ml.stack.databases import databases

    settings = _settings(home)
    names = ", ".join(databases(settings))
    if not yes and not typer.confirm(
        f"Drop {names} on {settings.postgres_host}:{settings.postgres_port}, with "
        "every run, model version and MLflow user in them?"
    ):
        raise typer.Exit(1)
    native.drop_stack_databases(settings, echo=typer.echo)


@stack_app.command()
def env(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Shell exports a client needs: API URLs and credentials. Use: eval "$(flavor-ml stack env)"."""
    from flavor_ml.stack.credentials import load_credentials
    from flavor_ml.stack.services import client_environment

    settings = _settings(home)
    variables = client_environment(settings, load_credentials(settings.credentials_file))
    if json_output:
        print_json(variables)
    else:
        typer.echo("\n".join(f"export {name}={shlex.quote(value)}" for name, value in variables.items()))


@stack_app.command()
def bootstrap(
    home: HomeOption = None,
    from_environment: Annotated[
        bool,
        typer.Option(
            "--from-environment",
            help="use PREFECT_API_URL, FLAVOR_S3_* and AWS_* as set (e.g. for compose) instead of the native stack's",
        ),
    ] = False,
) -> None:
    """Create the process work pool, the AwsCredentials block and the S3Bucket result-storage block."""
    if from_environment:
        import subprocess
        import sys

        raise typer.Exit(subprocess.call([sys.executable, "-m", "deployments.bootstrap"]))
    from flavor_ml.stack import native
    from flavor_ml.stack.credentials import load_credentials

    settings = _settings(home)
    native.run_bootstrap(settings, load_credentials(settings.credentials_file), _bootstrap_script(), echo=typer.echo)
