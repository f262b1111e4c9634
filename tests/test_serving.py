"""The inference API against a real MLflow registry: it serves the promoted version, follows
promotions without a restart, refuses a version that does not load, and answers bad input
with a 4xx JSON error.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from flavor_ml.errors import ConfigError
from flavor_ml.serving import app as serving_app
from flavor_ml.serving.app import create_app
from flavor_ml.serving.settings import ServingSettings, load_settings
from tests.support.processes import free_port, start, stop, wait_until_healthy
from tests.support.serving import (
    CORPUS_SHA256,
    GIT_SHA,
    INGREDIENTS,
    RegistryStore,
    session_sqlite_uri,
    small_embeddings,
    unique_model_name,
    wait_until,
)

# The session's one tracking server, shared with test_registry, test_promotion, ... (registered as a
# plugin: importing the fixture into this module made it a second server of its own, ~30 s to start).
pytest_plugins = ("tests.support.mlflow_server",)

POLL = 0.3  # seconds between alias checks in these tests
LOAD_ALLOWANCE = 5.0  # download + load + smoke check of a tiny model, on a busy 2-core machine
# The same in a `flavor-ml serve` process, whose first load also imports gensim and reads the registry
# cold: it took over 5 s at load 5.
PROCESS_LOAD_ALLOWANCE = 30.0
TOKEN = "test-admin-token-0123456789"


# --- registries -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory) -> RegistryStore:
    """The embedded default registry (SQLite): the session's, whose schema is created once."""
    root = tmp_path_factory.mktemp("sqlite-registry")
    return RegistryStore.create(session_sqlite_uri(tmp_path_factory), root / "scratch", (root / "artifacts").as_uri())


@pytest.fixture(scope="module")
def server_store(mlflow_server, tmp_path_factory) -> RegistryStore:
    return RegistryStore.create(mlflow_server.tracking_uri, tmp_path_factory.mktemp("server-registry"))


@pytest.fixture(params=["sqlite", pytest.param("tracking-server", marks=pytest.mark.slow)])
def registry(request) -> Iterator[RegistryStore]:
    """Each registry the service must work with, made MLflow's current one for the test."""
    store = request.getfixturevalue("sqlite_store" if request.param == "sqlite" else "server_store")
    with store.active():
        yield store


@pytest.fixture
def sqlite_registry(sqlite_store) -> Iterator[RegistryStore]:
    with sqlite_store.active():
        yield sqlite_store


def serving(model_name: str, poll: float = POLL, token: str | None = None, **limits: object) -> TestClient:
    settings = ServingSettings(
        model_name=model_name, model_stage="Production", model_poll_seconds=poll, api_admin_token=token, **limits
    )
    return TestClient(create_app(settings))


def version_served(client: TestClient) -> str | None:
    response = client.get("/ready")
    return response.json()["version"] if response.status_code == 200 else None


# --- a promoted model to query ----------------------------------------------------------------


@pytest.fixture(scope="module")
def promoted(sqlite_store) -> tuple[str, str]:
    """A model name and version that holds ``production`` in the SQLite registry."""
    name = unique_model_name()
    with sqlite_store.active():
        version = sqlite_store.log_version(name, small_embeddings(seed=7))
        sqlite_store.promote(name, version)
    return name, version


@pytest.fixture(scope="module")
def api(sqlite_store, promoted) -> Iterator[TestClient]:
    """The API serving ``promoted``, ready, with an admin token and small limits.

    One for the module: the tests that use it only query it (what moves the alias starts its own
    app), and starting one and waiting for its first load costs ~0.1 s, 40 times over.
    """
    name, version = promoted
    limits = {"api_max_k": 20, "api_max_ingredients": 5, "api_max_name_chars": 30}
    with serving(name, token=TOKEN, tracking_uri=sqlite_store.tracking_uri, **limits) as client:
        wait_until(lambda: version_served(client) == version, LOAD_ALLOWANCE, "the first load")
        yield client


# --- following the registry -------------------------------------------------------------------


