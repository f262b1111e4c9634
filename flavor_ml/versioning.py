"""Code versions for cache keys, computed from the import graph rather than listed by hand.

A step's code is the step function itself (with whatever in its own module it uses) and every
``flavor_ml`` module it transitively imports, plus the package data files those modules name.
Each piece is hashed from its syntax tree without docstrings, so comments and formatting keep
the cache while any change to what the code does, anywhere the step reaches, moves its key.
Reading the graph takes ~0.4 s a process; with a ``cache_dir`` (:func:`version_cache_dir`) the
versions are kept there, valid for as long as no file of the package changes (:func:`package_fingerprint`).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any

from flavor_ml.atomic import atomic_path

PACKAGE = "flavor_ml"
PACKAGE_ROOT = Path(__file__).resolve().parent


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _digest(*nodes: ast.AST) -> str:
    digest = hashlib.sha256()
    for node in nodes:
        digest.update(ast.dump(node, annotate_fields=False, include_attributes=False).encode())
    return digest.hexdigest()[:16]


def _names_used(node: ast.AST) -> Iterator[str]:
    """Every bare name the node reads (``x``, the ``x`` of ``x.y``), annotations and defaults included."""
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            yield child.id


def _bound_names(statement: ast.stmt) -> list[str]:
    """The module-level names a top-level statement defines."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [statement.name]
    if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return []


@dataclass
class _Module:
    name: str
    path: Path
    tree: ast.Module
    #: local name -> the package modules that binding imports (``from a.b import c`` -> a.b.c or a.b)
    imported: dict[str, set[str]] = field(default_factory=dict)
    #: every package module imported anywhere in the file (functions included)
    imports: set[str] = field(default_factory=set)
    #: top-level name -> the statements that bind it
    definitions: dict[str, list[ast.stmt]] = field(default_factory=dict)

    @cached_property
    def digest(self) -> str:
        return _digest(self.tree)

    @cached_property
    def strings(self) -> set[str]:
        return {n.value for n in ast.walk(self.tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@dataclass(frozen=True)
class CodeVersion:
    """What a step's code is made of: a hash per module (or per used part of the step's own
    module) and per data file, so that a changed key can say which piece moved."""

    modules: dict[str, str]
    tables: dict[str, str]

    def parts(self) -> dict[str, str]:
        return {f"code:{name}": h for name, h in self.modules.items()} | {
            f"table:{name}": h for name, h in self.tables.items()
        }


@lru_cache(maxsize=1024)
def _parsed(text: str, filename: str) -> ast.Module:
    """A module's tree without docstrings, parsed once per text: a graph read again after one file
    changed parses only that file (the trees are only read after this)."""
    return _strip_docstrings(ast.parse(text, filename=filename))


class ImportGraph:
    """The modules of one package on disk and the package modules each one imports."""

    def __init__(self, root: Path = PACKAGE_ROOT, package: str = PACKAGE) -> None:
        self.root, self.package = root, package
        self.modules: dict[str, _Module] = {}
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join((package, *parts[:-1]) if parts[-1] == "__init__" else (package, *parts))
            self.modules[name] = _Module(name, path, _parsed(path.read_text(encoding="utf-8"), str(path)))
        for module in self.modules.values():
            self._read_imports(module)
        self.data_files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
        )

    def _with_parents(self, name: str) -> set[str]:
        """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
        parts = name.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & self.modules.keys()

    def _absolute(self, module: _Module, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        is_package = module.path.name == "__init__.py"
        base = module.name.split(".")[: len(module.name.split(".")) - node.level + (1 if is_package else 0)]
        return ".".join(base + ([node.module] if node.module else []))

    def _read_imports(self, module: _Module) -> None:
        for statement in module.tree.body:
            for name in _bound_names(statement):
                module.definitions.setdefault(name, []).append(statement)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets = self._with_parents(alias.name)
                    module.imports |= targets
                    local = alias.asname or alias.name.split(".")[0]
                    module.imported.setdefault(local, set()).update(targets)
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(module, node)
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets = self._with_parents(submodule if submodule in self.modules else source)
                    module.imports |= targets
                    module.imported.setdefault(alias.asname or alias.name, set()).update(targets)

    def closure(self, names: set[str]) -> set[str]:
        """The modules in ``names`` and every package module they import, transitively."""
        seen: set[str] = set()
        todo = [n for n in names if n in self.modules]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.modules[name].imports - seen)
        return seen

    def function_code(self, module_name: str, function: str) -> tuple[list[ast.stmt], set[str]]:
        """The statements of ``module_name`` that ``function`` needs (itself and the top-level
        names it uses, transitively) and the package modules those statements import."""
        module = self.modules[module_name]
        if function not in module.definitions:
            raise KeyError(f"{module_name} defines no {function!r}")
        needed: list[ast.stmt] = []
        imported: set[str] = set()
        todo, seen = [function], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            imported |= module.imported.get(name, set())
            for statement in module.definitions.get(name, []):
                if statement not in needed:
                    needed.append(statement)
                    todo.extend(_names_used(statement))
        needed.sort(key=lambda s: s.lineno)
        # Imports inside the needed statements count too.
        for statement in needed:
            for node in ast.walk(statement):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    local = ast.Module(body=[node], type_ignores=[])
                    probe = _Module(module.name, module.path, local)
                    self._read_imports(probe)
                    imported |= probe.imports
        return needed, imported

    def tables_named_in(self, modules: set[str]) -> dict[str, str]:
        """Package data files whose name appears as a string in any of the modules, by content hash."""
        strings = set().union(*(self.modules[name].strings for name in modules))
        return {
            str(path.relative_to(self.root)): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            for path in self.data_files
            if path.name in strings
        }

    def version_of(self, module_name: str, function: str) -> CodeVersion:
        """The code version of ``module_name.function``: see the module docstring."""
        statements, imported = self.function_code(module_name, function)
        # The step's own module counts whole only if something the step imports imports it back.
        reached = self.closure(imported | self._with_parents(module_name.rpartition(".")[0]))
        modules = {name: self.modules[name].digest for name in reached}
        modules[f"{module_name}:{function}"] = _digest(*statements)
        return CodeVersion(modules=dict(sorted(modules.items())), tables=self.tables_named_in(reached | {module_name}))


# Partition tasks compute keys in parallel threads; CPython 3.11's parser is not safe to run in
# several threads at once, and the graph is read once per process anyway.
_GRAPH_LOCK = threading.Lock()
CACHE_FILE = "code-versions.json"


@cache
def _graph() -> ImportGraph:
    # Read once per process: the key describes the code this process loaded.
    return ImportGraph()


@cache
def package_fingerprint(root: Path = PACKAGE_ROOT) -> str:
    """A hash of every file the import graph reads (sources and data files, by path and content):
    hashing the bytes takes milliseconds where parsing them takes a large part of a second."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        if path.suffix != ".pyc":
            content = path.read_bytes()
            digest.update(f"{path.relative_to(root).as_posix()}\0{len(content)}\0".encode())
            digest.update(content)
    return digest.hexdigest()


@cache
def _stored_versions(cache_file: Path) -> dict[str, dict[str, dict[str, str]]]:
    """The versions kept in ``cache_file`` for this package's files (empty for other files, or none)."""
    try:
        stored = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    versions: dict[str, dict[str, dict[str, str]]] = stored.get("versions", {})
    return versions if stored.get("fingerprint") == package_fingerprint() else {}


def _keep(cache_file: Path, versions: dict[str, dict[str, dict[str, str]]]) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_file) as tmp:
            tmp.write_text(json.dumps({"fingerprint": package_fingerprint(), "versions": versions}), encoding="utf-8")
    except OSError:
        pass  # a cache that cannot be written is only slower


