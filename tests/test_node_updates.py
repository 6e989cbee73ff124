"""What changes on the nodes by itself, and what runs before a node's k3s changes: security updates
from the distribution's security pocket on every node, never rebooting it; and, on embedded etcd,
an etcd snapshot on the first server before any node changes its release."""

import base64
import re
import subprocess

import pytest

from components import k3s, k3s_agent, node_updates, remote_scripts
from components.settings import BLUEPRINTS
from tests.helpers import COMMAND, deploy, install_settings
from tests.node_stand_in import BASH, Node

FIRST = "lightsail-k3s-dev"
NODES = (
    FIRST,
    "lightsail-k3s-dev-server-2",
    "lightsail-k3s-dev-server-3",
    "lightsail-k3s-dev-agent-1",
)
SNAPSHOT_COMMAND = f"{FIRST}-snapshot-before-upgrade"


@pytest.fixture(scope="module")
def ha():
    return deploy(serverCount=3, agentCount=1)


def apt_list(conf: str, key: str) -> list[str]:
    """The entries of apt list `key` in `conf` (one file of apt.conf.d)."""
    (body,) = re.findall(re.escape(key) + r" \{\n(.*?)\};", conf, re.S)
    return re.findall(r'"([^"]*)";', body)


# --- security updates


def test_every_nodes_install_carries_the_security_updates_and_the_library_that_writes_them(ha):
    for name in NODES:
        assignments, _ = install_settings(ha.named(f"{name}-install"))
        conf = base64.b64decode(assignments["SECURITY_UPDATES_CONF_B64"]).decode()
        assert conf == node_updates.security_updates_conf(), name
        assert assignments["SECURITY_UPDATES_CONF_NAME"] == "52lightsail-k3s-security-updates"
        library = base64.b64decode(assignments["SECURITY_UPDATES_LIB_B64"]).decode()
        assert library == remote_scripts.remote_script("security-updates.sh"), name
        script = ha.named(f"{name}-install").inputs["stdin"].partition("set -euo pipefail")[2]
        assert 'configure_security_updates "$work_dir"' in script, name


def test_the_settings_allow_the_security_pockets_alone_and_turn_the_own_reboot_off():
    conf = node_updates.security_updates_conf()
    # The distribution's own lists (Ubuntu's allows its release pocket) are emptied first.
    assert "#clear Unattended-Upgrade::Allowed-Origins;" in conf
    assert "#clear Unattended-Upgrade::Origins-Pattern;" in conf
    assert conf.index("#clear Unattended-Upgrade::Origins-Pattern;") < conf.index(
        "Unattended-Upgrade::Origins-Pattern {"
    )
    patterns = apt_list(conf, "Unattended-Upgrade::Origins-Pattern")
    assert patterns == [
        "origin=Ubuntu,archive=${distro_codename}-security",
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security",
    ]
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in conf
    assert "Automatic-Reboot-Time" not in conf
    assert 'APT::Periodic::Unattended-Upgrade "1";' in conf
    assert 'APT::Periodic::Update-Package-Lists "1";' in conf
    # Read after the package's own 50unattended-upgrades and 20auto-upgrades, so its values win.
    assert node_updates.SECURITY_UPDATES_CONF_NAME > "50unattended-upgrades"


def test_every_blueprint_runs_a_distribution_with_a_security_pocket():
    assert {node_updates.distribution(blueprint) for blueprint in BLUEPRINTS} == set(
        node_updates.SECURITY_POCKETS
    )
    for distribution, pattern in node_updates.SECURITY_POCKETS.items():
        assert f"origin={distribution.capitalize()}," in pattern
        assert "${distro_codename}-security" in pattern


def agent_program() -> str:
    return k3s.install_program(
        k3s_agent.remote_script("join-k3s-agent.sh"),
        "v1.36.1+k3s1",
        "lightsail-k3s-dev-agent-1",
        k3s_agent.agent_config("lightsail-k3s-dev-agent-1", "172.26.1.10", "K10token", ()),
        (),
    )


