"""The Python code passes ruff (lint and format) and the type checker, as configured in pyproject.toml."""

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
