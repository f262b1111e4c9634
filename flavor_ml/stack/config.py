"""What the stack is made of: ports, database names, bucket, pool and where it keeps its files.

Every setting is an environment variable (``FLAVOR_*``) with a default that matches
docker-compose.yml, so the native stack and the compose file describe the same services.
Secrets are not here: see :mod:`flavor_ml.stack.credentials`.

The one difference: natively the PostgreSQL is the machine's, shared by every stack home on
it, so the databases are named after the home (``flavor_prefect_<digest>`` and
``flavor_mlflow_<digest>``, the digest of the resolved home path; compose runs a PostgreSQL of
its own and keeps ``flavor_prefect`` / ``flavor_mlflow``). ``up`` saves the names in the home's
``stack/settings.env``, so a moved home keeps its databases, and records in each database which
stack owns it (:mod:`flavor_ml.stack.databases`). The bucket needs no such care: each home runs
its own S3 store (MinIO's data under the home, or moto in memory).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flavor_ml.errors import ConfigError
from flavor_ml.settings import ENV_FILE

#: A PostgreSQL identifier that needs no quoting (63 characters at most).
DATABASE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
DEFAULT_HOME = Path(".flavor")


def home_digest(home: Path | None) -> str:
    """Ten hex digits of the resolved home path: the same home always gives the same digest."""
    return hashlib.sha256(str((home or DEFAULT_HOME).resolve()).encode()).hexdigest()[:10]


def home_database(prefix: str, home: Path | None) -> str:
    """``flavor_mlflow`` -> ``flavor_mlflow_<digest of home>``: the default database of one stack home."""
    return f"{prefix}_{home_digest(home)}"


class StackSettings(BaseSettings):
    """Settings of ``flavor-ml stack``; every field is the environment variable ``FLAVOR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", env_file=ENV_FILE, extra="ignore")

    home: Path = Field(DEFAULT_HOME, description="the stack keeps state, logs and credentials in <home>/stack")
    stack_host: str = Field("127.0.0.1", description="interface every service listens on (loopback by default)")

    prefect_port: int = Field(4200, ge=1, le=65535)
    mlflow_port: int = Field(5000, ge=1, le=65535)
    s3_port: int = Field(9000, ge=1, le=65535)
    api_port: int = Field(8000, ge=1, le=65535)
    worker_port: int = Field(8080, ge=1, le=65535, description="the worker's health-check server")

    postgres_host: str = "127.0.0.1"
    postgres_port: int = Field(5432, ge=1, le=65535)
    postgres_user: str = "postgres"
    postgres_password: SecretStr | None = Field(None, description="empty for trust/peer authentication")
    prefect_db: str = Field(
        default_factory=lambda data: home_database("flavor_prefect", data.get("home")),
        pattern=DATABASE_NAME,
        description="default: flavor_prefect_<digest of the home>",
    )
    mlflow_db: str = Field(
        default_factory=lambda data: home_database("flavor_mlflow", data.get("home")),
        pattern=DATABASE_NAME,
        description="default: flavor_mlflow_<digest of the home>",
    )

    s3_backend: Literal["auto", "minio", "moto"] = Field(
        "auto", description="auto: MinIO when `minio` is on PATH, otherwise moto's server"
    )
    s3_bucket: str = Field(
        "flavor-ml",
        min_length=3,
        max_length=63,
        description="the bucket the stack creates and hands to its clients (FLAVOR_S3_BUCKET)",
    )
    s3_prefix: str = "flavor-ml"
    s3_region: str = "us-east-1"
    mlflow_artifacts_prefix: str = Field("mlflow-artifacts", description="folder of the bucket MLflow proxies to")

    work_pool: str = Field("flavor-pool", min_length=1)
    worker_name: str = "flavor-worker"
    aws_credentials_block: str = Field("flavor-s3", description="name of the AwsCredentials block")
    result_storage_block: str = Field(
        "s3-bucket/flavor-results", description="slug of the S3Bucket block that holds Prefect task results"
    )
    result_storage_folder: str = Field("prefect-results", description="folder of the bucket for task results")

    stack_api: Literal["auto", "on", "off"] = Field(
        "auto", description="run the inference API: auto = when `flavor-ml serve` exists"
    )
    stack_start_timeout: float = Field(180.0, gt=0, description="seconds each service gets to become healthy")

    @property
    def stack_dir(self) -> Path:
        return self.home.resolve() / "stack"

    @property
    def log_dir(self) -> Path:
        return self.stack_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.stack_dir / "state.json"

    @property
    def credentials_file(self) -> Path:
        return self.stack_dir / "credentials.env"

    @property
    def result_storage_block_name(self) -> str:
        """``s3-bucket/flavor-results`` -> ``flavor-results``."""
        block_type, _, name = self.result_storage_block.partition("/")
        if block_type != "s3-bucket" or not name:
            raise ConfigError(f"FLAVOR_RESULT_STORAGE_BLOCK={self.result_storage_block!r}: expected 's3-bucket/<name>'")
        return name

    def database_url(self, database: str, driver: str) -> str:
        """SQLAlchemy URL of ``database`` on the configured PostgreSQL, e.g. driver ``psycopg2``."""
        password = self.postgres_password.get_secret_value() if self.postgres_password else ""
        user = quote(self.postgres_user, safe="")
        credentials = f"{user}:{quote(password, safe='')}" if password else user
        return f"postgresql+{driver}://{credentials}@{self.postgres_host}:{self.postgres_port}/{database}"


SETTINGS_FILE = "settings.env"
_NOT_SAVED = frozenset({"home", "postgres_password"})


def load_settings(**overrides: object) -> StackSettings:
    """Settings from ``overrides``, the environment, then what ``stack up`` saved in this home's
    ``stack/settings.env`` (so ``status``, ``env`` and ``down`` find the ports the stack runs on),
    then the defaults. ConfigError naming every bad variable."""
    from pydantic import ValidationError

    from flavor_ml.settings import describe_errors
    from flavor_ml.settings import load_settings as load_root_settings

    root = load_root_settings()
    home = Path(str(overrides.get("home") or root.home)).resolve()
    saved = home / "stack" / SETTINGS_FILE
    shared = {"home": home, **({"s3_bucket": root.s3_bucket} if root.s3_bucket else {})}
    given: dict[str, Any] = {**shared, **overrides}  # validated by StackSettings
    try:
        # The environment and ./.env win over what `up` saved; the saved file over the defaults.
        return StackSettings(_env_file=(saved, ENV_FILE) if saved.is_file() else ENV_FILE, **given)
    except ValidationError as exc:
        raise ConfigError(f"invalid stack settings: {describe_errors(exc, 'FLAVOR_')}") from None


def save_settings(settings: StackSettings) -> Path:
    """Write the settings (not the home, not the PostgreSQL password) to ``stack/settings.env``."""
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    path = settings.stack_dir / SETTINGS_FILE
    values = settings.model_dump(exclude=set(_NOT_SAVED))
    lines = ["# The settings `flavor-ml stack up` last ran with; the environment takes precedence."]
    lines += [f"FLAVOR_{name.upper()}={value}" for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
