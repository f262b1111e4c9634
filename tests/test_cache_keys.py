"""A step's cache key follows every line of code and every table the step can reach.

The code part is computed from the import graph of the step's pipeline function, so a module
nobody remembered to list cannot serve a stale result. These tests edit a temporary copy of
the package and watch the keys.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flavor_ml import pipeline, versioning
from flavor_ml.cache_keys import hash_parts
from flavor_ml.versioning import PACKAGE_ROOT, ImportGraph, code_version

STEPS = ("fetch", "normalize", "train", "evaluate")


def copy_of_the_package(folder: Path) -> Path:
    copy = folder / "flavor_ml"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return copy_of_the_package(tmp_path)


def keys(root: Path) -> dict[str, dict[str, str]]:
    graph = ImportGraph(root)
    return {step: graph.version_of("flavor_ml.pipeline", step).parts() for step in STEPS}


@pytest.fixture(scope="module")
def unedited_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """The keys of an unedited copy, which every ``package`` starts as (reading the graph takes ~0.6 s)."""
    return keys(copy_of_the_package(tmp_path_factory.mktemp("unedited")))


def module_file(root: Path, module: str) -> Path:
    path = root.joinpath(*module.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_each_step_reaches_the_modules_it_really_runs() -> None:
    modules = {step: set(code_version(getattr(pipeline, step)).modules) for step in STEPS}

    # The module that went stale under the hand-kept lists: used by training and by the metrics.
    assert "flavor_ml.embeddings" in modules["train"] and "flavor_ml.embeddings" in modules["evaluate"]
    assert {"flavor_ml.data.normalization", "flavor_ml.data.baskets", "flavor_ml.data.formats"} <= modules["normalize"]
    assert {"flavor_ml.eval.metrics", "flavor_ml.eval.baselines", "flavor_ml.eval.categories"} <= modules["evaluate"]
    assert {"flavor_ml.data.fetch", "flavor_ml.storage", "flavor_ml.settings"} <= modules["fetch"]
    for step, reached in modules.items():
        assert f"flavor_ml.pipeline:{step}" in reached
        assert not {m for m in reached if m.startswith(("flavor_ml.serving", "flavor_ml.registry", "flavor_ml.cli"))}
    assert "flavor_ml.eval.metrics" not in modules["normalize"] | modules["fetch"]
    # Training chooses the served completion scorer on the validation split with the metrics' code.
    assert "flavor_ml.eval.metrics" in modules["train"]


@pytest.mark.slow
def test_the_graph_holds_every_package_module_python_really_imports_for_the_pipeline() -> None:
    """Ground truth from the interpreter: what importing the pipeline loads is inside the graph's closure."""
    script = "import sys, json, flavor_ml.pipeline; print(json.dumps(sorted(m for m in sys.modules if m.startswith('flavor_ml'))))"
    loaded = set(
        json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)
    )
    assert loaded <= ImportGraph().closure({"flavor_ml.pipeline"})


@pytest.mark.slow
def test_changing_any_module_a_step_imports_changes_that_steps_key_and_no_other(
    package: Path, unedited_keys: dict[str, dict[str, str]]
) -> None:
    before = unedited_keys
    reached = {
        step: {p.removeprefix("code:") for p in parts if p.startswith("code:") and ":" not in p[5:]}
        for step, parts in before.items()
    }
    for module in sorted(set().union(*reached.values())):
        path = module_file(package, module)
        original = path.read_text()
        path.write_text(original + "\n_CACHE_KEY_PROBE = 1\n")
        after = keys(package)
        for step in STEPS:
            changed = {name for name in after[step] if after[step][name] != before[step].get(name)}
            if module in reached[step]:
                assert changed == {f"code:{module}"}, (module, step)
                assert hash_parts(step, after[step]) != hash_parts(step, before[step])
            else:
                assert after[step] == before[step], (module, step)
        path.write_text(original)


def test_changing_a_module_no_step_imports_keeps_every_key(
    package: Path, unedited_keys: dict[str, dict[str, str]]
) -> None:
    before = unedited_keys
    reached = set().union(*({p[5:] for p in parts if p.startswith("code:")} for parts in before.values()))
    unrelated = [m for m in ImportGraph(package).modules if m not in reached and m != "flavor_ml.pipeline"]
    assert {"flavor_ml.serving.app", "flavor_ml.registry.policy", "flavor_ml.cache_keys"} <= set(unrelated)
    for module in unrelated:
        path = module_file(package, module)
        path.write_text(path.read_text() + "\n_CACHE_KEY_PROBE = 1\n")

    assert keys(package) == before


