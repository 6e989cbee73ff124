"""data-disk.sh against stand-ins: lsblk, blkid, mkfs.ext4, mount, umount, mountpoint, systemctl and
k3s-killall.sh. The disk is a directory; mounting it puts a symlink to it where the mount point was."""

import subprocess
from pathlib import Path

import pytest

from components.host import data_disk_program
from tests.helpers import write_executable
from tests.node_stand_in import BASH

NODE = "lightsail-k3s-dev"
SIZE_GB = 40
UUID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"

STUBS = {
    # The system disk (mounted at /) and, once attached, the data disk of SIZE_GB GiB.
    "lsblk": """#!/bin/sh
case "$*" in
  "-b -d -n -o NAME,SIZE,TYPE")
    echo "nvme0n1 21474836480 disk"
    if [ -n "${STUB_ATTACHED:-}" ]; then echo "nvme1n1 $((STUB_SIZE_GB * 1073741824)) disk"; fi
    ;;
  "-n -o NAME /dev/"*) echo "${3#/dev/}" ;;
  "-n -o MOUNTPOINT /dev/nvme0n1") echo / ;;
  "-n -o MOUNTPOINT /dev/nvme1n1") if [ -L "$DATA_DIR" ]; then echo "$DATA_DIR"; fi ;;
esac
""",
    "blkid": """#!/bin/sh
echo "blkid $*" >> "$STUB_LOG"
if [ -n "${STUB_BLKID_FAILS:-}" ]; then exit 4; fi
case "$*" in
  *TYPE*) if [ -f "$STUB_STATE/fstype" ]; then cat "$STUB_STATE/fstype"; else exit 2; fi ;;
  *UUID*) echo "$STUB_UUID" ;;
esac
""",
    "mkfs.ext4": """#!/bin/sh
echo "mkfs.ext4 $*" >> "$STUB_LOG"
echo ext4 > "$STUB_STATE/fstype"
""",
    # `mount DEVICE DIR` or `mount DIR` (from fstab): DIR, an empty directory, becomes the disk.
    "mount": """#!/bin/sh
echo "mount $*" >> "$STUB_LOG"
if [ -n "${STUB_MOUNT_FAILS:-}" ]; then echo "mount: wrong fs type" >&2; exit 32; fi
target="${2:-$1}"
rmdir "$target" && ln -s "$STUB_DISK" "$target"
""",
    "umount": """#!/bin/sh
echo "umount $*" >> "$STUB_LOG"
rm "$1" && mkdir "$1"
""",
    "mountpoint": """#!/bin/sh
[ -L "$2" ]
""",
    # k3s is active until k3s-killall.sh stops it (or, with STUB_K3S_STAYS_ACTIVE, for ever).
    "systemctl": """#!/bin/sh
echo "systemctl $*" >> "$STUB_LOG"
if [ "$1" = is-active ]; then
  [ -n "${STUB_K3S_STAYS_ACTIVE:-}" ] || [ ! -f "$STUB_STATE/k3s-stopped" ]
fi
""",
    "k3s-killall.sh": """#!/bin/sh
echo "k3s-killall.sh" >> "$STUB_LOG"
touch "$STUB_STATE/k3s-stopped"
""",
}