def test_without_a_promoted_version_it_is_up_but_answers_503_until_an_alias_appears(registry):
    name = unique_model_name()
    with serving(name) as client:
        # The first alias check finds nothing (on a busy machine it may take longer than a poll).
        wait_until(lambda: "no version" in client.get("/ready").json()["detail"], LOAD_ALLOWANCE, "the first check")
        assert client.get("/health").status_code == 200
        not_ready = client.get("/ready")
        assert not_ready.status_code == 503
        assert "no version" in not_ready.json()["detail"] and "production" in not_ready.json()["detail"]
        for response in (client.get("/similar/basil"), client.post("/complete", json={"ingredients": ["basil"]})):
            assert response.status_code == 503
            assert response.json()["error"] == "no model is being served"
            assert response.headers["X-Model-Version"] == "none"
            assert "Retry-After" in response.headers

        version = registry.log_version(name, small_embeddings(seed=1))
        registry.promote(name, version)

        wait_until(lambda: version_served(client) == version, POLL + LOAD_ALLOWANCE, "serving the promoted version")
        response = client.get("/similar/basil")
        assert response.status_code == 200
        assert response.headers["X-Model-Version"] == version


def test_moving_the_alias_switches_the_served_version_within_one_poll_without_a_restart(registry):
    name = unique_model_name()
    first = registry.log_version(name, small_embeddings(seed=1))
    second = registry.log_version(name, small_embeddings(seed=2))
    registry.promote(name, first)
    with serving(name) as client:
        wait_until(lambda: version_served(client) == first, POLL + LOAD_ALLOWANCE, "serving the first version")

        registry.promote(name, second)
        promoted_at = time.monotonic()
        seen: list[tuple[int, str]] = []
        after_switch = 20  # requests still made once the new version answered
        while time.monotonic() - promoted_at < POLL + LOAD_ALLOWANCE and after_switch:
            response = client.get("/similar/basil", params={"k": 3})
            seen.append((response.status_code, response.headers["X-Model-Version"]))
            after_switch -= seen[-1][1] == second

    assert {status for status, _ in seen} == {200}, "a request failed during the swap"
    versions = [version for _, version in seen]
    switch = versions.index(second) if second in versions else len(versions)
    assert switch <= len(versions) - 20, f"still serving {versions[-1]} {POLL + LOAD_ALLOWANCE:g} s after the promotion"
    assert versions == [first] * switch + [second] * (len(versions) - switch), "the old version answered again"


@pytest.mark.parametrize("breakage", ["NaN in the vectors", "a vector file missing"])
def test_a_broken_new_version_is_refused_and_the_old_one_keeps_serving(registry, breakage):
    name = unique_model_name()
    good = registry.log_version(name, small_embeddings(seed=1))
    registry.promote(name, good)
    with serving(name) as client:
        wait_until(lambda: version_served(client) == good, POLL + LOAD_ALLOWANCE, "serving the good version")

        broken = registry.log_version(
            name,
            small_embeddings(seed=2, poison=breakage.startswith("NaN")),
            without_context_vectors=breakage.endswith("missing"),
        )
        registry.promote(name, broken)
        failure = wait_until(
            lambda: client.get("/model").json()["last_reload_error"],
            POLL + LOAD_ALLOWANCE,
            "the refusal being reported",
        )

        assert failure["version"] == broken
        assert f"version {broken} was refused" in failure["message"]
        assert f"still serving version {good}" in failure["message"]
        info = client.get("/model").json()
        assert (info["version"], info["alias_version"]) == (good, broken)
        response = client.get("/similar/basil")
        assert response.status_code == 200 and response.headers["X-Model-Version"] == good
        assert client.get("/ready").status_code == 200

        fixed = registry.log_version(name, small_embeddings(seed=3))
        registry.promote(name, fixed)
        wait_until(lambda: version_served(client) == fixed, POLL + LOAD_ALLOWANCE, "serving the fixed version")
        assert client.get("/model").json()["last_reload_error"] is None


def test_the_poller_stops_when_the_app_shuts_down(sqlite_registry):
    name = unique_model_name()
    client = serving(name)
    with client:
        holder = client.app.state.holder
        wait_until(lambda: holder.status()["checked_at"], LOAD_ALLOWANCE, "a first alias check")
        assert holder.polling
    assert not holder.polling
    assert not [t for t in threading.enumerate() if name in t.name]