def version_cache_dir(home: Path) -> Path:
    """Where to keep code versions: beside the package's bytecode, since they are a property of the
    installed code (a new home need not analyse it again); under ``home`` where the package folder
    is read-only (an image)."""
    bytecode = PACKAGE_ROOT / "__pycache__"
    if os.access(bytecode, os.W_OK) or (not bytecode.exists() and os.access(PACKAGE_ROOT, os.W_OK)):
        return bytecode
    return Path(home) / "cache-keys"


def code_version(function: Callable[..., Any], cache_dir: Path | None = None) -> CodeVersion:
    """The code version of a ``flavor_ml`` function (a pipeline step); kept in ``cache_dir`` when given."""
    module = function.__module__
    if not module.startswith(f"{PACKAGE}."):
        raise ValueError(f"{function!r} is not defined in {PACKAGE}")
    name = f"{module}:{function.__name__}"
    with _GRAPH_LOCK:
        versions = _stored_versions(cache_dir / CACHE_FILE) if cache_dir is not None else {}
        if name in versions:
            return CodeVersion(modules=versions[name]["modules"], tables=versions[name]["tables"])
        version = _graph().version_of(module, function.__name__)
        if cache_dir is not None:
            versions[name] = {"modules": version.modules, "tables": version.tables}
            _keep(cache_dir / CACHE_FILE, versions)
        return version