@pytest.mark.slow
def test_changing_a_step_function_changes_its_key_but_not_the_other_steps(
    package: Path, unedited_keys: dict[str, dict[str, str]]
) -> None:
    before = unedited_keys
    path = package / "pipeline.py"
    source = path.read_text()
    for step in STEPS:
        edited = ast.parse(source)
        function = next(n for n in edited.body if isinstance(n, ast.FunctionDef) and n.name == step)
        function.body.append(ast.Pass())
        path.write_text(ast.unparse(edited))

        after = keys(package)
        assert [s for s in STEPS if after[s] != before[s]] == [step]
        assert {n for n in after[step] if after[step][n] != before[step][n]} == {f"code:flavor_ml.pipeline:{step}"}
        path.write_text(source)  # the unedited copy again: ``before`` holds for the next step


def test_a_helper_in_the_pipeline_module_counts_for_the_steps_that_call_it(
    package: Path, unedited_keys: dict[str, dict[str, str]]
) -> None:
    path = package / "pipeline.py"
    before = unedited_keys
    source = path.read_text()
    helper = "yield TrainingSides(fit=fit, validation=validation, held_out=sides.held_out)"  # in training_sides
    assert helper in source
    path.write_text(
        source.replace(helper, "yield TrainingSides(fit=validation, validation=fit, held_out=sides.held_out)")
    )
    after = keys(package)
    assert {s for s in STEPS if after[s] != before[s]} == {"train", "evaluate"}


def test_comments_docstrings_and_formatting_keep_the_key(
    package: Path, unedited_keys: dict[str, dict[str, str]]
) -> None:
    before = unedited_keys
    path = package / "embeddings.py"
    source = path.read_text()
    path.write_text("# a new comment\n" + source.replace('"""', '"""Reworded. ', 1) + "\n\n# trailing\n")
    assert keys(package) == before


def test_a_data_table_named_by_a_reached_module_is_part_of_the_key(
    package: Path, unedited_keys: dict[str, dict[str, str]]
) -> None:
    before = unedited_keys
    units = package / "data" / "resources" / "units.csv"
    units.write_text(units.read_text() + "smidgen,after_number\n")
    after = keys(package)

    assert after["normalize"]["table:data/resources/units.csv"] != before["normalize"]["table:data/resources/units.csv"]
    assert "table:data/resources/units.csv" not in after["fetch"] and after["fetch"] == before["fetch"]


@pytest.fixture
def fresh_version_caches():
    """The per-process memos of the package's fingerprint and of a cache file, forgotten around the test."""
    memos = (versioning.package_fingerprint, versioning._stored_versions)  # a test may replace them
    for memo in memos:
        memo.cache_clear()
    yield
    for memo in memos:
        memo.cache_clear()


def test_code_versions_kept_in_a_folder_are_read_back_without_reading_the_graph(
    tmp_path, monkeypatch, fresh_version_caches
) -> None:
    computed = code_version(pipeline.train, cache_dir=tmp_path)
    assert computed == code_version(pipeline.train)
    versioning._stored_versions.cache_clear()  # as in a new process

    def no_graph() -> ImportGraph:
        raise AssertionError("the graph was read although the folder keeps the version")

    monkeypatch.setattr(versioning, "_graph", no_graph)
    assert code_version(pipeline.train, cache_dir=tmp_path) == computed


def test_kept_code_versions_are_not_used_once_a_file_of_the_package_changed(
    tmp_path, monkeypatch, fresh_version_caches
) -> None:
    kept = tmp_path / versioning.CACHE_FILE
    code_version(pipeline.train, cache_dir=tmp_path)
    stored = json.loads(kept.read_text())
    stored["versions"]["flavor_ml.pipeline:train"]["modules"]["flavor_ml.pipeline:train"] = "stale"
    kept.write_text(json.dumps(stored))
    versioning._stored_versions.cache_clear()
    # The same files: the kept (here doctored) version is what comes back...
    assert code_version(pipeline.train, cache_dir=tmp_path).modules["flavor_ml.pipeline:train"] == "stale"

    versioning._stored_versions.cache_clear()
    monkeypatch.setattr(versioning, "package_fingerprint", lambda: "another package")  # any file edited
    # ... other files: the version is computed again, and kept for the new files.
    assert code_version(pipeline.train, cache_dir=tmp_path) == code_version(pipeline.train)
    assert json.loads(kept.read_text())["fingerprint"] == "another package"


def test_the_package_fingerprint_follows_any_edit_of_a_file(package) -> None:
    before = versioning.package_fingerprint.__wrapped__(package)
    (package / "data" / "normalization.py").write_text(
        module_file(package, "flavor_ml.data.normalization").read_text() + "\n# x\n"
    )
    assert versioning.package_fingerprint.__wrapped__(package) != before


def test_code_versions_are_kept_beside_the_bytecode_or_under_the_home_when_the_package_is_read_only(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(versioning.os, "access", lambda path, mode: True)
    assert versioning.version_cache_dir(tmp_path) == PACKAGE_ROOT / "__pycache__"  # shared by every home
    monkeypatch.setattr(versioning.os, "access", lambda path, mode: False)  # an image's read-only install
    assert versioning.version_cache_dir(tmp_path) == tmp_path / "cache-keys"
