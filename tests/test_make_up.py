"""`make up` (bin/up.sh) with stand-in `pulumi`, `curl` and `make`: prerequisites, virtualenv, backend,
adminCidrs, the opening for an address outside them (bin/deploy-access.sh), up; and the Makefile's
order: a bare `make` prints the help, and `make up` checks before it builds the virtualenv."""

import os
import subprocess

import pytest

from tests.helpers import (
    CURL_STUB,
    PROJECT_DIR,
    PULUMI_STUB,
    closing_target,
    tool,
    write_executable,
)

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
    for name in (
        "bash",
        "sh",
        "dirname",
        "basename",
        "tr",
        "cat",
        "grep",
        "mktemp",
        "cp",
        "rm",
        "tail",
    ):
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
        # Now within adminCidrs: nothing to open.
        "curl -fsS --max-time 10 https://checkip.amazonaws.com",
        "pulumi config get adminCidrs --stack dev",
        "pulumi up --stack dev --policy-pack policy",
    ]
    assert "set adminCidrs to [198.51.100.7/32]" in result.stdout
    assert "PULUMI_CONFIG_PASSPHRASE" in result.stdout


def test_logged_in_user_with_admin_cidrs_goes_straight_to_up(workstation):
    result, calls = make_up(
        workstation,
        STUB_LOGGED_IN="1",
        STUB_ADMIN_CIDRS='["203.0.113.0/24"]',
        STUB_MY_IP="203.0.113.9",
        STACK="dev",
    )
    assert result.returncode == 0, result.stderr
    assert "pulumi login --local" not in calls
    assert not [c for c in calls if c.startswith("pulumi config set")]
    assert "opening" not in result.stdout
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


# tests/test_deploy_cidrs.py checks that the target names every node's firewall and nothing else.
CLOSE = f"pulumi up --stack dev --yes --target {closing_target()} --policy-pack policy"


def opening_calls(calls: list[str]) -> list[str]:
    """The calls after the adminCidrs check, with the run's temporary config file named RUN_CONFIG."""
    after = calls[calls.index("pulumi config get adminCidrs --stack dev", 4) + 1 :]
    run_config = next(
        c.split("--config-file ")[1].split()[0] for c in after if "--config-file" in c
    )
    return [c.replace(run_config, "RUN_CONFIG") for c in after]


def test_an_address_outside_admin_cidrs_is_opened_for_the_run_and_closed_after(workstation):
    result, calls = make_up(workstation, STUB_LOGGED_IN="1", STUB_ADMIN_CIDRS='["1.2.3.0/24"]')
    assert result.returncode == 0, result.stderr
    assert opening_calls(calls) == [
        "pulumi config set --stack dev --config-file RUN_CONFIG --path deployCidrs[0] 198.51.100.7/32",
        "pulumi up --stack dev --config-file RUN_CONFIG --policy-pack policy",
        "  with: deployCidrs[0] 198.51.100.7/32",
        # The stack file's own config, without deployCidrs.
        CLOSE,
    ]
    assert "your address 198.51.100.7 is outside adminCidrs" in result.stdout
    assert "closing SSH and the Kubernetes API to 198.51.100.7 again" in result.stdout
    run_config = next(
        c.split("--config-file ")[1].split()[0] for c in calls if "--config-file" in c
    )
    assert not os.path.exists(run_config)


def test_the_opening_is_closed_also_when_up_fails(workstation):
    result, calls = make_up(
        workstation, STUB_LOGGED_IN="1", STUB_ADMIN_CIDRS='["1.2.3.0/24"]', STUB_UP_FAILS="1"
    )
    assert result.returncode == 1
    assert opening_calls(calls)[-1] == CLOSE


def test_a_failed_closing_says_so_with_the_command_that_retries_it(workstation):
    result, calls = make_up(
        workstation, STUB_LOGGED_IN="1", STUB_ADMIN_CIDRS='["1.2.3.0/24"]', STUB_CLOSE_FAILS="1"
    )
    assert result.returncode == 1
    assert "may still be open to this run's address" in result.stderr
    assert "fix: bin/deploy-access.sh close dev" in result.stderr


@pytest.mark.parametrize(
    "admin_cidrs",
    ['["1.2.3.0/24", "198.51.100.0/24"]', '["198.51.100.7"]', '[\n  "198.51.96.0/20"\n]'],
)
def test_an_address_within_admin_cidrs_opens_nothing(workstation, admin_cidrs):
    result, calls = make_up(workstation, STUB_LOGGED_IN="1", STUB_ADMIN_CIDRS=admin_cidrs)
    assert result.returncode == 0, result.stderr
    assert calls[-1] == "pulumi up --stack dev --policy-pack policy"
    assert not [c for c in calls if "deployCidrs" in c or "--target" in c]


@pytest.mark.parametrize("admin_cidrs", ['["198.51.101.0/24"]', '["198.51.100.6/32"]'])
def test_an_address_just_outside_admin_cidrs_is_opened(workstation, admin_cidrs):
    result, calls = make_up(workstation, STUB_LOGGED_IN="1", STUB_ADMIN_CIDRS=admin_cidrs)
    assert result.returncode == 0, result.stderr
    assert calls[-1] == CLOSE


def test_a_preview_from_outside_admin_cidrs_opens_nothing(workstation):
    result, calls = make_up(
        workstation, "preview", STUB_LOGGED_IN="1", STUB_ADMIN_CIDRS='["1.2.3.0/24"]'
    )
    assert result.returncode == 0, result.stderr
    assert calls[-1] == "pulumi preview --stack dev --policy-pack policy"
    assert not [c for c in calls if c.startswith("curl")]


def test_an_unreadable_address_stops_up_with_the_fix(workstation):
    result, calls = make_up(
        workstation, STUB_LOGGED_IN="1", STUB_ADMIN_CIDRS='["1.2.3.0/24"]', STUB_MY_IP="<html>"
    )
    assert result.returncode == 1
    assert "checkip.amazonaws.com answered '<html>', not an IPv4 address" in result.stderr
    assert not [c for c in calls if c.startswith("pulumi up")]


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


def test_an_unreadable_address_with_no_admin_cidrs_stops_before_any_config_is_written(workstation):
    result, calls = make_up(workstation, STUB_LOGGED_IN="1", STUB_MY_IP="<html>")
    assert result.returncode == 1
    assert "checkip.amazonaws.com answered '<html>', not an IPv4 address" in result.stderr
    assert (
        "make up: adminCidrs is not set and your public IPv4 could not be detected" in result.stderr
    )
    assert (
        "fix: pulumi config set --stack dev --path 'adminCidrs[0]' <your-public-ip>/32"
        in result.stderr
    )
    assert not [c for c in calls if c.startswith(("pulumi config set", "pulumi up"))]