class Host:
    def __init__(self, root: Path):
        self.root = root
        self.stubs = root / "stubs"
        self.state = root / "state"
        self.disk = root / "disk"
        self.data_dir = root / "var" / "lib" / "rancher" / "k3s"
        self.fstab = root / "etc" / "fstab"
        self.node_identity = root / "etc" / "rancher" / "node"
        self.log = root / "calls.log"
        for directory in (self.stubs, self.state, self.disk, self.fstab.parent):
            directory.mkdir(parents=True)
        for name, text in STUBS.items():
            write_executable(self.stubs / name, text)
        self.fstab.write_text("LABEL=cloudimg-rootfs / ext4 defaults 0 1\n")
        self.log.touch()

    def run(
        self,
        action: str,
        instance: str = "arn:instance/one",
        rejoins: bool = False,
        private_ip: str = "172.26.0.10",
        single_member: bool = True,
        **env,
    ):
        import os
        import re

        program = data_disk_program(NODE, SIZE_GB, instance, private_ip, rejoins, single_member)
        # A bound the program assigns (components/host.py hands the script its bounds) is set
        # for the test where the program sets it; the poll is short unless a test says otherwise,
        # so no test sleeps the node's 5 s between looks.
        env = {"POLL_INTERVAL_SECONDS": "0.05", **env}
        for name, value in env.items():
            program = re.sub(rf"^{name}=.*$", f"{name}={value}", program, flags=re.MULTILINE)
        environment = {
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "DATA_DIR": str(self.data_dir),
            "FSTAB": str(self.fstab),
            "SYSTEMD_DIR": str(self.root / "systemd"),
            "NODE_IDENTITY_DIR": str(self.node_identity),
            "K3S_KILLALL": str(self.stubs / "k3s-killall.sh"),
            "DEVICE_TIMEOUT_SECONDS": "1",
            "STUB_STATE": str(self.state),
            "STUB_LOG": str(self.log),
            "STUB_DISK": str(self.disk),
            "STUB_SIZE_GB": str(SIZE_GB),
            "STUB_UUID": UUID,
            "STUB_ATTACHED": "1",
            **env,
        }
        return subprocess.run(
            [BASH, "-s", "--", action],
            input=program,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls(self) -> list[str]:
        calls = self.log.read_text().splitlines()
        self.log.write_text("")
        return calls

    def formatted(self, calls: list[str]) -> bool:
        return any(call.startswith("mkfs") for call in calls)


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


def test_first_use_formats_the_disk_mounts_it_by_uuid_and_lists_it_in_fstab(host):
    result = host.run("mount")
    assert result.returncode == 0, result.stderr
    calls = host.calls()
    assert "mkfs.ext4 -q -L k3s-data /dev/nvme1n1" in calls
    assert f"mount {host.data_dir}" in calls
    assert f"UUID={UUID} {host.data_dir} ext4 defaults,nofail 0 2" in host.fstab.read_text()
    assert host.fstab.read_text().startswith("LABEL=cloudimg-rootfs")
    # k3s does not start without the mount; the node password goes with the data.
    drop_in = host.root / "systemd" / "k3s.service.d" / "data-disk.conf"
    assert f"RequiresMountsFor={host.data_dir}" in drop_in.read_text()
    assert host.node_identity.is_symlink()
    assert (host.disk / ".lightsail-k3s-host").read_text() == "arn:instance/one"


def test_reuse_never_formats_and_a_rerun_changes_nothing(host):
    assert host.run("mount").returncode == 0
    (host.disk / "server").mkdir()
    fstab = host.fstab.read_text()
    host.calls()
    again = host.run("mount")
    assert again.returncode == 0, again.stderr
    calls = host.calls()
    assert not host.formatted(calls)
    assert not [call for call in calls if call.startswith("mount")]
    assert host.fstab.read_text() == fstab
    assert (host.disk / "server").is_dir()


def test_a_new_host_mounts_the_disk_it_finds_without_formatting(host):
    (host.state / "fstype").write_text("ext4\n")
    (host.disk / "server" / "db" / "etcd").mkdir(parents=True)
    (host.disk / ".lightsail-k3s-host").write_text("arn:instance/old")
    result = host.run("mount", instance="arn:instance/new")
    assert result.returncode == 0, result.stderr
    assert not host.formatted(host.calls())
    assert "holds a ext4 file system already; not formatting it" in result.stdout
    assert "from an earlier host" in result.stdout
    # The first server keeps its etcd member.
    assert (host.disk / "server" / "db" / "etcd").is_dir()


def test_a_further_server_sets_its_removed_etcd_member_aside_on_a_new_host(host):
    (host.state / "fstype").write_text("ext4\n")
    (host.disk / "server" / "db" / "etcd").mkdir(parents=True)
    # A copy set aside by an earlier move: only the latest is kept.
    (host.disk / "server" / "db" / "etcd-removed-member-1").mkdir()
    (host.disk / "server" / "tls").mkdir()
    (host.disk / ".lightsail-k3s-host").write_text("arn:instance/old")
    result = host.run("mount", instance="arn:instance/new", rejoins=True)
    assert result.returncode == 0, result.stderr
    assert not (host.disk / "server" / "db" / "etcd").exists()
    copies = [p.name for p in (host.disk / "server" / "db").iterdir()]
    assert len(copies) == 1 and copies[0].startswith("etcd-removed-member-")
    assert copies[0] != "etcd-removed-member-1"
    assert (host.disk / "server" / "tls").is_dir()


def test_a_failed_mount_stops_before_anything_else(host):
    result = host.run("mount", STUB_MOUNT_FAILS="1")
    assert result.returncode != 0
    assert f"data disk of {NODE}: mounting /dev/nvme1n1" in result.stderr
    assert not (host.root / "systemd").exists()


def test_a_disk_that_never_appears_fails_naming_the_check(host):
    result = host.run("mount", STUB_ATTACHED="")
    assert result.returncode == 1
    assert "no 40 GiB disk appeared within 1s; check the attachment" in result.stderr


def test_an_unreadable_disk_is_never_formatted(host):
    result = host.run("mount", STUB_BLKID_FAILS="1")
    assert result.returncode == 1
    assert "blkid could not read /dev/nvme1n1" in result.stderr
    assert not host.formatted(host.calls())


def test_another_file_system_is_left_alone(host):
    (host.state / "fstype").write_text("xfs\n")
    result = host.run("mount")
    assert result.returncode == 1
    assert "holds a xfs file system, not ext4; it was left alone" in result.stderr


def test_existing_data_is_copied_with_k3s_stopped_and_the_original_kept(host):
    (host.data_dir / "server" / "db").mkdir(parents=True)
    (host.data_dir / "server" / "db" / "state.db").write_text("the cluster")
    (host.node_identity).mkdir(parents=True)
    (host.node_identity / "password").write_text("node secret")
    result = host.run("mount")
    assert result.returncode == 0, result.stderr
    calls = host.calls()
    assert calls.index("k3s-killall.sh") < next(
        i for i, call in enumerate(calls) if call.startswith("mount /dev/nvme1n1")
    )
    assert (host.disk / "server" / "db" / "state.db").read_text() == "the cluster"
    original = host.data_dir.parent / "k3s.before-data-disk"
    assert (original / "server" / "db" / "state.db").read_text() == "the cluster"
    assert host.data_dir.is_symlink()
    assert (host.node_identity / "password").read_text() == "node secret"


def test_a_copy_that_differs_keeps_the_original_in_place(host):
    (host.data_dir / "server").mkdir(parents=True)
    (host.data_dir / "server" / "token").write_text("secret")
    # A disk that loses what is written to it: the comparison must catch it.
    write_executable(host.stubs / "cp", '#!/bin/sh\necho "cp $*" >> "$STUB_LOG"\n')
    result = host.run("mount")
    assert result.returncode == 1
    assert "differs from the original; the original is untouched" in result.stderr
    assert (host.data_dir / "server" / "token").read_text() == "secret"
    assert not host.data_dir.is_symlink()
    assert not (host.data_dir.parent / "k3s.before-data-disk").exists()


def test_data_on_both_disks_is_never_mounted_over(host):
    (host.state / "fstype").write_text("ext4\n")
    (host.data_dir / "server").mkdir(parents=True)
    result = host.run("mount")
    assert result.returncode == 1
    assert "holds data on the system disk while the disk holds its own" in result.stderr


def test_unmount_stops_k3s_then_unmounts(host):
    assert host.run("mount").returncode == 0
    host.calls()
    result = host.run("unmount")
    assert result.returncode == 0, result.stderr
    assert host.calls() == ["k3s-killall.sh", f"umount {host.data_dir}"]
    assert not host.data_dir.is_symlink()


def test_the_install_stops_when_the_data_disk_is_not_mounted(tmp_path):
    from components import k3s
    from tests.node_stand_in import Node

    node = Node(tmp_path)
    write_executable(node.stubs / "mountpoint", "#!/bin/sh\nexit 1\n")
    program = k3s.install_program(
        k3s.remote_script("install-k3s-server.sh"),
        "v1.36.1+k3s1",
        NODE,
        k3s.server_config(NODE, ("203.0.113.10",)),
        (),
        data_on_disk=True,
    )
    result = node.run(program, K3S_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 1
    assert f"the data disk of {NODE} is not mounted" in result.stderr
    assert node.calls() == [], "nothing may run before the check"
    # Mounted, the install goes on as before.
    write_executable(node.stubs / "mountpoint", "#!/bin/sh\nexit 0\n")
    assert node.run(program, K3S_DATA_DIR=str(tmp_path / "data")).returncode == 0


def moved_etcd_member(host: Host) -> None:
    """A disk from an earlier host of the first server, its etcd member at that host's address."""
    (host.state / "fstype").write_text("ext4\n")
    (host.disk / "server" / "db" / "etcd" / "member" / "wal").mkdir(parents=True)
    (host.disk / ".lightsail-k3s-host").write_text("arn:instance/old")
    (host.disk / ".lightsail-k3s-address").write_text("172.26.0.10")


def test_a_single_servers_etcd_member_on_a_new_address_is_marked_for_the_installs_reset(host):
    moved_etcd_member(host)
    result = host.run("mount", instance="arn:instance/new", private_ip="172.26.9.9")
    assert result.returncode == 0, result.stderr
    marker = host.disk / ".lightsail-k3s-etcd-address-changed"
    assert marker.read_text() == "172.26.0.10 -> 172.26.9.9\n"
    assert (host.disk / ".lightsail-k3s-address").read_text() == "172.26.9.9"
    assert (host.disk / "server" / "db" / "etcd" / "member" / "wal").is_dir()


def test_the_same_address_needs_no_reset(host):
    moved_etcd_member(host)
    assert host.run("mount", instance="arn:instance/new").returncode == 0
    assert not (host.disk / ".lightsail-k3s-etcd-address-changed").exists()


def test_a_first_server_with_further_servers_refuses_a_new_address_before_k3s_starts(host):
    moved_etcd_member(host)
    result = host.run(
        "mount", instance="arn:instance/new", private_ip="172.26.9.9", single_member=False
    )
    assert result.returncode == 1
    assert "records the earlier host's address 172.26.0.10, not 172.26.9.9" in result.stderr
    assert not (host.disk / ".lightsail-k3s-etcd-address-changed").exists()


def moved_member(tmp_path: Path):
    """A server whose data disk records an earlier host's etcd address (the marker data-disk.sh
    leaves), with a k3s stand-in that logs `k3s server …`; its install program, its data dir and
    the marker."""
    from components import k3s
    from tests.node_stand_in import Node

    node = Node(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    marker = data / ".lightsail-k3s-etcd-address-changed"
    marker.write_text("172.26.0.10 -> 172.26.9.9\n")
    write_executable(node.stubs / "mountpoint", "#!/bin/sh\nexit 0\n")
    k3s_stub = (
        (node.stubs / "k3s")
        .read_text()
        .replace('case "$1" in', 'case "$1" in\n  server) echo "k3s $*" >> "$STUB_LOG" ;;', 1)
    )
    write_executable(node.stubs / "k3s", k3s_stub)
    program = k3s.install_program(
        k3s.remote_script("install-k3s-server.sh"),
        "v1.36.1+k3s1",
        NODE,
        k3s.server_config(NODE, ("203.0.113.10",), cluster_init=True),
        (),
        data_on_disk=True,
    )
    return node, program, data, marker


def test_the_install_resets_a_moved_single_member_before_k3s_starts(tmp_path):
    node, program, data, marker = moved_member(tmp_path)
    # The installer stand-in records whether it was told not to start k3s.
    curl = (
        (node.stubs / "curl")
        .read_text()
        .replace(
            'echo "install.sh INSTALL_K3S_VERSION',
            'echo "install.sh SKIP_START=$INSTALL_K3S_SKIP_START INSTALL_K3S_VERSION',
        )
    )
    write_executable(node.stubs / "curl", curl)
    result = node.run(program, K3S_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    calls = node.calls()
    installed = next(i for i, call in enumerate(calls) if call.startswith("install.sh"))
    assert "SKIP_START=true" in calls[installed]
    reset = calls.index("k3s server --cluster-reset")
    start = calls.index("systemctl start --no-block k3s")
    assert installed < reset < start
    assert not marker.exists()


def test_a_retry_after_a_failed_reset_neither_restarts_nor_starts_k3s_before_the_reset(tmp_path):
    """k3s installed on the release, a changed config, and the marker still there: the only start
    is the one after the reset (a restart would run k3s on etcd recording the earlier address)."""
    node, program, data, _ = moved_member(tmp_path)
    node.state.mkdir(parents=True, exist_ok=True)
    (node.state / "version").write_text("v1.36.1+k3s1")
    write_executable(node.k3s_bin, (node.stubs / "k3s").read_text())
    result = node.run(program, K3S_DATA_DIR=str(data), STUB_INACTIVE="3")
    assert result.returncode == 0, result.stderr
    calls = node.calls()
    assert not any(call.startswith("install.sh") for call in calls), calls
    assert not any("restart" in call for call in calls), calls
    reset = calls.index("k3s server --cluster-reset")
    starts = [i for i, call in enumerate(calls) if call == "systemctl start --no-block k3s"]
    assert starts and all(i > reset for i in starts), calls


# --- the first server of several: its old host leaves etcd, its new host rejoins through a peer

MEMBER = f"{NODE}-5e1f0a2b"
PEERS = ("172.26.1.2", "172.26.1.3")
# Its `k3s kubectl`, as the cluster answers it. This server's own API answers only while its k3s
# runs (until k3s-killall.sh); another's through `--server https://<its IP>:6443`, unless it is
# STUB_PEER_UNREACHABLE. The servers: this one, server-2 and server-3 (Ready and a voting etcd
# member, unless STUB_PEER_DOWN / STUB_PEER_VOTER say otherwise). The removal is carried out by
# k3s' member controller on the holder of the k3s-etcd lease (pkg/etcd/etcd.go, Register): this
# server while its k3s runs, which then removes its own member, restarts, finds its tombstone and,
# with no server to join, begins a new cluster (marked `new-cluster`); another once it is stopped.
# The removal shows (removed-node-name; the node-name annotation gone) from the
# STUB_REMOVED_AFTER-th look at it on, never with STUB_NEVER_REMOVED. With STUB_RESET_ONCE the
# controller clears the first request (member_controller.go, "Resetting removed node flag").
LEAVING_K3S = f"""#!/bin/sh
echo "k3s $*" >> "$STUB_LOG"
server=$(echo "$*" | sed -n 's|.*--server https://\\([^:]*\\):6443.*|\\1|p')
if [ -z "$server" ] && [ -f "$STUB_STATE/k3s-stopped" ]; then
  echo "The connection to the server 127.0.0.1:6443 was refused" >&2; exit 1
fi
if [ -n "$server" ] && [ "$server" = "${{STUB_PEER_UNREACHABLE:-}}" ]; then
  echo "dial tcp $server:6443: connect: no route to host" >&2; exit 1
fi
case "$*" in
  *"annotate --overwrite node {NODE} etcd.k3s.cattle.io/remove=true"*)
    if [ ! -f "$STUB_STATE/k3s-stopped" ]; then touch "$STUB_STATE/new-cluster"; fi
    if [ -z "${{STUB_NEVER_REMOVED:-}}" ]; then touch "$STUB_STATE/remove"; fi ;;
  *"get node {NODE} -o"*removed-node-name*)
    if [ -f "$STUB_STATE/remove" ]; then
      looks=$(($(cat "$STUB_STATE/looks" 2>/dev/null || echo 0) + 1))
      echo "$looks" > "$STUB_STATE/looks"
      if [ "$looks" -ge "${{STUB_REMOVED_AFTER:-1}}" ]; then
        touch "$STUB_STATE/removed"; printf %s "{MEMBER}"
      fi
    fi ;;
  *"get node {NODE} -o"*io/remove}}*)
    if [ -n "${{STUB_RESET_ONCE:-}}" ] && [ ! -f "$STUB_STATE/reset" ]; then
      touch "$STUB_STATE/reset"; rm -f "$STUB_STATE/remove"; printf false
    elif [ -f "$STUB_STATE/remove" ]; then printf true; fi ;;
  *"get node {NODE} -o"*node-name*)
    if [ ! -f "$STUB_STATE/removed" ]; then printf %s "{MEMBER}"; fi ;;
  *"get nodes -l node-role.kubernetes.io/etcd=true"*)
    printf '%s\\n' "{NODE} 172.26.0.10 True True" "{NODE}-server-2 {PEERS[0]} True True" \\
      "{NODE}-server-3 {PEERS[1]} ${{STUB_PEER_DOWN:-True}} ${{STUB_PEER_VOTER:-True}}" ;;
esac
"""


def first_of_three_with_a_member(host: Host) -> None:
    assert host.run("mount", single_member=False).returncode == 0
    (host.disk / "server" / "db" / "etcd" / "member" / "wal").mkdir(parents=True)
    (host.disk / "server" / "db" / "etcd" / "name").write_text(MEMBER)
    write_executable(host.stubs / "k3s", LEAVING_K3S)
    host.calls()


def leave(host: Host, **env):
    return host.run("unmount", single_member=False, K3S_BIN=str(host.stubs / "k3s"), **env)


REJOIN_RECORD = ".lightsail-k3s-etcd-rejoin-through"


def test_the_first_of_three_stops_k3s_before_its_member_is_removed_through_a_peer(host):
    """Left running, this server (most often the k3s-etcd lease holder) would remove its own
    member and begin a new cluster on its restart (LEAVING_K3S's `new-cluster`)."""
    first_of_three_with_a_member(host)
    result = leave(host, STUB_REMOVED_AFTER="3")
    assert result.returncode == 0, result.stderr
    assert not (host.state / "new-cluster").exists()
    calls = host.calls()
    listed = next(i for i, c in enumerate(calls) if "get nodes -l" in c)
    annotate = next(i for i, c in enumerate(calls) if "etcd.k3s.cattle.io/remove=true" in c)
    looks = [i for i, c in enumerate(calls) if "removed-node-name" in c]
    stop = calls.index("k3s-killall.sh")
    assert listed < stop < annotate < looks[0]
    assert len(looks) == 3, "it waits for the removal to show"
    assert f"--server https://{PEERS[0]}:6443" in calls[annotate]
    assert calls.index(f"umount {host.data_dir}") > looks[-1]
    record = host.disk / REJOIN_RECORD
    assert record.read_text() == f"{MEMBER}\n{PEERS[0]}\n{PEERS[1]}\n"


def test_the_leave_goes_through_the_other_peer_when_one_does_not_answer(host):
    first_of_three_with_a_member(host)
    result = leave(host, STUB_PEER_UNREACHABLE=PEERS[0], LEAVE_TIMEOUT_SECONDS="2")
    assert result.returncode == 0, result.stderr
    assert (host.disk / REJOIN_RECORD).exists()
    assert not (host.state / "new-cluster").exists()


def test_a_leave_that_timed_out_succeeds_once_the_removal_lands(host):
    """The first run stops k3s and times out; the removal lands after. The local API is gone
    and the member controller has deleted the node-name annotation: the run again reads the
    member from its data and asks the servers the first run recorded."""
    first_of_three_with_a_member(host)
    first = leave(host, STUB_REMOVED_AFTER="2", LEAVE_TIMEOUT_SECONDS="0")
    assert first.returncode == 1
    assert f"its etcd member {MEMBER} was not removed within 0s" in first.stderr
    assert not (host.disk / REJOIN_RECORD).exists()
    host.calls()
    again = leave(host, STUB_REMOVED_AFTER="2", LEAVE_TIMEOUT_SECONDS="0")
    assert again.returncode == 0, again.stderr
    assert f"the etcd member {MEMBER} of {NODE} was removed since the last run" in again.stdout
    assert (host.disk / REJOIN_RECORD).read_text() == f"{MEMBER}\n{PEERS[0]}\n{PEERS[1]}\n"
    assert not [c for c in host.calls() if "annotate" in c]
    assert not (host.state / "new-cluster").exists()


def test_a_run_again_whose_removal_has_not_landed_asks_for_it_through_a_peer(host):
    first_of_three_with_a_member(host)
    assert leave(host, STUB_NEVER_REMOVED="1", LEAVE_TIMEOUT_SECONDS="0").returncode == 1
    host.calls()
    again = leave(host)
    assert again.returncode == 0, again.stderr
    annotate = [c for c in host.calls() if "annotate" in c]
    assert annotate and f"--server https://{PEERS[0]}:6443" in annotate[0]
    assert (host.disk / REJOIN_RECORD).exists()


def test_a_removal_request_the_member_controller_cleared_is_made_again(host):
    first_of_three_with_a_member(host)
    result = leave(host, STUB_RESET_ONCE="1", STUB_REMOVED_AFTER="2", LEAVE_TIMEOUT_SECONDS="5")
    assert result.returncode == 0, result.stderr
    assert len([c for c in host.calls() if "annotate" in c]) == 2
    assert (host.disk / REJOIN_RECORD).exists()


def test_a_leave_that_stopped_half_way_keeps_k3s_off_the_member_on_a_mount_again(host):
    first_of_three_with_a_member(host)
    assert leave(host, STUB_NEVER_REMOVED="1", LEAVE_TIMEOUT_SECONDS="0").returncode == 1
    result = host.run("mount", single_member=False)
    assert result.returncode == 1
    assert "its old host's leave of etcd began and did not finish" in result.stderr


def test_a_peer_that_is_no_etcd_voter_stops_the_leave_before_k3s_stops(host):
    first_of_three_with_a_member(host)
    result = leave(host, STUB_PEER_VOTER="False")
    assert result.returncode == 1
    assert f"server {NODE}-server-3 is not a voting etcd member" in result.stderr
    calls = host.calls()
    assert not [c for c in calls if "annotate" in c or c == "k3s-killall.sh" or "umount" in c]


def test_a_k3s_still_active_after_its_stop_keeps_its_member(host):
    first_of_three_with_a_member(host)
    result = leave(host, STUB_K3S_STAYS_ACTIVE="1")
    assert result.returncode == 1
    assert "k3s is active again after its stop" in result.stderr
    assert not [c for c in host.calls() if "annotate" in c or "umount" in c]


def test_with_another_server_down_it_leaves_nothing_and_keeps_running(host):
    first_of_three_with_a_member(host)
    result = leave(host, STUB_PEER_DOWN="False")
    assert result.returncode == 1
    assert f"server {NODE}-server-3 is not Ready" in result.stderr
    calls = host.calls()
    assert not [c for c in calls if "annotate" in c or c == "k3s-killall.sh" or "umount" in c]


def test_a_removal_that_never_shows_fails_naming_the_servers_and_the_last_error(host):
    first_of_three_with_a_member(host)
    result = leave(
        host, STUB_NEVER_REMOVED="1", STUB_PEER_UNREACHABLE=PEERS[0], LEAVE_TIMEOUT_SECONDS="0"
    )
    assert result.returncode == 1
    assert f"its etcd member {MEMBER} was not removed within 0s" in result.stderr
    assert f"asked through {PEERS[0]} {PEERS[1]}" in result.stderr
    assert (
        f"through {PEERS[0]}: dial tcp {PEERS[0]}:6443: connect: no route to host" in result.stderr
    )
    assert "umount" not in " ".join(host.calls())


def test_an_unmount_run_again_after_leaving_asks_nothing(host):
    first_of_three_with_a_member(host)
    assert leave(host).returncode == 0
    host.run("mount", single_member=False)
    host.calls()
    assert leave(host).returncode == 0
    assert host.calls() == ["k3s-killall.sh", f"umount {host.data_dir}"]


def test_a_single_server_and_a_further_server_never_ask_the_api(host):
    first_of_three_with_a_member(host)
    assert host.run("unmount", K3S_BIN=str(host.stubs / "k3s")).returncode == 0
    assert not [c for c in host.calls() if c.startswith("k3s ")]
    host.run("mount", rejoins=True)
    host.calls()
    assert host.run("unmount", rejoins=True, K3S_BIN=str(host.stubs / "k3s")).returncode == 0
    assert not [c for c in host.calls() if c.startswith("k3s ")]


def test_the_new_host_sets_the_removed_member_aside_and_does_not_refuse_its_address(host):
    first_of_three_with_a_member(host)
    assert leave(host).returncode == 0
    result = host.run(
        "mount", instance="arn:instance/new", private_ip="172.26.9.9", single_member=False
    )
    assert result.returncode == 0, result.stderr
    db = host.disk / "server" / "db"
    assert not (db / "etcd").exists()
    assert [p.name for p in db.iterdir() if p.name.startswith("etcd-removed-member-")]
    assert not (host.disk / ".lightsail-k3s-etcd-address-changed").exists()
    assert (host.disk / ".lightsail-k3s-etcd-rejoin-through").exists()


def test_a_member_joined_since_under_a_new_name_is_never_set_aside(host):
    first_of_three_with_a_member(host)
    assert leave(host).returncode == 0
    host.run("mount", instance="arn:instance/new", single_member=False)
    (host.disk / "server" / "db" / "etcd" / "member" / "wal").mkdir(parents=True)
    (host.disk / "server" / "db" / "etcd" / "name").write_text(f"{NODE}-0new0000")
    host.run("unmount", single_member=False)
    host.run("mount", instance="arn:instance/newer", single_member=False)
    assert (host.disk / "server" / "db" / "etcd" / "name").read_text() == f"{NODE}-0new0000"


def rejoining(tmp_path: Path, record: str | None, set_aside: bool = True):
    """The first server's new host after the mount: its member set aside, the record (or none)."""
    from components import k3s
    from tests.node_stand_in import Node

    node = Node(tmp_path)
    data = tmp_path / "data"
    (data / "server" / "db").mkdir(parents=True)
    if set_aside:
        (data / "server" / "db" / "etcd-removed-member-1").mkdir()
    (data / "server" / "token").write_text("K10abc::server:secret\n")
    (data / "server" / "tls").mkdir()
    (data / "server" / "tls" / "server-ca.crt").write_text("the cluster's server CA\n")
    if record is not None:
        (data / ".lightsail-k3s-etcd-rejoin-through").write_text(record)
    write_executable(node.stubs / "mountpoint", "#!/bin/sh\nexit 0\n")
    program = k3s.install_program(
        k3s.remote_script("install-k3s-server.sh"),
        "v1.36.1+k3s1",
        NODE,
        k3s.server_config(NODE, ("203.0.113.10",), cluster_init=True),
        (),
        data_on_disk=True,
    )
    return node, program, data


def test_the_new_host_rejoins_through_the_first_other_server_with_the_clusters_token(tmp_path):
    node, program, data = rejoining(tmp_path, f"{MEMBER}\n{PEERS[0]}\n{PEERS[1]}\n")
    result = node.run(program, K3S_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    config = (node.config_dir / "config.yaml").read_text()
    assert f"\nserver: https://{PEERS[0]}:6443\n" in config
    assert f"\ntoken-file: {data}/server/token\n" in config
    assert "cluster-init: true" in config
    # No new member yet: the record stays for a run again.
    assert (data / ".lightsail-k3s-etcd-rejoin-through").exists()


def test_the_new_host_rejoins_through_another_recorded_server_when_the_first_is_down(tmp_path):
    node, program, data = rejoining(tmp_path, f"{MEMBER}\n{PEERS[0]}\n{PEERS[1]}\n")
    result = node.run(program, K3S_DATA_DIR=str(data), STUB_DOWN_SERVERS=PEERS[0])
    assert result.returncode == 0, result.stderr
    config = (node.config_dir / "config.yaml").read_text()
    assert f"\nserver: https://{PEERS[1]}:6443\n" in config
    pings = [c for c in node.calls() if c.endswith("/ping")]
    assert f"--cacert {data}/server/tls/server-ca.crt" in pings[0]


def test_with_no_recorded_server_answering_nothing_is_installed(tmp_path):
    node, program, data = rejoining(tmp_path, f"{MEMBER}\n{PEERS[0]}\n{PEERS[1]}\n")
    result = node.run(program, K3S_DATA_DIR=str(data), STUB_DOWN_SERVERS=" ".join(PEERS))
    assert result.returncode == 1
    assert "none of the servers recorded to rejoin through answers" in result.stderr
    assert f"{PEERS[1]}: curl: (28) Connection timed out" in result.stderr
    assert not [c for c in node.calls() if not c.endswith("/ping")]


def test_the_record_and_the_join_go_once_the_new_member_runs(tmp_path):
    """As on a real new host: no etcd data before the install; k3s, started by the installer,
    joins through the recorded server and writes its new member's data (k3s pkg/etcd/etcd.go,
    join; setName)."""
    node, program, data = rejoining(tmp_path, f"{MEMBER}\n{PEERS[0]}\n")
    curl = (node.stubs / "curl").read_text()
    joins = (
        'cp "$STUB_DIR/k3s" "$K3S_BIN"\n'
        'grep -q "^server: " "$K3S_CONFIG_DIR/config.yaml" && '
        'mkdir -p "$K3S_DATA_DIR/server/db/etcd/member/wal" && '
        'printf %s "lightsail-k3s-dev-0new0000" > "$K3S_DATA_DIR/server/db/etcd/name"\n'
    )
    write_executable(node.stubs / "curl", curl.replace('cp "$STUB_DIR/k3s" "$K3S_BIN"\n', joins))
    result = node.run(program, K3S_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    assert f"rejoins etcd through {PEERS[0]}" in result.stdout
    assert (data / "server" / "db" / "etcd" / "name").read_text() == f"{NODE}-0new0000"
    assert not (data / ".lightsail-k3s-etcd-rejoin-through").exists()
    config = (node.config_dir / "config.yaml").read_text()
    assert "server:" not in config and "token-file:" not in config
    assert "cluster-init: true" in config


def test_a_member_set_aside_with_no_server_to_rejoin_never_starts_a_new_cluster(tmp_path):
    node, program, data = rejoining(tmp_path, None)
    result = node.run(program, K3S_DATA_DIR=str(data))
    assert result.returncode == 1
    assert "k3s would begin a new cluster beside the running one" in result.stderr
    assert node.calls() == [], "nothing may run before the check"


def test_a_record_without_a_server_stops_before_anything(tmp_path):
    node, program, data = rejoining(tmp_path, f"{MEMBER}\n")
    result = node.run(program, K3S_DATA_DIR=str(data))
    assert result.returncode == 1
    assert "names no server to rejoin through" in result.stderr
    assert node.calls() == []


def test_an_api_that_does_not_answer_leaves_k3s_running_and_nothing_unmounted(host):
    first_of_three_with_a_member(host)
    write_executable(host.stubs / "k3s", "#!/bin/sh\necho 'connection refused' >&2\nexit 1\n")
    result = leave(host)
    assert result.returncode == 1
    assert "cannot list the servers (connection refused)" in result.stderr
    calls = host.calls()
    assert not [c for c in calls if c == "k3s-killall.sh" or "umount" in c]


def test_pulumi_never_cuts_the_unmount_off_before_its_own_bounds():
    """The unmount's Pulumi timeout comes from the bounds the script is handed: the leave's wait,
    two stops of k3s and its looks at the API, each through every other server, plus a margin."""
    import re

    from components import host as host_module
    from components.remote_scripts import remote_script
    from components.settings import SERVER_COUNTS

    script = remote_script("data-disk.sh")
    program = data_disk_program(NODE, SIZE_GB, "arn:instance/one", "172.26.0.10", False)
    bounds = {
        "STOP_TIMEOUT_SECONDS": host_module.DATA_DISK_STOP_SECONDS,
        "LEAVE_TIMEOUT_SECONDS": host_module.DATA_DISK_LEAVE_SECONDS,
        "REQUEST_TIMEOUT_SECONDS": host_module.DATA_DISK_REQUEST_SECONDS,
        "POLL_INTERVAL_SECONDS": host_module.DATA_DISK_POLL_SECONDS,
    }
    for name, seconds in bounds.items():
        # One home: the script has no value of its own, the program hands it Python's.
        assert f': "${{{name}:?{name} is required}}"' in script, name
        assert not re.search(rf"{name}=\"\$\{{{name}:-", script), name
        assert re.search(rf"^{name}={seconds}$", program, re.MULTILINE), name
    timeout = host_module.DATA_DISK_UNMOUNT_TIMEOUT
    assert timeout.endswith("m")
    peers = max(SERVER_COUNTS) - 1
    # Looks at the API: the servers listed (or the removal checked first on a run again), the
    # removal asked for, the last look after the deadline, each through every peer; one locally.
    looks = (1 + 4 * peers) * bounds["REQUEST_TIMEOUT_SECONDS"]
    longest = (
        looks
        + 2 * bounds["STOP_TIMEOUT_SECONDS"]
        + bounds["LEAVE_TIMEOUT_SECONDS"]
        + bounds["POLL_INTERVAL_SECONDS"]
    )
    assert int(timeout[:-1]) * 60 >= longest + 60
    assert script.count('timeout "$STOP_TIMEOUT_SECONDS"') == 1
    assert script.count("stop_k3s\n") == 3, "the copy's stop, the leave's, the unmount's"
