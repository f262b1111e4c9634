"""Start MLflow's basic-auth app with the admin credentials from the environment, never a default.

``python -m flavor_ml.stack.mlflow_auth mlflow server --app-name basic-auth ...`` writes the
auth configuration to ``MLFLOW_AUTH_CONFIG_PATH`` (mode 0600) and then replaces itself with the
given command. Used by the native stack and by docker-compose.yml alike.

Reads ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (the admin, created in the
auth tables on first start) and ``MLFLOW_BACKEND_STORE_URI`` (the auth tables live in the
tracking database, beside MLflow's own; they have their own migration table). Refuses to
start, with a message and exit status 2, when a credential is missing or the password is
shorter than MLflow accepts (12 characters).

With ``FLAVOR_MLFLOW_READER_PASSWORD`` set, it also makes sure of the read-only user
``flavor-reader`` (created, or its password set to that value) before MLflow starts: the
inference API reads the registry as that user, which has MLflow's default permission, READ, on
everything and no more, so a leaked API environment can move no alias and write no run.
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path

from flavor_ml.stack.credentials import is_placeholder

MIN_PASSWORD_LENGTH = 12
READER_USERNAME = "flavor-reader"
READER_PASSWORD_VARIABLE = "FLAVOR_MLFLOW_READER_PASSWORD"
#: How long MLflow keeps a verified credential (keyed by an HMAC of the password with a
#: per-process secret) before checking its hash again. Every request of a client carries the
#: same password; without the cache each pays the deliberately slow hash check.
AUTH_CACHE_SECONDS = int(os.environ.get("FLAVOR_MLFLOW_AUTH_CACHE_SECONDS", "60"))


def auth_config(
    database_uri: str,
    username: str,
    password: str,
    default_permission: str = "READ",
    cache_seconds: int = AUTH_CACHE_SECONDS,
) -> str:
    """The text of MLflow's basic_auth.ini for this admin and database."""
    parser = configparser.ConfigParser(interpolation=None)
    parser["mlflow"] = {
        "default_permission": default_permission,
        "database_uri": database_uri,
        "admin_username": username,
        "admin_password": password,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "auth_cache_ttl_seconds": str(cache_seconds),
    }
    from io import StringIO

    text = StringIO()
    parser.write(text)
    return text.getvalue()


def problems(environ: dict[str, str]) -> list[str]:
    """What is missing from ``environ`` for a safe start; empty when nothing is."""
    found = []
    for name in (
        "MLFLOW_AUTH_CONFIG_PATH",
        "MLFLOW_BACKEND_STORE_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ):
        if not environ.get(name):
            found.append(f"{name} is not set")
    password = environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if len(password) < MIN_PASSWORD_LENGTH:
        found.append(
            f"MLFLOW_TRACKING_PASSWORD is not set or shorter than {MIN_PASSWORD_LENGTH} characters "
            "(there is no default admin password)"
        )
    elif is_placeholder(password):
        found.append("MLFLOW_TRACKING_PASSWORD is still the .env.example placeholder")
    reader = environ.get(READER_PASSWORD_VARIABLE)
    if reader is not None and (len(reader) < MIN_PASSWORD_LENGTH or is_placeholder(reader)):
        found.append(f"{READER_PASSWORD_VARIABLE} is shorter than {MIN_PASSWORD_LENGTH} characters or a placeholder")
    return found


def ensure_reader(database_uri: str, password: str) -> None:
    """The read-only user exists in MLflow's auth tables with ``password``, and is no admin."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)  # type: ignore[no-untyped-call]  # MLflow's own migrations of the auth tables; the server runs them too
    if store.has_user(READER_USERNAME):
        store.update_user(READER_USERNAME, password=password, is_admin=False)
    else:
        store.create_user(READER_USERNAME, password, is_admin=False)


def main(argv: list[str] | None = None) -> None:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        sys.exit("usage: python -m flavor_ml.stack.mlflow_auth COMMAND [ARGS...]")
    environ = dict(os.environ)
    missing = problems(environ)
    if missing:
        print("mlflow_auth: refusing to start MLflow with authentication: " + "; ".join(missing), file=sys.stderr)
        sys.exit(2)
    path = Path(environ["MLFLOW_AUTH_CONFIG_PATH"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(
            auth_config(
                environ["MLFLOW_BACKEND_STORE_URI"],
                environ["MLFLOW_TRACKING_USERNAME"],
                environ["MLFLOW_TRACKING_PASSWORD"],
            )
        )
    os.chmod(path, 0o600)
    if environ.get(READER_PASSWORD_VARIABLE):
        ensure_reader(environ["MLFLOW_BACKEND_STORE_URI"], environ[READER_PASSWORD_VARIABLE])
    # MLflow reads these over the ini; keep them consistent with it.
    os.environ["MLFLOW_AUTH_ADMIN_USERNAME"] = environ["MLFLOW_TRACKING_USERNAME"]
    os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"] = environ["MLFLOW_TRACKING_PASSWORD"]
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