@pytest.mark.parametrize("role", ["server", "agent"])
def test_the_install_writes_the_settings_where_apt_reads_them(tmp_path, role):
    node = Node(tmp_path)
    result = node.install() if role == "server" else node.run(agent_program())
    assert result.returncode == 0, result.stderr
    written = node.apt_conf_dir / node_updates.SECURITY_UPDATES_CONF_NAME
    assert written.read_text() == node_updates.security_updates_conf()
    assert oct(written.stat().st_mode & 0o777) == "0o644"
    # The package is there (the stand-in dpkg-query says so): apt is not run.
    assert not [call for call in node.calls() if call.startswith("apt-get")]


@pytest.mark.parametrize("role", ["server", "agent"])
def test_an_image_without_unattended_upgrades_gets_it_installed_without_questions(tmp_path, role):
    node = Node(tmp_path)
    missing = "1"
    result = (
        node.install(STUB_NO_UNATTENDED_UPGRADES=missing)
        if role == "server"
        else node.run(agent_program(), STUB_NO_UNATTENDED_UPGRADES=missing)
    )
    assert result.returncode == 0, result.stderr
    apt = [call for call in node.calls() if call.startswith("apt-get")]
    assert apt == [
        "apt-get -q -o DPkg::Lock::Timeout=120 update DEBIAN_FRONTEND=",
        "apt-get -q -y -o DPkg::Lock::Timeout=120 install unattended-upgrades DEBIAN_FRONTEND=noninteractive",
    ]


def test_a_node_whose_apt_fails_stops_before_k3s_is_touched(tmp_path):
    node = Node(tmp_path)
    result = node.install(STUB_NO_UNATTENDED_UPGRADES="1", STUB_APT_FAILS="1")
    assert result.returncode != 0
    assert "could not install unattended-upgrades" in result.stderr
    assert "sudo apt-get install unattended-upgrades" in result.stderr
    assert not [call for call in node.calls() if call.startswith(("curl", "systemctl"))]


def test_new_settings_alone_do_not_restart_k3s(tmp_path):
    node = Node(tmp_path)
    assert node.install().returncode == 0
    (node.apt_conf_dir / node_updates.SECURITY_UPDATES_CONF_NAME).write_text("// older settings\n")
    node.calls()
    result = node.install()
    assert result.returncode == 0, result.stderr
    assert "nothing to change" in result.stdout
    assert (
        node.apt_conf_dir / node_updates.SECURITY_UPDATES_CONF_NAME
    ).read_text() == node_updates.security_updates_conf()
    assert not [call for call in node.calls() if "restart" in call or call.startswith("curl")]


# --- the snapshot before an upgrade, in the program


def test_on_embedded_etcd_the_first_server_snapshots_before_its_install(ha):
    snapshot = ha.named(SNAPSHOT_COMMAND)
    assert snapshot.type == COMMAND
    assert snapshot.inputs["create"] == snapshot.inputs["update"] == "sudo bash -s"
    assert "delete" not in snapshot.inputs
    assert ha.depends_on(ha.named(f"{FIRST}-install"), snapshot)
    assert snapshot.inputs["stdin"] == k3s.snapshot_before_upgrade_program(
        "v1.36.1+k3s1", to_bucket=False
    )
    # Only the first server: the others' installs wait for its install, so one snapshot before
    # the first holds the cluster before any node changed.
    assert [r.name for r in ha.of_type(COMMAND) if "snapshot-before-upgrade" in r.name] == [
        SNAPSHOT_COMMAND
    ]


def test_with_backups_the_snapshot_must_reach_the_bucket():
    single = deploy(backups="true")
    stdin = single.named(SNAPSHOT_COMMAND).inputs["stdin"]
    assert "SNAPSHOT_TO_BUCKET=true\n" in stdin
    assert single.depends_on(single.named(f"{FIRST}-install"), single.named(SNAPSHOT_COMMAND))


