"""Every node's certificates: rotated with certRotation on every node, servers first, then agents,
each Ready before the next; each node's earliest expiry read on the node; the warning for the first
certificate to expire, the kubeconfig's or any node's."""

import datetime
import itertools
import json
import os
import re
import subprocess

import pytest
from pulumi.output import Unknown

from components import certificates
from tests.helpers import PROJECT_DIR, deploy, mistyped, rejected, tool, write_executable
from tests.node_stand_in import with_stand_in_wait_library
from tools import mockengine

READS = (
    "lightsail-k3s-dev-read-kubeconfig",
    "lightsail-k3s-dev-read-node-token",
    "lightsail-k3s-dev-read-agent-token",
    "lightsail-k3s-dev-read-certificate-expiry",
)
ROTATE = "lightsail-k3s-dev-rotate-certificates"
SERVER = "lightsail-k3s-dev"
PEERS = ("lightsail-k3s-dev-server-2", "lightsail-k3s-dev-server-3")
AGENTS = ("lightsail-k3s-dev-agent-1", "lightsail-k3s-dev-agent-2")
# Servers first, the first server before the others, then the agents.
NODES = (SERVER, *PEERS, *AGENTS)
CLUSTER = {"serverCount": 3, "agentCount": 2}


def test_expiry_is_read_from_the_kubeconfigs_client_certificate(dev):
    expires_at = dev.outputs["kubeconfigExpiresAt"]
    assert expires_at.value == mockengine.client_certificate_expiry().isoformat()
    assert datetime.datetime.fromisoformat(expires_at.value).tzinfo is not None
    assert not expires_at.secret, "a date is no secret"


def test_no_warning_while_the_certificate_has_a_year_left(dev):
    assert dev.warnings == []


def test_warns_during_up_when_the_kubeconfigs_certificate_is_near_expiry(monkeypatch):
    monkeypatch.setattr(mockengine, "CLIENT_CERTIFICATE_VALIDITY", datetime.timedelta(days=10))
    warnings = deploy(certRotation=4).warnings
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        "lightsail-k3s-dev: the kubeconfig's client certificate expires on"
    )
    assert "raise certRotation by one (pulumi config set certRotation 5)" in warnings[0]


@pytest.fixture(scope="module")
def cluster():
    return deploy(config=CLUSTER)


def test_every_node_entry_carries_its_own_earliest_certificate_expiry(cluster):
    entries = cluster.outputs["nodes"].value
    assert [entry["name"] for entry in entries] == list(NODES)
    for entry in entries:
        assert entry["certificatesExpireAt"] == (
            mockengine.node_certificate_expiry(entry["name"]).isoformat()
        )
    assert not cluster.outputs["certificatesExpireAt"].secret


@pytest.mark.parametrize("late_node", [PEERS[1], AGENTS[0]])
def test_a_peers_or_agents_early_expiry_warns_while_the_kubeconfig_is_fresh(monkeypatch, late_node):
    monkeypatch.setitem(
        mockengine.NODE_CERTIFICATE_VALIDITY, late_node, datetime.timedelta(days=12)
    )
    deployment = deploy(certRotation=2, config=CLUSTER)
    early = mockengine.node_certificate_expiry(late_node).isoformat()
    assert deployment.warnings == [
        f"lightsail-k3s-dev: a certificate of node {late_node} expires on "
        f"{early[:10]}, in 11 days. Rotate k3s' certificates on every node: raise certRotation "
        "by one (pulumi config set certRotation 3) and run pulumi up."
    ]
    # The kubeconfig's own certificate keeps its date; the earliest of all is the node's.
    assert deployment.outputs["kubeconfigExpiresAt"].value == (
        mockengine.client_certificate_expiry().isoformat()
    )
    assert deployment.outputs["certificatesExpireAt"].value == early
    by_name = {entry["name"]: entry for entry in deployment.outputs["nodes"].value}
    assert by_name[late_node]["certificatesExpireAt"] == early


