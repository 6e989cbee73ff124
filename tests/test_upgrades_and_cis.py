"""Upgrades follow Kubernetes' version-skew policy, before anything is declared and on the node; the k3s CIS hardening items."""

import stat

import pytest
import yaml

from components import k3s
from tests.helpers import STACK_REFERENCE, command, deploy, rejected, write_executable
from tests.node_stand_in import Node

# (installed, target, refusal): "downgrade", or the minor the refusal names as the next step, or None.
UPGRADE_PATHS = [
    ("v1.35.3+k3s1", "v1.35.4+k3s1", None),
    ("v1.35.3+k3s1", "v1.35.3+k3s2", None),
    ("v1.35.3+k3s1", "v1.36.1+k3s1", None),
    ("v1.35.3+k3s2", "v1.35.3+k3s1", "downgrade"),
    ("v1.36.1+k3s1", "v1.35.9+k3s1", "downgrade"),
    ("v1.34.2+k3s1", "v1.36.1+k3s1", "v1.35"),
    ("v1.36.1+k3s1", "v1.38.0+k3s1", "v1.37"),
    ("v1.36.1+k3s1", "v2.0.0+k3s1", "v1.37"),
]


def expected_wording(refusal):
    if refusal == "downgrade":
        return [
            "older than the installed",
            "does not support downgrades",
            "kubernetes.io/releases/version-skew-policy",
        ]
    return [
        "more than one minor ahead",
        f"newest {refusal}.x+k3sN release first",
        "kubernetes.io/releases/version-skew-policy",
    ]


@pytest.mark.parametrize(("installed", "target", "refusal"), UPGRADE_PATHS)
def test_upgrade_check_in_python(installed, target, refusal):
    result = k3s.upgrade_refusal(installed, target)
    if refusal is None:
        assert result is None
    else:
        assert result is not None
        problem, fix = result
        for fragment in expected_wording(refusal):
            assert fragment in problem + " " + fix
        assert installed in problem


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


@pytest.mark.parametrize(("installed", "target", "refusal"), UPGRADE_PATHS)
def test_install_script_applies_the_same_check_on_the_node(node, installed, target, refusal):
    assert node.install(version=installed).returncode == 0
    config_before = (node.config_dir / "config.yaml").read_text()
    node.calls()
    result = node.install(version=target, sans=("203.0.113.99",))
    calls = node.calls()
    if refusal is None:
        assert result.returncode == 0, result.stderr
        assert f"install.sh INSTALL_K3S_VERSION={target} INSTALL_K3S_EXEC=server" in calls
        return
    assert result.returncode == 1
    assert f"refusing to install k3s {target}" in result.stderr
    for fragment in expected_wording(refusal):
        assert fragment in result.stderr
    # Refused before anything changed: no download, no kernel settings, no restart, same config.
    assert [c for c in calls if not c.startswith("kubectl")] == []
    assert (node.config_dir / "config.yaml").read_text() == config_before


def test_install_script_refuses_when_the_installed_version_cannot_be_read(node):
    assert node.install().returncode == 0
    (node.state / "version").write_text("1.36\n")
    node.calls()
    result = node.install(version="v1.36.2+k3s1")
    assert result.returncode == 1
    assert "reports 1.36, not a k3s release; check the node" in result.stderr
    assert not [c for c in node.calls() if c.startswith(("curl", "systemctl", "sysctl"))]


def test_fresh_install_is_not_checked(node):
    result = node.install(version="v1.34.2+k3s1")
    assert result.returncode == 0, result.stderr


PREVIOUS = "v1.36.1+k3s1"


def refused(previous_version, *fragments, **overrides):
    """The refusal's message: raised after reading the previous deployment and before anything is declared."""
    return rejected(
        "k3sVersion",
        *fragments,
        after_reading=[STACK_REFERENCE],
        previous_outputs={"k3sVersion": previous_version},
        **overrides,
    )


@pytest.mark.parametrize("preview", [True, False])
def test_a_downgrade_from_the_previous_deployment_is_refused_before_anything_is_declared(preview):
    refused(
        PREVIOUS,
        f"older than the installed {PREVIOUS}",
        f"keep k3sVersion at {PREVIOUS} or newer",
        k3sVersion="v1.35.9+k3s1",
        preview=preview,
    )


@pytest.fixture
def aws_cli(tmp_path):
    """A PATH holding a stand-in `aws`: with a DNS zone the program only checks that the CLI is installed."""
    write_executable(tmp_path / "aws", "#!/bin/sh\nexit 0\n")
    return {"PATH": str(tmp_path)}


