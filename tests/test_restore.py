"""bin/restore.sh with stand-in pulumi, ssh, k3s (its S3 snapshot listing), systemctl: list, restore, wait."""

import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from components import remote_scripts
from tests.helpers import PROJECT_DIR, tool, write_executable
from tests.node_stand_in import WAIT_LIBRARY_STAND_IN_B64

SNAPSHOT_OLD = "etcd-snapshot-lightsail-k3s-prod-1795000000"
SNAPSHOT_NEW = "etcd-snapshot-lightsail-k3s-prod-1795043200"
TOKEN = "K10" + "ef" * 32 + "::server:" + "0123456789abcdef" * 2

# `pulumi stack output --stack S [--show-secrets|--json] NAME`: answers from $STUB_OUTPUTS/NAME, and
# without it as pulumi does (pkg/cmd/pulumi stack_output.go). STUB_OUTPUT_FAILS=NAME: that read
# fails as a locked state does.
PULUMI_STUB = """#!/bin/sh
echo "pulumi $*" >> "$STUB_LOG"
[ "$1 $2" = "stack output" ] || exit 2
for name; do :; done
if [ "$name" = "${STUB_OUTPUT_FAILS:-}" ]; then
  echo "error: getting stack outputs: passphrase must be set with PULUMI_CONFIG_PASSPHRASE" >&2
  exit 255
fi
if [ ! -f "$STUB_OUTPUTS/$name" ]; then
  echo "error: current stack does not have output property '$name'" >&2
  exit 255
fi
cat "$STUB_OUTPUTS/$name"
"""
# Stands in for ssh to the node: records its arguments and the identity file, then runs
# the remote `sudo bash -s` as a local `bash -s`, with the node's stand-ins on PATH. A host
# with a directory in $STUB_HOSTS gets its own k3s config and data directories there.
SSH_STUB = """#!/bin/sh
echo "ssh $*" >> "$STUB_LOG"
while [ $# -gt 0 ]; do
  if [ "$1" = "-i" ]; then stat -c %a "$2" > "$STUB_STATE/key-mode"; cp "$2" "$STUB_STATE/key"; fi
  case "$2" in UserKnownHostsFile=*) if [ -f "${2#*=}" ]; then cp "${2#*=}" "$STUB_STATE/known_hosts"; fi ;; esac
  case "$1" in *@*)
    if [ -d "${STUB_HOSTS:-/nonexistent}/${1#*@}" ]; then
      export K3S_CONFIG_DIR="$STUB_HOSTS/${1#*@}/config" K3S_DATA_DIR="$STUB_HOSTS/${1#*@}/data"
    fi ;;
  esac
  shift
done
if [ -n "${STUB_WAIT_LIB_B64:-}" ]; then
  # The node-side program with a stand-in for the library that carries the Ready wait.
  sed "s|^WAIT_LIB_B64=.*|WAIT_LIB_B64=$STUB_WAIT_LIB_B64|" | bash -s
else
  exec bash -s
fi
"""
# k3s on the node: `etcd-snapshot ls` prints the bucket and local listing k3s would; kubectl
# lists the etcd servers from $STUB_ETCD_NODES ("name address" lines; by default only this one).
K3S_STUB = """#!/bin/sh
printf '%s\\n' "k3s $*" >> "$STUB_LOG"
case "$1" in
  etcd-snapshot) [ "$2" = "ls" ] && cat "$STUB_LISTING" ;;
  server)
    token_config="$K3S_CONFIG_DIR/config.yaml.d/50-restored-token.yaml"
    if [ -f "$token_config" ]; then cp "$token_config" "$STUB_STATE/token-seen-by-reset"; fi
    exit "${STUB_RESET_EXIT:-0}" ;;
  kubectl)
    case "$*" in
      *node-role.kubernetes.io/etcd=true*)
        if [ -n "${STUB_API_DOWN:-}" ]; then exit 1; fi
        if [ -n "${STUB_ETCD_NODES:-}" ]; then cat "$STUB_ETCD_NODES"; else echo "lightsail-k3s-prod 172.26.0.1"; fi ;;
      *delete*) ;;
      *) if [ -z "${STUB_NEVER_READY:-}" ]; then printf True; fi ;;
    esac ;;
esac
"""
# A start without --no-block waits, as on k3s' Type=notify unit, until k3s reports ready:
# with STUB_START_HANGS, longer than the test waits. STUB_STOP_HANGS: a stop that does not end.
SYSTEMCTL_STUB = """#!/bin/sh
echo "systemctl $*" >> "$STUB_LOG"
if [ "$1" = start ] && [ "$2" != --no-block ] && [ -n "${STUB_START_HANGS:-}" ]; then sleep 15; fi
if [ "$1" = stop ] && [ -n "${STUB_STOP_HANGS:-}" ]; then sleep 15; fi
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


FIRST_SERVER = {
    "name": "lightsail-k3s-prod",
    "role": "server",
    "bundleId": "small_3_0",
    "publicIp": "203.0.113.10",
    "privateIp": "172.26.0.1",
}


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
        # The stand-in servers' etcd peer port: free on loopback, so a server is stopped until a
        # test listens on it (this machine's network may answer any other address).
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.etcd_peer_port = probe.getsockname()[1]
        for name, value in {
            "backupBucket": "lightsail-k3s-prod-backups-a1b2c3d",
            "publicIp": "203.0.113.10",
            "sshUser": "ubuntu",
            "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nbW9jaw==\n-----END OPENSSH PRIVATE KEY-----",
            "nodes": json.dumps([FIRST_SERVER]),
        }.items():
            (self.outputs / name).write_text(value + "\n")

    def restore(self, *args, timeout: float = 30, **env):
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
            "ETCD_PEER_PORT": str(self.etcd_peer_port),
            **env,
        }
        return subprocess.run(
            [tool("bash"), str(PROJECT_DIR / "bin" / "restore.sh"), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
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
        "k3s kubectl get nodes -l node-role.kubernetes.io/etcd=true --request-timeout=20s"
        ' -o jsonpath={range .items[*]}{.metadata.name}{" "}'
        '{.metadata.annotations.etcd\\.k3s\\.cattle\\.io/node-address}{"\\n"}{end}',
        "systemctl stop k3s",
        f"k3s server --cluster-reset --cluster-reset-restore-path={SNAPSHOT_OLD}",
        "systemctl start --no-block k3s",
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
    assert "systemctl start --no-block k3s" in result.stderr
    assert not [call for call in workstation.calls() if call.startswith("systemctl start")]


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


# The three servers: name, public IP, and a loopback private IP the etcd probe can reach.
SERVERS = [
    ("lightsail-k3s-prod", "203.0.113.10", "172.26.0.1"),
    ("lightsail-k3s-prod-server-2", "203.0.113.11", "127.0.0.11"),
    ("lightsail-k3s-prod-server-3", "203.0.113.12", "127.0.0.12"),
]


def three_servers(workstation: Workstation, root: Path) -> Path:
    """The nodes output of three servers and an agent; returns the servers' k3s data directory."""
    nodes = [
        {"name": name, "role": "server", "publicIp": ip, "privateIp": private_ip}
        for name, ip, private_ip in SERVERS
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
        "systemctl start --no-block k3s",
        "203.0.113.11",
        "systemctl start --no-block k3s",
        "203.0.113.12",
        "systemctl start --no-block k3s",
    ]
    assert not (data_dir / "server" / "db").exists()
    assert [p.name.startswith("db-before-restore-") for p in (data_dir / "server").iterdir()] == [
        True
    ]
    assert "rejoined the restored cluster and is Ready" in result.stdout