def test_a_first_preview_leaves_every_expiry_unknown_and_warns_of_nothing():
    """Before any command has run nothing is read: the outputs built from the reads stay unknown."""
    preview = deploy(first_preview=True, certRotation=1, config=CLUSTER)
    assert preview.warnings == []
    for name in ("kubeconfigExpiresAt", "certificatesExpireAt", "nodes"):
        assert isinstance(preview.outputs[name].value, Unknown), name


def test_the_expiry_is_read_on_each_node_with_k3s_own_check(cluster):
    for node in NODES:
        read = cluster.named(f"{node}-read-certificate-expiry")
        assert read.inputs["create"] == certificates.CHECK_COMMAND
        assert read.inputs["connection"] == cluster.named(f"{node}-install").inputs["connection"]
        assert cluster.depends_on(read, cluster.named(f"{node}-install"))


def test_an_install_change_reruns_every_expiry_read(cluster):
    upgraded = deploy(k3sVersion="v1.36.2+k3s1", config=CLUSTER)
    for node in NODES:
        read = f"{node}-read-certificate-expiry"
        assert cluster.named(read).inputs["triggers"] != upgraded.named(read).inputs["triggers"]


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
    NOW = datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.UTC)
    warning = certificates.expiry_warning(NOW + left, NOW, "lightsail-k3s-dev", "x", 1)
    if expected is None:
        assert warning is None
    else:
        assert (
            warning is not None
            and expected in warning
            and warning.startswith("lightsail-k3s-dev: x ")
        )


def test_a_kubeconfig_without_a_client_certificate_is_an_error():
    with pytest.raises(ValueError, match="no client-certificate-data"):
        certificates.client_certificate_expiry("users: [{name: default, user: {token: abc}}]")


def check_entry(expiry: str, status: str = "OK") -> dict:
    return {"Filename": "client-kubelet.crt", "ExpiryTime": expiry, "Status": status}


def test_the_earliest_listed_expiry_counts_but_not_a_certificate_not_valid_yet():
    listed = json.dumps(
        {
            "Certificates": [
                check_entry("2027-06-09T10:17:00Z"),
                check_entry("2027-03-01T08:00:00Z"),
                # For a certificate not valid yet k3s lists its notBefore as ExpiryTime.
                check_entry("2026-12-01T00:00:00Z", "NOT YET VALID"),
                check_entry("2035-06-07T10:16:00Z"),
            ]
        }
    )
    assert certificates.earliest_certificate_expiry(listed, "n") == datetime.datetime(
        2027, 3, 1, 8, tzinfo=datetime.UTC
    )


@pytest.mark.parametrize(
    "printed", ["", "INFO[0000] Agent detected", '{"Certificates": null}', '{"Certificates": []}']
)
def test_a_check_that_lists_no_certificates_is_an_error_naming_the_node(printed):
    with pytest.raises(
        ValueError, match="^node lightsail-k3s-dev-agent-1: .*k3s certificate check"
    ):
        certificates.earliest_certificate_expiry(printed, "lightsail-k3s-dev-agent-1")


def test_no_rotation_command_until_cert_rotation_is_raised(cluster):
    assert not [r.name for r in cluster.resources if "rotat" in r.name]
    for read in READS:
        assert cluster.named(read).inputs["triggers"][-1] == 0


@pytest.fixture(scope="module")
def rotations(cluster):
    """certRotation raised on the running cluster (its previous outputs: every node deployed)."""
    previous = {key: output.value for key, output in cluster.outputs.items()}
    return {
        generation: deploy(certRotation=generation, config=CLUSTER, previous_outputs=previous)
        for generation in (1, 2)
    }


def rotation_done(deployment, node):
    """The node's last rotation step: an agent's is its Ready wait on the first server."""
    suffix = "ready-after-rotation" if node in AGENTS else "rotate-certificates"
    return deployment.named(f"{node}-{suffix}")


