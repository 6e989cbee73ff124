"""The end-to-end suite stays out of `make test`, and `make e2e` skips it with the reason when the
Pulumi CLI or AWS credentials are missing."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT_DIR, tool, write_executable


def test_pytest_settings_keep_tests_e2e_out_of_the_default_run_only(tmp_path):
    """The project's pytest settings (pyproject.toml) on a two-test tree: the default run skips tests/e2e,
    an explicit path runs it."""
    shutil.copy(PROJECT_DIR / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "tests" / "e2e").mkdir(parents=True)
    (tmp_path / "tests" / "test_unit.py").write_text("def test_unit():\n    pass\n")
    (tmp_path / "tests" / "e2e" / "test_real.py").write_text("def test_real():\n    pass\n")

    def collected(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        return result.stdout

    default_run = collected()
    assert "tests/test_unit.py::test_unit" in default_run and "test_real" not in default_run
    assert "tests/e2e/test_real.py::test_real" in collected("tests/e2e")


def make_e2e(tmp_path: Path, with_pulumi: bool) -> subprocess.CompletedProcess:
    """`make e2e` with a PATH of make and sh only (plus a stand-in `pulumi`), no AWS variables, an empty HOME."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("make", "sh"):
        (bin_dir / name).symlink_to(tool(name))
    if with_pulumi:
        write_executable(bin_dir / "pulumi", "#!/bin/sh\nexit 0\n")
    environ = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(
        ["make", "--no-print-directory", "e2e"],
        cwd=PROJECT_DIR,
        env=environ,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    "with_pulumi, reason",
    [(False, "the Pulumi CLI is not installed"), (True, "no AWS credentials")],
)
def test_make_e2e_skips_naming_what_is_missing(tmp_path, with_pulumi, reason):
    result = make_e2e(tmp_path, with_pulumi)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SKIPPED" in result.stdout and reason in result.stdout
    assert " passed" not in result.stdout and " failed" not in result.stdout
