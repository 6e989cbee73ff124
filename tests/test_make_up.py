"""`make up` (bin/up.sh) with stand-in `pulumi`, `curl` and `make`: prerequisites, virtualenv, backend,
adminCidrs, up; and the Makefile's order: a bare `make` prints the help, and `make up` checks before
it builds the virtualenv."""

import os
import subprocess

import pytest

from tests.helpers import PROJECT_DIR, tool, write_executable

# Records every call; `whoami` and `config get` answer from the environment.
PULUMI_STUB = """#!/bin/sh
echo "pulumi $*" >> "$STUB_LOG"
case "$1" in
  whoami) [ -n "$STUB_LOGGED_IN" ] || exit 1 ;;
  config) if [ "$2" = "get" ]; then [ -n "$STUB_ADMIN_CIDRS" ] || exit 1; echo "$STUB_ADMIN_CIDRS"; fi ;;
esac
"""
CURL_STUB = """#!/bin/sh
echo "curl $*" >> "$STUB_LOG"
printf '%s\\n' "$STUB_MY_IP"
"""
# bin/up.sh builds the virtualenv with make; python3 is what building it runs first.
RECORDING_STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
"""
VENV_BUILD = "make -s --no-print-directory .venv/.installed"


@pytest.fixture
def workstation(tmp_path):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    write_executable(stubs / "pulumi", PULUMI_STUB)
    write_executable(stubs / "curl", CURL_STUB)
    write_executable(stubs / "make", RECORDING_STUB)
    for name in ("bash", "sh", "dirname", "basename", "tr", "cat"):
        os.symlink(tool(name), stubs / name)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\n")
    return tmp_path


def make_up(workstation, *action: str, with_pulumi=True, **env):
    """bin/up.sh as make runs it: `make up` passes no action, `make preview` and `make destroy` theirs."""
    stubs = workstation / "bin"
    if not with_pulumi:
        (stubs / "pulumi").unlink()
    log = workstation / "calls.log"
    log.touch()
    environment = {
        "PATH": str(stubs),
        "HOME": str(workstation / "home"),
        "STUB_LOG": str(log),
        "STUB_MY_IP": "198.51.100.7",
        **env,
    }
    result = subprocess.run(
        [str(PROJECT_DIR / "bin" / "up.sh"), *action],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result, log.read_text().splitlines()


def test_fresh_workstation_gets_local_backend_stack_admin_cidr_and_up(workstation):
    result, calls = make_up(workstation)
    assert result.returncode == 0, result.stderr
    assert calls == [
        VENV_BUILD,
        "pulumi whoami",
        "pulumi login --local",
        "pulumi stack select --create dev",
        "pulumi config get adminCidrs --stack dev",
        "curl -fsS --max-time 10 https://checkip.amazonaws.com",
        "pulumi config set --stack dev --path adminCidrs[0] 198.51.100.7/32",
        "pulumi up --stack dev --policy-pack policy",
    ]
    assert "set adminCidrs to [198.51.100.7/32]" in result.stdout
    assert "PULUMI_CONFIG_PASSPHRASE" in result.stdout


def test_logged_in_user_with_admin_cidrs_goes_straight_to_up(workstation):
    result, calls = make_up(
        workstation, STUB_LOGGED_IN="1", STUB_ADMIN_CIDRS='["203.0.113.0/24"]', STACK="dev"
    )
    assert result.returncode == 0, result.stderr
    assert "pulumi login --local" not in calls
    assert not [c for c in calls if c.startswith(("curl", "pulumi config set"))]
    assert calls[-1] == "pulumi up --stack dev --policy-pack policy"


def test_stops_without_the_pulumi_cli(workstation):
    result, calls = make_up(workstation, with_pulumi=False)
    assert result.returncode == 1
    assert "the Pulumi CLI is not installed" in result.stderr
    assert "curl -fsSL https://get.pulumi.com | sh" in result.stderr
    assert calls == []


def test_stops_without_aws_credentials(workstation):
    (workstation / "home" / ".aws" / "credentials").unlink()
    result, calls = make_up(workstation)
    assert result.returncode == 1
    assert "no AWS credentials" in result.stderr and "aws configure" in result.stderr
    assert calls == []


def test_stops_on_a_stack_without_a_stack_file(workstation):
    result, calls = make_up(workstation, STACK="nope")
    assert result.returncode == 1
    assert "no stack file Pulumi.nope.yaml" in result.stderr
    assert calls == []


def test_refuses_an_address_that_is_not_ipv4(workstation):
    result, calls = make_up(workstation, STUB_MY_IP="<html>captive portal</html>")
    assert result.returncode == 1
    assert (
        "pulumi config set --stack dev --path 'adminCidrs[0]' <your-public-ip>/32" in result.stderr
    )
    assert "pulumi up --stack dev --policy-pack policy" not in calls


def test_preview_runs_the_same_checks_then_pulumi_preview(workstation):
    result, calls = make_up(workstation, "preview")
    assert result.returncode == 0, result.stderr
    assert "pulumi config get adminCidrs --stack dev" in calls
    assert calls[-1] == "pulumi preview --stack dev --policy-pack policy"


def test_destroy_needs_no_admin_cidrs(workstation):
    result, calls = make_up(workstation, "destroy")
    assert result.returncode == 0, result.stderr
    assert calls == [
        VENV_BUILD,
        "pulumi whoami",
        "pulumi login --local",
        "pulumi stack select --create dev",
        "pulumi destroy --stack dev",
    ]


def test_destroy_stops_without_aws_credentials(workstation):
    (workstation / "home" / ".aws" / "credentials").unlink()
    result, calls = make_up(workstation, "destroy")
    assert result.returncode == 1
    assert "make destroy: no AWS credentials" in result.stderr
    assert calls == []


def test_an_unknown_action_is_refused(workstation):
    result, calls = make_up(workstation, "refresh")
    assert result.returncode == 1
    assert "unknown action 'refresh'" in result.stderr
    assert calls == []


def run_make(workstation, *arguments: str):
    """The real make on this Makefile, with a PATH of make, the shell tools bin/up.sh uses and a
    recording python3 (what building the virtualenv runs first), and the virtualenv in a scratch
    directory, so nothing is built for real."""
    stubs = workstation / "make-bin"
    stubs.mkdir()
    for name in ("make", "bash", "sh", "dirname", "basename", "test", "touch"):
        os.symlink(tool(name), stubs / name)
    write_executable(stubs / "python3", RECORDING_STUB)
    log = workstation / "calls.log"
    log.touch()
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(PROJECT_DIR),
            *arguments,
            f"VENV={workstation / 'venv'}",
        ],
        env={"PATH": str(stubs), "HOME": str(workstation / "home"), "STUB_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result, log.read_text().splitlines()


def test_a_bare_make_prints_the_help_and_builds_nothing(workstation):
    result, calls = run_make(workstation)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("make up ")
    assert "make plan " in result.stdout and "make test " in result.stdout
    assert calls == []


@pytest.mark.parametrize("action", ["up", "preview", "destroy"])
def test_make_up_preview_and_destroy_check_the_cli_before_building_the_virtualenv(
    workstation, action
):
    result, calls = run_make(workstation, action)
    assert result.returncode != 0
    assert f"make {action}: the Pulumi CLI is not installed" in result.stderr
    assert calls == [], "the virtualenv was being built before the check"
