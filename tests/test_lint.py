"""The Python code passes ruff (lint and format) and the type checker, as configured in pyproject.toml;
test modules share code through helper modules, never by importing each other."""

import ast
import subprocess
import sys

from tests.helpers import PROJECT_DIR


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, str(PROJECT_DIR)], capture_output=True, text=True
    )


def test_ruff_check_passes():
    result = ruff("check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_type_check_is_clean():
    """basedpyright, standard mode, over the program, components, tools, policy pack, examples and tests."""
    result = subprocess.run(
        [sys.executable, "-m", "basedpyright"], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_test_module_imports_another():
    """What tests share lives in tests/helpers.py (or node_stand_in.py, e2e/aws.py): importing a test
    module runs its module-level code and fixtures a second time, and couples the suites."""
    offenders = []
    for path in sorted((PROJECT_DIR / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            offenders += [
                f"{path.relative_to(PROJECT_DIR)} imports {module}"
                for module in modules
                if any(part.startswith("test_") for part in module.split("."))
            ]
    assert offenders == []