# --- queries ----------------------------------------------------------------------------------


def test_similar_returns_the_k_nearest_ingredients_by_cosine_without_the_query(api):
    response = api.get("/similar/basil", params={"k": 4})

    assert response.status_code == 200
    body = response.json()
    expected = small_embeddings(seed=7).similar("basil", 4)
    assert body["ingredient"] == "basil" and body["k"] == 4
    assert [hit["ingredient"] for hit in body["similar"]] == [name for name, _ in expected]
    assert [hit["score"] for hit in body["similar"]] == pytest.approx([score for _, score in expected], abs=1e-5)


def test_a_large_model_answers_the_same_from_a_worker_thread(api, monkeypatch):
    inline = [api.get("/similar/basil").json(), api.post("/complete", json={"ingredients": ["basil", "lime"]}).json()]
    monkeypatch.setattr(serving_app, "THREADED_QUERIES_FROM", 0)  # every model counts as large

    threaded = [api.get("/similar/basil").json(), api.post("/complete", json={"ingredients": ["basil", "lime"]}).json()]

    assert threaded == inline


@pytest.mark.parametrize("written", ["Basil", "  BASIL ", "olive oil", "Olive Oil"])
def test_the_query_goes_through_the_training_normalizer(api, written):
    response = api.get(f"/similar/{written}")

    assert response.status_code == 200, response.json()
    assert response.json()["ingredient"] == written.strip().lower()


def test_green_onions_find_scallion_like_in_training(api):
    response = api.get("/similar/Green Onions")

    assert response.status_code == 200, response.json()
    assert response.json()["ingredient"] == "scallion"


def test_an_unknown_ingredient_is_404_with_close_spellings(api):
    response = api.get("/similar/basli")

    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "unknown ingredient" and "'basli'" in body["detail"]
    assert body["unknown"] == [{"ingredient": "basli", "did_you_mean": ["basil"]}]


def test_complete_excludes_the_inputs_and_reports_unknown_items_without_failing(api):
    response = api.post("/complete", json={"ingredients": ["tomato", "Basil", "tomatoe", "unobtainium"], "k": 5})

    assert response.status_code == 200
    body = response.json()
    assert body["ingredients"] == ["tomato", "basil"]
    assert [u["ingredient"] for u in body["unknown"]] == ["tomatoe", "unobtainium"]
    assert body["unknown"][0]["did_you_mean"][0] == "tomato"
    names = [hit["ingredient"] for hit in body["complements"]]
    assert len(names) == 5 and not {"tomato", "basil"} & set(names)
    assert names == [name for name, _ in small_embeddings(seed=7).complete(["tomato", "basil"], 5)]


def test_complete_with_only_unknown_ingredients_is_404(api):
    response = api.post("/complete", json={"ingredients": ["unobtainium", "kryptonite"]})

    assert response.status_code == 404
    assert response.json()["error"] == "unknown ingredients"
    assert [u["ingredient"] for u in response.json()["unknown"]] == ["unobtainium", "kryptonite"]


INVALID_REQUESTS = {
    "k above the limit": ("GET", "/similar/basil?k=21", None),
    "k of zero": ("GET", "/similar/basil?k=0", None),
    "k not a number": ("GET", "/similar/basil?k=ten", None),
    "name too long": ("GET", "/similar/" + "a" * 31, None),
    "empty list": ("POST", "/complete", {"ingredients": []}),
    "too many ingredients": ("POST", "/complete", {"ingredients": list(INGREDIENTS[:6])}),
    "ingredient too long": ("POST", "/complete", {"ingredients": ["basil", "b" * 31]}),
    "blank ingredient": ("POST", "/complete", {"ingredients": ["   "]}),
    "ingredient not a string": ("POST", "/complete", {"ingredients": [3]}),
    "k too big in the body": ("POST", "/complete", {"ingredients": ["basil"], "k": 21}),
    "k a string in the body": ("POST", "/complete", {"ingredients": ["basil"], "k": "5"}),
    "unexpected field": ("POST", "/complete", {"ingredients": ["basil"], "limit": 3}),
    "no ingredients field": ("POST", "/complete", {"k": 3}),
    "not json": ("POST", "/complete", "ingredients=basil"),
    "no body": ("POST", "/complete", None),
}


