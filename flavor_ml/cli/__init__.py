"""The ``flavor-ml`` command. Each sub-module adds its commands to :data:`app`.

Commands are a thin layer: they parse options, call the library or run a flow, and print.
Every command starts from the settings root (environment, ``.env``, then ``--home``/``--model-name``)
made this process's settings by :func:`flavor_ml.environment.activate`. Errors of our own become
one readable line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from flavor_ml.environment import activate
from flavor_ml.errors import FlavorError
from flavor_ml.settings import Settings

app = typer.Typer(
    name="flavor-ml",
    help="Learn ingredient embeddings from recipes, track them in MLflow, promote and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    home: Annotated[
        Path | None,
        typer.Option(
            help="where the embedded default keeps everything, and the stack its state (FLAVOR_HOME, ./.flavor)"
        ),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="the registered model to train, promote, list and serve (FLAVOR_MODEL_NAME)")
    ] = None,
) -> None:
    """Learn ingredient embeddings from recipes, track them in MLflow, promote and serve them."""
    activate(home=home, model_name=model_name)
    _hide_tracebacks_of_own_errors()


def settings(**overrides: object) -> Settings:
    """The settings root of this command, with a command's own options (``None`` = not given) on top."""
    return activate(None, **overrides)


def _hide_tracebacks_of_own_errors() -> None:
    """Prefect logs every task and flow failure with its traceback. For errors of ours the message
    says everything a user needs, so records of them are made without the traceback, for every
    handler, including those Prefect sets up later."""
    make_record = logging.getLogRecordFactory()
    if not isinstance(make_record, _WithoutOwnTracebacks):
        logging.setLogRecordFactory(_WithoutOwnTracebacks(make_record))


class _WithoutOwnTracebacks:
    """A log record factory that makes records of our own errors without their traceback."""

    def __init__(self, make_record: Callable[..., logging.LogRecord]) -> None:
        self._make_record = make_record

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._make_record(*args, **kwargs)
        if record.exc_info and isinstance(record.exc_info[1], FlavorError):
            record.exc_info, record.exc_text = None, None
        return record


def print_json(payload: Any) -> None:
    """One JSON object on stdout, nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def main() -> NoReturn:
    try:
        app()  # standalone: ends with SystemExit
        code: object = 0
    except FlavorError as exc:
        typer.echo(f"error: {exc}", err=True)
        code = 1
    except SystemExit as exit_:
        code = exit_.code
    _exit_without_teardown(code)


def _exit_without_teardown(code: object) -> NoReturn:
    """Exit as Python does, without its teardown of every imported module: freeing MLflow's,
    Prefect's and the scientific stack's modules one by one took 2.3 s of a 10 s warm ``train``
    (measured). What has to happen at exit still does, in Python's order: other threads are
    waited for, then the atexit handlers run (logging flushed and closed, Prefect's event and
    log workers drained, temporary folders removed), then the standard streams are flushed."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        raise SystemExit(code)  # a profiler or debugger is watching: let it write its report at the end
    # What the interpreter does first at exit: run the threading exit hooks (they stop idle
    # thread pools, whose workers would otherwise wait for work forever), then join the other
    # non-daemon threads. Joining without the hooks hung on a pool left running.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    if isinstance(code, str):  # as sys.exit("message") does
        print(code, file=sys.stderr)
    status = 0 if code is None else code if isinstance(code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


# Command modules register themselves on import; keep this list in the order of `--help`.
# isort: off
from flavor_ml.cli import train  # noqa: E402,F401
from flavor_ml.cli import serve  # noqa: E402,F401
from flavor_ml.cli import registry  # noqa: E402,F401
from flavor_ml.cli import stack  # noqa: E402,F401
from flavor_ml.cli import local  # noqa: E402,F401
from flavor_ml.cli import report  # noqa: E402,F401
# isort: on
