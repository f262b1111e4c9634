"""The stack's secrets: taken from the environment, otherwise generated once and kept.

Generated values go to ``<FLAVOR_HOME>/stack/credentials.env`` (mode 0600) and are reused by
every later ``stack up``: the MLflow admin password in particular is stored in MLflow's
database on first start, so it must not change afterwards. A variable set in the environment
wins over the file. Nothing has a fixed default; an empty or too short value is refused.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from flavor_ml.atomic import atomic_path
from flavor_ml.errors import ConfigError


def _token(length: int) -> Callable[[], str]:
    return lambda: secrets.token_urlsafe(length)


def _access_key_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "FLAVOR" + "".join(secrets.choice(alphabet) for _ in range(14))


@dataclass(frozen=True)
class Secret:
    """One credential: its variable, the shortest value accepted and how to make a new one."""

    variable: str
    min_length: int
    generate: Callable[[], str]
    purpose: str


SECRETS: tuple[Secret, ...] = (
    Secret(
        "PREFECT_API_AUTH_STRING",
        13,
        lambda: f"flavor:{secrets.token_urlsafe(24)}",
        "Prefect server basic auth, as user:password (PREFECT_SERVER_API_AUTH_STRING on the server)",
    ),
    Secret("MLFLOW_TRACKING_USERNAME", 1, lambda: "flavor-admin", "MLflow basic-auth admin user"),
    Secret("MLFLOW_TRACKING_PASSWORD", 12, _token(24), "MLflow basic-auth admin password (MLflow wants 12+ chars)"),
    Secret(
        "FLAVOR_MLFLOW_READER_PASSWORD",
        12,
        _token(24),
        "password of flavor-reader, the read-only MLflow user the inference API reads the registry as",
    ),
    Secret(
        "FLAVOR_MLFLOW_WRITER_PASSWORD",
        12,
        _token(24),
        "password of flavor-writer, the MLflow user the worker's flows write runs and versions as (no admin)",
    ),
    Secret("MLFLOW_FLASK_SERVER_SECRET_KEY", 16, _token(32), "MLflow's CSRF secret"),
    Secret("AWS_ACCESS_KEY_ID", 3, _access_key_id, "S3 store access key (MinIO root user)"),
    Secret("AWS_SECRET_ACCESS_KEY", 8, _token(30), "S3 store secret key (MinIO root password, 8+ chars)"),
    Secret("FLAVOR_API_ADMIN_TOKEN", 16, _token(32), "bearer token of the inference API's /admin endpoints"),
)

CREDENTIAL_VARIABLES: tuple[str, ...] = tuple(secret.variable for secret in SECRETS)

# .env.example's values contain this; nothing starts with a value copied from it unchanged.
PLACEHOLDER_MARK = "change-me"


def is_placeholder(value: str) -> bool:
    return PLACEHOLDER_MARK in value.lower()


def read_env_file(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of a .env file (python-dotenv; no ``${VAR}`` expansion: secrets are literal)."""
    return {name: value for name, value in dotenv_values(path, interpolate=False).items() if value is not None}


def read_credentials(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The credentials in effect, as :func:`load_credentials` finds them, but nothing generated or
    checked: what ``stack status`` proves against the running services."""
    environ = os.environ if environ is None else environ
    stored = read_env_file(path) if path.exists() else {}
    return {name: value for name in CREDENTIAL_VARIABLES if (value := environ.get(name, stored.get(name))) is not None}


def load_credentials(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every credential of :data:`SECRETS`: environment first, then ``path``, else generated into ``path``.

    Raises ConfigError when a value is set but empty or too short, naming the variable.
    """
    environ = os.environ if environ is None else environ
    stored = read_env_file(path) if path.exists() else {}
    generated: dict[str, str] = {}
    values: dict[str, str] = {}
    for secret in SECRETS:
        if secret.variable in environ:
            value, origin = environ[secret.variable], "the environment"
        elif secret.variable in stored:
            value, origin = stored[secret.variable], str(path)
        else:
            value = generated[secret.variable] = secret.generate()
            origin = "generated"
        if is_placeholder(value):
            raise ConfigError(
                f"{secret.variable} from {origin} is still the .env.example placeholder; "
                "set a real secret (e.g. `openssl rand -hex 24`)"
            )
        if len(value) < secret.min_length or any(ch.isspace() for ch in value):
            raise ConfigError(
                f"{secret.variable} from {origin} is empty, too short (under {secret.min_length} characters) "
                f"or contains whitespace; it is the {secret.purpose}. There is no default: set a real value or "
                f"unset it to have one generated into {path}"
            )
        values[secret.variable] = value
    if ":" not in values["PREFECT_API_AUTH_STRING"]:
        raise ConfigError("PREFECT_API_AUTH_STRING must be user:password (the Prefect UI asks for exactly that)")
    if generated:
        _write(path, {**stored, **generated})
    return values


def _write(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Generated by `flavor-ml stack up`. Secrets: keep this file private (mode 0600).",
        "# A variable set in the environment takes precedence over the value here.",
    ]
    lines += [f"{name}={value}" for name, value in values.items()]
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