def test_every_node_rotates_servers_first_then_agents_each_ready_before_the_next(rotations):
    deployment = rotations[1]
    for before, after in itertools.pairwise(NODES):
        rotate = deployment.named(f"{after}-rotate-certificates")
        assert deployment.depends_on(rotate, rotation_done(deployment, before)), (before, after)
        assert not deployment.depends_on(
            deployment.named(f"{before}-rotate-certificates"), rotate
        ), (before, after)
    for node in NODES:
        rotate = deployment.named(f"{node}-rotate-certificates")
        # Each node rotates after its own install, and once it has joined.
        assert deployment.depends_on(rotate, deployment.named(f"{node}-install"))
        if node != SERVER:
            assert deployment.depends_on(rotate, deployment.named(f"{node}-join"))
        assert deployment.depends_on(
            deployment.named(f"{node}-read-certificate-expiry"), rotation_done(deployment, node)
        ), "the read must see the new certificates"


def test_a_server_rotates_k3s_and_waits_for_its_own_ready(rotations):
    deployment = rotations[1]
    for node in (SERVER, *PEERS):
        rotate = deployment.named(f"{node}-rotate-certificates")
        assert rotate.inputs["create"] == "sudo bash -s -- rotate"
        assert rotate.inputs["stdin"] == certificates.rotation_program(node, "k3s")
        assert (
            rotate.inputs["connection"] == deployment.named(f"{node}-install").inputs["connection"]
        )
        assert rotate.inputs["triggers"] == [1]
        # Other input changes (a new script, a new SSH key) update the stored inputs without rotating.
        assert rotate.inputs["update"] == "true"
        assert rotate.custom_timeouts == {"create": certificates.ROTATE_TIMEOUT}
        assert f"{node}-ready-after-rotation" not in [r.name for r in deployment.resources]


def test_an_agent_rotates_k3s_agent_and_the_first_server_waits_for_its_ready(rotations):
    deployment = rotations[1]
    for agent in AGENTS:
        rotate = deployment.named(f"{agent}-rotate-certificates")
        assert rotate.inputs["stdin"] == certificates.rotation_program(agent, "k3s-agent")
        assert (
            rotate.inputs["connection"] == deployment.named(f"{agent}-install").inputs["connection"]
        )
        ready = deployment.named(f"{agent}-ready-after-rotation")
        assert ready.inputs["create"] == "sudo bash -s -- ready"
        assert ready.inputs["stdin"] == rotate.inputs["stdin"]
        # On the first server, as the agent's join is.
        assert ready.inputs["connection"] == deployment.named(f"{agent}-join").inputs["connection"]
        assert ready.inputs["connection"]["host"] == mockengine.MOCK_STATIC_IP
        assert (ready.inputs["triggers"], ready.inputs["update"]) == ([1], "true")
        assert ready.custom_timeouts == {"create": certificates.READY_TIMEOUT}
        assert deployment.depends_on(ready, rotate)


def rotation_steps() -> set[str]:
    return {f"{node}-rotate-certificates" for node in NODES} | {
        f"{agent}-ready-after-rotation" for agent in AGENTS
    }


def expiry_reads() -> set[str]:
    return {f"{node}-read-certificate-expiry" for node in NODES}


def changed_resources(before, after) -> set[str]:
    """Resources whose inputs differ: the engine updates or (on triggers) replaces exactly these."""
    before_inputs = {r.name: r.inputs for r in before.resources}
    after_inputs = {r.name: r.inputs for r in after.resources}
    return {
        name
        for name in before_inputs.keys() | after_inputs.keys()
        if before_inputs.get(name) != after_inputs.get(name)
    }


def test_raising_cert_rotation_reruns_the_rotations_and_the_reads_and_nothing_else(
    rotations, cluster
):
    expected = rotation_steps() | set(READS) | expiry_reads()
    assert changed_resources(rotations[1], rotations[2]) == expected
    for name in rotation_steps():
        assert rotations[2].named(name).inputs["triggers"] == [2]
    for read in set(READS) | expiry_reads():
        assert rotations[2].named(read).inputs["triggers"][-1] == 2
    # From the default 0, the first raise creates the rotation commands and re-runs the reads.
    assert changed_resources(cluster, rotations[1]) == expected


