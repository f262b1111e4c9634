"""Code versions for cache keys: they change when code changes, not when comments do."""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import threading
from types import ModuleType


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_version(*modules: ModuleType) -> str:
    """A short hash of what the modules *do*: their syntax trees without comments or docstrings.

    Reformatting, comments and docstrings leave it unchanged; any change to code changes it.
    """
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        digest.update(module.__name__.encode())
        digest.update(_module_code(module).encode())
    return digest.hexdigest()[:16]


_PARSE_LOCK = threading.Lock()


@functools.cache
def _module_code(module: ModuleType) -> str:
    # One parse per module and process, under a lock: CPython 3.11's parser is not safe to run
    # from several threads at once (partition tasks compute their keys concurrently).
    with _PARSE_LOCK:
        tree = _strip_docstrings(ast.parse(inspect.getsource(module)))
        return ast.dump(tree, annotate_fields=False, include_attributes=False)
