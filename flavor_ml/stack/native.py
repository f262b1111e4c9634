"""The stack as local processes on loopback: ``up``, ``down``, ``status``.

Everything lives under ``<FLAVOR_HOME>/stack``: ``state.json`` (pid, start time, port and URL
of each service), ``logs/<service>.log``, ``credentials.env`` (0600) and the services' own
files (Prefect's home, MinIO's data, MLflow's auth config).

``up`` creates the databases (or checks that the existing ones are this stack's:
:mod:`~flavor_ml.stack.databases`), then starts each service once the services it depends on
are healthy, and leaves running whatever already runs healthy, so calling it twice is harmless.
After the S3 store is healthy it creates the bucket; after the Prefect server is healthy it
runs the bootstrap script the caller names (:class:`BootstrapScript`; the CLI passes
``deployments/bootstrap.py``: work pool and blocks), so the library never imports the app
layer. Each service, once healthy, must accept the credentials the stack hands out
(:mod:`~flavor_ml.stack.credential_checks`); ``up`` fails naming the service and how to reset
it otherwise, and ``status`` reports it as ``auth-mismatch`` rather than ``up``. ``down`` stops
every service and everything it started (SIGTERM, then SIGKILL), the API and the worker before
the servers.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeGuard

from flavor_ml.atomic import atomic_path
from flavor_ml.errors import ConfigError
from flavor_ml.stack import processes
from flavor_ml.stack.bucket import ensure_bucket
from flavor_ml.stack.config import StackSettings, load_settings, save_settings
from flavor_ml.stack.credential_checks import CHECKED_CREDENTIALS, check_service
from flavor_ml.stack.credentials import CREDENTIAL_VARIABLES, load_credentials, read_credentials
from flavor_ml.stack.databases import (
    DROP_COMMAND,
    claim_databases,
    database_owners,
    databases,
    drop_databases,
    ensure_databases,
    ensure_stack_id,
    postgres_reachable,
    read_stack_id,
)
from flavor_ml.stack.errors import StackError
from flavor_ml.stack.services import (
    API,
    MLFLOW,
    PORT_VARIABLES,
    POSTGRES,
    PREFECT_SERVER,
    S3,
    WORKER,
    Service,
    bootstrap_environment,
    build_services,
    s3_implementation,
)

Echo = Callable[[str], None]

# Variables of the caller that must not reach the services: a Prefect Cloud key beats basic auth.
_DROPPED_ENV = ("PREFECT_API_KEY",)


@dataclass
class ServiceStatus:
    """What ``status`` reports for one service."""

    name: str
    #: "up", "auth-mismatch" (healthy, but refuses the stack's credentials), "unhealthy" (running,
    #: not answering its health check) or "down"
    state: str
    pid: int | None
    port: int
    url: str
    implementation: str = ""
    log: str | None = None
    problem: str | None = None  # what is wrong with it, and what to do, when it is not "up"


# -- state file ---------------------------------------------------------------------------------


def _read_state(settings: StackSettings) -> dict[str, dict[str, Any]]:
    try:
        services: dict[str, dict[str, Any]] = json.loads(settings.state_file.read_text())["services"]
        return services
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError) as exc:
        raise StackError(f"{settings.state_file} is unreadable ({exc}); stop stray processes and remove it") from None


def _write_state(settings: StackSettings, services: Mapping[str, Mapping[str, Any]]) -> None:
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(settings.state_file) as tmp:
        tmp.write_text(json.dumps({"services": services}, indent=2))


@contextlib.contextmanager
def _locked(settings: StackSettings) -> Iterator[None]:
    """One ``up``/``down`` at a time per stack folder."""
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    with (settings.stack_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(entry: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    return entry is not None and bool(entry) and processes.is_running(entry.get("pid"), entry.get("started"))


# -- health -------------------------------------------------------------------------------------


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


_WHAT_NOW = "`flavor-ml stack status` shows what runs, `flavor-ml stack down` stops it"


def _wait_healthy(service: Service, entry: dict[str, Any], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(entry):
            raise StackError(
                f"{service.name} exited before it was healthy ({_WHAT_NOW}); the end of {log}:\n{_tail(log)}"
            )
        if _answers(service.health_url):
            return
        time.sleep(0.5)
    raise StackError(
        f"{service.name} was not healthy at {service.health_url} after {timeout:.0f} s "
        f"(FLAVOR_STACK_START_TIMEOUT; {_WHAT_NOW}); the end of {log}:\n{_tail(log)}"
    )


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# -- credentials ---------------------------------------------------------------------------------

_RESTART = "`flavor-ml stack down` and `flavor-ml stack up` restart it with the credentials in effect now"


def _credential_advice(name: str, settings: StackSettings) -> str:
    """What to do when the service ``name`` refuses the credentials of ``credentials.env`` / the environment."""
    if name == MLFLOW:
        advice = (
            f"MLflow keeps its users and their passwords in its database {settings.mlflow_db!r} from the "
            "first start on it, so that database was set up with other credentials (by another stack home, "
            "or by this home before its credentials changed). Set MLFLOW_TRACKING_USERNAME / "
            "MLFLOW_TRACKING_PASSWORD to the admin it was set up with, or start afresh: `flavor-ml stack down`, "
            f"`{DROP_COMMAND}` (drops {' and '.join(databases(settings))} with their run history and "
            "registry), `flavor-ml stack up`"
        )
        if _records_no_owner(settings, settings.mlflow_db):
            advice += (
                f". Careful: {settings.mlflow_db!r} records no owning stack (an older flavor-ml made it), so "
                "another home may still use it; if one does, do not drop it, but unset FLAVOR_MLFLOW_DB / "
                f"FLAVOR_PREFECT_DB (and their lines in {settings.stack_dir / 'settings.env'}) to give this "
                "home databases of its own"
            )
        return advice
    if name == S3:
        kept = (
            f"; MinIO also keeps its keys in {settings.stack_dir / 'minio-data'}, which then needs removing"
            if s3_implementation(settings) == "minio"
            else ""
        )
        return f"the S3 store was started with other AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: {_RESTART}{kept}"
    if name == PREFECT_SERVER:
        return f"the Prefect server was started with another PREFECT_API_AUTH_STRING: {_RESTART}"
    return f"the API was started with another FLAVOR_API_ADMIN_TOKEN: {_RESTART}"


def _records_no_owner(settings: StackSettings, database: str) -> bool:
    """Whether ``database`` exists without a recorded owner (made before owners were recorded)."""
    try:
        owners = database_owners(settings)
    except (StackError, ConfigError):
        return False
    return database in owners and owners[database] is None


def _credential_problem(name: str, url: str, settings: StackSettings, credentials: Mapping[str, str]) -> str | None:
    """None when the service at ``url`` accepts ``credentials`` (and refuses none); else what is wrong and the fix."""
    missing = [variable for variable in CHECKED_CREDENTIALS.get(name, ()) if not credentials.get(variable)]
    if missing:
        return (
            f"{name} at {url} cannot be checked: {', '.join(missing)} is set neither in the environment nor "
            f"in {settings.credentials_file}, so no client can use it; set it, or restore that file"
        )
    refusal = check_service(name, url, settings, credentials)
    if refusal is None:
        return None
    advice = _credential_advice(name, settings) if refusal.refused else _RESTART
    return f"{name} at {url} {refusal.message}. {advice}"


# -- bootstrap (Prefect work pool and blocks) ---------------------------------------------------


@dataclass(frozen=True)
class BootstrapScript:
    """A Python module run as ``python -m <module>`` (from ``project_root``) once the Prefect
    server is healthy; it reads :func:`~flavor_ml.stack.services.bootstrap_environment`."""

    module: str
    project_root: Path


class _Bootstrap:
    """The bootstrap script against the running stack, output in logs/bootstrap.log."""

    def __init__(self, settings: StackSettings, credentials: Mapping[str, str], script: BootstrapScript) -> None:
        env = _service_env(
            {**bootstrap_environment(settings, credentials), "PREFECT_HOME": str(settings.stack_dir / "prefect-home")}
        )
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(script.project_root), env.get("PYTHONPATH")]))
        self.settings = settings
        self.log = settings.log_dir / "bootstrap.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as handle:
            handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} bootstrap\n".encode())
            handle.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", script.module],
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait(self, echo: Echo, timeout: float = 300) -> None:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = None
        if code != 0:
            raise StackError(f"bootstrap (work pool and blocks) failed; the end of {self.log}:\n{_tail(self.log)}")
        settings = self.settings
        echo(
            f"bootstrap: work pool {settings.work_pool!r}, blocks {settings.result_storage_block!r} and "
            f"'aws-credentials/{settings.aws_credentials_block}' are in place"
        )


def run_bootstrap(
    settings: StackSettings, credentials: Mapping[str, str], script: BootstrapScript, echo: Echo = print
) -> None:
    """Create the work pool and blocks on the stack's Prefect server (idempotent); StackError if it fails."""
    _Bootstrap(settings, credentials, script).wait(echo)