def test_the_rotation_timeouts_are_a_minute_past_the_scripts_own_bounds():
    (seconds,) = re.findall(
        r'^READY_TIMEOUT_SECONDS="\$\{READY_TIMEOUT_SECONDS:-(\d+)\}"$', ROTATION_SCRIPT, re.M
    )
    # On a server: the new kubelet certificate, then Ready; an agent's Ready on a server: one wait.
    assert certificates.ROTATE_TIMEOUT == f"{2 * int(seconds) // 60 + 1}m"
    assert certificates.READY_TIMEOUT == f"{int(seconds) // 60 + 1}m"
    assert ROTATION_SCRIPT.count("wait_until ") + ROTATION_SCRIPT.count("wait_for_node_ready ") == 3


def test_cert_rotation_must_not_be_negative():
    rejected("lightsail-k3s:certRotation", "below the minimum of 0", certRotation=-1)


def test_cert_rotation_must_be_an_integer_which_the_cli_checks_before_the_program_runs():
    mistyped("certRotation", "integer", certRotation="soon")


ROTATION_SCRIPT = (PROJECT_DIR / "components" / "remote" / "rotate-k3s-certificates.sh").read_text()

# `certificate rotate` deletes the kubelet's client certificate, as k3s does; kubectl answers Ready.
K3S_STUB = """#!/bin/sh
echo "k3s $*" >> "$STUB_LOG"
case "$1" in
  certificate)
    rm -f "$K3S_AGENT_DIR/client-kubelet.crt"
    exit "${STUB_ROTATE_EXIT:-0}"
    ;;
  kubectl) if [ -z "${STUB_NEVER_READY:-}" ]; then printf True; fi ;;
esac
"""
# A start that would wait for the unit (k3s' is Type=notify with TimeoutStartSec=0) fails here
# instead of hanging; a queued start brings k3s up, which writes a new kubelet certificate.
SYSTEMCTL_STUB = """#!/bin/sh
echo "systemctl $*" >> "$STUB_LOG"
if [ "$1" = start ]; then
  if [ "$2" != --no-block ]; then
    echo "a blocking start of a Type=notify unit with TimeoutStartSec=0 never times out" >&2
    exit 1
  fi
  if [ -z "${STUB_NO_NEW_CERTIFICATE:-}" ]; then echo new > "$K3S_AGENT_DIR/client-kubelet.crt"; fi
fi
"""


