"""``flavor-ml local status|stop``: the embedded default's background Prefect server."""

from __future__ import annotations

import typer

from flavor_ml.cli import app, print_json, settings

local_app = typer.Typer(
    help="The embedded default's background Prefect server (one per FLAVOR_HOME).", no_args_is_help=True
)
app.add_typer(local_app, name="local")


@local_app.command()
def status(json_output: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Whether the home's Prefect server runs, where, and its log (exit status 3 when it does not)."""
    from flavor_ml import local_prefect

    home = settings().home
    state = local_prefect.read_state(home) or {}
    running = bool(state) and local_prefect.is_healthy(state)
    if json_output:
        print_json({"home": str(home), "running": running, **state})
    elif running:
        typer.echo(
            f"Prefect server of {home}: up at {state['url']} (pid {state['pid']}, UI at "
            f"{state['url'].removesuffix('/api')}), log {state['log']}"
        )
    else:
        typer.echo(f"Prefect server of {home}: not running (the next command that runs a flow starts it)")
    if not running:
        raise typer.Exit(3)


@local_app.command()
def stop() -> None:
    """Stop the home's Prefect server (it also stops by itself after FLAVOR_PREFECT_IDLE_SECONDS)."""
    from flavor_ml import local_prefect

    home = settings().home
    typer.echo(f"Prefect server of {home}: {local_prefect.stop(home)}")
