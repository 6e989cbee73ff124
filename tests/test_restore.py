"""bin/restore.sh with stand-in pulumi, ssh, k3s (its S3 snapshot listing), systemctl: list, restore, wait."""

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from components import remote_scripts
from tests.helpers import PROJECT_DIR, tool, write_executable
from tests.node_stand_in import WAIT_LIBRARY_STAND_IN_B64

SNAPSHOT_OLD = "etcd-snapshot-lightsail-k3s-prod-1795000000"
SNAPSHOT_NEW = "etcd-snapshot-lightsail-k3s-prod-1795043200"
TOKEN = "K10" + "ef" * 32 + "::server:" + "0123456789abcdef" * 2

# `pulumi stack output --stack S [--show-secrets] NAME`: answers from $STUB_OUTPUTS/NAME.
PULUMI_STUB = """#!/bin/sh
echo "pulumi $*" >> "$STUB_LOG"
[ "$1 $2" = "stack output" ] || exit 2
for name; do :; done
[ -f "$STUB_OUTPUTS/$name" ] || exit 1
cat "$STUB_OUTPUTS/$name"
"""
# Stands in for ssh to the node: records its arguments and the identity file, then runs
# the remote `sudo bash -s` as a local `bash -s`, with the node's stand-ins on PATH.
SSH_STUB = """#!/bin/sh
echo "ssh $*" >> "$STUB_LOG"
while [ $# -gt 0 ]; do
  if [ "$1" = "-i" ]; then stat -c %a "$2" > "$STUB_STATE/key-mode"; cp "$2" "$STUB_STATE/key"; fi
  case "$2" in UserKnownHostsFile=*) if [ -f "${2#*=}" ]; then cp "${2#*=}" "$STUB_STATE/known_hosts"; fi ;; esac
  shift
done
if [ -n "${STUB_WAIT_LIB_B64:-}" ]; then
  # The node-side program with a stand-in for the library that carries the Ready wait.
  sed "s|^WAIT_LIB_B64=.*|WAIT_LIB_B64=$STUB_WAIT_LIB_B64|" | bash -s
else
  exec bash -s
fi
"""
# k3s on the node: `etcd-snapshot ls` prints the bucket and local listing k3s would.
K3S_STUB = """#!/bin/sh
echo "k3s $*" >> "$STUB_LOG"
case "$1" in
  etcd-snapshot) [ "$2" = "ls" ] && cat "$STUB_LISTING" ;;
  server)
    token_config="$K3S_CONFIG_DIR/config.yaml.d/50-restored-token.yaml"
    if [ -f "$token_config" ]; then cp "$token_config" "$STUB_STATE/token-seen-by-reset"; fi
    exit "${STUB_RESET_EXIT:-0}" ;;
  kubectl) if [ -z "${STUB_NEVER_READY:-}" ]; then printf True; fi ;;
esac
"""
SYSTEMCTL_STUB = """#!/bin/sh
echo "systemctl $*" >> "$STUB_LOG"
"""
S3 = "s3://lightsail-k3s-prod-backups-a1b2c3d/etcd-snapshots/"
LOCAL = "file:///var/lib/rancher/k3s/server/db/snapshots/"
ON_DEMAND = "on-demand-lightsail-k3s-prod-1795050000"
# The columns of `k3s etcd-snapshot ls` (docs.k3s.io/cli/etcd-snapshot): the bucket's copies and the node's own.
LISTING = "\n".join(
    [
        "Name Location Size Created",
        f"{SNAPSHOT_NEW} {S3}{SNAPSHOT_NEW} 5062688 2026-11-16T12:00:00Z",
        f"{SNAPSHOT_OLD} {S3}{SNAPSHOT_OLD} 5062688 2026-11-16T00:00:00Z",
        f"{SNAPSHOT_NEW} {LOCAL}{SNAPSHOT_NEW} 5062688 2026-11-16T12:00:00Z",
        f"{ON_DEMAND} {LOCAL}{ON_DEMAND} 5062688 2026-11-16T14:00:00Z",
    ]
)


