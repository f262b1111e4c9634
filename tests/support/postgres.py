"""Throwaway databases on the machine's PostgreSQL (127.0.0.1:5432, trust auth)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_HOST = os.environ.get("FLAVOR_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("FLAVOR_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("FLAVOR_TEST_PG_USER", "postgres")


def _admin_connection():
    import psycopg2

    connection = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3)
    connection.autocommit = True
    return connection


def postgres_available() -> bool:
    try:
        _admin_connection().close()
        return True
    except Exception:
        return False


def _execute(statement: str) -> None:
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _create(name: str) -> None:
    _execute(f'CREATE DATABASE "{name}"')


def _drop(name: str) -> None:
    _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def temporary_database(prefix: str = "flavor") -> Iterator[str]:
    """Create a fresh database, yield its SQLAlchemy URL (psycopg2 driver), drop it afterwards."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _create(name)
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        _drop(name)


#: The database of the test session's Prefect server (tests/conftest.py), one per xdist worker.
_SESSION_DATABASE = f"flavor_session_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:8]}"


def create_session_database() -> str | None:
    """The asyncpg URL of a new database for the session's Prefect server; None without PostgreSQL."""
    if not postgres_available():
        return None
    _create(_SESSION_DATABASE)
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{_SESSION_DATABASE}"


def drop_session_database() -> None:
    """Drop the session's database, if it was made (after its server stopped)."""
    if postgres_available():
        _drop(_SESSION_DATABASE)