def test_a_sqlite_server_has_no_snapshot_step():
    single = deploy()
    assert not [r for r in single.of_type(COMMAND) if "snapshot-before-upgrade" in r.name]


def test_the_snapshot_step_changes_with_the_release_and_nothing_else():
    # pulumi-command runs a command again when its stdin changes (an update): so the snapshot
    # step runs when, and only when, k3sVersion changes.
    def stdin(**overrides):
        return deploy(backups="true", **overrides).named(SNAPSHOT_COMMAND).inputs["stdin"]

    base = stdin()
    assert stdin(k3sVersion="v1.36.2+k3s1") != base
    assert "K3S_VERSION=v1.36.2+k3s1\n" in stdin(k3sVersion="v1.36.2+k3s1")
    assert stdin(certRotation=1) == base
    assert stdin(etcdSnapshotSchedule="0 */6 * * *") == base
    assert stdin(serverCount=3) == base


def test_a_preview_declares_the_snapshot_step_without_running_it():
    preview = deploy(backups="true", first_preview=True)
    assert preview.named(SNAPSHOT_COMMAND).inputs["stdin"] == k3s.snapshot_before_upgrade_program(
        "v1.36.1+k3s1", to_bucket=True
    )


# --- the snapshot before an upgrade, on the node

# `k3s etcd-snapshot ls` and `save` stand-ins over a snapshots file: save appends this run's
# snapshot (on the node, and in the bucket unless STUB_NO_BUCKET_COPY); STUB_SAVE_FAILS fails it.
ETCD_SNAPSHOT_K3S = """#!/bin/sh
case "$1 $2" in
  "--version ")
    echo "k3s version $(cat "$STUB_STATE/version") (deadbeef)"
    ;;
  "etcd-snapshot ls")
    echo "Name Location Size Created"
    cat "$STUB_STATE/snapshots" 2>/dev/null || true
    ;;
  "etcd-snapshot save")
    echo "k3s $*" >> "$STUB_LOG"
    [ -z "${STUB_SAVE_FAILS:-}" ] || { echo "etcdserver: request timed out" >&2; exit 1; }
    name="$4-lightsail-k3s-dev-1767225600"
    echo "$name file:///var/lib/rancher/k3s/server/db/snapshots/$name 4096 2026-01-01T00:00:00Z" >> "$STUB_STATE/snapshots"
    if [ -z "${STUB_NO_BUCKET_COPY:-}" ]; then
      echo "$name s3://bucket/lightsail-k3s/$name 4096 2026-01-01T00:00:00Z" >> "$STUB_STATE/snapshots"
    fi
    ;;
esac
"""


class EtcdServer(Node):
    def __init__(self, root, installed: str | None = "v1.35.4+k3s1", etcd: bool = True):
        super().__init__(root)
        (self.stubs / "k3s").write_text(ETCD_SNAPSHOT_K3S)
        if installed:
            (self.state / "version").write_text(installed)
            self.k3s_bin.write_text((self.stubs / "k3s").read_text())
            self.k3s_bin.chmod(0o755)
        if etcd:
            (self.server_dir / "db" / "etcd").mkdir(parents=True)

    def snapshot(self, target="v1.36.1+k3s1", to_bucket=True, **env):
        program = k3s.snapshot_before_upgrade_program(target, to_bucket=to_bucket)
        return subprocess.run(
            [BASH, "-s"],
            input=program,
            env=self.environment(**env),
            capture_output=True,
            text=True,
            timeout=30,
        )