@pytest.mark.parametrize("case", INVALID_REQUESTS)
def test_invalid_requests_are_422_json_errors_never_500(api, case):
    method, url, body = INVALID_REQUESTS[case]
    if isinstance(body, str):
        response = api.request(method, url, content=body, headers={"Content-Type": "application/json"})
    else:
        response = api.request(method, url, json=body)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid request"
    assert response.json()["detail"]
    assert response.headers["X-Model-Version"] == version_served(api)


UNPARSEABLE_BODIES = {
    "deeply nested json": ('{"ingredients": ' + "[" * 20_000 + "]" * 20_000 + "}").encode(),
    "invalid utf-8": b'{"ingredients": ["bas\xff\xfeil"]}',
}


@pytest.mark.faults("api-abuse")
@pytest.mark.parametrize("case", UNPARSEABLE_BODIES)
def test_a_body_that_cannot_be_parsed_is_a_400_json_error_never_500(api, case, fault_outcome):
    response = api.post("/complete", content=UNPARSEABLE_BODIES[case], headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json() == {"error": "bad request", "detail": "There was an error parsing the body"}
    assert api.get("/health").status_code == 200
    fault_outcome(f"{case} (in process): {response.status_code}")


@pytest.mark.faults("api-abuse")
def test_a_body_larger_than_the_limit_is_413_and_closes_the_connection(api, fault_outcome):
    response = api.post("/complete", content=b"[" + b" " * 70_000 + b"]", headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"] == "request too large"
    assert response.headers["connection"] == "close"  # the rest of the body is not read
    fault_outcome(f"70 kB body (in process): {response.status_code}, Connection: close")


@pytest.mark.faults("api-abuse")
def test_a_chunked_body_larger_than_the_limit_is_413_and_closes_the_connection(api, fault_outcome):
    def chunks():  # no Content-Length: the size shows only while the body arrives
        for _ in range(1_000):  # 10 MB in all
            yield b" " * 10_000

    response = api.post("/complete", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert response.json()["error"] == "request too large"
    assert "65536" in response.json()["detail"]
    assert response.headers["connection"] == "close"
    fault_outcome(f"chunked 10 MB body (in process): {response.status_code}, Connection: close")


@pytest.mark.parametrize("method, url", [("GET", "/nowhere"), ("DELETE", "/similar/basil")])
def test_unknown_routes_and_methods_are_json_errors(api, method, url):
    response = api.request(method, url)

    assert response.status_code in (404, 405)
    assert set(response.json()) >= {"error", "detail"}


@pytest.mark.parametrize(
    "method, url",
    [
        ("GET", "/similar/basil"),
        ("POST", "/complete"),
        ("GET", "/model"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/similar/basli"),
        ("POST", "/admin/reload"),
        ("GET", "/openapi.json"),
    ],
)
def test_every_response_carries_the_served_version_in_a_header(api, promoted, method, url):
    response = api.request(method, url, json={"ingredients": ["basil"]} if method == "POST" else None)

    assert response.headers["X-Model-Version"] == promoted[1]


def test_model_reports_the_version_alias_run_and_provenance(api, promoted):
    name, version = promoted
    info = api.get("/model").json()

    assert (info["name"], info["version"], info["alias"]) == (name, version, "production")
    assert info["alias_version"] == version
    assert (info["git_sha"], info["corpus_sha256"]) == (GIT_SHA, CORPUS_SHA256)
    assert info["run_id"] and info["loaded_at"] and info["last_reload_error"] is None
    assert (info["ingredients"], info["dimensions"]) == (len(INGREDIENTS), 8)


# --- admin ------------------------------------------------------------------------------------


def test_admin_reload_is_disabled_without_a_configured_token(sqlite_registry, promoted):
    with serving(promoted[0], token="") as client:
        response = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 404
    assert response.json()["error"] == "admin endpoints are disabled"
    assert "FLAVOR_API_ADMIN_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize(
    "authorization, status",
    [(None, 401), ("Basic dXNlcjpwYXNz", 401), ("Bearer ", 401), ("Bearer wrong-token", 403), (f"Bearer {TOKEN}", 200)],
)
def test_admin_reload_requires_the_bearer_token(api, authorization, status):
    response = api.post("/admin/reload", headers={"Authorization": authorization} if authorization else {})

    assert response.status_code == status
    if status != 200:
        assert response.json()["error"].startswith("admin token")
    else:
        assert response.json()["outcome"] == "unchanged"


def test_admin_reload_swaps_in_a_moved_alias_at_once(sqlite_registry):
    name = unique_model_name()
    first = sqlite_registry.log_version(name, small_embeddings(seed=1))
    second = sqlite_registry.log_version(name, small_embeddings(seed=2, poison=True))
    third = sqlite_registry.log_version(name, small_embeddings(seed=3))
    sqlite_registry.promote(name, first)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(name, poll=3600, token=TOKEN) as client:  # only the first check and /admin/reload
        wait_until(lambda: version_served(client) == first, LOAD_ALLOWANCE, "the first load")

        sqlite_registry.promote(name, second)
        refused = client.post("/admin/reload", headers=auth)
        sqlite_registry.promote(name, third)
        swapped = client.post("/admin/reload", headers=auth)

    assert refused.status_code == 409 and refused.json()["outcome"] == "refused"
    assert "not all finite" in refused.json()["detail"] and refused.headers["X-Model-Version"] == first
    assert swapped.status_code == 200
    assert swapped.json() | {"message": None} == {
        "outcome": "swapped",
        "version": third,
        "serving": third,
        "message": None,
    }
    assert swapped.headers["X-Model-Version"] == third


# --- settings and the real server -------------------------------------------------------------


def test_settings_come_from_flavor_environment_variables(monkeypatch):
    monkeypatch.setenv("FLAVOR_MODEL_NAME", "flavor-ml-embeddings-eu")
    monkeypatch.setenv("FLAVOR_MODEL_STAGE", "Staging")
    monkeypatch.setenv("FLAVOR_MODEL_POLL_SECONDS", "2.5")
    monkeypatch.setenv("FLAVOR_API_ADMIN_TOKEN", TOKEN)

    settings = load_settings()

    assert (settings.model_name, settings.model_alias, settings.model_poll_seconds) == (
        "flavor-ml-embeddings-eu",
        "staging",
        2.5,
    )
    assert settings.api_admin_token.get_secret_value() == TOKEN


def test_settings_default_to_the_production_model_with_admin_disabled(monkeypatch):
    for variable in ("FLAVOR_MODEL_NAME", "FLAVOR_MODEL_STAGE", "FLAVOR_MODEL_POLL_SECONDS", "FLAVOR_API_ADMIN_TOKEN"):
        monkeypatch.delenv(variable, raising=False)

    settings = load_settings()

    assert (settings.model_name, settings.model_alias, settings.model_poll_seconds) == (
        "flavor-ml-embeddings",
        "production",
        30,
    )
    assert settings.api_admin_token is None


@pytest.mark.parametrize("stage", ["Archived", "None", "latest", "v3", "no spaces please"])
def test_settings_refuse_a_stage_that_cannot_be_served(stage):
    with pytest.raises(ConfigError, match="FLAVOR_MODEL_STAGE"):
        load_settings(model_stage=stage)


@pytest.mark.slow
def test_serve_runs_uvicorn_on_loopback_and_follows_a_promotion(sqlite_registry, tmp_path):
    name = unique_model_name()
    first = sqlite_registry.log_version(name, small_embeddings(seed=1))
    second = sqlite_registry.log_version(name, small_embeddings(seed=2))
    sqlite_registry.promote(name, first)
    port = free_port()
    log = tmp_path / "serve.log"
    process = start(
        [sys.executable, "-m", "flavor_ml", "serve", "--host", "127.0.0.1", "--port", str(port)],
        log,
        env={
            "MLFLOW_TRACKING_URI": sqlite_registry.tracking_uri,
            "FLAVOR_MODEL_NAME": name,
            "FLAVOR_MODEL_STAGE": "production",
            "FLAVOR_MODEL_POLL_SECONDS": str(POLL),
            "FLAVOR_API_ADMIN_TOKEN": TOKEN,
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{base}/health", process, log, timeout=60)
        with httpx.Client(base_url=base, timeout=10) as http:
            wait_until(lambda: http.get("/ready").status_code == 200, PROCESS_LOAD_ALLOWANCE, "the server being ready")
            similar = http.get("/similar/Basil", params={"k": 3})
            assert similar.status_code == 200 and similar.headers["x-model-version"] == first
            assert len(similar.json()["similar"]) == 3
            assert http.get("/similar/basil", params={"k": 10_000}).status_code == 422

            sqlite_registry.promote(name, second)
            wait_until(
                lambda: http.get("/similar/basil").headers["x-model-version"] == second,
                POLL + LOAD_ALLOWANCE,
                "the server following the promotion",
            )
    finally:
        stop(process)
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]  # uvicorn re-raises the signal
    assert "Application shutdown complete" in log.read_text()


def _registry_server(root, port: int):
    """A plain MLflow tracking server on SQLite under ``root``: one that a test may stop and start again."""
    root.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art")]
    log = root / f"mlflow-{time.monotonic_ns()}.log"
    process = start(command, log, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log, timeout=180)
    return process


def _serve(tmp_path, registry_uri: str, name: str, label: str):
    port, log = free_port(), tmp_path / f"serve-{label}.log"
    env = {"MLFLOW_TRACKING_URI": registry_uri, "FLAVOR_MODEL_NAME": name, "FLAVOR_MODEL_POLL_SECONDS": "0.5"}
    process = start([sys.executable, "-m", "flavor_ml", "serve", "--port", str(port)], log, env=env)
    wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log, timeout=60)
    return process, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)


@pytest.mark.faults("registry-unreachable")
@pytest.mark.slow
def test_a_registry_outage_is_named_within_seconds_and_the_loaded_version_keeps_serving(tmp_path, fault_outcome):
    port = free_port()
    registry_uri, root = f"http://127.0.0.1:{port}", tmp_path / "registry"
    registry = _registry_server(root, port)
    servers = []
    try:
        store, name = RegistryStore.create(registry_uri, tmp_path / "scratch"), unique_model_name()
        with store.active():
            version = store.log_version(name, small_embeddings(seed=3))
            store.promote(name, version)
        serving, http = _serve(tmp_path, registry_uri, name, "before")
        servers.append(serving)
        wait_until(lambda: http.get("/ready").status_code == 200, PROCESS_LOAD_ALLOWANCE, "the first load")

        stop(registry)
        # While serving: the error shows on /model within seconds, and queries go on being answered.
        outage = time.monotonic()
        wait_until(lambda: http.get("/model").json()["last_reload_error"], 10, "the outage on /model")
        fault_outcome(f"while serving: outage on /model after {time.monotonic() - outage:.1f} s, /similar still 200")
        assert "registry could not resolve" in http.get("/model").json()["last_reload_error"]["message"]
        answered = http.get("/similar/basil")
        assert answered.status_code == 200 and answered.headers["x-model-version"] == version
        # At start: not ready, saying why, within seconds (MLflow's client alone would retry for minutes).
        starting, fresh = _serve(tmp_path, registry_uri, name, "during")
        servers.append(starting)
        began = time.monotonic()
        wait_until(lambda: "registry could not resolve" in fresh.get("/ready").text, 10, "the reason on /ready")
        assert fresh.get("/ready").status_code == 503
        fault_outcome(f"at start: /ready 503 with the reason {time.monotonic() - began:.1f} s after /health")

        registry = _registry_server(root, port)  # back, with the same database
        back = time.monotonic()
        wait_until(lambda: http.get("/model").json()["last_reload_error"] is None, 10, "recovery of the first")
        wait_until(
            lambda: fresh.get("/ready").status_code == 200, 10 + PROCESS_LOAD_ALLOWANCE, "recovery of the second"
        )
        fault_outcome(f"both recovered by themselves {time.monotonic() - back:.1f} s after the registry was back")
        assert fresh.get("/similar/basil").headers["x-model-version"] == version
    finally:
        for process in servers:
            stop(process)
        stop(registry)
    for process in servers:  # no call hung the shutdown
        assert process.returncode in (0, -signal.SIGTERM)
