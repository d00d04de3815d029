"""The package's shape, kept: no module over 400 lines, no function over 50 (its docstring
not counted), so that each part can be read in one sitting (the layers themselves are
import-linter's contracts in pyproject.toml, run by the test command)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dask_batch"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE, MAX_FUNCTION = 400, 50


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the last."""
    body = node.body
    if (len(body) > 1 and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1


def long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.name}:{node.lineno} {node.name} ({body_lines(node)})"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and body_lines(node) > MAX_FUNCTION]


def test_the_rules_see_a_long_function(tmp_path):
    path = tmp_path / "long.py"
    path.write_text('def f():\n    """doc"""\n' + "    x = 1\n" * (MAX_FUNCTION + 1))
    assert long_functions(path) == [f"long.py:1 f ({MAX_FUNCTION + 1})"]
    path.write_text('def f():\n    """doc"""\n' + "    x = 1\n" * MAX_FUNCTION)
    assert long_functions(path) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_short(path):
    assert len(path.read_text().splitlines()) <= MAX_MODULE


def test_no_function_is_long():
    found = [line for path in MODULES for line in long_functions(path)]
    assert not found, "functions over 50 lines:\n" + "\n".join(found)
