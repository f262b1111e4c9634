"""The promote-model and rollback-model flows, the CLI on top of them, and the training event.

Flows run in-process on the test session's Prefect server; artifacts, concurrency limits and
events are read back from its API. So every test that runs a flow or reads that API is slow; the
listing (``flavor-ml models``) runs no flow and is not. Registries: the SQLite default, plus the
Postgres-backed server for the race.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from unittest import mock

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.events import DeploymentEventTrigger
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from typer.testing import CliRunner

from flavor_ml.cli import app
from flavor_ml.registry.audit import promotion_log
from flavor_ml.registry.decisions import GatesFailed
from flavor_ml.registry.promotion import promote, rollback
from flows.events import MODEL_PROMOTED, TRAINING_COMPLETED, emit_training_completed, staging_trigger
from flows.promote import lock_name, promote_model
from tests.test_promotion import POLICY, POLICY_FILE, metrics, registry  # noqa: F401  (registry is a fixture)

pytest_plugins = ("tests.support.mlflow_server",)

sqlite_only = pytest.mark.parametrize("registry", ["sqlite"], indirect=True)
#: Runs a flow, or reads what one left on the Prefect server.
on_prefect_server = pytest.mark.slow


@pytest.fixture
def name() -> str:
    return f"flow-test-{uuid.uuid4().hex[:8]}"


def run_promotion(registry, name: str, stage: str = "staging", **parameters):
    """The flow's final state (the flow is not allowed to raise into the test)."""
    return promote_model(
        stage=stage,
        policy_path=str(POLICY_FILE),
        model_name=name,
        tracking_uri=registry.uri,
        return_state=True,
        **parameters,
    )


def artifacts_of(state) -> list:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )


