"""The stack's PostgreSQL databases: one for Prefect, one for MLflow, created when missing and owned by one stack.

Natively the stack uses the machine's PostgreSQL (``FLAVOR_POSTGRES_*``), which other stack
homes may use too; docker-compose runs its own, whose init script (deployments/postgres-init.sh)
creates the same two databases.

A database belongs to the stack that created it. MLflow keeps its users and their passwords in
its database, so a stack that reused another stack's MLflow database would have every request
refused (its credentials are not the ones stored there), and a Prefect server on another
stack's database would show that stack's runs. So each stack home has an identity (a random id
in ``<home>/stack/stack-id``, made by the first ``up``) and each database records its owner in
its PostgreSQL comment (``COMMENT ON DATABASE``: ``flavor-ml stack {"stack_id": ..., "home": ...}``).
``up`` refuses a database another stack owns, naming it, its owner and the fix. A database
without an owner (created before owners were recorded, or by hand) is adopted only once ``up``
has proved this stack's credentials against it (:func:`claim_databases`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flavor_ml.atomic import atomic_path
from flavor_ml.errors import ConfigError
from flavor_ml.stack.config import StackSettings, home_database
from flavor_ml.stack.errors import StackError

MARKER = "flavor-ml stack "
STACK_ID_FILE = "stack-id"
DROP_COMMAND = "flavor-ml stack drop-databases"


# -- the identity of a stack home --------------------------------------------------------------


def read_stack_id(settings: StackSettings) -> str | None:
    """This home's stack id, or None before its first ``up``."""
    try:
        return (settings.stack_dir / STACK_ID_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_stack_id(settings: StackSettings) -> str:
    """This home's stack id, made (and kept in ``stack/stack-id``) on first use."""
    existing = read_stack_id(settings)
    if existing:
        return existing
    stack_id = secrets.token_hex(8)
    with atomic_path(settings.stack_dir / STACK_ID_FILE) as tmp:
        tmp.write_text(stack_id + "\n")
    return stack_id


@dataclass(frozen=True)
class StackOwner:
    """Who created a database: the stack's id and home, and when."""

    stack_id: str
    home: str
    created: str

    def still_exists(self) -> bool:
        """Whether the owner's home is still there with the same identity (not removed, not reset)."""
        try:
            return (Path(self.home) / "stack" / STACK_ID_FILE).read_text().strip() == self.stack_id
        except OSError:
            return False

    def comment(self) -> str:
        return MARKER + json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def of(cls, settings: StackSettings, stack_id: str) -> StackOwner:
        return cls(stack_id, str(settings.home.resolve()), time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    @classmethod
    def parse(cls, database: str, comment: str | None) -> StackOwner | None:
        """The owner a database's comment records; None when it has no comment. StackError when the
        comment is someone else's: such a database is not the stack's to use."""
        if not comment:
            return None
        if comment.startswith(MARKER):
            try:
                fields = json.loads(comment.removeprefix(MARKER))
                return cls(str(fields["stack_id"]), str(fields["home"]), str(fields.get("created", "")))
            except (ValueError, KeyError, TypeError):
                pass
        raise StackError(
            f"PostgreSQL database {database!r} has a comment flavor-ml did not write ({comment[:200]!r}), "
            "so it is not a database of a flavor-ml stack; set FLAVOR_PREFECT_DB / FLAVOR_MLFLOW_DB "
            "to databases of this stack's own, or unset them"
        )


# -- connections --------------------------------------------------------------------------------


def _connect(settings: StackSettings, database: str = "postgres") -> Any:
    try:
        import psycopg2
    except ImportError:
        raise ConfigError(
            "the stack needs psycopg2 for PostgreSQL (MLflow's backend store uses it too): pip install psycopg2-binary"
        ) from None
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    try:
        connection = psycopg2.connect(
            host=settings.postgres_host,
            port=settings.postgres_port,
            user=settings.postgres_user,
            password=password,
            dbname=database,
            connect_timeout=5,
        )
    except psycopg2.OperationalError as exc:
        raise StackError(
            f"PostgreSQL is not reachable at {settings.postgres_host}:{settings.postgres_port} as "
            f"{settings.postgres_user!r} (FLAVOR_POSTGRES_HOST/PORT/USER/PASSWORD): {str(exc).strip()}"
        ) from None
    connection.autocommit = True
    return connection


def postgres_reachable(settings: StackSettings) -> bool:
    try:
        _connect(settings).close()
    except (StackError, ConfigError):
        return False
    return True


def databases(settings: StackSettings) -> dict[str, str]:
    """Each database of the stack and what it holds: ``{name: "Prefect"|"MLflow"}`` (one entry if they share)."""
    names: dict[str, str] = {}
    for name, role in ((settings.prefect_db, "Prefect"), (settings.mlflow_db, "MLflow")):
        names[name] = f"{names[name]} and {role}" if name in names else role
    return names


def _owners(cursor: Any, names: Iterable[str]) -> dict[str, StackOwner | None]:
    """The existing databases among ``names``, each with its recorded owner (None: none recorded)."""
    cursor.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = ANY(%s)", (list(names),)
    )
    return {name: StackOwner.parse(name, comment) for name, comment in cursor.fetchall()}


def _record_owner(cursor: Any, database: str, owner: StackOwner) -> None:
    cursor.execute(f'COMMENT ON DATABASE "{database}" IS %s', (owner.comment(),))  # name validated by StackSettings


def database_owners(settings: StackSettings) -> dict[str, StackOwner | None]:
    """The stack's databases that exist, each with the owner it records."""
    connection = _connect(settings)
    try:
        with connection.cursor() as cursor:
            return _owners(cursor, databases(settings))
    finally:
        connection.close()


# -- up: create, check, claim -------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseCheck:
    """What :func:`ensure_databases` found: the databases it created, and those that record no owner."""

    created: list[str]
    unclaimed: list[str]


def ensure_databases(settings: StackSettings, stack_id: str) -> DatabaseCheck:
    """Create the Prefect and MLflow databases if they do not exist, recording this stack as their owner.

    Raises StackError, before anything has started, when one belongs to another stack (another
    home, this home before it was reset, or a copy of this home), naming it and the fix.
    """
    created, unclaimed, conflicts = [], [], []
    ours = StackOwner.of(settings, stack_id)
    connection = _connect(settings)
    try:
        with connection.cursor() as cursor:
            owners = _owners(cursor, databases(settings))
            for name, role in databases(settings).items():
                if name not in owners:
                    cursor.execute(f'CREATE DATABASE "{name}"')  # name is validated by StackSettings
                    _record_owner(cursor, name, ours)
                    created.append(name)
                    continue
                owner = owners[name]
                if owner is None:
                    unclaimed.append(name)
                elif owner.stack_id != stack_id or (owner.home != ours.home and owner.still_exists()):
                    conflicts.append(_conflict(settings, name, role, owner))
                elif owner.home != ours.home:  # this home was moved: the database follows it
                    _record_owner(cursor, name, StackOwner(stack_id, ours.home, owner.created))
    finally:
        connection.close()
    if conflicts:
        raise StackError("; ".join(conflicts))
    return DatabaseCheck(created, unclaimed)


def _conflict(settings: StackSettings, name: str, role: str, owner: StackOwner) -> str:
    """Why ``name`` is not this stack's, and what to do about it."""
    variables = {"Prefect": "FLAVOR_PREFECT_DB", "MLflow": "FLAVOR_MLFLOW_DB"}
    why = (
        " (MLflow keeps its users and passwords there, so this stack's credentials would be refused)"
        if "MLflow" in role
        else " (its run history is that stack's)"
    )
    this_home = str(settings.home.resolve())
    if owner.home == this_home and not owner.still_exists():
        whose = f"an earlier stack of this home {this_home}, created {owner.created}, whose stack folder is gone"
        fix = (
            f"to start afresh, run `{DROP_COMMAND}` (it drops this home's databases, with that stack's run "
            f"history and registry) and `flavor-ml stack up` again; to keep them, restore "
            f"{settings.stack_dir} from a backup"
        )
    else:
        copy = " (this home is a copy of it)" if owner.stack_id == read_stack_id(settings) else ""
        whose = f"the stack at {owner.home}{copy}, created {owner.created}"
        default = home_database("flavor_prefect" if role == "Prefect" else "flavor_mlflow", settings.home)
        drop = (
            "that stack still uses it: do not drop it"
            if owner.still_exists()
            else f"that stack's home is gone, so `{DROP_COMMAND}` may drop it"
        )
        fix = (
            f"set {' and '.join(variables[r] for r in role.split(' and '))} to a database of this home's own or "
            f"unset it (this home's default is {default}; {settings.stack_dir / 'settings.env'} keeps the name "
            f"`up` last used); {drop}"
        )
    return f"{role}'s PostgreSQL database {name!r} belongs to {whose}{why}: {fix}"


def claim_databases(settings: StackSettings, names: Iterable[str], stack_id: str) -> list[str]:
    """Record this stack as the owner of ``names`` (that recorded none); call once the credentials proved good."""
    claimed = []
    connection = _connect(settings)
    try:
        with connection.cursor() as cursor:
            owners = _owners(cursor, names)
            for name in names:
                if name in owners and owners[name] is None:
                    _record_owner(cursor, name, StackOwner.of(settings, stack_id))
                    claimed.append(name)
    finally:
        connection.close()
    return claimed


# -- removal ------------------------------------------------------------------------------------


def drop_databases(settings: StackSettings) -> None:
    """Drop both databases (run history, registry, users): for throwaway stacks such as tests."""
    connection = _connect(settings)
    try:
        with connection.cursor() as cursor:
            for name in databases(settings):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()