def test_a_skipped_minor_is_refused_before_any_server_agent_zone_bucket_or_app_is_declared(aws_cli):
    # Every component the program can declare, so each one's gate is checked.
    refused(
        "v1.34.2+k3s1",
        "more than one minor ahead of the installed v1.34.2+k3s1",
        "upgrade to the newest v1.35.x+k3sN release first",
        k3sVersion=PREVIOUS,
        serverCount=3,
        agentCount=2,
        backups="true",
        domain="example.com",
        acmeEmail="admin@example.com",
        alarmEmail="ops@example.com",
        environ=aws_cli,
    )


def test_a_refused_version_stops_a_bundle_change_of_the_same_run_from_replacing_the_instance():
    bundle_change = {"bundleId": "medium_3_0", "preview": True}
    allowed = deploy(previous_outputs={"k3sVersion": "v1.35.3+k3s1"}, **bundle_change)
    assert command(allowed, "instance").inputs["bundleId"] == "medium_3_0"
    # rejected() asserts that nothing, the instance included, was declared.
    refused(PREVIOUS, k3sVersion="v1.35.9+k3s1", **bundle_change)


def test_preview_allows_the_next_minor_and_reads_this_stacks_previous_deployment():
    deployment = deploy(previous_outputs={"k3sVersion": "v1.35.3+k3s1"}, preview=True)
    assert deployment.stack_references == ["organization/lightsail-k3s/dev"]
    assert deployment.named("lightsail-k3s-dev-install")


def test_first_deployment_has_no_previous_version_to_check(dev):
    assert dev.stack_references == ["organization/lightsail-k3s/dev"]
    assert dev.named("lightsail-k3s-dev-install")


# The k3s CIS hardening items that need no extra packages (docs.k3s.io/security/hardening-guide).


def test_server_config_turns_on_protect_kernel_defaults_and_a_rotated_audit_log():
    config = k3s.server_config("lightsail-k3s-dev", ["203.0.113.10"])
    assert config["protect-kernel-defaults"] is True
    assert config["secrets-encryption"] is True
    assert config["kube-apiserver-arg"] == [
        "audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log",
        "audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml",
        "audit-log-maxage=30",
        "audit-log-maxbackup=10",
        "audit-log-maxsize=100",
    ]
    assert config["kubelet-arg"] == ["streaming-connection-idle-timeout=5m"]


def test_server_config_keeps_its_key_order_so_servers_are_not_restarted_by_a_reordering():
    # The rendered config.yaml follows the dict's order; a new order alone would restart k3s.
    assert list(
        k3s.server_config("lightsail-k3s-dev", ["203.0.113.10"], ["system-reserved=x"])
    ) == [
        "node-name",
        "write-kubeconfig-mode",
        "secrets-encryption",
        "tls-san",
        "protect-kernel-defaults",
        "kube-apiserver-arg",
        "kubelet-arg",
    ]


def test_install_sets_the_kernel_values_protect_kernel_defaults_needs_before_k3s_starts(node):
    result = node.install()
    assert result.returncode == 0, result.stderr
    sysctl_file = node.sysctl_dir / "90-kubelet.conf"
    assert sysctl_file.read_text().splitlines() == [
        "vm.panic_on_oom=0",
        "vm.overcommit_memory=1",
        "kernel.panic=10",
        "kernel.panic_on_oops=1",
    ]
    calls = node.calls()
    applied = calls.index(f"sysctl -q -p {sysctl_file}")
    started = next(i for i, c in enumerate(calls) if c.startswith("install.sh"))
    assert applied < started


def test_install_writes_the_audit_policy_and_a_root_only_log_directory(node):
    assert node.install().returncode == 0
    policy = node.server_dir / "audit.yaml"
    assert yaml.safe_load(policy.read_text()) == {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata"}],
    }
    assert stat.S_IMODE(policy.stat().st_mode) == 0o600
    assert stat.S_IMODE((node.server_dir / "logs").stat().st_mode) == 0o700


def test_a_changed_audit_policy_restarts_k3s(node):
    assert node.install().returncode == 0
    (node.server_dir / "audit.yaml").write_text("rules: []\n")
    node.calls()
    assert node.install().returncode == 0
    assert "systemctl restart --no-block k3s" in node.calls()


def test_cis_settings_need_a_restart_only_once(node):
    _, calls = node.reinstall()
    assert not [c for c in calls if c.startswith("systemctl restart")]