def test_with_three_servers_a_missing_snapshot_stops_nothing(workstation):
    nodes = [
        {"name": name, "role": "server", "publicIp": ip, "privateIp": private_ip}
        for name, ip, private_ip in SERVERS[:2]
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
    assert workstation.node_calls()[0] == "systemctl start --no-block k3s"


@pytest.mark.parametrize(
    ("stub", "expected"),
    [
        ({"STUB_OUTPUT_FAILS": "nodes"}, "could not read output nodes of stack prod"),
        ({"STUB_NO_NODES": "1"}, "stack prod has no nodes output"),
    ],
)
def test_servers_that_cannot_be_read_stop_the_restore_before_any_server_is_touched(
    workstation, stub, expected
):
    """Read as "one server", a failed nodes read would reset the first while the others keep a quorum."""
    if stub.pop("STUB_NO_NODES", None):
        (workstation.outputs / "nodes").unlink()
    result = workstation.restore("prod", SNAPSHOT_OLD, **stub)
    assert result.returncode == 1
    assert expected in result.stderr
    assert (
        "pulumi stack output --stack prod" in result.stderr
        or "pulumi up --stack prod" in result.stderr
    )
    assert not [call for call in workstation.calls() if call.startswith("ssh")]


def test_a_failed_read_is_not_taken_for_a_missing_output(workstation):
    (workstation.outputs / "sshHostKey").write_text("ssh-ed25519 AAAA\n")
    result = workstation.restore("prod", STUB_OUTPUT_FAILS="sshHostKey")
    assert result.returncode == 1
    assert "pulumi: error: getting stack outputs: passphrase must be set" in result.stderr
    assert "check that this works: pulumi stack output --stack prod sshHostKey" in result.stderr


def listening(address: str, port: int) -> socket.socket:
    """A stand-in for a server's running etcd: something accepting on its peer port."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen()
    return server


def test_the_reset_is_refused_while_an_etcd_server_the_stack_does_not_list_still_runs(
    workstation, tmp_path
):
    """The stack says one server; the API lists another etcd server, and its etcd answers."""
    etcd_nodes = tmp_path / "etcd-nodes"
    etcd_nodes.write_text("lightsail-k3s-prod 172.26.0.1\nlightsail-k3s-prod-server-2 127.0.0.11\n")
    with listening("127.0.0.11", workstation.etcd_peer_port):
        result = workstation.restore("prod", SNAPSHOT_OLD, STUB_ETCD_NODES=str(etcd_nodes))
    assert result.returncode == 1
    assert "refusing the cluster reset: the etcd member at 127.0.0.11 still runs" in result.stderr
    assert not [c for c in workstation.calls() if c.startswith(("systemctl", "k3s server"))]


def test_a_stopped_etcd_server_the_api_lists_does_not_hold_the_reset(workstation, tmp_path):
    etcd_nodes = tmp_path / "etcd-nodes"
    etcd_nodes.write_text("lightsail-k3s-prod 172.26.0.1\nlightsail-k3s-prod-server-2 127.0.0.11\n")
    result = workstation.restore("prod", SNAPSHOT_OLD, STUB_ETCD_NODES=str(etcd_nodes))
    assert result.returncode == 0, result.stderr


def test_with_the_api_down_one_server_is_restored_and_says_what_it_could_not_check(workstation):
    result = workstation.restore("prod", SNAPSHOT_OLD, STUB_API_DOWN="1")
    assert result.returncode == 0, result.stderr
    assert "the API did not list the etcd servers" in result.stderr


def test_a_server_still_running_after_its_stop_holds_the_reset_and_is_reported(
    workstation, tmp_path
):
    data_dir = three_servers(workstation, tmp_path)
    with listening("127.0.0.12", workstation.etcd_peer_port):
        result = workstation.restore("prod", "latest", K3S_DATA_DIR=str(data_dir))
    assert result.returncode == 1
    assert "the etcd member at 127.0.0.12 still runs" in result.stderr
    assert not [c for c in workstation.calls() if c.startswith("k3s server")]
    assert "ssh ubuntu@203.0.113.12 sudo systemctl start --no-block k3s" in result.stderr


def test_a_failed_reset_names_the_stopped_servers_and_how_to_start_them(workstation, tmp_path):
    data_dir = three_servers(workstation, tmp_path)
    result = workstation.restore("prod", "latest", K3S_DATA_DIR=str(data_dir), STUB_RESET_EXIT="1")
    assert result.returncode == 1
    report = result.stderr[result.stderr.index("restore: k3s is stopped on these servers") :]
    assert report.splitlines()[1:3] == [
        "  ubuntu@203.0.113.11 (lightsail-k3s-prod-server-2)",
        "  ubuntu@203.0.113.12 (lightsail-k3s-prod-server-3)",
    ]
    assert "    ssh ubuntu@203.0.113.11 sudo systemctl start --no-block k3s" in report
    assert "    ssh ubuntu@203.0.113.12 sudo systemctl start --no-block k3s" in report
    assert (data_dir / "server" / "db").exists(), "their etcd data stays where it was"


def test_a_failure_after_the_reset_tells_the_stopped_servers_to_rejoin_not_start(
    workstation, tmp_path
):
    data_dir = three_servers(workstation, tmp_path)
    result = workstation.restore(
        "prod",
        "latest",
        K3S_DATA_DIR=str(data_dir),
        STUB_NEVER_READY="1",
        READY_TIMEOUT_SECONDS="0",
    )
    assert result.returncode == 1
    assert "the first server runs the restored snapshot, but k3s is stopped" in result.stderr
    assert "never start them on their old etcd data" in result.stderr
    for peer in ("203.0.113.11", "203.0.113.12"):
        assert (
            f"    ssh ubuntu@{peer} 'sudo mv /var/lib/rancher/k3s/server/db "
            "/var/lib/rancher/k3s/server/db-before-restore-$(date +%s) && sudo systemctl start --no-block k3s'"
        ) in result.stderr
    assert "sudo systemctl start --no-block k3s\n" not in result.stderr


def test_a_start_that_would_block_for_ever_is_queued_and_bounded_by_the_ready_wait(
    workstation, tmp_path
):
    """k3s' unit is Type=notify with TimeoutStartSec=0: a blocking start can wait for ever."""
    data_dir = three_servers(workstation, tmp_path)
    started = time.monotonic()
    result = workstation.restore(
        "prod", "latest", K3S_DATA_DIR=str(data_dir), STUB_START_HANGS="1", timeout=10
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    starts = [c for c in workstation.calls() if c.startswith("systemctl start")]
    assert starts == ["systemctl start --no-block k3s"] * 3


def test_a_stop_that_does_not_end_is_bounded(workstation):
    result = workstation.restore(
        "prod", SNAPSHOT_OLD, STUB_STOP_HANGS="1", STOP_TIMEOUT_SECONDS="1", timeout=10
    )
    assert result.returncode == 1
    assert "k3s did not stop within 1s; nothing was restored" in result.stderr
    assert not [c for c in workstation.calls() if c.startswith("k3s server")]


NEW_TOKEN = "K10" + "ab" * 32 + "::server:" + "fedcba9876543210" * 2


def replaced_instances(workstation: Workstation, root: Path) -> Path:
    """Three servers on replaced instances: each host its own k3s directories, the others'
    config.yaml carrying the replacement cluster's token and their data its certificates."""
    three_servers(workstation, root)
    hosts = root / "hosts"
    for name, public_ip, _ in SERVERS:
        config = hosts / public_ip / "config"
        config.mkdir(parents=True)
        (config / "config.yaml").write_text(
            f"node-name: {name}\ntoken: {NEW_TOKEN}\netcd-s3: true\n"
        )
        for directory in ("db/etcd", "tls", "cred"):
            (hosts / public_ip / "data" / "server" / directory).mkdir(parents=True)
    return hosts


def test_three_servers_onto_replaced_instances_rejoin_with_the_restored_token(
    workstation, tmp_path
):
    hosts = replaced_instances(workstation, tmp_path)
    token_file = tmp_path / "old-token"
    token_file.write_text(TOKEN + "\n")
    result = workstation.restore(
        "prod", "latest", RESTORE_TOKEN_FILE=str(token_file), STUB_HOSTS=str(hosts)
    )
    assert result.returncode == 0, result.stderr
    for _, public_ip, _ in SERVERS:
        drop_in = hosts / public_ip / "config" / "config.yaml.d" / "50-restored-token.yaml"
        assert yaml.safe_load(drop_in.read_text()) == {"token": TOKEN}, public_ip
        assert stat.S_IMODE(drop_in.stat().st_mode) == 0o600
    for _, public_ip, _ in SERVERS[1:]:
        server_dir = hosts / public_ip / "data" / "server"
        # Set aside: the replacement cluster's etcd data and its newer certificate authorities.
        assert sorted(p.name.split("-before-restore-")[0] for p in server_dir.iterdir()) == [
            "cred",
            "db",
            "tls",
        ]
        assert all("-before-restore-" in p.name for p in server_dir.iterdir())
    assert TOKEN not in workstation.log.read_text()
    assert TOKEN not in result.stdout + result.stderr


def test_stale_nodes_of_replaced_servers_are_deleted_before_they_rejoin(workstation, tmp_path):
    hosts = replaced_instances(workstation, tmp_path)
    token_file = tmp_path / "old-token"
    token_file.write_text(TOKEN + "\n")
    result = workstation.restore(
        "prod", "latest", RESTORE_TOKEN_FILE=str(token_file), STUB_HOSTS=str(hosts)
    )
    assert result.returncode == 0, result.stderr
    calls = workstation.calls()
    deletions = [c for c in calls if "delete" in c]
    assert deletions == [
        f"k3s kubectl {what} --ignore-not-found --timeout=60s"
        for name in ("lightsail-k3s-prod-server-2", "lightsail-k3s-prod-server-3")
        for what in (
            f"delete node {name}",
            f"-n kube-system delete secret {name}.node-password.k3s",
        )
    ]
    rejoin_ssh = [i for i, c in enumerate(calls) if c.startswith("ssh") and "203.0.113.11" in c][-1]
    assert max(calls.index(d) for d in deletions) < rejoin_ssh


def test_restoring_onto_the_same_instances_deletes_no_node(workstation, tmp_path):
    data_dir = three_servers(workstation, tmp_path)
    assert workstation.restore("prod", "latest", K3S_DATA_DIR=str(data_dir)).returncode == 0
    assert not [c for c in workstation.calls() if "delete" in c]


def test_the_documented_restore_section_states_the_scripts_bounds_and_paths():
    page = (PROJECT_DIR / "docs" / "backups.md").read_text()
    section = page[page.index("## Restore") :]
    restore_sh = (PROJECT_DIR / "bin" / "restore.sh").read_text()
    drop_in = restore_sh.split('token_drop_in="', 1)[1].split('"', 1)[0]
    assert f"/etc/rancher/k3s/{drop_in}" in section
    node_script = (PROJECT_DIR / "components" / "remote" / "restore-etcd-snapshot.sh").read_text()
    for variable, words in (
        ("STOP_TIMEOUT_SECONDS", "given {} minutes"),
        ("READY_TIMEOUT_SECONDS", "up to {} minutes"),
    ):
        seconds = int(node_script.split(f'{variable}="${{{variable}:-', 1)[1].split("}", 1)[0])
        assert words.format(seconds // 60) in section, variable
    assert "systemctl start --no-block k3s" in section
    assert "### Runbook: the instance is gone or was replaced" in section
    for fact in ("server/tls", "server/cred", ".node-password.k3s", "-server-2"):
        assert fact in section, fact
