"""The services of the stack: name, port, command, environment, health URL and dependencies.

One description for both ways of running it: :mod:`flavor_ml.stack.native` starts these on
loopback, and docker-compose.yml runs the same services under the same names, on the same
ports, with the same environment variable names (tests/test_stack.py holds them to that).

Start order is the order of :func:`build_services`; a service is started once everything in
its ``depends_on`` is healthy.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from flavor_ml.stack.config import StackSettings
from flavor_ml.stack.mlflow_auth import (
    READER_PASSWORD_VARIABLE,
    READER_USERNAME,
    WRITER_PASSWORD_VARIABLE,
    WRITER_USERNAME,
)

# Names shared with docker-compose.yml. PostgreSQL is the machine's own natively (the stack
# only creates its databases); compose runs it as a container.
POSTGRES = "postgres"
S3 = "minio"
PREFECT_SERVER = "prefect-server"
MLFLOW = "mlflow"
WORKER = "prefect-worker"
API = "api"
SERVICE_NAMES: tuple[str, ...] = (POSTGRES, S3, PREFECT_SERVER, MLFLOW, WORKER, API)
EXTERNAL_SERVICES: tuple[str, ...] = (POSTGRES,)

# The variable that sets each service's port, and its default (the port inside the containers).
PORT_VARIABLES: dict[str, str] = {
    POSTGRES: "FLAVOR_POSTGRES_PORT",
    S3: "FLAVOR_S3_PORT",
    PREFECT_SERVER: "FLAVOR_PREFECT_PORT",
    MLFLOW: "FLAVOR_MLFLOW_PORT",
    WORKER: "FLAVOR_WORKER_PORT",
    API: "FLAVOR_API_PORT",
}
DEFAULT_PORTS: dict[str, int] = {POSTGRES: 5432, S3: 9000, PREFECT_SERVER: 4200, MLFLOW: 5000, WORKER: 8080, API: 8000}

# Variables that only make sense natively (paths on this machine); compose has its own.
NATIVE_ONLY_ENV: frozenset[str] = frozenset({"PREFECT_HOME", "FLAVOR_HOME"})

S3_HEALTH_PATH = "/minio/health/live"  # MinIO's; the moto wrapper answers it too


@dataclass(frozen=True)
class Service:
    """One process of the stack and how to tell that it is healthy."""

    name: str
    port: int
    command: tuple[str, ...]
    env: Mapping[str, str]
    health_path: str
    host: str = "127.0.0.1"
    depends_on: tuple[str, ...] = ()
    implementation: str = ""
    description: str = ""
    secret_env: frozenset[str] = field(default_factory=frozenset)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def health_url(self) -> str:
        return self.url + self.health_path


def s3_implementation(settings: StackSettings) -> str:
    """``minio`` when asked for or when the binary is on PATH, otherwise ``moto``."""
    if settings.s3_backend == "auto":
        return "minio" if shutil.which("minio") else "moto"
    return settings.s3_backend


def api_available(settings: StackSettings) -> bool:
    """Whether the inference API is part of the stack (FLAVOR_STACK_API, or auto: `flavor-ml serve` exists)."""
    if settings.stack_api != "auto":
        return settings.stack_api == "on"
    import importlib.util

    return (
        importlib.util.find_spec("flavor_ml.serving") is not None
        and importlib.util.find_spec("flavor_ml.cli.serve") is not None
    )


def urls(settings: StackSettings) -> dict[str, str]:
    host = settings.stack_host
    return {
        S3: f"http://{host}:{settings.s3_port}",
        PREFECT_SERVER: f"http://{host}:{settings.prefect_port}",
        MLFLOW: f"http://{host}:{settings.mlflow_port}",
        WORKER: f"http://{host}:{settings.worker_port}",
        API: f"http://{host}:{settings.api_port}",
    }


def client_environment(settings: StackSettings, credentials: Mapping[str, str]) -> dict[str, str]:
    """What a client (a laptop shell, the worker, the API) needs to use the stack: URLs and credentials."""
    url = urls(settings)
    return {
        "PREFECT_API_URL": f"{url[PREFECT_SERVER]}/api",
        "PREFECT_API_AUTH_STRING": credentials["PREFECT_API_AUTH_STRING"],
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": settings.result_storage_block,
        "MLFLOW_TRACKING_URI": url[MLFLOW],
        "MLFLOW_TRACKING_USERNAME": credentials["MLFLOW_TRACKING_USERNAME"],
        "MLFLOW_TRACKING_PASSWORD": credentials["MLFLOW_TRACKING_PASSWORD"],
        # Artifacts go through the tracking server both ways (MLflow 3 would otherwise hand out
        # presigned URLs of the store, which name a host a laptop may not resolve under compose).
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "MLFLOW_S3_ENDPOINT_URL": url[S3],
        "AWS_ACCESS_KEY_ID": credentials["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": credentials["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": settings.s3_region,
        "FLAVOR_S3_BUCKET": settings.s3_bucket,
        "FLAVOR_S3_PREFIX": settings.s3_prefix,
        "FLAVOR_S3_ENDPOINT_URL": url[S3],
        "FLAVOR_S3_REGION": settings.s3_region,
        "FLAVOR_RESULT_STORAGE_BLOCK": settings.result_storage_block,
        "FLAVOR_WORK_POOL": settings.work_pool,
        "FLAVOR_API_URL": url[API],
        "FLAVOR_API_ADMIN_TOKEN": credentials["FLAVOR_API_ADMIN_TOKEN"],
    }


def bootstrap_environment(settings: StackSettings, credentials: Mapping[str, str]) -> dict[str, str]:
    """What ``deployments/bootstrap.py`` reads: the client environment plus block names."""
    return {
        **client_environment(settings, credentials),
        "FLAVOR_AWS_CREDENTIALS_BLOCK": settings.aws_credentials_block,
        "FLAVOR_RESULT_STORAGE_FOLDER": settings.result_storage_folder,
    }


def build_services(
    settings: StackSettings,
    credentials: Mapping[str, str],
    *,
    with_api: bool | None = None,
    python: str = sys.executable,
) -> list[Service]:
    """The managed services in start order (PostgreSQL is not among them: it is the machine's)."""
    host = settings.stack_host
    url = urls(settings)
    client = client_environment(settings, credentials)
    home = str(settings.home.resolve())
    prefect_home = str(settings.stack_dir / "prefect-home")
    s3_kind = s3_implementation(settings)

    if s3_kind == "minio":
        s3_command: tuple[str, ...] = (
            shutil.which("minio") or "minio",
            "server",
            str(settings.stack_dir / "minio-data"),
            "--address",
            f"{host}:{settings.s3_port}",
            "--quiet",
        )
    else:
        s3_command = (python, "-m", "flavor_ml.stack.moto_s3", "--host", host, "--port", str(settings.s3_port))
    s3 = Service(
        name=S3,
        port=settings.s3_port,
        host=host,
        command=s3_command,
        implementation=s3_kind,
        env={
            "MINIO_ROOT_USER": credentials["AWS_ACCESS_KEY_ID"],
            "MINIO_ROOT_PASSWORD": credentials["AWS_SECRET_ACCESS_KEY"],
            "MINIO_BROWSER": "off",
        },
        secret_env=frozenset({"MINIO_ROOT_PASSWORD"}),
        health_path=S3_HEALTH_PATH,
        description="S3-compatible store: flavor-ml artifacts, MLflow artifacts, Prefect task results",
    )

    prefect = Service(
        name=PREFECT_SERVER,
        port=settings.prefect_port,
        host=host,
        implementation="prefect server",
        command=(python, "-m", "prefect", "server", "start", "--host", host, "--port", str(settings.prefect_port)),
        env={
            "PREFECT_HOME": prefect_home,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": settings.database_url(settings.prefect_db, "asyncpg"),
            "PREFECT_SERVER_API_AUTH_STRING": credentials["PREFECT_API_AUTH_STRING"],
            "PREFECT_API_AUTH_STRING": credentials["PREFECT_API_AUTH_STRING"],
            "PREFECT_API_URL": client["PREFECT_API_URL"],
            "PREFECT_UI_API_URL": client["PREFECT_API_URL"],
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        },
        secret_env=frozenset(
            {"PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_DATABASE_CONNECTION_URL"}
        ),
        health_path="/api/health",
        description="Prefect API and UI (basic auth), database on PostgreSQL",
    )

    mlflow = Service(
        name=MLFLOW,
        port=settings.mlflow_port,
        host=host,
        depends_on=(S3,),
        implementation="mlflow server",
        command=(
            python,
            "-m",
            "flavor_ml.stack.mlflow_auth",
            python,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            host,
            "--port",
            str(settings.mlflow_port),
            "--workers",
            "1",
            "--serve-artifacts",
            "--artifacts-destination",
            f"s3://{settings.s3_bucket}/{settings.mlflow_artifacts_prefix}",
        ),
        env={
            "MLFLOW_BACKEND_STORE_URI": settings.database_url(settings.mlflow_db, "psycopg2"),
            "MLFLOW_AUTH_CONFIG_PATH": str(settings.stack_dir / "mlflow-auth.ini"),
            "MLFLOW_TRACKING_USERNAME": credentials["MLFLOW_TRACKING_USERNAME"],
            "MLFLOW_TRACKING_PASSWORD": credentials["MLFLOW_TRACKING_PASSWORD"],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": credentials["MLFLOW_FLASK_SERVER_SECRET_KEY"],
            READER_PASSWORD_VARIABLE: credentials[READER_PASSWORD_VARIABLE],
            WRITER_PASSWORD_VARIABLE: credentials[WRITER_PASSWORD_VARIABLE],
            "MLFLOW_S3_ENDPOINT_URL": url[S3],
            "AWS_ACCESS_KEY_ID": credentials["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": credentials["AWS_SECRET_ACCESS_KEY"],
            "AWS_DEFAULT_REGION": settings.s3_region,
            "MLFLOW_SERVER_ALLOWED_HOSTS": f"{host},{host}:*,localhost,localhost:*",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        secret_env=frozenset(
            {
                "MLFLOW_BACKEND_STORE_URI",
                "MLFLOW_TRACKING_PASSWORD",
                "MLFLOW_FLASK_SERVER_SECRET_KEY",
                READER_PASSWORD_VARIABLE,
                WRITER_PASSWORD_VARIABLE,
                "AWS_SECRET_ACCESS_KEY",
            }
        ),
        health_path="/health",
        description="MLflow tracking server and registry (basic auth), runs on PostgreSQL, artifacts proxied to S3",
    )

    worker = Service(
        name=WORKER,
        port=settings.worker_port,
        host=host,
        depends_on=(PREFECT_SERVER,),
        implementation="prefect worker (process)",
        command=(
            python,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            settings.work_pool,
            "--type",
            "process",
            "--name",
            settings.worker_name,
            "--with-healthcheck",
            "--install-policy",
            "never",
        ),
        env={
            **client,
            # Least privilege: the flows write to MLflow as flavor-writer, not as the admin.
            "MLFLOW_TRACKING_USERNAME": WRITER_USERNAME,
            "MLFLOW_TRACKING_PASSWORD": credentials[WRITER_PASSWORD_VARIABLE],
            "PREFECT_HOME": prefect_home,
            "FLAVOR_HOME": home,
            "PREFECT_WORKER_WEBSERVER_HOST": host,
            "PREFECT_WORKER_WEBSERVER_PORT": str(settings.worker_port),
            # Prefect polls every 10 s: half of that, on average, is added to every run it picks up.
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        },
        secret_env=frozenset(
            {"PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY", "FLAVOR_API_ADMIN_TOKEN"}
        ),
        health_path="/health",
        description=f"runs flow runs of the work pool {settings.work_pool!r} as local processes",
    )

    services = [s3, prefect, mlflow, worker]
    if api_available(settings) if with_api is None else with_api:
        from flavor_ml.registry.stages import DEFAULT_MODEL_NAME

        services.append(
            Service(
                name=API,
                port=settings.api_port,
                host=host,
                depends_on=(MLFLOW,),
                implementation="flavor-ml serve",
                command=(python, "-m", "flavor_ml", "serve", "--host", host, "--port", str(settings.api_port)),
                env={
                    "MLFLOW_TRACKING_URI": client["MLFLOW_TRACKING_URI"],
                    # Least privilege: the read-only MLflow user, and no S3 keys (artifacts come
                    # through MLflow's proxy).
                    "MLFLOW_TRACKING_USERNAME": READER_USERNAME,
                    "MLFLOW_TRACKING_PASSWORD": credentials[READER_PASSWORD_VARIABLE],
                    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": client["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"],
                    "FLAVOR_MODEL_NAME": os.environ.get("FLAVOR_MODEL_NAME", DEFAULT_MODEL_NAME),
                    "FLAVOR_MODEL_STAGE": os.environ.get("FLAVOR_MODEL_STAGE", "Production"),
                    "FLAVOR_API_ADMIN_TOKEN": credentials["FLAVOR_API_ADMIN_TOKEN"],
                    "FLAVOR_HOME": home,
                },
                secret_env=frozenset({"MLFLOW_TRACKING_PASSWORD", "FLAVOR_API_ADMIN_TOKEN"}),
                health_path="/health",
                description="the inference API (flavor-ml serve)",
            )
        )
    return services
