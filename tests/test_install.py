"""Installing flavor-ml: one lock for every install, and a base install that runs the main job.

The whole dependency set is locked in uv.lock; `make install`, CI and the image all install from
it. The base install (no extras, no dev group) trains, lists and serves; only the native stack
needs the ``stack`` extra, and says so before it starts anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.embedded import stopping_local_prefect, user_env

REPO = Path(__file__).resolve().parents[1]


def test_make_ci_and_the_image_install_from_the_lock():
    makefile = (REPO / "Makefile").read_text()
    assert "$(UV) sync --locked" in makefile and "$(UV) lock --check" in makefile
    # pip installs uv alone, into .tools/; everything else comes from the lock into .venv.
    assert [line for line in makefile.splitlines() if "pip install" in line] == [
        "\t$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target $(CURDIR)/.tools/uv uv"
    ]
    ci = (REPO / ".ci" / "run").read_text()
    assert "rm -rf .venv" in ci and "make test" in ci
    dockerfile = (REPO / "deployments" / "Dockerfile").read_text()
    assert "uv sync --locked --no-dev --extra stack" in dockerfile
    assert "!uv.lock" in (REPO / "deployments" / "Dockerfile.dockerignore").read_text()


@pytest.fixture(scope="module")
def base_install(tmp_path_factory) -> Path:
    """A fresh environment with the base install only, from the lock (uv reuses its cache: seconds)."""
    uv = shutil.which("uv") or str(REPO / ".tools" / "uv" / "bin" / "uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed (make install puts it on PATH or in .tools/)")
    venv = tmp_path_factory.mktemp("base") / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    subprocess.run([uv, "sync", "--locked", "--no-dev", "--quiet"], cwd=REPO, env=env, check=True, timeout=600)
    return venv


def fresh_environment_env() -> dict[str, str]:
    """A user's shell: Python caches the bytecode of what it imports (a fresh environment holds none,
    and without the cache the server and every command would compile Prefect and MLflow again)."""
    env = user_env(FLAVOR_TRAIN_EPOCHS="2")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def flavor_ml(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    with stopping_local_prefect(cwd / ".flavor"):
        return subprocess.run(
            [str(venv / "bin" / "flavor-ml"), *args],
            cwd=cwd,
            env=fresh_environment_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )


@pytest.mark.slow
def test_the_base_install_trains_lists_and_serves_without_extras(base_install, tmp_path):
    python = base_install / "bin" / "python"
    missing = subprocess.run([str(python), "-c", "import moto"], capture_output=True)
    assert missing.returncode != 0, "moto is the stack extra's, not the base install's"

    trained = flavor_ml(base_install, "train", "--json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads(trained.stdout)["registered_version"] == 1
    listed = flavor_ml(base_install, "models", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert [v["version"] for v in json.loads(listed.stdout)["versions"]] == [1]
    serving = subprocess.run(
        [str(python), "-c", "from flavor_ml.serving.app import create_app; create_app()"],
        cwd=tmp_path,
        env=fresh_environment_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert serving.returncode == 0, serving.stderr[-3000:]


@pytest.mark.slow
def test_the_stack_without_its_extra_says_what_to_install_and_starts_nothing(base_install, tmp_path):
    result = flavor_ml(base_install, "stack", "up", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: the stack cannot start:")
    assert "moto" in result.stderr and "stack extra" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / ".flavor" / "stack" / "state.json").exists()
