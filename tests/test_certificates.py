"""kubeconfigExpiresAt from the kubeconfig's real client certificate, the expiry warning, and certRotation."""

import datetime
import os
import subprocess

import pytest

from components import certificates, k3s
from tests.helpers import command, deploy, mistyped, rejected, tool, write_executable
from tests.node_stand_in import with_stand_in_wait_library
from tools import mockengine

READS = (
    "lightsail-k3s-dev-read-kubeconfig",
    "lightsail-k3s-dev-read-node-token",
    "lightsail-k3s-dev-read-agent-token",
)
ROTATE = "lightsail-k3s-dev-rotate-certificates"


def test_expiry_is_read_from_the_kubeconfigs_client_certificate(dev):
    expires_at = dev.outputs["kubeconfigExpiresAt"]
    assert expires_at.value == mockengine.client_certificate_expiry().isoformat()
    assert datetime.datetime.fromisoformat(expires_at.value).tzinfo is not None
    assert not expires_at.secret, "a date is no secret"


def test_no_warning_while_the_certificate_has_a_year_left(dev):
    assert dev.warnings == []


def test_warns_during_up_when_the_certificate_is_near_expiry(monkeypatch):
    monkeypatch.setattr(mockengine, "CLIENT_CERTIFICATE_VALIDITY", datetime.timedelta(days=10))
    warnings = [w for w in deploy().warnings if "client certificate" in w]
    assert len(warnings) == 1, warnings
    assert "expires on" in warnings[0] and "raise certRotation by one" in warnings[0]


NOW = datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (datetime.timedelta(days=400), None),
        (datetime.timedelta(days=30), None),
        (datetime.timedelta(days=29, hours=23), "in 29 days"),
        (datetime.timedelta(days=3), "in 3 days"),
        (datetime.timedelta(days=-2), "expired on 2026-11-25"),
    ],
)
def test_the_warning_starts_30_days_before_expiry(left, expected):
    warning = certificates.expiry_warning(NOW + left, NOW, "lightsail-k3s-dev")
    if expected is None:
        assert warning is None
    else:
        assert (
            warning is not None
            and expected in warning
            and warning.startswith("lightsail-k3s-dev: ")
        )


def test_a_kubeconfig_without_a_client_certificate_is_an_error():
    with pytest.raises(ValueError, match="no client-certificate-data"):
        certificates.client_certificate_expiry("users: [{name: default, user: {token: abc}}]")


def test_no_rotation_command_until_cert_rotation_is_raised(dev):
    assert ROTATE not in [r.name for r in dev.resources]
    for read in READS:
        assert dev.named(read).inputs["triggers"][-1] == 0


@pytest.fixture(scope="module")
def rotations():
    return {generation: deploy(certRotation=generation) for generation in (1, 2)}


def test_rotation_stops_k3s_rotates_and_starts_it_after_the_install(rotations):
    deployment = rotations[1]
    rotate = deployment.named(ROTATE)
    assert rotate.inputs["create"] == "sudo bash -s"
    assert rotate.inputs["stdin"] == certificates.rotation_program(
        k3s.remote_script("rotate-k3s-certificates.sh"), "lightsail-k3s-dev"
    )
    assert rotate.inputs["triggers"] == [1]
    # Other input changes (a new script, a new SSH key) update the stored inputs without rotating.
    assert rotate.inputs["update"] == "true"
    assert deployment.depends_on(rotate, command(deployment, "install"))
    for read in READS:
        assert deployment.depends_on(deployment.named(read), rotate), (
            "the reads must see the new certificates"
        )


def changed_resources(before, after) -> set[str]:
    """Resources whose inputs differ: the engine updates or (on triggers) replaces exactly these."""
    before_inputs = {r.name: r.inputs for r in before.resources}
    after_inputs = {r.name: r.inputs for r in after.resources}
    return {
        name
        for name in before_inputs.keys() | after_inputs.keys()
        if before_inputs.get(name) != after_inputs.get(name)
    }


def test_raising_cert_rotation_reruns_rotation_and_both_reads_and_nothing_else(rotations, dev):
    assert changed_resources(rotations[1], rotations[2]) == {ROTATE, *READS}
    assert rotations[2].named(ROTATE).inputs["triggers"] == [2]
    for read in READS:
        assert rotations[2].named(read).inputs["triggers"][-1] == 2
    # From the default 0, the first raise creates the rotation command and re-runs the reads.
    assert changed_resources(dev, rotations[1]) == {ROTATE, *READS}


def test_cert_rotation_must_not_be_negative():
    rejected("lightsail-k3s:certRotation", "below the minimum of 0", certRotation=-1)


def test_cert_rotation_must_be_an_integer_which_the_cli_checks_before_the_program_runs():
    mistyped("certRotation", "integer", certRotation="soon")


K3S_STUB = """#!/bin/sh
echo "k3s $*" >> "$STUB_LOG"
case "$1" in
  certificate) exit "${STUB_ROTATE_EXIT:-0}" ;;
  kubectl) if [ -z "${STUB_NEVER_READY:-}" ]; then printf True; fi ;;
esac
"""
SYSTEMCTL_STUB = """#!/bin/sh
echo "systemctl $*" >> "$STUB_LOG"
"""


def rotation_program() -> str:
    return certificates.rotation_program(
        k3s.remote_script("rotate-k3s-certificates.sh"), "lightsail-k3s-dev"
    )


def run_rotation(tmp_path, program: str | None = None, **env):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    write_executable(stubs / "k3s", K3S_STUB)
    write_executable(stubs / "systemctl", SYSTEMCTL_STUB)
    log = tmp_path / "calls.log"
    result = subprocess.run(
        [tool("bash"), "-s"],
        input=program or rotation_program(),
        env={
            "PATH": f"{stubs}:{os.environ['PATH']}",
            "K3S_BIN": str(stubs / "k3s"),
            "STUB_LOG": str(log),
            "POLL_INTERVAL_SECONDS": "0.05",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result, log.read_text().splitlines()


def test_rotation_script_follows_the_documented_procedure(tmp_path):
    result, calls = run_rotation(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls[:3] == ["systemctl stop k3s", "k3s certificate rotate", "systemctl start k3s"]
    assert calls[3].startswith("k3s kubectl get node lightsail-k3s-dev")
    assert "Ready with rotated certificates" in result.stdout


def test_a_failed_rotation_starts_k3s_again_and_fails(tmp_path):
    result, calls = run_rotation(tmp_path, STUB_ROTATE_EXIT="1")
    assert result.returncode == 1
    assert calls == ["systemctl stop k3s", "k3s certificate rotate", "systemctl start k3s"]
    assert "k3s certificate rotate failed" in result.stderr


def test_the_rotation_waits_through_the_shared_library(tmp_path):
    """With k3s-wait.sh replaced, a node that never turns Ready no longer holds the rotation up."""
    program = with_stand_in_wait_library(rotation_program())
    result, calls = run_rotation(tmp_path, program=program, STUB_NEVER_READY="1")
    assert result.returncode == 0, result.stderr
    assert calls == [
        "systemctl stop k3s",
        "k3s certificate rotate",
        "systemctl start k3s",
        "wait_for_node_ready [300] [the rotation]",
    ]


def test_the_rotation_gives_up_when_the_node_never_turns_ready(tmp_path):
    result, calls = run_rotation(tmp_path, STUB_NEVER_READY="1", READY_TIMEOUT_SECONDS="0")
    assert result.returncode == 1
    assert result.stderr == (
        "node lightsail-k3s-dev was not Ready 0s after the rotation; see: journalctl -u k3s\n"
    )
    assert "Ready with rotated certificates" not in result.stdout
