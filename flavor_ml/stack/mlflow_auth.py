"""Start MLflow's basic-auth app with the admin credentials from the environment, never a default.

``python -m flavor_ml.stack.mlflow_auth mlflow server --app-name basic-auth ...`` writes the
auth configuration to ``MLFLOW_AUTH_CONFIG_PATH`` (mode 0600) and then replaces itself with the
given command. Used by the native stack and by docker-compose.yml alike.

Reads ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (the admin, created in the
auth tables on first start) and ``MLFLOW_BACKEND_STORE_URI`` (the auth tables live in the
tracking database, beside MLflow's own; they have their own migration table). Refuses to
start, with a message and exit status 2, when a credential is missing or the password is
shorter than MLflow accepts (12 characters).

Before MLflow starts it also makes sure of two service users (created, or their password set to
the one in the environment), when their password variable is set:

- ``flavor-reader`` (``FLAVOR_MLFLOW_READER_PASSWORD``): the inference API reads the registry as
  this user, which has MLflow's default permission, READ, on everything and no more, so a leaked
  API environment can move no alias and write no run;
- ``flavor-writer`` (``FLAVOR_MLFLOW_WRITER_PASSWORD``): the worker's flows (training and
  promotion) write as this user, which holds the role ``flavor-writer``: EDIT on every experiment
  and registered model (runs, versions, tags, aliases), but no MANAGE (it deletes nothing and
  grants nothing) and no admin (it manages no users).
"""

from __future__ import annotations

import configparser
import os
import sys
from pathlib import Path
from typing import Any

from flavor_ml.stack.credentials import is_placeholder

MIN_PASSWORD_LENGTH = 12
READER_USERNAME = "flavor-reader"
READER_PASSWORD_VARIABLE = "FLAVOR_MLFLOW_READER_PASSWORD"
WRITER_USERNAME = "flavor-writer"
WRITER_PASSWORD_VARIABLE = "FLAVOR_MLFLOW_WRITER_PASSWORD"
#: What the writer's role allows, per resource type, on every resource ("*") of the type.
WRITER_GRANTS = {"experiment": "EDIT", "registered_model": "EDIT"}
SERVICE_USERS = {READER_PASSWORD_VARIABLE: READER_USERNAME, WRITER_PASSWORD_VARIABLE: WRITER_USERNAME}
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
    for variable in SERVICE_USERS:
        value = environ.get(variable)
        if value is not None and (len(value) < MIN_PASSWORD_LENGTH or is_placeholder(value)):
            found.append(f"{variable} is shorter than {MIN_PASSWORD_LENGTH} characters or a placeholder")
    return found


def ensure_service_users(database_uri: str, passwords: dict[str, str]) -> None:
    """Each service user whose password variable is in ``passwords`` exists in MLflow's auth tables
    with that password, is no admin, and the writer holds its role."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)  # type: ignore[no-untyped-call]  # MLflow's own migrations of the auth tables; the server runs them too
    for variable, password in passwords.items():
        username = SERVICE_USERS[variable]
        if store.has_user(username):
            store.update_user(username, password=password, is_admin=False)
        else:
            store.create_user(username, password, is_admin=False)
    if WRITER_PASSWORD_VARIABLE in passwords:
        _grant_writer_role(store)


def _grant_writer_role(store: Any) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.workspace_utils import DEFAULT_WORKSPACE_NAME

    try:
        role = store.get_role_by_name(DEFAULT_WORKSPACE_NAME, WRITER_USERNAME)
    except MlflowException:
        role = store.create_role(WRITER_USERNAME, DEFAULT_WORKSPACE_NAME, "flavor-ml's flows: write runs and versions")
    granted = {(grant.resource_type, grant.resource_pattern) for grant in store.list_role_permissions(role.id)}
    for resource_type, permission in WRITER_GRANTS.items():
        if (resource_type, "*") not in granted:
            store.add_role_permission(role.id, resource_type, "*", permission)
    user = store.get_user(WRITER_USERNAME)
    if role.id not in {held.id for held in store.list_user_roles(user.id)}:
        store.assign_role_to_user(user.id, role.id)


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
    passwords = {variable: environ[variable] for variable in SERVICE_USERS if environ.get(variable)}
    if passwords:
        ensure_service_users(environ["MLFLOW_BACKEND_STORE_URI"], passwords)
    # MLflow reads these over the ini; keep them consistent with it.
    os.environ["MLFLOW_AUTH_ADMIN_USERNAME"] = environ["MLFLOW_TRACKING_USERNAME"]
    os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"] = environ["MLFLOW_TRACKING_PASSWORD"]
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
