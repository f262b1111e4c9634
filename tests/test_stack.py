"""The full stack: docker-compose.yml, and the same services natively (`flavor-ml stack`).

What these tests hold:

- docker-compose.yml passes ``docker-compose config`` with .env.example's values and fails
  without credentials (they come only from .env); it runs the native stack's services under
  the same names, on the same ports, reading the same environment variables.
- ``flavor-ml stack up`` starts real processes (Prefect server and worker, MLflow, the S3
  store, the inference API) on free loopback ports with a throwaway home and databases of
  their own; each refuses requests without credentials and accepts them with; ``up`` again
  changes nothing; a service that died is restarted alone; ``down`` leaves no process behind.
- a second stack home on the same PostgreSQL runs beside it on databases of its own, and neither
  stack accepts the other's credentials or shows the other's flows.

The native stack is started once for the module (about a minute on two cores); the second home
starts a stack of its own beside it, before the last test stops the module's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from flavor_ml.stack import processes
from flavor_ml.stack.config import StackSettings
from flavor_ml.stack.config import load_settings as load_stack_settings
from flavor_ml.stack.credentials import CREDENTIAL_VARIABLES, load_credentials
from flavor_ml.stack.databases import drop_databases
from flavor_ml.stack.services import (
    API,
    DEFAULT_PORTS,
    EXTERNAL_SERVICES,
    MLFLOW,
    NATIVE_ONLY_ENV,
    PORT_VARIABLES,
    PREFECT_SERVER,
    S3,
    SERVICE_NAMES,
    WORKER,
    build_services,
    client_environment,
)
from tests.support.processes import free_port
from tests.support.stack import (
    NativeStack,
    base_env,
    client_of,
    mlflow_accepts,
    native_stack,
    prefect_flow_names,
    run_cli,
    stack_home,
    up,
)

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# Compose-only helpers: the native stack does the same step inline once the store is healthy.
ONE_SHOT_SERVICES = {"create-bucket"}
# Credentials compose needs that the native stack does not (it uses the machine's PostgreSQL).
COMPOSE_ONLY_CREDENTIALS = ("FLAVOR_POSTGRES_USER", "FLAVOR_POSTGRES_PASSWORD")
# Variables a client needs, printed by `flavor-ml stack env`.
CLIENT_VARIABLES = {
    "PREFECT_API_URL",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "FLAVOR_S3_BUCKET",
    "FLAVOR_S3_PREFIX",
    "FLAVOR_S3_ENDPOINT_URL",
    "FLAVOR_S3_REGION",
    "FLAVOR_RESULT_STORAGE_BLOCK",
    "FLAVOR_WORK_POOL",
}
FAKE_CREDENTIALS = {name: f"{name.lower()}-value:0123456789abcdef" for name in CREDENTIAL_VARIABLES}


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_environment(service: str) -> dict[str, str]:
    environment = compose()["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return environment


# -- docker-compose config (Debian's v1 docker-compose, offline) --------------------------------


def docker_compose_config(env_file: Path) -> subprocess.CompletedProcess:
    """``docker-compose config`` with only ``env_file`` as the source of variables."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not on PATH (CI installs Debian's docker-compose in .ci/run)")
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        env=clean_env,
        timeout=120,
    )