def run_rotation(tmp_path, action="rotate", node="lightsail-k3s-dev", service="k3s", **env):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    (agent_dir / "client-kubelet.crt").write_text("old")
    write_executable(stubs / "k3s", K3S_STUB)
    write_executable(stubs / "systemctl", SYSTEMCTL_STUB)
    log = tmp_path / "calls.log"
    log.touch()
    program = env.pop("program", None) or certificates.rotation_program(node, service)
    result = subprocess.run(
        [tool("bash"), "-s", "--", action],
        input=program,
        env={
            "PATH": f"{stubs}:{os.environ['PATH']}",
            "K3S_BIN": str(stubs / "k3s"),
            "K3S_AGENT_DIR": str(agent_dir),
            "STUB_LOG": str(log),
            "POLL_INTERVAL_SECONDS": "0.05",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result, log.read_text().splitlines()


def test_a_server_rotation_follows_the_documented_procedure_with_a_bounded_start(tmp_path):
    result, calls = run_rotation(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls[:3] == [
        "systemctl stop k3s",
        "k3s certificate rotate",
        "systemctl start --no-block k3s",
    ]
    assert calls[3].startswith("k3s kubectl get node lightsail-k3s-dev")
    assert "node lightsail-k3s-dev is Ready with rotated certificates" in result.stdout


def test_an_agent_rotation_restarts_k3s_agent_and_leaves_the_ready_wait_to_a_server(tmp_path):
    result, calls = run_rotation(tmp_path, node=AGENTS[0], service="k3s-agent")
    assert result.returncode == 0, result.stderr
    assert calls == [
        "systemctl stop k3s-agent",
        "k3s certificate rotate",
        "systemctl start --no-block k3s-agent",
    ]
    assert "a server waits for its Ready" in result.stdout


def test_the_server_waits_for_the_agents_ready(tmp_path):
    result, calls = run_rotation(tmp_path, "ready", node=AGENTS[0], service="k3s-agent")
    assert result.returncode == 0, result.stderr
    assert calls and all(call.startswith(f"k3s kubectl get node {AGENTS[0]} ") for call in calls)
    assert f"node {AGENTS[0]} is Ready with rotated certificates" in result.stdout


def test_an_agent_that_never_turns_ready_fails_the_wait_naming_its_journal(tmp_path):
    result, _ = run_rotation(
        tmp_path,
        "ready",
        node=AGENTS[0],
        service="k3s-agent",
        STUB_NEVER_READY="1",
        READY_TIMEOUT_SECONDS="0",
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"node {AGENTS[0]} was not Ready 0s after the rotation; "
        f"see: journalctl -u k3s-agent on node {AGENTS[0]}\n"
    )


def test_a_failed_rotation_starts_k3s_again_and_fails(tmp_path):
    result, calls = run_rotation(tmp_path, STUB_ROTATE_EXIT="1")
    assert result.returncode == 1
    assert calls == [
        "systemctl stop k3s",
        "k3s certificate rotate",
        "systemctl start --no-block k3s",
    ]
    assert "k3s certificate rotate failed on node lightsail-k3s-dev" in result.stderr


def test_a_restart_without_new_certificates_gives_up_in_bounded_time(tmp_path):
    """The old kubelet's Ready could still stand: the wait is for the new kubelet certificate first."""
    result, calls = run_rotation(
        tmp_path,
        node=AGENTS[0],
        service="k3s-agent",
        STUB_NO_NEW_CERTIFICATE="1",
        READY_TIMEOUT_SECONDS="0",
    )
    assert result.returncode == 1
    assert f"k3s-agent on node {AGENTS[0]} wrote no new " in result.stderr
    assert "see: journalctl -u k3s-agent" in result.stderr
    assert not [call for call in calls if "kubectl" in call]


def test_the_rotation_waits_through_the_shared_library(tmp_path):
    """With k3s-wait.sh replaced, a node that never turns Ready no longer holds the rotation up."""
    program = with_stand_in_wait_library(certificates.rotation_program("lightsail-k3s-dev", "k3s"))
    result, calls = run_rotation(tmp_path, program=program, STUB_NEVER_READY="1")
    assert result.returncode == 0, result.stderr
    assert calls[:3] == [
        "systemctl stop k3s",
        "k3s certificate rotate",
        "systemctl start --no-block k3s",
    ]
    assert calls[3].startswith("wait_until [300] [k3s on node lightsail-k3s-dev wrote no new ")
    assert calls[4:] == ["wait_for_node_ready [300] [the rotation]"]


def test_the_rotation_gives_up_when_the_node_never_turns_ready(tmp_path):
    result, _ = run_rotation(tmp_path, STUB_NEVER_READY="1", READY_TIMEOUT_SECONDS="0")
    assert result.returncode == 1
    assert result.stderr == (
        "node lightsail-k3s-dev was not Ready 0s after the rotation; see: journalctl -u k3s\n"
    )
    assert "Ready with rotated certificates" not in result.stdout


def test_an_unknown_action_is_refused(tmp_path):
    result, calls = run_rotation(tmp_path, "restart")
    assert (result.returncode, calls) == (2, [])
    assert "unknown action restart; use rotate or ready" in result.stderr


def test_the_check_output_the_mock_prints_is_what_k3s_prints():
    """The stand-in's answer has the fields k3s' Certificate struct encodes (pkg/cli/cert/cert.go)."""
    listed = json.loads(mockengine.certificate_check_json(AGENTS[0]))["Certificates"]
    assert {tuple(entry) for entry in listed} == {
        ("Filename", "Subject", "Issuer", "Usages", "ExpiryTime", "ResidualTime", "Status")
    }
    assert certificates.earliest_certificate_expiry(
        mockengine.certificate_check_json(AGENTS[0]), AGENTS[0]
    ) == mockengine.node_certificate_expiry(AGENTS[0])