class Workstation:
    """The operator's machine and, behind the ssh stand-in, the node: stubs on PATH, k3s paths redirected."""

    def __init__(self, root: Path):
        self.stubs = root / "bin"
        self.outputs = root / "outputs"
        self.state = root / "state"
        self.config_dir = root / "etc" / "rancher" / "k3s"
        for directory in (self.stubs, self.outputs, self.state, self.config_dir):
            directory.mkdir(parents=True)
        write_executable(self.stubs / "pulumi", PULUMI_STUB)
        write_executable(self.stubs / "ssh", SSH_STUB)
        write_executable(self.stubs / "k3s", K3S_STUB)
        write_executable(self.stubs / "systemctl", SYSTEMCTL_STUB)
        (self.config_dir / "config.yaml").write_text(
            "node-name: lightsail-k3s-prod\netcd-s3: true\n"
        )
        self.listing = root / "listing.txt"
        self.listing.write_text(LISTING)
        self.log = root / "calls.log"
        self.log.touch()
        for name, value in {
            "backupBucket": "lightsail-k3s-prod-backups-a1b2c3d",
            "publicIp": "203.0.113.10",
            "sshUser": "ubuntu",
            "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nbW9jaw==\n-----END OPENSSH PRIVATE KEY-----",
        }.items():
            (self.outputs / name).write_text(value + "\n")

    def restore(self, *args, **env):
        environment = {
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "HOME": str(self.state),
            "STUB_LOG": str(self.log),
            "STUB_OUTPUTS": str(self.outputs),
            "STUB_STATE": str(self.state),
            "STUB_LISTING": str(self.listing),
            "K3S_BIN": str(self.stubs / "k3s"),
            "K3S_CONFIG_DIR": str(self.config_dir),
            "POLL_INTERVAL_SECONDS": "0.05",
            **env,
        }
        return subprocess.run(
            [tool("bash"), str(PROJECT_DIR / "bin" / "restore.sh"), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def peer(self, step: str, data_dir: Path, **env):
        """etcd-peer-restore.sh run on its own, sent as remote_scripts.node_program sends a node script."""
        program = remote_scripts.node_program(
            remote_scripts.remote_script("etcd-peer-restore.sh"),
            {"PEER_STEP": step},
        )
        return subprocess.run(
            [tool("bash"), "-s"],
            input=program,
            env={
                "PATH": f"{self.stubs}:{os.environ['PATH']}",
                "STUB_LOG": str(self.log),
                "K3S_BIN": str(self.stubs / "k3s"),
                "K3S_CONFIG_DIR": str(self.config_dir),
                "K3S_DATA_DIR": str(data_dir),
                "POLL_INTERVAL_SECONDS": "0.05",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=30,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def node_calls(self) -> list[str]:
        return [c for c in self.calls() if c.startswith(("systemctl", "k3s"))]


@pytest.fixture
def workstation(tmp_path):
    return Workstation(tmp_path)


def test_without_a_snapshot_lists_the_buckets_snapshots_and_changes_nothing(workstation):
    result = workstation.restore("prod")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    assert listed == [SNAPSHOT_OLD, SNAPSHOT_NEW], "bucket snapshots only, oldest first"
    assert "pulumi stack output --stack prod backupBucket" in workstation.calls()
    assert workstation.node_calls() == ["k3s etcd-snapshot ls"]


def test_restores_a_named_snapshot_with_cluster_reset_then_waits_for_ready(workstation):
    result = workstation.restore("prod", SNAPSHOT_OLD)
    assert result.returncode == 0, result.stderr
    assert workstation.node_calls() == [
        "k3s etcd-snapshot ls",
        "systemctl stop k3s",
        f"k3s server --cluster-reset --cluster-reset-restore-path={SNAPSHOT_OLD}",
        "systemctl start k3s",
        'k3s kubectl get node lightsail-k3s-prod -o jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    ]
    assert f"restored {SNAPSHOT_OLD}; node lightsail-k3s-prod is Ready" in result.stdout


def test_latest_restores_the_newest_snapshot_in_the_bucket(workstation):
    result = workstation.restore("prod", "latest")
    assert result.returncode == 0, result.stderr
    assert (
        f"k3s server --cluster-reset --cluster-reset-restore-path={SNAPSHOT_NEW}"
        in workstation.calls()
    )


def test_a_snapshot_missing_from_the_bucket_is_refused_before_k3s_stops(workstation):
    result = workstation.restore("prod", ON_DEMAND)
    assert result.returncode == 1
    assert "is not in the bucket" in result.stderr
    assert SNAPSHOT_OLD in result.stderr
    assert "systemctl stop k3s" not in workstation.calls()


def test_connects_with_the_generated_key_in_a_private_file_that_is_removed(workstation):
    assert workstation.restore("prod").returncode == 0
    ssh = next(c for c in workstation.calls() if c.startswith("ssh "))
    assert ssh.endswith("ubuntu@203.0.113.10 sudo bash -s")
    # A replaced instance presents a new host key; the user's known_hosts is left alone.
    assert "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=" in ssh
    assert (workstation.state / "key-mode").read_text().strip() == "600"
    key_path = ssh.split(" -i ")[1].split()[0]
    assert not Path(key_path).exists()


def test_without_a_generated_key_ssh_uses_the_agent(workstation):
    (workstation.outputs / "sshPrivateKey").unlink()
    assert workstation.restore("prod").returncode == 0
    assert " -i " not in next(c for c in workstation.calls() if c.startswith("ssh "))


def test_old_token_reaches_k3s_in_a_root_only_config_file_never_on_a_command_line(
    workstation, tmp_path
):
    token_file = tmp_path / "old-token"
    token_file.write_text(TOKEN + "\n")
    result = workstation.restore("prod", SNAPSHOT_NEW, RESTORE_TOKEN_FILE=str(token_file))
    assert result.returncode == 0, result.stderr
    token_config = workstation.config_dir / "config.yaml.d" / "50-restored-token.yaml"
    assert yaml.safe_load(token_config.read_text()) == {"token": TOKEN}
    assert stat.S_IMODE(token_config.stat().st_mode) == 0o600
    assert (workstation.state / "token-seen-by-reset").exists(), (
        "the reset must already see the old token"
    )
    assert TOKEN not in workstation.log.read_text()
    assert TOKEN not in result.stdout + result.stderr


def test_without_a_token_no_token_config_is_written(workstation):
    assert workstation.restore("prod", SNAPSHOT_NEW).returncode == 0
    assert not (workstation.config_dir / "config.yaml.d").exists()


def test_a_stack_without_backups_is_told_how_to_turn_them_on(workstation):
    (workstation.outputs / "backupBucket").unlink()
    result = workstation.restore("dev")
    assert result.returncode == 1
    assert "stack dev has no backup bucket" in result.stderr
    assert "pulumi config set --stack dev backups true" in result.stderr
    assert not [c for c in workstation.calls() if c.startswith("ssh")]


def test_a_failed_reset_stops_with_k3s_down_and_says_how_to_start_it(workstation):
    result = workstation.restore("prod", SNAPSHOT_OLD, STUB_RESET_EXIT="1")
    assert result.returncode == 1
    assert "systemctl start k3s" in result.stderr
    assert "systemctl start k3s" not in workstation.calls()


def test_usage_without_a_stack(workstation):
    result = workstation.restore()
    assert result.returncode == 1
    assert "usage: bin/restore.sh <stack> [snapshot|latest]" in result.stderr


def test_make_restore_passes_stack_and_snapshot():
    result = subprocess.run(
        ["make", "-n", "-C", str(PROJECT_DIR), "restore", "STACK=prod", f"SNAPSHOT={SNAPSHOT_OLD}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"bin/restore.sh prod {SNAPSHOT_OLD}" in result.stdout


def three_servers(workstation: Workstation, root: Path) -> Path:
    """The nodes output of three servers and an agent; returns the servers' k3s data directory."""
    servers = [
        ("lightsail-k3s-prod", "203.0.113.10"),
        ("lightsail-k3s-prod-server-2", "203.0.113.11"),
    ]
    servers.append(("lightsail-k3s-prod-server-3", "203.0.113.12"))
    nodes = [
        {"name": name, "role": "server", "publicIp": ip, "privateIp": "172.26.0.1"}
        for name, ip in servers
    ]
    nodes.append({"name": "lightsail-k3s-prod-agent-1", "role": "agent", "privateIp": "172.26.0.9"})
    (workstation.outputs / "nodes").write_text(json.dumps(nodes))
    data_dir = root / "data"
    (data_dir / "server" / "db" / "etcd").mkdir(parents=True)
    return data_dir


def test_with_three_servers_the_others_stop_first_and_rejoin_after_the_restore(
    workstation, tmp_path
):
    data_dir = three_servers(workstation, tmp_path)
    result = workstation.restore("prod", "latest", K3S_DATA_DIR=str(data_dir))
    assert result.returncode == 0, result.stderr
    steps = [
        call.split("@")[1].split()[0] if call.startswith("ssh") else call
        for call in workstation.calls()
        if call.startswith(("ssh", "systemctl", "k3s server"))
    ]
    reset = f"k3s server --cluster-reset --cluster-reset-restore-path={SNAPSHOT_NEW}"
    assert steps == [
        "203.0.113.10",  # `latest` is pinned before anything stops
        "203.0.113.11",
        "systemctl stop k3s",
        "203.0.113.12",
        "systemctl stop k3s",
        "203.0.113.10",
        "systemctl stop k3s",
        reset,
        "systemctl start k3s",
        "203.0.113.11",
        "systemctl start k3s",
        "203.0.113.12",
        "systemctl start k3s",
    ]
    assert not (data_dir / "server" / "db").exists()
    assert [p.name.startswith("db-before-restore-") for p in (data_dir / "server").iterdir()] == [
        True
    ]
    assert "rejoined the restored cluster and is Ready" in result.stdout


def test_with_three_servers_a_missing_snapshot_stops_nothing(workstation):
    nodes = [
        {"name": "lightsail-k3s-prod", "role": "server", "publicIp": "203.0.113.10"},
        {"name": "lightsail-k3s-prod-server-2", "role": "server", "publicIp": "203.0.113.11"},
    ]
    (workstation.outputs / "nodes").write_text(json.dumps(nodes))
    result = workstation.restore("prod", ON_DEMAND)
    assert result.returncode == 1
    assert "is not in the bucket" in result.stderr
    assert not [call for call in workstation.calls() if call.startswith("systemctl")]


def test_the_first_servers_host_key_is_pinned_from_the_stack_output(workstation):
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKeyHost"
    (workstation.outputs / "sshHostKey").write_text(host_key + "\n")
    assert workstation.restore("prod").returncode == 0
    assert (workstation.state / "known_hosts").read_text() == f"203.0.113.10 {host_key}\n"


def test_without_a_host_key_output_the_key_is_trusted_on_first_sight(workstation):
    assert workstation.restore("prod").returncode == 0
    assert not (workstation.state / "known_hosts").exists()


def test_the_restore_and_the_rejoins_wait_through_the_shared_library(workstation, tmp_path):
    """With k3s-wait.sh replaced on the way to each server, nodes that never turn Ready hold nothing up."""
    data_dir = three_servers(workstation, tmp_path)
    result = workstation.restore(
        "prod",
        "latest",
        K3S_DATA_DIR=str(data_dir),
        STUB_WAIT_LIB_B64=WAIT_LIBRARY_STAND_IN_B64,
        STUB_NEVER_READY="1",
    )
    assert result.returncode == 0, result.stderr
    assert [c for c in workstation.calls() if c.startswith(("wait", "k3s kubectl"))] == [
        "wait_for_node_ready [300] [the restore]",
        "wait_for_node_ready [300] [rejoining]",
        "wait_for_node_ready [300] [rejoining]",
    ]


def test_the_restore_gives_up_when_the_node_never_turns_ready(workstation):
    result = workstation.restore(
        "prod", SNAPSHOT_OLD, STUB_NEVER_READY="1", READY_TIMEOUT_SECONDS="0"
    )
    assert result.returncode == 1
    assert (
        "node lightsail-k3s-prod was not Ready 0s after the restore; see: journalctl -u k3s"
        in result.stderr
    )
    assert "is Ready" not in result.stdout


def test_a_rejoin_gives_up_when_the_node_never_turns_ready(workstation, tmp_path):
    result = workstation.peer(
        "rejoin", tmp_path / "data", STUB_NEVER_READY="1", READY_TIMEOUT_SECONDS="0"
    )
    assert result.returncode == 1
    assert result.stderr == (
        "node lightsail-k3s-prod was not Ready 0s after rejoining; see: journalctl -u k3s\n"
    )
    assert workstation.node_calls()[0] == "systemctl start k3s"