def test_compose_config_passes_with_the_example_credentials():
    result = docker_compose_config(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(compose()["services"])


def test_compose_refuses_to_run_without_credentials(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = docker_compose_config(empty)
    assert result.returncode != 0
    assert re.search(
        r"set (FLAVOR_POSTGRES_|PREFECT_API_AUTH_STRING|MLFLOW_|AWS_|FLAVOR_API_ADMIN)\w* .*in \.env", result.stderr
    ), result.stderr


# -- compose and the native stack agree ---------------------------------------------------------


def test_compose_runs_the_native_services_under_the_same_names():
    assert set(compose()["services"]) - ONE_SHOT_SERVICES == set(SERVICE_NAMES)
    native = {service.name for service in build_services(StackSettings(), FAKE_CREDENTIALS, with_api=True)}
    assert native | set(EXTERNAL_SERVICES) == set(SERVICE_NAMES)


def test_compose_publishes_on_loopback_the_native_ports_and_variables():
    published = {}
    for name, service in compose()["services"].items():
        for mapping in service.get("ports", []):
            match = re.fullmatch(r"\$\{FLAVOR_STACK_HOST:-127\.0\.0\.1\}:\$\{(\w+):-(\d+)\}:(\d+)", mapping)
            assert match, (
                f"{name}: {mapping!r} is not published as ${{FLAVOR_STACK_HOST:-127.0.0.1}}:${{VAR:-port}}:port"
            )
            published[name] = (match[1], int(match[2]), int(match[3]))
    assert set(published) == {S3, PREFECT_SERVER, MLFLOW, API}
    for name, (variable, default, container_port) in published.items():
        assert variable == PORT_VARIABLES[name]
        assert default == container_port == DEFAULT_PORTS[name]
    assert compose_environment(WORKER)["PREFECT_WORKER_WEBSERVER_PORT"] == str(DEFAULT_PORTS[WORKER])
    defaults = {name: field.default for name, field in StackSettings.model_fields.items()}
    assert (
        defaults["s3_port"],
        defaults["prefect_port"],
        defaults["mlflow_port"],
        defaults["api_port"],
        defaults["worker_port"],
    ) == tuple(DEFAULT_PORTS[name] for name in (S3, PREFECT_SERVER, MLFLOW, API, WORKER))


def test_compose_services_read_the_environment_variables_the_native_services_read():
    for service in build_services(StackSettings(), FAKE_CREDENTIALS, with_api=True):
        missing = set(service.env) - NATIVE_ONLY_ENV - set(compose_environment(service.name))
        assert not missing, f"{service.name}: compose does not set {sorted(missing)}"


def test_compose_gives_workers_and_clients_the_same_variables_as_stack_env():
    assert CLIENT_VARIABLES <= set(client_environment(StackSettings(), FAKE_CREDENTIALS))
    assert set(client_environment(StackSettings(), FAKE_CREDENTIALS)) <= set(compose_environment(WORKER))


def test_compose_takes_credentials_only_from_env_with_no_default():
    text = COMPOSE_FILE.read_text()
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    for variable in (*CREDENTIAL_VARIABLES, *COMPOSE_ONLY_CREDENTIALS):
        uses = re.findall(r"\$\{" + variable + r"(:?[?-]|\})", text)
        assert uses, f"compose does not use {variable}"
        assert set(uses) == {":?"}, f"{variable} must be ${{{variable}:?message}} everywhere, not {uses}"
        assert variable in example, f".env.example lacks {variable}"
    secrets = [example[name] for name in example if re.search(r"PASSWORD|SECRET|TOKEN|AUTH_STRING|KEY", name)]
    assert all("change-me" in value for value in secrets), secrets
    for known_default in ("minioadmin", "password1234", "prefect:prefect"):
        assert known_default not in text and known_default not in ENV_EXAMPLE.read_text()


def test_compose_waits_for_healthy_dependencies():
    services = compose()["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT_SERVICES else "service_healthy"
            assert condition == {"condition": expected}, f"{name} -> {dependency}"
            if expected == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    assert all("healthcheck" in service for name, service in services.items() if name not in ONE_SHOT_SERVICES)


def test_compose_keeps_run_history_and_artifacts_in_named_volumes():
    document = compose()
    assert {"postgres-data", "minio-data"} <= set(document["volumes"])
    assert "postgres-data:/var/lib/postgresql/data" in document["services"]["postgres"]["volumes"]
    assert "minio-data:/data" in document["services"][S3]["volumes"]


def test_native_stack_runs_minio_when_it_is_on_path_and_moto_otherwise(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "minio"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    store = build_services(StackSettings(home=tmp_path), FAKE_CREDENTIALS, with_api=False)[0]
    assert (store.name, store.implementation) == (S3, "minio")
    assert store.command[:2] == (str(fake), "server") and f"127.0.0.1:{store.port}" in store.command
    assert store.env["MINIO_ROOT_USER"] == FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    monkeypatch.setenv("PATH", "/nonexistent")
    assert build_services(StackSettings(home=tmp_path), FAKE_CREDENTIALS, with_api=False)[0].implementation == "moto"


# -- credentials --------------------------------------------------------------------------------


def test_credentials_are_generated_once_random_and_private(tmp_path):
    first_file, other_file = tmp_path / "a" / "credentials.env", tmp_path / "b" / "credentials.env"
    first = load_credentials(first_file, environ={})
    assert stat.S_IMODE(first_file.stat().st_mode) == 0o600
    assert load_credentials(first_file, environ={}) == first
    other = load_credentials(other_file, environ={})
    secrets = [name for name in CREDENTIAL_VARIABLES if name != "MLFLOW_TRACKING_USERNAME"]
    assert all(first[name] != other[name] for name in secrets)
    assert (
        load_credentials(first_file, environ={"AWS_ACCESS_KEY_ID": "FROMTHEENV"})["AWS_ACCESS_KEY_ID"] == "FROMTHEENV"
    )


def test_stack_up_refuses_an_empty_or_placeholder_credential_and_starts_nothing(tmp_path):
    for value in ("", "change-me-mlflow-password"):
        home = tmp_path / f"home-{len(value)}"
        result = run_cli(
            ["stack", "up"], {**base_env(), "FLAVOR_HOME": str(home), "MLFLOW_TRACKING_PASSWORD": value}, timeout=60
        )
        assert result.returncode == 1
        assert "error: MLFLOW_TRACKING_PASSWORD" in result.stderr
        assert not (home / "stack" / "state.json").exists()


def test_mlflow_refuses_to_start_without_an_admin_password(tmp_path):
    ini = tmp_path / "auth.ini"
    env = {
        **base_env(),
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_BACKEND_STORE_URI": "sqlite:///x.db",
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 20,
    }
    refused = subprocess.run(
        [sys.executable, "-m", "flavor_ml.stack.mlflow_auth", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "no default admin password" in refused.stderr
    assert not ini.exists()
    started = subprocess.run(
        [sys.executable, "-m", "flavor_ml.stack.mlflow_auth", "true"],
        env={**env, "MLFLOW_TRACKING_PASSWORD": "a-real-password-1"},
        timeout=60,
    )
    assert started.returncode == 0
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    assert "admin_password = a-real-password-1" in ini.read_text()


# -- the native stack, for real -----------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[NativeStack]:
    with native_stack(tmp_path_factory.mktemp("stack-home"), "flavor_stacktest") as running:
        yield running


@pytest.fixture(scope="module")
def client(stack) -> dict[str, str]:
    """What ``flavor-ml stack env`` exports: the stack's credentials do not change while it runs, so
    it is read once (test_stack_env_prints_the_exports_a_client_needs runs the command itself)."""
    return stack.client_env()


def by_name(report: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in report}


def expected_services() -> set[str]:
    import importlib.util

    with_api = importlib.util.find_spec("flavor_ml.cli.serve") is not None
    return set(SERVICE_NAMES) - (set() if with_api else {API})


@pytest.mark.slow
def test_up_starts_every_service_healthy_on_the_configured_ports(stack):
    services = by_name(stack.first_up["services"])
    assert set(services) == expected_services()
    assert all(item["state"] == "up" for item in services.values()), services
    for name in set(services) - set(EXTERNAL_SERVICES):
        port = int(stack.env[PORT_VARIABLES[name]])
        assert services[name]["port"] == port
        assert services[name]["url"] == f"http://127.0.0.1:{port}"
        assert processes.is_running(services[name]["pid"])


@pytest.mark.slow
def test_status_reports_each_service_with_pid_port_and_url(stack):
    result = stack.cli("stack", "status", "--json", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["all_up"] is True
    assert {name: item["pid"] for name, item in by_name(report["services"]).items()} == {
        name: item["pid"] for name, item in by_name(stack.first_up["services"]).items()
    }
    text = stack.cli("stack", "status", timeout=60).stdout
    assert re.search(rf"^{PREFECT_SERVER}\s+up\s+\d+\s+{stack.env['FLAVOR_PREFECT_PORT']}\s+http://", text, re.M), text


@pytest.mark.slow
def test_logs_of_every_service_are_in_one_folder(stack):
    logs = stack.home / "stack" / "logs"
    for name in expected_services() - set(EXTERNAL_SERVICES):
        assert (logs / f"{name}.log").stat().st_size > 0, name
    assert "saved and checked" in (logs / "bootstrap.log").read_text()


@pytest.mark.faults("wrong-credentials")
@pytest.mark.slow
def test_prefect_refuses_requests_without_credentials(client):
    url = client["PREFECT_API_URL"] + "/flow_runs/filter"
    user, password = client["PREFECT_API_AUTH_STRING"].split(":", 1)
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, auth=(user, password + "x")).status_code == 401
    assert httpx.post(url, json={}, auth=(user, password)).status_code == 200


@pytest.mark.faults("wrong-credentials")
@pytest.mark.slow
def test_mlflow_refuses_requests_without_credentials(client):
    url = client["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/experiments/search?max_results=5"
    user, password = client["MLFLOW_TRACKING_USERNAME"], client["MLFLOW_TRACKING_PASSWORD"]
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=(user, password + "x")).status_code == 401
    assert httpx.get(url, auth=(user, password)).status_code == 200


@pytest.mark.slow  # the session starts its Prefect server for slow tests only
def test_a_server_that_answers_without_credentials_fails_the_credential_check():
    """The test session's own Prefect server runs without authentication: the check says so."""
    from flavor_ml.stack.credential_checks import check_prefect

    refusal = check_prefect(os.environ["PREFECT_API_URL"], "flavor:any-password-at-all")
    assert refusal is not None and not refusal.refused
    assert "without credentials" in refusal.message and "runs without authentication" in refusal.message


WRONG_CREDENTIALS = [
    ("AWS_SECRET_ACCESS_KEY", S3),
    ("PREFECT_API_AUTH_STRING", PREFECT_SERVER),
    ("MLFLOW_TRACKING_PASSWORD", MLFLOW),
    ("FLAVOR_API_ADMIN_TOKEN", API),
]


@pytest.mark.faults("stale-credentials")
@pytest.mark.slow
@pytest.mark.parametrize(("variable", "service"), WRONG_CREDENTIALS)
def test_up_and_status_name_the_service_that_refuses_the_credentials_handed_out(
    stack, client, variable, service, fault_outcome
):
    """A credential the running service does not accept (changed since it started, or kept in MLflow's
    database): `up` fails naming the service and the fix, `status` says auth-mismatch, not up."""
    if service not in expected_services():
        pytest.skip(f"{service} is not part of this stack")
    wrong = client[variable] + "-not-this-one"
    env = {**stack.env, variable: wrong}
    url = f"http://127.0.0.1:{stack.env[PORT_VARIABLES[service]]}"

    result = run_cli(["stack", "up"], env, timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {service} at {url} refused"), error
    fix = "`flavor-ml stack drop-databases`" if service == MLFLOW else "`flavor-ml stack down` and `flavor-ml stack up`"
    assert fix in error
    assert "started (pid" not in result.stdout

    status = run_cli(["stack", "status", "--json"], env, timeout=60)
    assert status.returncode == 3
    report = by_name(json.loads(status.stdout)["services"])
    assert report[service]["state"] == "auth-mismatch" and report[service]["problem"].startswith(f"{service} at {url}")
    assert {name: item["state"] for name, item in report.items() if name != service} == dict.fromkeys(
        set(report) - {service}, "up"
    )
    text = run_cli(["stack", "status"], env, timeout=60).stdout
    assert re.search(rf"^{service}\s+auth-mismatch\s", text, re.M), text
    assert all(wrong not in output for output in (result.stdout, result.stderr, status.stdout, text))
    fault_outcome(f"wrong {variable}: `up` exit 1 naming {service} and the fix, nothing started; status auth-mismatch")


def s3_client(client_env: dict[str, str], secret: str | None = None):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=client_env["FLAVOR_S3_ENDPOINT_URL"],
        region_name=client_env["FLAVOR_S3_REGION"],
        aws_access_key_id=client_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or client_env["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}),
    )


@pytest.mark.faults("wrong-credentials")
@pytest.mark.slow
def test_s3_store_refuses_requests_without_credentials(client):
    """MinIO checks credentials; so does the moto stand-in (flavor_ml/stack/moto_s3.py)."""
    from botocore.exceptions import ClientError

    bucket, endpoint = client["FLAVOR_S3_BUCKET"], client["FLAVOR_S3_ENDPOINT_URL"]
    s3_client(client).put_object(Bucket=bucket, Key="test/hello.txt", Body=b"hello")

    unsigned = httpx.get(f"{endpoint}/{bucket}/test/hello.txt")
    assert unsigned.status_code == 403 and "<Code>AccessDenied</Code>" in unsigned.text
    assert httpx.put(f"{endpoint}/{bucket}/test/intruder.txt", content=b"x").status_code == 403
    with pytest.raises(ClientError) as refused:
        s3_client(client, secret="not-the-secret").get_object(Bucket=bucket, Key="test/hello.txt")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert s3_client(client).get_object(Bucket=bucket, Key="test/hello.txt")["Body"].read() == b"hello"
    listing = s3_client(client).list_objects_v2(Bucket=bucket, Prefix="test/", Delimiter="/")
    assert [item["Key"] for item in listing["Contents"]] == ["test/hello.txt"]


@pytest.mark.faults("wrong-credentials")
@pytest.mark.slow
def test_every_service_refuses_a_write_without_or_with_wrong_credentials_and_nothing_changes(
    stack, client, fault_outcome
):
    from botocore.exceptions import ClientError

    intruder = f"intruder-{uuid.uuid4().hex[:8]}"
    user, password = client["PREFECT_API_AUTH_STRING"].split(":", 1)
    strangers = [None, (user, password + "x"), (intruder, password)]  # none, wrong password, unknown user

    prefect = client["PREFECT_API_URL"]
    assert [httpx.post(f"{prefect}/flows/", json={"name": intruder}, auth=auth).status_code for auth in strangers] == [
        401
    ] * 3
    flows = httpx.post(f"{prefect}/flows/filter", json={"flows": {"name": {"any_": [intruder]}}}, auth=(user, password))
    assert flows.status_code == 200 and flows.json() == []
    fault_outcome("Prefect: 3 of 3 writes refused (401), no flow created")

    mlflow_api = client["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow"
    mlflow_user, mlflow_password = client["MLFLOW_TRACKING_USERNAME"], client["MLFLOW_TRACKING_PASSWORD"]
    mlflow_strangers = [None, (mlflow_user, mlflow_password + "x"), (intruder, mlflow_password)]
    created = [
        httpx.post(f"{mlflow_api}/experiments/create", json={"name": intruder}, auth=auth).status_code
        for auth in mlflow_strangers
    ]
    assert created == [401] * 3
    found = httpx.get(
        f"{mlflow_api}/experiments/get-by-name",
        params={"experiment_name": intruder},
        auth=(mlflow_user, mlflow_password),
    )
    assert found.status_code == 404
    fault_outcome("MLflow: 3 of 3 writes refused (401), no experiment created")

    bucket, endpoint = client["FLAVOR_S3_BUCKET"], client["FLAVOR_S3_ENDPOINT_URL"]
    assert httpx.put(f"{endpoint}/{bucket}/{intruder}.txt", content=b"x").status_code == 403
    with pytest.raises(ClientError) as refused:
        s3_client(client, secret="not-the-secret").put_object(Bucket=bucket, Key=f"{intruder}.txt", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert "Contents" not in s3_client(client).list_objects_v2(Bucket=bucket, Prefix=intruder)
    fault_outcome("S3: unsigned PUT 403, bad signature SignatureDoesNotMatch, no object written")

    if API in expected_services():
        api = f"http://127.0.0.1:{stack.env[PORT_VARIABLES[API]]}"
        before = httpx.get(f"{api}/model").json()
        headers = [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Basic {password}"}]
        statuses = [httpx.post(f"{api}/admin/reload", headers=header).status_code for header in headers]
        assert statuses == [401, 403, 401]
        assert httpx.get(f"{api}/model").json() == before
        fault_outcome(f"API admin: reload refused {statuses}, the served model unchanged")


@pytest.mark.slow
def test_the_worker_writes_as_a_user_that_manages_nothing_and_the_api_reads_as_one_that_only_reads(
    stack, client, monkeypatch, tmp_path
):
    """Least privilege on MLflow: the worker's flows log runs, register versions and move aliases as
    flavor-writer, which may delete nothing and manage no users; the API reads as flavor-reader,
    which may write nothing, and holds no S3 keys, yet serves the version the writer promotes."""
    from mlflow import MlflowClient

    from flavor_ml.registry.stages import DEFAULT_MODEL_NAME
    from flavor_ml.stack.mlflow_auth import (
        READER_PASSWORD_VARIABLE,
        READER_USERNAME,
        WRITER_PASSWORD_VARIABLE,
        WRITER_USERNAME,
    )
    from tests.support.serving import RegistryStore, small_embeddings

    if API not in expected_services():
        pytest.skip(f"{API} is not part of this stack")
    credentials = load_credentials(stack.settings.credentials_file)
    env_of = {service.name: service.env for service in build_services(stack.settings, credentials)}
    assert (env_of[WORKER]["MLFLOW_TRACKING_USERNAME"], env_of[API]["MLFLOW_TRACKING_USERNAME"]) == (
        WRITER_USERNAME,
        READER_USERNAME,
    )
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env_of[API])
    writer = (WRITER_USERNAME, credentials[WRITER_PASSWORD_VARIABLE])
    reader = (READER_USERNAME, credentials[READER_PASSWORD_VARIABLE])
    assert (
        writer[1] == env_of[WORKER]["MLFLOW_TRACKING_PASSWORD"] and reader[1] == env_of[API]["MLFLOW_TRACKING_PASSWORD"]
    )

    monkeypatch.setenv("MLFLOW_TRACKING_URI", client["MLFLOW_TRACKING_URI"])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", client["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", client["MLFLOW_TRACKING_PASSWORD"])
    # An experiment and a model the admin made: the writer has only its role's EDIT on them (on what
    # it creates itself MLflow makes it the manager).
    store = RegistryStore.create(client["MLFLOW_TRACKING_URI"], tmp_path)
    MlflowClient(client["MLFLOW_TRACKING_URI"]).create_registered_model(DEFAULT_MODEL_NAME)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", writer[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", writer[1])
    with store.active():
        version = store.log_version(DEFAULT_MODEL_NAME, small_embeddings(seed=5))  # a run, a version
        store.promote(DEFAULT_MODEL_NAME, version)  # an alias

    mlflow_api = client["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow"
    model = {"name": DEFAULT_MODEL_NAME}
    # (MLflow lets any user create experiments and models of its own: the README's security section.)
    refused = {
        "writer: delete the alias": httpx.request(
            "DELETE", f"{mlflow_api}/registered-models/alias", json={**model, "alias": "production"}, auth=writer
        ),
        "writer: delete the experiment": httpx.post(
            f"{mlflow_api}/experiments/delete", json={"experiment_id": store.experiment_id}, auth=writer
        ),
        "writer: create a user": httpx.post(
            f"{mlflow_api}/users/create",
            json={"username": "by-the-writer", "password": "a-password-12345"},
            auth=writer,
        ),
        "reader: create a run": httpx.post(
            f"{mlflow_api}/runs/create", json={"experiment_id": store.experiment_id}, auth=reader
        ),
        "reader: register a version": httpx.post(
            f"{mlflow_api}/model-versions/create",
            json={**model, "source": f"models:/{DEFAULT_MODEL_NAME}/{version}"},
            auth=reader,
        ),
        "reader: move the alias": httpx.post(
            f"{mlflow_api}/registered-models/alias", json={**model, "alias": "staging", "version": version}, auth=reader
        ),
    }
    assert {what: response.status_code for what, response in refused.items()} == dict.fromkeys(refused, 403)
    read = httpx.get(f"{mlflow_api}/registered-models/get", params=model, auth=reader)
    assert read.status_code == 200
    assert [alias["alias"] for alias in read.json()["registered_model"]["aliases"]] == ["production"]

    api = f"http://127.0.0.1:{stack.env[PORT_VARIABLES[API]]}"
    reload = httpx.post(
        f"{api}/admin/reload", headers={"Authorization": f"Bearer {client['FLAVOR_API_ADMIN_TOKEN']}"}, timeout=120
    )
    assert reload.status_code == 200, reload.text
    served = httpx.get(f"{api}/similar/basil", timeout=30)
    assert served.status_code == 200 and served.headers["x-model-version"] == version


@pytest.mark.slow
def test_mlflow_proxies_artifacts_to_the_s3_store(stack, client):
    """What mlflow.log_artifact and load_artifact do through the tracking server, over its REST API."""
    api = client["MLFLOW_TRACKING_URI"] + "/api/2.0"
    auth = (client["MLFLOW_TRACKING_USERNAME"], client["MLFLOW_TRACKING_PASSWORD"])
    experiment = httpx.post(
        f"{api}/mlflow/experiments/create", json={"name": f"stack-{uuid.uuid4().hex[:6]}"}, auth=auth
    ).json()["experiment_id"]
    run = httpx.post(f"{api}/mlflow/runs/create", json={"experiment_id": experiment}, auth=auth).json()["run"]
    assert run["info"]["artifact_uri"] == f"mlflow-artifacts:/{experiment}/{run['info']['run_id']}/artifacts"
    path = f"{experiment}/{run['info']['run_id']}/artifacts/notes/pairing.txt"
    url = f"{api}/mlflow-artifacts/artifacts/{path}"
    assert httpx.put(url, content=b"basil goes with tomato").status_code == 401
    assert httpx.put(url, content=b"basil goes with tomato", auth=auth).status_code == 200
    assert httpx.get(url, auth=auth).content == b"basil goes with tomato"
    key = f"{stack.settings.mlflow_artifacts_prefix}/{path}"
    stored = s3_client(client).get_object(Bucket=client["FLAVOR_S3_BUCKET"], Key=key)
    assert stored["Body"].read() == b"basil goes with tomato"


@pytest.mark.slow
def test_bootstrap_created_the_pool_the_blocks_and_the_worker_polls_the_pool(stack, client):
    api = client["PREFECT_API_URL"]
    auth = tuple(client["PREFECT_API_AUTH_STRING"].split(":", 1))
    pool = httpx.get(f"{api}/work_pools/{client['FLAVOR_WORK_POOL']}", auth=auth)
    assert pool.status_code == 200 and pool.json()["type"] == "process"
    block_type, _, block_name = client["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"].partition("/")
    block = httpx.get(f"{api}/block_types/slug/{block_type}/block_documents/name/{block_name}", auth=auth)
    assert block.status_code == 200
    assert block.json()["data"]["bucket_name"] == client["FLAVOR_S3_BUCKET"]
    deadline = time.monotonic() + 30
    while True:
        workers = httpx.post(f"{api}/work_pools/{client['FLAVOR_WORK_POOL']}/workers/filter", json={}, auth=auth).json()
        if any(worker["name"] == stack.settings.worker_name for worker in workers) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [worker["name"] for worker in workers] == [stack.settings.worker_name]
    check = s3_client(client).get_object(
        Bucket=client["FLAVOR_S3_BUCKET"], Key=f"{stack.settings.result_storage_folder}/_bootstrap/check"
    )
    assert check["Body"].read() == b"ok"


@pytest.mark.slow
def test_stack_env_prints_the_exports_a_client_needs(stack):
    result = stack.cli("stack", "env", timeout=60)
    assert result.returncode == 0
    exports = dict(re.fullmatch(r"export (\w+)=(.*)", line).groups() for line in result.stdout.splitlines())
    assert CLIENT_VARIABLES <= set(exports)
    evaluated = subprocess.run(
        ["bash", "-c", 'eval "$(cat)"; echo "$PREFECT_API_URL $MLFLOW_TRACKING_URI"'],
        input=result.stdout,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert evaluated.stdout.split() == [
        f"http://127.0.0.1:{stack.env['FLAVOR_PREFECT_PORT']}/api",
        f"http://127.0.0.1:{stack.env['FLAVOR_MLFLOW_PORT']}",
    ]


@pytest.mark.slow
def test_up_again_changes_nothing(stack):
    before = {name: entry["pid"] for name, entry in stack.state().items()}
    began = time.monotonic()
    result = stack.cli("stack", "up")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began < 45
    assert {name: entry["pid"] for name, entry in stack.state().items()} == before
    assert all(f"{name}: already running (pid {pid})" in result.stdout for name, pid in before.items())


@pytest.mark.slow
def test_up_restarts_only_a_service_that_died(stack, client):
    before = {name: entry["pid"] for name, entry in stack.state().items()}
    processes.terminate(before[S3], stack.state()[S3]["started"])
    result = stack.cli("stack", "status", timeout=60)
    assert result.returncode == 3
    assert re.search(rf"^{S3}\s+down\s", result.stdout, re.M), result.stdout

    result = stack.cli("stack", "up")
    assert result.returncode == 0, result.stderr
    after = {name: entry["pid"] for name, entry in stack.state().items()}
    assert after[S3] != before[S3]
    assert {name: pid for name, pid in after.items() if name != S3} == {
        name: pid for name, pid in before.items() if name != S3
    }
    s3_client(client).head_bucket(Bucket=client["FLAVOR_S3_BUCKET"])


@pytest.mark.slow
def test_up_that_fails_stops_what_it_started_and_names_the_taken_port(stack, tmp_path):
    """The MLflow port is taken: the S3 store and the Prefect server `up` had started are stopped again."""
    home = tmp_path / "home"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        env = {
            **stack.env,
            "FLAVOR_HOME": str(home),
            "FLAVOR_S3_PORT": str(free_port()),
            "FLAVOR_PREFECT_PORT": str(free_port()),
            "FLAVOR_MLFLOW_PORT": str(squatter.getsockname()[1]),
        }
        for variable in ("FLAVOR_PREFECT_DB", "FLAVOR_MLFLOW_DB"):  # a home of its own: databases of its own
            del env[variable]
        try:
            result = run_cli(["stack", "up"], env, timeout=180)
        finally:
            drop_databases(StackSettings(home=home))
    assert result.returncode == 1
    assert "FLAVOR_MLFLOW_PORT" in result.stderr and "taken by another program" in result.stderr
    started = {name: int(pid) for name, pid in re.findall(r"^(\S+): started \(pid (\d+)", result.stdout, re.M)}
    assert set(started) == {S3, PREFECT_SERVER}
    for name in started:
        assert re.search(rf"^{name}: (stopped|killed) \(pid {started[name]}\), since `up` failed", result.stdout, re.M)
    assert not any(processes.is_running(pid) for pid in started.values())
    assert json.loads((home / "stack" / "state.json").read_text())["services"] == {}


def test_up_says_what_to_install_before_starting_anything(tmp_path):
    """moto (the S3 store without MinIO) missing: one line naming it and the extra; nothing started."""
    home = tmp_path / "home"
    hide_moto = (
        "import importlib.util, runpy, sys; find = importlib.util.find_spec; "
        "importlib.util.find_spec = lambda name, *a: None if name == 'moto' else find(name, *a); "
        "sys.argv = ['flavor-ml', 'stack', 'up']; runpy.run_module('flavor_ml', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_moto],
        env={**base_env(), "FLAVOR_HOME": str(home), "FLAVOR_S3_BACKEND": "moto"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: the stack cannot start: the S3 store needs")
    assert "moto" in result.stderr and "stack extra" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "stack" / "state.json").exists()


@pytest.mark.slow
def test_a_second_stack_home_on_the_same_postgres_uses_databases_of_its_own_and_both_work(stack, client, tmp_path):
    """Moved here from test_stack_ownership.py: this module's stack is the first home, so only the
    second one is started. The second uses its home's default database names."""
    with stack_home(tmp_path / "second") as second_env:
        up(second_env)
        second = client_of(second_env)
        theirs = load_stack_settings(home=tmp_path / "second")
        assert {stack.settings.prefect_db, stack.settings.mlflow_db}.isdisjoint({theirs.prefect_db, theirs.mlflow_db})

        assert mlflow_accepts(client) == mlflow_accepts(second) == 200
        assert mlflow_accepts(second, credentials_of=client) == 401
        assert mlflow_accepts(client, credentials_of=second) == 401
        user, _, password = client["PREFECT_API_AUTH_STRING"].partition(":")
        flow = httpx.post(
            client["PREFECT_API_URL"] + "/flows/",
            json={"name": "only-in-the-first-stack"},
            auth=(user, password),
            timeout=30,
        )
        assert flow.status_code in (200, 201), flow.text
        assert "only-in-the-first-stack" in prefect_flow_names(client)
        assert "only-in-the-first-stack" not in prefect_flow_names(second)


@pytest.mark.slow
def test_down_stops_every_process_it_started(stack):
    family = {pid for entry in stack.state().values() for pid in processes.family(entry["pid"])}
    assert len(family) >= len(stack.state())
    result = stack.cli("stack", "down", timeout=120)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 10
    while any(processes.is_running(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in family if processes.is_running(pid)] == []
    for name in expected_services() - set(EXTERNAL_SERVICES):
        port = int(stack.env[PORT_VARIABLES[name]])
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"{name} still listens on {port}"
    status = stack.cli("stack", "status", "--json", timeout=60)
    assert status.returncode == 3
    assert {
        item["name"]: item["state"]
        for item in json.loads(status.stdout)["services"]
        if item["name"] not in EXTERNAL_SERVICES
    } == {name: "down" for name in expected_services() - set(EXTERNAL_SERVICES)}
    assert stack.state() == {}
