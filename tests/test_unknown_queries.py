"""What callers ask for that the model lacks: counted by the API in bounded memory (normalized names
only), listed at GET /admin/unknown, and turned by report-unknown into synonym rows that the
normalizer reads, which closes the loop from what users type back to the training corpus."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from flavor_ml.data.normalization import Normalizer
from flavor_ml.errors import ConfigError, ServiceError
from flavor_ml.serving.app import create_app
from flavor_ml.serving.settings import ServingSettings
from flavor_ml.serving.unknown import UnknownCounter
from flavor_ml.settings import ApiClientSettings
from flavor_ml.unknown_report import (
    UnknownName,
    UnknownSnapshot,
    fetch_unknown,
    report_markdown,
    suggest_synonyms,
    synonyms_csv,
)
from tests.support.api_server import api_server
from tests.support.serving import (
    INGREDIENTS,
    RegistryStore,
    session_sqlite_uri,
    small_embeddings,
    unique_model_name,
    wait_until,
)

TOKEN = "unknown-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --- the counter ------------------------------------------------------------------------------------------


def test_the_counter_counts_names_and_lists_the_most_asked_first():
    counter = UnknownCounter(capacity=10)
    for name in ["yuzu", "sumac", "yuzu", "nori", "yuzu", "sumac"]:
        counter.add(name)
    assert [(e.name, e.count, e.error) for e in counter.top()] == [("yuzu", 3, 0), ("sumac", 2, 0), ("nori", 1, 0)]
    assert counter.snapshot()["total_unknown_queries"] == 6


def test_the_counter_never_holds_more_than_its_capacity_and_keeps_the_heavy_hitters():
    counter = UnknownCounter(capacity=20)
    for i in range(5_000):
        counter.add(f"rare name {i}")  # a long tail of one-off names...
        if i % 5 == 0:
            counter.add("yuzu kosho")  # ...and two names asked for again and again
        if i % 10 == 0:
            counter.add("gochujang")
    snapshot = counter.snapshot()
    assert snapshot["tracked"] == 20 and len(counter.top()) == 20
    # Space-Saving keeps every name asked for more than total / capacity (6500 / 20) times, and ranks them first
    top = {e.name: e for e in counter.top(2)}
    assert set(top) == {"yuzu kosho", "gochujang"}
    # the count is an upper bound, at most `error` above the truth
    assert top["yuzu kosho"].count - top["yuzu kosho"].error <= 1000 <= top["yuzu kosho"].count
    assert top["gochujang"].count - top["gochujang"].error <= 500 <= top["gochujang"].count


def test_names_the_normalizer_reduced_to_nothing_are_counted_without_any_text():
    counter = UnknownCounter(capacity=5)
    counter.add(None)
    counter.add("")
    snapshot = counter.snapshot()
    assert snapshot["unnamed_queries"] == 2 and snapshot["total_unknown_queries"] == 2 and snapshot["unknown"] == []


def test_the_counter_is_safe_under_concurrent_adds():
    counter = UnknownCounter(capacity=50)

    def hammer(offset: int) -> None:
        for i in range(2_000):
            counter.add(f"name {(i + offset) % 80}")

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snapshot = counter.snapshot()
    assert snapshot["total_unknown_queries"] == 8_000 and snapshot["tracked"] == 50
    assert sum(e.count for e in counter.top()) == 8_000  # Space-Saving keeps the total in the table


# --- the API ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> RegistryStore:
    root = tmp_path_factory.mktemp("unknown-registry")
    return RegistryStore.create(session_sqlite_uri(tmp_path_factory), root / "scratch", (root / "artifacts").as_uri())


@pytest.fixture(scope="module")
def promoted(store) -> str:
    name = unique_model_name()
    with store.active():
        store.promote(name, store.log_version(name, small_embeddings(seed=3)))
    return name


def client_for(store: RegistryStore, name: str, token: str | None = TOKEN, **settings: object) -> TestClient:
    return TestClient(
        create_app(
            ServingSettings(
                model_name=name, model_stage="Production", model_poll_seconds=0.3, api_admin_token=token, **settings
            )
        )
    )


@pytest.fixture
def api(store, promoted) -> Iterator[TestClient]:
    with store.active(), client_for(store, promoted, api_unknown_capacity=3) as client:
        wait_until(lambda: client.get("/ready").status_code == 200, 10, "the first load")
        yield client


def test_unknown_queries_are_counted_by_their_normalized_name_only(api):
    assert api.get("/similar/2 Tsp Oregeno, chopped").status_code == 404
    assert api.get("/similar/oregeno").status_code == 404
    assert api.post("/complete", json={"ingredients": ["basil", "Soy Sause", "2 cups"]}).status_code == 200
    assert api.get("/similar/Basil").status_code == 200  # known names are not counted

    listing = api.get("/admin/unknown", headers=AUTH)
    assert listing.status_code == 200
    body = listing.json()
    assert [(u["name"], u["count"]) for u in body["unknown"]] == [("oregeno", 2), ("soy sause", 1)]
    assert body["unnamed_queries"] == 1  # "2 cups": nothing was left of it, and nothing of it is kept
    assert body["total_unknown_queries"] == 4 and body["capacity"] == 3
    assert "oregano" in body["unknown"][0]["did_you_mean"] and "soy sauce" in body["unknown"][1]["did_you_mean"]
    assert [u["known_now"] for u in body["unknown"]] == [False, False]
    text = listing.text
    assert "Tsp" not in text and "chopped" not in text and "2 cups" not in text and "testclient" not in text
    assert body["model_version"] == api.get("/ready").json()["version"]


def test_the_unknown_list_is_bounded_by_the_configured_capacity(api):
    for i in range(10):
        api.get(f"/similar/blorp{chr(97 + i)}")  # ten distinct names
    body = api.get("/admin/unknown", headers=AUTH).json()
    assert body["tracked"] == 3 and len(body["unknown"]) == 3 and body["total_unknown_queries"] == 10
    assert api.get("/admin/unknown", params={"limit": 4}, headers=AUTH).status_code == 422  # above the capacity


def test_the_unknown_list_needs_the_admin_token(store, promoted, api):
    assert api.get("/admin/unknown").status_code == 401
    assert api.get("/admin/unknown", headers={"Authorization": "Bearer wrong"}).status_code == 403
    with store.active(), client_for(store, promoted, token=None) as without_token:
        refused = without_token.get("/admin/unknown")
        assert refused.status_code == 404 and "FLAVOR_API_ADMIN_TOKEN" in refused.json()["detail"]


# --- proposals -------------------------------------------------------------------------------------------------


def snapshot(*unknown: UnknownName) -> UnknownSnapshot:
    return UnknownSnapshot(
        api_url="http://api",
        model_name="m",
        model_version="3",
        since="2026-01-01T00:00:00Z",
        capacity=100,
        tracked=len(unknown),
        total_unknown_queries=sum(u.count for u in unknown),
        unnamed_queries=0,
        unknown=list(unknown),
    )


def test_a_synonym_row_is_proposed_only_where_a_close_known_name_exists():
    report = suggest_synonyms(
        snapshot(
            UnknownName(name="oregeno", count=9, did_you_mean=["oregano", "orange"]),
            UnknownName(name="yuzu kosho", count=5, did_you_mean=[]),
            UnknownName(name="bazil pesto", count=2, did_you_mean=["basil"]),  # too far from any known name
        )
    )
    assert [(s.variant, s.canonical, s.count) for s in report.suggestions] == [("oregeno", "oregano", 9)]
    learnt = suggest_synonyms(snapshot(UnknownName(name="oregeno", count=9, did_you_mean=["oregano"], known_now=True)))
    assert learnt.suggestions == []  # the version served now knows it: nothing to propose
    rows = [line for line in synonyms_csv(report).splitlines() if not line.startswith("#")]
    assert rows == ["variant,canonical,asked,similarity", "oregeno,oregano,9,0.857"]


def test_the_report_escapes_names_and_shows_every_unknown_with_its_proposal():
    text = report_markdown(
        suggest_synonyms(
            snapshot(
                UnknownName(name="oregeno", count=9, did_you_mean=["oregano"]),
                UnknownName(name="script alert | x <b>", count=1),
            )
        )
    )
    assert "| oregeno | 9 | 0 | → oregano (0.86) | - |" in text
    assert "<b>" not in text and "&lt;b&gt;" in text and "alert \\| x" in text


def test_fetching_needs_a_token_and_names_the_api_on_failure():
    with pytest.raises(ConfigError, match="FLAVOR_API_ADMIN_TOKEN"):
        fetch_unknown(ApiClientSettings(api_url="http://api", api_admin_token=None))

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"error": "admin token refused", "detail": "not this server's"})

    settings = ApiClientSettings(api_url="http://api.example:8000", api_admin_token="t")
    with pytest.raises(
        ServiceError, match=r"GET http://api.example:8000/admin/unknown answered 403: admin token refused"
    ):
        fetch_unknown(settings, transport=httpx.MockTransport(refuse))

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ServiceError, match="cannot reach the inference API at http://api.example:8000/admin/unknown"):
        fetch_unknown(settings, transport=httpx.MockTransport(unreachable))


# --- the loop, end to end ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_unknown_pulls_counts_from_a_running_api_and_its_synonym_rows_teach_the_normalizer(
    store, promoted, tmp_path, monkeypatch
):
    from prefect.artifacts import Artifact

    from flows.report_unknown import report_unknown

    assert "oregano" in INGREDIENTS
    with api_server(store.tracking_uri, promoted, tmp_path / "serve.log", token=TOKEN) as base:
        with httpx.Client(base_url=base, timeout=10) as http:
            for typed in ["Oregeno", "2 tsp oregeno, dried", "oregeno", "Soy Sause", "yuzu kosho"]:
                assert http.get(f"/similar/{typed}").status_code == 404
        monkeypatch.setenv("FLAVOR_API_URL", base)
        monkeypatch.setenv("FLAVOR_API_ADMIN_TOKEN", TOKEN)
        out = tmp_path / "proposed-synonyms.csv"
        report = report_unknown(synonyms_out=str(out))

    assert [(u.name, u.count) for u in report.snapshot.unknown] == [("oregeno", 3), ("soy sause", 1), ("yuzu kosho", 1)]
    assert {(s.variant, s.canonical) for s in report.suggestions} == {
        ("oregeno", "oregano"),
        ("soy sause", "soy sauce"),
    }
    artifact = Artifact.get("unknown-ingredients")
    assert artifact is not None and "→ oregano" in str(artifact.data) and "yuzu kosho" in str(artifact.data)

    # the loop: the reviewed rows make the normalizer map what users typed to the known ingredient
    assert Normalizer(extra_synonyms=None).normalize_lines(["2 tsp oregeno"]) == ["oregeno"]
    assert Normalizer(extra_synonyms=out).normalize_lines(["2 tsp Oregeno, dried", "soy sause"]) == [
        "oregano",
        "soy sauce",
    ]
