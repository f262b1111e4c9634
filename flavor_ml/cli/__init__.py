"""The ``flavor-ml`` command. Each sub-module adds its commands to :data:`app`.

Commands are a thin layer: they parse options, call the library or run a flow, and print.
Errors of our own become one readable line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from flavor_ml.errors import FlavorError

app = typer.Typer(
    name="flavor-ml",
    help="Learn ingredient embeddings from recipes, track them in MLflow, promote and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def print_json(payload: Any) -> None:
    """One JSON object on stdout, nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except FlavorError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


# Command modules register themselves on import; keep this list in the order of `--help`.
from flavor_ml.cli import train  # noqa: E402,F401
from flavor_ml.cli import serve  # noqa: E402,F401
from flavor_ml.cli import registry  # noqa: E402,F401
from flavor_ml.cli import stack  # noqa: E402,F401
from flavor_ml.cli import report  # noqa: E402,F401