def _service_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _DROPPED_ENV}
    # Logs reach <home>/stack/logs as they are written, not a buffer at a time (as in the image).
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# -- up / down / status -------------------------------------------------------------------------

#: What the services import, beyond the base install, and what provides it.
_STACK_EXTRA = "install the stack extra: `make install`, or `uv sync --extra stack` / `pip install 'flavor-ml[stack]'`"
_NEEDED_MODULES = {
    "flask_wtf": "MLflow's basic-auth app needs Flask-WTF (mlflow[auth])",
    "psycopg2": "MLflow's PostgreSQL backend store needs psycopg2 (psycopg2-binary)",
    "asyncpg": "Prefect's PostgreSQL database needs asyncpg",
}
_MOTO_MODULES = {
    "moto": "the S3 store needs MinIO on PATH or moto's server (moto[server])",
    "werkzeug": "moto's server needs werkzeug",
}


def preflight(settings: StackSettings) -> None:
    """Refuse before anything starts, saying what to install, when a package a service needs is missing."""
    needed = dict(_NEEDED_MODULES)
    if s3_implementation(settings) == "moto":
        needed.update(_MOTO_MODULES)
    missing = [message for module, message in needed.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ConfigError(f"the stack cannot start: {'; '.join(missing)}; {_STACK_EXTRA}")


def up(
    settings: StackSettings | None = None,
    *,
    with_api: bool | None = None,
    echo: Echo = print,
    cwd: Path | None = None,
    bootstrap: BootstrapScript | None = None,
) -> list[ServiceStatus]:
    """Start whatever of the stack is not running, in dependency order; return the status of each.

    ``cwd`` is the working directory of the worker (and so of its flow runs); the current one
    by default. ``bootstrap`` runs once the Prefect server is healthy (none: no bootstrap).
    """
    settings = settings or load_settings()
    preflight(settings)
    credentials = load_credentials(settings.credentials_file)
    services = build_services(settings, credentials, with_api=with_api)
    by_name = {service.name: service for service in services}
    stack_id = ensure_stack_id(settings)
    found = ensure_databases(settings, stack_id)  # before anything starts: refuses another stack's databases
    save_settings(settings)
    if found.created:
        echo(f"{POSTGRES}: created database(s) {', '.join(found.created)}, owned by this stack ({stack_id})")

    bootstraps: list[tuple[dict[str, Any], _Bootstrap]] = []

    def create_bucket() -> None:
        if ensure_bucket(by_name[S3].url, settings.s3_bucket, credentials, settings.s3_region):
            echo(f"{S3}: created bucket {settings.s3_bucket!r}")

    # Run once per process of the service (recorded in its state entry), once it is healthy.
    # The bootstrap runs beside the services started after it; `up` waits for it at the end.
    after_healthy: dict[str, Callable[[], None]] = {S3: create_bucket}
    if bootstrap is not None:
        after_healthy[PREFECT_SERVER] = lambda: bootstraps.append(
            (state[PREFECT_SERVER], _Bootstrap(settings, credentials, bootstrap))
        )

    def prove(name: str, url: str) -> None:
        """The service ``name`` at ``url`` accepts the credentials handed out, or `up` fails saying what to do."""
        problem = _credential_problem(name, url, settings, credentials)
        if problem:
            raise StackError(problem)

    with _locked(settings):
        state = _read_state(settings)
        ready: set[str] = set()
        launched: set[str] = set()

        def make_ready(name: str) -> None:
            if name in ready:
                return
            service, entry = by_name[name], state[name]
            _wait_healthy(service, entry, Path(entry["log"]), settings.stack_start_timeout)
            ready.add(name)
            waited = f" ({time.time() - entry['launched_at']:.1f} s after its start)" if name in launched else ""
            echo(f"{name}: healthy at {service.url}{waited}")
            try:
                if name in after_healthy and not entry.get("prepared"):
                    after_healthy[name]()
                    entry["prepared"] = name != PREFECT_SERVER  # the bootstrap: once it has succeeded
            except StackError:
                prove(name, service.url)  # e.g. a bucket not created for want of the right keys: say that
                raise
            prove(name, service.url)

        try:
            _start(services, state, settings, make_ready, launched, echo, cwd)
            for entry, running in bootstraps:
                running.wait(echo)
                entry["prepared"] = True
            if found.unclaimed and MLFLOW in ready:
                claimed = claim_databases(settings, found.unclaimed, stack_id)
                echo(
                    f"{POSTGRES}: database(s) {', '.join(claimed)} recorded no owner; they accept this "
                    f"stack's credentials and are now recorded as its own ({stack_id})"
                )
        except BaseException:
            for _, running in bootstraps:  # it would only wait for a server about to stop
                running.process.kill()
                running.process.wait()
            _stop_launched(state, launched, settings, echo)
            raise
        _write_state(settings, state)
    return status(settings, with_api=with_api)


def _start(
    services: list[Service],
    state: dict[str, Any],
    settings: StackSettings,
    make_ready: Callable[[str], None],
    launched: set[str],
    echo: Echo,
    cwd: Path | None,
) -> None:
    """Launch each service that is not running, its dependencies healthy first; wait until all are."""
    for service in services:
        for dependency in service.depends_on:
            make_ready(dependency)
        entry = state.get(service.name)
        if _alive(entry):
            if entry["port"] != service.port:
                raise StackError(
                    f"{service.name} already runs on port {entry['port']}, not "
                    f"{service.port} ({PORT_VARIABLES[service.name]}); run `flavor-ml stack down` first"
                )
            echo(f"{service.name}: already running (pid {entry['pid']})")
            continue
        if not _port_is_free(service.host, service.port):
            raise StackError(
                f"port {service.port} on {service.host} is taken by another program; "
                f"stop it or set {PORT_VARIABLES[service.name]} to a free port for {service.name}"
            )
        log = settings.log_dir / f"{service.name}.log"
        process = processes.launch(service.command, log, _service_env(service.env), cwd=cwd)
        state[service.name] = {
            "pid": process.pid,
            "started": processes.start_time(process.pid),
            "port": service.port,
            "url": service.url,
            "health_url": service.health_url,
            "log": str(log),
            "implementation": service.implementation,
            "launched_at": time.time(),
        }
        _write_state(settings, state)
        launched.add(service.name)
        echo(f"{service.name}: started (pid {process.pid}, {service.implementation}), log {log}")
    for service in services:
        make_ready(service.name)


def _stop_launched(state: dict[str, Any], launched: set[str], settings: StackSettings, echo: Echo) -> None:
    """`up` failed: stop what this call started (what already ran before it stays), newest first."""
    for name in reversed([name for name in state if name in launched]):
        entry = state.pop(name)
        outcome = processes.terminate(entry["pid"], entry.get("started"))
        echo(f"{name}: {outcome} (pid {entry['pid']}), since `up` failed; its log: {entry['log']}")
    _write_state(settings, state)


# Stopped in this order, the services of one step together: clients before the servers they use.
_STOP_ORDER: tuple[tuple[str, ...], ...] = ((API, WORKER), (MLFLOW, PREFECT_SERVER), (S3,))


def down(settings: StackSettings | None = None, *, echo: Echo = print, timeout: float = 20.0) -> dict[str, str]:
    """Stop every service the state file knows, clients first; return what happened to each."""
    from concurrent.futures import ThreadPoolExecutor

    settings = settings or load_settings()
    results: dict[str, str] = {}
    with _locked(settings):
        state = _read_state(settings)
        known = {name for step in _STOP_ORDER for name in step}
        steps = [[name for name in step if name in state] for step in _STOP_ORDER]
        steps.append([name for name in state if name not in known])
        for step in filter(None, steps):
            with ThreadPoolExecutor(len(step)) as pool:
                outcomes = pool.map(
                    lambda name: processes.terminate(state[name]["pid"], state[name].get("started"), timeout=timeout),
                    step,
                )
                for name, outcome in zip(step, outcomes):
                    results[name] = outcome
                    echo(f"{name}: {outcome} (pid {state[name]['pid']})")
            for name in step:
                del state[name]
            _write_state(settings, state)
    if not results:
        echo("nothing is running")
    return results


def status(settings: StackSettings | None = None, *, with_api: bool | None = None) -> list[ServiceStatus]:
    """Each service of the stack: up (healthy, accepts the stack's credentials), auth-mismatch (healthy,
    refuses them), unhealthy (running, not answering), down; and PostgreSQL."""
    settings = settings or load_settings()
    state = _read_state(settings)
    credentials = read_credentials(settings.credentials_file)
    report = [_postgres_status(settings)]
    no_secrets = dict.fromkeys(CREDENTIAL_VARIABLES, "")  # names, ports and URLs need none
    expected = build_services(settings, no_secrets, with_api=with_api)
    names = [service.name for service in expected] + [
        name for name in state if name not in {service.name for service in expected}
    ]
    by_name = {service.name: service for service in expected}
    for name in names:
        entry = state.get(name)
        service = by_name.get(name)
        if _alive(entry):
            healthy = _answers(entry["health_url"])
            problem = _credential_problem(name, entry["url"], settings, credentials) if healthy else None
            state_name = "auth-mismatch" if problem else "up" if healthy else "unhealthy"
            report.append(
                ServiceStatus(
                    name,
                    state_name,
                    entry["pid"],
                    entry["port"],
                    entry["url"],
                    entry.get("implementation", ""),
                    entry["log"],
                    problem,
                )
            )
        elif service is not None:
            report.append(
                ServiceStatus(
                    name,
                    "down",
                    None,
                    service.port,
                    service.url,
                    service.implementation,
                    str(settings.log_dir / f"{name}.log"),
                )
            )
    return report


def drop_stack_databases(settings: StackSettings | None = None, *, echo: Echo = print) -> list[str]:
    """Drop this home's Prefect and MLflow databases, with their run history, registry and users: to start
    afresh after a reset home. Refuses while a service of this stack runs, and a database another stack
    (whose home still exists) owns. Returns the databases dropped."""
    settings = settings or load_settings()
    with _locked(settings):
        running = [name for name, entry in _read_state(settings).items() if _alive(entry)]
        if running:
            raise StackError(f"{', '.join(running)} of this stack still run; `flavor-ml stack down` first")
        owners = database_owners(settings)
        this = (read_stack_id(settings), str(settings.home.resolve()))
        for name, owner in owners.items():
            if owner is not None and owner.still_exists() and (owner.stack_id, owner.home) != this:
                raise StackError(
                    f"database {name!r} belongs to the stack at {owner.home}, which still exists; "
                    "nothing was dropped. Set FLAVOR_PREFECT_DB / FLAVOR_MLFLOW_DB to databases of "
                    f"this home's own, or drop it from that home: `{DROP_COMMAND} --home {owner.home}`"
                )
        drop_databases(settings)
    for name in owners:
        echo(f"{POSTGRES}: dropped database {name}")
    if not owners:
        echo(f"{POSTGRES}: none of {', '.join(databases(settings))} exists")
    return list(owners)


def _postgres_status(settings: StackSettings) -> ServiceStatus:
    url = f"postgresql://{settings.postgres_host}:{settings.postgres_port}"
    return ServiceStatus(
        POSTGRES,
        "up" if postgres_reachable(settings) else "down",
        None,
        settings.postgres_port,
        url,
        "external: the machine's PostgreSQL",
    )


def as_dicts(report: list[ServiceStatus]) -> list[dict[str, Any]]:
    return [asdict(item) for item in report]