def events_named(event: str, resource_id: str, timeout: float = 20.0) -> list:
    """Events the API has stored (it persists them asynchronously, so wait for them)."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(
                EventFilter(event=EventNameFilter(name=[event]), resource=EventResourceFilter(id=[resource_id])),
                limit=50,
            )
            if page.events or time.monotonic() > deadline:
                return page.events
            time.sleep(0.5)


@on_prefect_server
@sqlite_only
def test_the_flow_promotes_and_publishes_the_gate_table_as_an_artifact(registry, name):
    version = registry.train(name, metrics())

    state = run_promotion(registry, name, version=version)

    assert state.is_completed(), state.message
    decision = state.result()
    assert (decision.decision, decision.to_version) == ("promoted", version)
    assert decision.flow_run_id == str(state.state_details.flow_run_id)
    assert (decision.policy_version, decision.policy_sha256) == ("test-1", POLICY.sha256)
    assert registry.holder(name, "staging") == version
    assert registry.tags(name, version)["promotion.staging.flow_run_id"] == decision.flow_run_id
    [artifact] = artifacts_of(state)
    assert artifact.type == "markdown" and artifact.key == f"promotion-{name}-staging"
    assert "| gate | value | rule | result | reason |" in artifact.data
    assert "| `threshold:completion_hr10` | 0.62 | >= 0.5 | pass |" in artifact.data
    [promoted] = events_named(MODEL_PROMOTED, f"flavor-ml.model.{name}.version.{version}")
    assert promoted.payload == {"model_name": name, "stage": "staging", "from_version": None, "to_version": version}


@on_prefect_server
@sqlite_only
def test_a_rejection_fails_the_run_with_a_message_naming_each_failed_gate_and_moves_nothing(registry, name):
    held = registry.train(name, metrics())
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)
    bad = registry.train(name, metrics(hr10=0.45, popularity=0.44))

    state = run_promotion(registry, name, version=bad)

    assert state.is_failed()
    for gate in (
        "threshold:completion_hr10",
        "margin:completion_hr10-popularity",
        "margin:completion_hr10-ppmi_svd",
        "non_regression:completion_hr10",
    ):
        assert gate in state.message
    assert registry.holder(name, "staging") == held
    rejected = state.result(raise_on_failure=False)
    assert isinstance(rejected, GatesFailed) and rejected.decision.version == bad
    [artifact] = artifacts_of(state)
    assert "**FAIL**" in artifact.data and "**rejected**" in artifact.data
    with pytest.raises(GatesFailed, match="threshold:completion_hr10"):
        promote_model(
            stage="staging", version=bad, policy_path=str(POLICY_FILE), model_name=name, tracking_uri=registry.uri
        )


@pytest.mark.faults("promotion-race")
@on_prefect_server
def test_racing_promotion_flows_are_serialised_so_only_one_can_win(registry, name):
    held = registry.train(name, metrics(hr10=0.60, mrr=0.25))
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)
    # Each rival beats the holder but is worse than the other on one metric, so whichever moves
    # first must make the other fail — unless both are judged against the old holder.
    rivals = [registry.train(name, metrics(hr10=0.70, mrr=0.30)), registry.train(name, metrics(hr10=0.66, mrr=0.36))]
    states, start = {}, threading.Barrier(len(rivals))

    def contend(version: int) -> None:
        start.wait()
        states[version] = run_promotion(registry, name, version=version)

    threads = [threading.Thread(target=contend, args=(version,)) for version in rivals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    [winner] = [v for v, state in states.items() if state.is_completed()]
    [loser] = [v for v, state in states.items() if state.is_failed()]
    assert registry.holder(name, "staging") == winner
    # The loser's verdict names the winner as the holder it was judged against (the state's message
    # comes from the API, so it holds even when the in-process result was not kept).
    assert f"of v{winner}" in states[loser].message
    assert [(e.decision, e.from_version, e.to_version) for e in promotion_log(registry.store, name)] == [
        ("promoted", None, held),
        ("promoted", held, winner),
        ("rejected", winner, winner),
    ]
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(lock_name("Staging"))
    assert (limit.name, limit.limit, limit.active) == ("promote-staging", 1, True)


@pytest.mark.faults("promotion-race")
@on_prefect_server
@sqlite_only
def test_two_promote_processes_for_one_stage_at_once_leave_one_winner_and_both_in_the_audit_log(
    registry, name, fault_outcome
):
    held = registry.train(name, metrics(hr10=0.60, mrr=0.25))
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)
    rivals = [registry.train(name, metrics(hr10=0.70, mrr=0.30)), registry.train(name, metrics(hr10=0.66, mrr=0.36))]
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.uri}  # the session's Prefect server: the lock is there
    command = [sys.executable, "-m", "flavor_ml", "promote", "--to", "staging", "--policy", str(POLICY_FILE)]
    command += ["--model-name", name, "--json"]

    processes = {
        v: subprocess.Popen([*command, "--version", str(v)], env=env, stdout=subprocess.PIPE, text=True) for v in rivals
    }
    verdicts = {v: (process.wait(timeout=300), json.loads(process.stdout.read())) for v, process in processes.items()}

    [winner] = [v for v, (code, verdict) in verdicts.items() if code == 0 and verdict["decision"] == "promoted"]
    [loser] = [v for v, (code, verdict) in verdicts.items() if code == 3 and verdict["decision"] == "rejected"]
    assert registry.holder(name, "staging") == winner
    assert [(e.decision, e.from_version, e.to_version) for e in promotion_log(registry.store, name)] == [
        ("promoted", None, held),
        ("promoted", held, winner),
        ("rejected", winner, winner),
    ]
    fault_outcome(
        f"2 processes: v{winner} promoted (exit 0), v{loser} rejected against it (exit 3); audit log has both"
    )


@on_prefect_server
def test_the_stage_lock_is_created_on_first_use_and_repaired_if_loosened():
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from flows.promote import ensure_lock

    name = f"promote-test-{uuid.uuid4().hex[:8]}"
    ensure_lock(name)
    ensure_lock(name)
    with get_client(sync_client=True) as client:
        created = client.read_global_concurrency_limit_by_name(name)
        client.delete_global_concurrency_limit_by_name(name)
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=4, active=False))
        ensure_lock(name)
        repaired = client.read_global_concurrency_limit_by_name(name)
    assert (created.limit, created.active) == (1, True)
    assert (repaired.limit, repaired.active) == (1, True)


@on_prefect_server
def test_training_completed_is_an_event_about_the_new_version_that_triggers_staging():
    @flow(name="fake-training")
    def fake_training() -> None:
        emit_training_completed("flavor-ml-embeddings", 7, "run-abc", {"completion_hr10": 0.61})

    state = fake_training(return_state=True)

    [event] = events_named(TRAINING_COMPLETED, "flavor-ml.model.flavor-ml-embeddings.version.7")
    assert event.payload == {
        "model_name": "flavor-ml-embeddings",
        "version": 7,
        "run_id": "run-abc",
        "metrics": {"completion_hr10": 0.61},
    }
    assert f"prefect.flow-run.{state.state_details.flow_run_id}" in [r.id for r in event.related]
    trigger = DeploymentEventTrigger(**staging_trigger())
    assert trigger.expect == {TRAINING_COMPLETED}
    assert trigger.parameters["version"] == "{{ event.payload.version }}"


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli(registry, monkeypatch):
    """Run ``flavor-ml …`` in-process against the test registry; (exit code, parsed stdout or text, stderr)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.uri)
    runner = CliRunner()

    def invoke(*args: str):
        with mock.patch.dict(os.environ):  # the command exports its settings; keep them out of later tests
            result = runner.invoke(app, list(args), catch_exceptions=False)
        out = json.loads(result.stdout) if "--json" in args and result.stdout.strip() else result.stdout
        return result.exit_code, out, result.stderr

    return invoke


