"""A stack's databases belong to its home: never shared with another home, never reused after a reset.

What these tests hold:

- each stack home has PostgreSQL databases named after it, unless FLAVOR_PREFECT_DB /
  FLAVOR_MLFLOW_DB name others;
- a database records the stack that created it; ``up`` refuses another stack's database before
  starting anything, naming it, its owner and the fix, and adopts one that records no owner
  only once the credentials proved good;
- two stack homes on one PostgreSQL run side by side, each on its own databases, each refusing
  the other's credentials (in test_stack.py, beside that module's running stack);
- a home removed and made again fails at ``up`` naming MLflow and `flavor-ml stack drop-databases`,
  which then lets it start afresh; a home whose credentials file was lost fails at ``up`` the
  same way, once MLflow refuses the new password.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flavor_ml.stack import processes
from flavor_ml.stack.config import StackSettings, load_settings
from flavor_ml.stack.databases import (
    StackOwner,
    claim_databases,
    database_owners,
    drop_databases,
    ensure_databases,
    ensure_stack_id,
)
from flavor_ml.stack.errors import StackError
from flavor_ml.stack.services import MLFLOW
from tests.support.postgres import postgres_available
from tests.support.stack import client_of, mlflow_accepts, run_cli, stack_home, up


@pytest.fixture
def postgres() -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")


def settings_of(home: Path, **names: str) -> StackSettings:
    return StackSettings(home=home, **names)


@contextmanager
def throwaway(settings: StackSettings) -> Iterator[StackSettings]:
    try:
        yield settings
    finally:
        drop_databases(settings)


def unique_names(prefix: str = "flavor_owner") -> dict[str, str]:
    tag = f"{prefix}_{uuid.uuid4().hex[:8]}"
    return {"prefect_db": f"{tag}_prefect", "mlflow_db": f"{tag}_mlflow"}


# -- names --------------------------------------------------------------------------------------


def test_each_home_has_databases_named_after_it(tmp_path):
    first, second = settings_of(tmp_path / "a"), settings_of(tmp_path / "b")
    assert {first.prefect_db, first.mlflow_db}.isdisjoint({second.prefect_db, second.mlflow_db})
    assert re.fullmatch(r"flavor_prefect_[0-9a-f]{10}", first.prefect_db)
    assert first.mlflow_db == f"flavor_mlflow_{first.prefect_db.rsplit('_', 1)[1]}"
    assert settings_of(tmp_path / "a" / ".." / "a").mlflow_db == first.mlflow_db  # the resolved path counts
    assert settings_of(tmp_path / "a", mlflow_db="mine").mlflow_db == "mine"


def test_a_home_keeps_the_database_names_up_saved_and_the_environment_wins(tmp_path, monkeypatch):
    from flavor_ml.stack.config import save_settings

    home = tmp_path / "home"
    save_settings(settings_of(home, prefect_db="flavor_prefect", mlflow_db="flavor_mlflow"))  # an older home
    monkeypatch.delenv("FLAVOR_MLFLOW_DB", raising=False)
    monkeypatch.delenv("FLAVOR_PREFECT_DB", raising=False)
    assert (load_settings(home=home).prefect_db, load_settings(home=home).mlflow_db) == (
        "flavor_prefect",
        "flavor_mlflow",
    )
    monkeypatch.setenv("FLAVOR_MLFLOW_DB", "chosen_here")
    assert load_settings(home=home).mlflow_db == "chosen_here"


# -- owners -------------------------------------------------------------------------------------


def test_up_creates_the_databases_owned_by_its_stack_and_accepts_them_again(tmp_path, postgres):
    with throwaway(settings_of(tmp_path / "home", **unique_names())) as settings:
        stack_id = ensure_stack_id(settings)
        first = ensure_databases(settings, stack_id)
        assert first.created == [settings.prefect_db, settings.mlflow_db] and first.unclaimed == []
        owners = database_owners(settings)
        assert {owner.stack_id for owner in owners.values()} == {stack_id}
        assert {owner.home for owner in owners.values()} == {str((tmp_path / "home").resolve())}
        again = ensure_databases(settings, stack_id)
        assert again.created == [] and again.unclaimed == []


@pytest.mark.faults("stale-credentials")
def test_another_homes_databases_are_refused_naming_the_owner_and_the_fix(tmp_path, postgres):
    names = unique_names()
    with throwaway(settings_of(tmp_path / "a", **names)) as owner_settings:
        ensure_databases(owner_settings, ensure_stack_id(owner_settings))
        other = settings_of(tmp_path / "b", **names)
        with pytest.raises(StackError) as refused:
            ensure_databases(other, ensure_stack_id(other))
    message = str(refused.value)
    assert f"MLflow's PostgreSQL database {names['mlflow_db']!r} belongs to the stack at {tmp_path / 'a'}" in message
    assert "credentials would be refused" in message
    assert "FLAVOR_MLFLOW_DB" in message and other.mlflow_db.split("_")[-1] in message  # this home's default
    assert "still uses it: do not drop it" in message


def test_a_reset_home_is_refused_its_earlier_databases_with_the_command_that_drops_them(tmp_path, postgres):
    home = tmp_path / "home"
    with throwaway(settings_of(home, **unique_names())) as settings:
        ensure_databases(settings, ensure_stack_id(settings))
        shutil.rmtree(home)
        with pytest.raises(StackError) as refused:
            ensure_databases(settings, ensure_stack_id(settings))
    message = str(refused.value)
    assert "an earlier stack of this home" in message and "MLflow" in message
    assert "`flavor-ml stack drop-databases`" in message


def test_a_moved_home_keeps_its_databases_and_a_copied_one_does_not_share_them(tmp_path, postgres):
    names = unique_names()
    with throwaway(settings_of(tmp_path / "a", **names)) as settings:
        stack_id = ensure_stack_id(settings)
        ensure_databases(settings, stack_id)
        shutil.copytree(tmp_path / "a", tmp_path / "copy")
        with pytest.raises(StackError, match=r"this home is a copy of it"):
            ensure_databases(settings_of(tmp_path / "copy", **names), stack_id)
        shutil.rmtree(tmp_path / "copy")
        (tmp_path / "a").rename(tmp_path / "moved")
        moved = settings_of(tmp_path / "moved", **names)
        assert ensure_databases(moved, stack_id).created == []
        assert {owner.home for owner in database_owners(moved).values()} == {str((tmp_path / "moved").resolve())}


def test_a_database_without_an_owner_is_adopted_only_when_claimed(tmp_path, postgres):
    """What older stacks created: no owner recorded. ``up`` claims it once MLflow accepted its credentials."""
    from flavor_ml.stack.databases import _connect
    from flavor_ml.stack.native import _credential_advice

    settings = settings_of(tmp_path / "home", **unique_names())
    with throwaway(settings):
        connection = _connect(settings)
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{settings.mlflow_db}"')
        connection.close()
        stack_id = ensure_stack_id(settings)
        found = ensure_databases(settings, stack_id)
        assert found.created == [settings.prefect_db] and found.unclaimed == [settings.mlflow_db]
        assert database_owners(settings)[settings.mlflow_db] is None
        # Should MLflow refuse the credentials, dropping it is not the only advice: another home may use it.
        assert "records no owning stack" in _credential_advice(MLFLOW, settings)
        assert claim_databases(settings, found.unclaimed, stack_id) == [settings.mlflow_db]
        assert database_owners(settings)[settings.mlflow_db].stack_id == stack_id
        assert "records no owning stack" not in _credential_advice(MLFLOW, settings)


def test_a_database_with_a_comment_of_someone_else_is_not_taken(tmp_path, postgres):
    from flavor_ml.stack.databases import _connect

    settings = settings_of(tmp_path / "home", **unique_names())
    with throwaway(settings):
        connection = _connect(settings)
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{settings.prefect_db}"')
            cursor.execute(f"COMMENT ON DATABASE \"{settings.prefect_db}\" IS 'accounting, do not touch'")
        connection.close()
        with pytest.raises(StackError, match=r"comment flavor-ml did not write \('accounting, do not touch'\)"):
            ensure_databases(settings, ensure_stack_id(settings))


def test_an_owner_round_trips_through_its_comment():
    owner = StackOwner("0123abcd", "/home/cook/.flavor", "2025-01-02 03:04:05 UTC")
    assert StackOwner.parse("db", owner.comment()) == owner
    assert StackOwner.parse("db", None) is None


# -- the native stack, for real -----------------------------------------------------------------


@pytest.mark.faults("stale-credentials")
@pytest.mark.slow
def test_a_home_that_lost_its_credentials_or_was_reset_fails_at_up_naming_mlflow_and_the_fix(
    tmp_path, postgres, fault_outcome
):
    home = tmp_path / "home"
    with stack_home(home) as env:
        up(env)
        assert run_cli(["stack", "down"], env, timeout=120).returncode == 0

        # The credentials file is gone, the databases are not: MLflow keeps the first admin password.
        (home / "stack" / "credentials.env").unlink()
        lost = run_cli(["stack", "up"], env)
        assert lost.returncode == 1, lost.stdout + lost.stderr
        error = lost.stderr.strip().splitlines()[-1]
        assert error.startswith(
            f"error: {MLFLOW} at http://127.0.0.1:{env['FLAVOR_MLFLOW_PORT']} refused the user 'flavor-admin'"
        ), lost.stderr
        assert "`flavor-ml stack drop-databases`" in error and load_settings(home=home).mlflow_db in error
        started = {int(pid) for pid in re.findall(r"started \(pid (\d+)", lost.stdout)}
        assert started and not any(processes.is_running(pid) for pid in started)
        fault_outcome("lost credentials: `up` exit 1 naming MLflow and `drop-databases`, what it started stopped")

        # The whole home is gone: refused before anything starts.
        shutil.rmtree(home)
        reset = run_cli(["stack", "up"], env)
        assert reset.returncode == 1
        assert "MLflow's PostgreSQL database" in reset.stderr and "an earlier stack of this home" in reset.stderr
        assert "`flavor-ml stack drop-databases`" in reset.stderr
        assert "started (pid" not in reset.stdout
        fault_outcome("reset home: `up` exit 1 naming the earlier stack's databases, nothing started")

        # The fix it names, then a fresh stack whose MLflow accepts the new credentials.
        dropped = run_cli(["stack", "drop-databases", "--yes"], env, timeout=120)
        assert dropped.returncode == 0, dropped.stderr
        up(env)
        assert mlflow_accepts(client_of(env)) == 200
        refused = run_cli(["stack", "drop-databases", "--yes"], env, timeout=120)
        assert refused.returncode == 1 and "still run; `flavor-ml stack down` first" in refused.stderr
