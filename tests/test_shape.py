"""The package's shape, kept: no module over 400 lines, no function over 50 (its docstring
not counted), no six code lines repeated, so that each part can be read in one sitting and
each fact lives in one place (the layers themselves are import-linter's contracts in
pyproject.toml, run by the test command)."""

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


def repeated_blocks(paths: list[Path], size: int = 6) -> list[list[str]]:
    """Places where the same ``size`` code lines stand (blank lines, comments and import
    statements left out: one module per batch system imports the same helpers by design)."""
    seen: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        text = path.read_text()
        imports = {n for node in ast.walk(ast.parse(text))
                   if isinstance(node, (ast.Import, ast.ImportFrom))
                   for n in range(node.lineno, node.end_lineno + 1)}
        code = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1)
                if line.strip() and not line.strip().startswith("#") and i not in imports]
        for k in range(len(code) - size + 1):
            block = tuple(line for _, line in code[k:k + size])
            seen.setdefault(block, []).append(f"{path.name}:{code[k][0]}")
    return [places for places in seen.values() if len(places) > 1]


def test_the_rules_see_a_repeated_block(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(6))
    (tmp_path / "a.py").write_text("import os\n\ndef f():\n" + body)
    (tmp_path / "b.py").write_text("import os\n\ndef g():\n" + body)
    assert repeated_blocks([tmp_path / "a.py", tmp_path / "b.py"]) == [["a.py:4", "b.py:4"]]


def test_no_block_of_six_lines_is_repeated():
    found = repeated_blocks(MODULES)
    assert not found, "the same six lines in more than one place:\n" + "\n".join(map(str, found))
