"""The stack's PostgreSQL databases: one for Prefect, one for MLflow, created when missing.

Natively the stack uses the machine's PostgreSQL (``FLAVOR_POSTGRES_*``); docker-compose runs
its own, whose init script (deployments/postgres-init.sh) creates the same two databases.
"""

from __future__ import annotations

from typing import Any

from flavor_ml.errors import ConfigError
from flavor_ml.stack.config import StackSettings
from flavor_ml.stack.errors import StackError


def _connect(settings: StackSettings, database: str = "postgres") -> Any:
    try:
        import psycopg2
    except ImportError:
        raise ConfigError("the stack needs psycopg2 for PostgreSQL (MLflow's backend store uses it too): "
                          "pip install psycopg2-binary") from None
    password = settings.postgres_password.get_secret_value() if settings.postgres_password else None
    try:
        connection = psycopg2.connect(host=settings.postgres_host, port=settings.postgres_port,
                                      user=settings.postgres_user, password=password, dbname=database,
                                      connect_timeout=5)
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


def ensure_databases(settings: StackSettings) -> list[str]:
    """Create the Prefect and MLflow databases if they do not exist; return the ones created."""
    created = []
    connection = _connect(settings)
    try:
        with connection.cursor() as cursor:
            for name in dict.fromkeys((settings.prefect_db, settings.mlflow_db)):
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')  # name is validated by StackSettings
                    created.append(name)
    finally:
        connection.close()
    return created


def drop_databases(settings: StackSettings) -> None:
    """Drop both databases (run history, registry, users): for throwaway stacks such as tests."""
    connection = _connect(settings)
    try:
        with connection.cursor() as cursor:
            for name in dict.fromkeys((settings.prefect_db, settings.mlflow_db)):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()