def test_an_upgrade_takes_a_snapshot_to_the_bucket_and_prints_its_name(tmp_path):
    server = EtcdServer(tmp_path)
    (server.state / "snapshots").write_text(
        "etcd-snapshot-lightsail-k3s-dev-1700000000 s3://bucket/x 1 2025-11-14T00:00:00Z\n"
    )
    result = server.snapshot()
    assert result.returncode == 0, result.stderr
    assert server.calls() == ["k3s etcd-snapshot save --name pre-upgrade"]
    assert (
        "etcd snapshot before the upgrade from v1.35.4+k3s1 to v1.36.1+k3s1: "
        "pre-upgrade-lightsail-k3s-dev-1767225600"
    ) in result.stdout
    assert "make restore STACK=<stack> SNAPSHOT=pre-upgrade-lightsail-k3s-dev-1767225600" in (
        result.stdout
    )


def test_a_second_upgrade_names_its_own_snapshot_not_the_one_before(tmp_path):
    server = EtcdServer(tmp_path)
    (server.state / "snapshots").write_text(
        "pre-upgrade-lightsail-k3s-dev-1700000000 s3://bucket/old 1 2025-11-14T00:00:00Z\n"
    )
    result = server.snapshot()
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("pre-upgrade-lightsail-k3s-dev-1767225600") == 2
    assert "1700000000" not in result.stdout


@pytest.mark.parametrize(
    ("installed", "etcd", "said"),
    [
        ("v1.36.1+k3s1", True, "k3s stays on v1.36.1+k3s1: no snapshot needed"),
        (None, True, "k3s is not installed yet"),
    ],
)
def test_no_snapshot_when_the_release_does_not_change(tmp_path, installed, etcd, said):
    server = EtcdServer(tmp_path, installed=installed, etcd=etcd)
    result = server.snapshot()
    assert result.returncode == 0, result.stderr
    assert said in result.stdout
    assert server.calls() == []


def test_a_server_moving_from_sqlite_in_the_same_run_says_it_has_no_etcd_to_snapshot(tmp_path):
    server = EtcdServer(tmp_path, etcd=False)
    result = server.snapshot()
    assert result.returncode == 0, result.stderr
    assert "no embedded etcd data on this server yet" in result.stderr
    assert server.calls() == []


@pytest.mark.parametrize(
    ("env", "to_bucket", "said"),
    [
        ({"STUB_SAVE_FAILS": "1"}, True, "the etcd snapshot before the upgrade failed"),
        ({"STUB_NO_BUCKET_COPY": "1"}, True, "did not reach the backup bucket"),
    ],
)
def test_a_snapshot_that_fails_stops_the_upgrade_loudly(tmp_path, env, to_bucket, said):
    server = EtcdServer(tmp_path)
    result = server.snapshot(to_bucket=to_bucket, **env)
    assert result.returncode == 1
    assert said in result.stderr
    assert "k3s was not changed (still v1.35.4+k3s1)" in result.stderr


def test_without_backups_the_copy_on_the_node_is_enough(tmp_path):
    server = EtcdServer(tmp_path)
    result = server.snapshot(to_bucket=False, STUB_NO_BUCKET_COPY="1")
    assert result.returncode == 0, result.stderr
    assert ": pre-upgrade-lightsail-k3s-dev-1767225600" in result.stdout
    # make restore reads the bucket: without one, the message says where the snapshot is instead.
    assert "make restore" not in result.stdout
    assert (
        "on this server only (no backups: "
        "/var/lib/rancher/k3s/server/db/snapshots/pre-upgrade-lightsail-k3s-dev-1767225600)"
    ) in result.stdout


def test_a_hung_snapshot_is_cut_off_at_its_bound(tmp_path):
    server = EtcdServer(tmp_path)
    hang = server.stubs / "k3s"
    hang.write_text(
        hang.read_text().replace(
            'echo "k3s $*" >> "$STUB_LOG"', 'echo "k3s $*" >> "$STUB_LOG"; sleep 30'
        )
    )
    server.k3s_bin.write_text(hang.read_text())
    result = server.snapshot(SNAPSHOT_TIMEOUT_SECONDS="1")
    assert result.returncode == 1
    assert "took over 1s" in result.stderr