@on_prefect_server
@sqlite_only
def test_cli_promote_prints_the_decision_as_json_and_exits_by_verdict(registry, name, cli):
    good = registry.train(name, metrics())
    common = ("--policy", str(POLICY_FILE), "--model-name", name, "--json")

    code, dry, _ = cli("promote", "--to", "Staging", "--version", str(good), "--dry-run", *common)
    assert (code, dry["decision"], dry["passed"], registry.holder(name, "staging")) == (0, "dry-run", True, None)

    code, promoted, _ = cli("promote", "--to", "staging", *common)
    assert code == 0
    assert {k: promoted[k] for k in ("decision", "version", "stage", "from_version", "to_version")} == {
        "decision": "promoted",
        "version": good,
        "stage": "staging",
        "from_version": None,
        "to_version": good,
    }
    assert promoted["gates"]["threshold:completion_hr10"] == {
        "value": 0.62,
        "threshold": 0.5,
        "op": ">=",
        "passed": True,
        "reason": "completion_hr10 0.62 >= 0.5",
    }

    bad = registry.train(name, metrics(hr10=0.45))
    code, rejected, _ = cli("promote", "--to", "staging", *common)
    assert code == 3
    assert (rejected["decision"], rejected["version"]) == ("rejected", bad)
    assert rejected["gates"]["threshold:completion_hr10"]["passed"] is False
    assert "threshold:completion_hr10" in rejected["failed_gates"]
    assert registry.holder(name, "staging") == good


@on_prefect_server
@sqlite_only
def test_cli_rollback_prints_the_restored_version_as_json(registry, name, cli):
    first, second = registry.train(name, metrics()), registry.train(name, metrics(hr10=0.65))
    for version in (first, second):
        promote(registry.store, "staging", version, policy=POLICY, model_name=name)

    code, rolled_back, _ = cli("rollback", "--stage", "staging", "--model-name", name, "--json")
    assert code == 0
    assert (rolled_back["decision"], rolled_back["from_version"], rolled_back["to_version"]) == (
        "rolled-back",
        second,
        first,
    )
    assert registry.holder(name, "staging") == first


@sqlite_only
def test_cli_models_lists_versions_with_aliases_metrics_and_the_last_decision(registry, name, cli):
    first, second = registry.train(name, metrics()), registry.train(name, metrics(hr10=0.65))
    for version in (first, second):
        promote(registry.store, "staging", version, policy=POLICY, model_name=name)
    rollback(registry.store, "staging", model_name=name)  # the library call the rollback flow makes

    code, listed, _ = cli("models", "--model-name", name, "--json")
    assert code == 0
    versions = {v["version"]: v for v in listed["versions"]}
    assert versions[first]["aliases"] == ["staging"] and versions[second]["aliases"] == []
    assert versions[second]["last_decision"]["status"] == "rolled-back"
    assert versions[first]["metrics"]["completion_hr10"] == 0.62

    code, table, _ = cli("models", "--model-name", name)
    assert code == 0 and "completion_hr10" in table.splitlines()[0] and "rolled-back (staging" in table


@on_prefect_server
@sqlite_only
def test_cli_errors_are_one_line_and_exit_1(registry, cli):
    code, _, stderr = cli("promote", "--to", "staging", "--model-name", "never-trained", "--json")
    assert code == 1 and "has no registered versions yet" in stderr

    code, _, stderr = cli("rollback", "--stage", "Archived")
    assert code == 1 and "cannot be served or promoted to" in stderr
