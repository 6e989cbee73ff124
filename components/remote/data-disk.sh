#!/usr/bin/env bash
# The server's data disk: /var/lib/rancher/k3s (datastore, certificates, tokens, local-path volumes)
# on a Lightsail block storage disk, so that a replaced instance takes the cluster with it.
# Runs as root on the server (`sudo bash -s -- ACTION`), fed on stdin by components/host.py after
# shell assignments of NODE_NAME, DISK_SIZE_GB (the disk's size, how it is told apart from the
# system disk), INSTANCE_ID and PRIVATE_IP (the Lightsail instance's ARN and private IP, kept on the
# disk so a mount can tell data of an earlier host from its own), ETCD_REJOINS (a further server,
# whose etcd member leaves with its host), ETCD_SINGLE_MEMBER (the first server of one),
# KUBE_API_PORT (where another server's API answers), and its bounds, which components/host.py
# also derives the unmount's Pulumi timeout from: STOP_TIMEOUT_SECONDS, LEAVE_TIMEOUT_SECONDS,
# REQUEST_TIMEOUT_SECONDS (one look at an API server) and POLL_INTERVAL_SECONDS.
#   mount:   waits for the attached disk, formats it only when it holds no file system at all,
#            mounts it by UUID at the data directory and lists it in /etc/fstab, and makes k3s
#            require the mount. A server that has its data on the system disk already (the disk is
#            turned on later) gets it copied over with k3s stopped, the copy compared with the
#            original before the switch; the original stays, renamed, until the operator removes it.
#   unmount: on the old host, before the disk is detached: the first server of several has its
#            etcd member removed first (below, leave_etcd), then k3s and its containers stop,
#            then the data directory is unmounted. Lightsail detaches only a stopped instance's disk with
#            its file systems unmounted (AWS Lightsail API DetachDisk), and the Terraform provider
#            that pulumi-aws bridges shuts a running instance down itself to detach (hashicorp/
#            terraform-provider-aws internal/service/lightsail/disk_attachment.go,
#            resourceDiskAttachmentDelete): without this, that stop would be all between k3s and
#            the detach.
# Both are safe to re-run. Any failure stops the script, naming the node and the check to make,
# before k3s is installed or started: k3s never runs on an empty directory in the disk's place.
set -euo pipefail

action="${1:?usage: data-disk.sh mount|unmount}"
: "${NODE_NAME:?NODE_NAME is required}"
DATA_DIR="${DATA_DIR:-/var/lib/rancher/k3s}"
FSTAB="${FSTAB:-/etc/fstab}"
SYSTEMD_DIR="${SYSTEMD_DIR:-/etc/systemd/system}"
# k3s keeps its node password outside the data directory (/etc/rancher/node/password), and the
# cluster checks it when the node registers under its name again: it moves onto the disk too.
NODE_IDENTITY_DIR="${NODE_IDENTITY_DIR:-/etc/rancher/node}"
K3S_KILLALL="${K3S_KILLALL:-/usr/local/bin/k3s-killall.sh}"
DEVICE_TIMEOUT_SECONDS="${DEVICE_TIMEOUT_SECONDS:-300}"
: "${STOP_TIMEOUT_SECONDS:?STOP_TIMEOUT_SECONDS is required}"
: "${LEAVE_TIMEOUT_SECONDS:?LEAVE_TIMEOUT_SECONDS is required}"
: "${REQUEST_TIMEOUT_SECONDS:?REQUEST_TIMEOUT_SECONDS is required}"
: "${POLL_INTERVAL_SECONDS:?POLL_INTERVAL_SECONDS is required}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
FS_TYPE=ext4
# Where the data lived before the disk; kept, not deleted, once it has been copied over.
BEFORE_DISK_DIR="$DATA_DIR.before-data-disk"
# On the disk: which instance mounted it last, and at which private IP; and, for the install, that
# the etcd member's recorded address must be reset (install-k3s-server.sh reads this name).
HOST_RECORD="$DATA_DIR/.lightsail-k3s-host"
ADDRESS_RECORD="$DATA_DIR/.lightsail-k3s-address"
ETCD_ADDRESS_MARKER=.lightsail-k3s-etcd-address-changed
# On the disk, written by the first server's old host once its etcd member is removed: that
# member's name, then the private IPs of the other servers, through which the new host rejoins
# (install-k3s-server.sh reads this name too).
REJOIN_RECORD="$DATA_DIR/.lightsail-k3s-etcd-rejoin-through"
ETCD_DIR="$DATA_DIR/server/db/etcd"

fail() {
  echo "data disk of $NODE_NAME: $1" >&2
  exit 1
}

# Stops k3s and everything it started (pods outlive the unit: docs.k3s.io/upgrades/killall),
# bounded. A host without k3s yet has nothing to stop.
stop_k3s() {
  if [ ! -x "$K3S_KILLALL" ]; then
    return 0
  fi
  if ! timeout "$STOP_TIMEOUT_SECONDS" "$K3S_KILLALL" >/dev/null; then
    fail "k3s did not stop within ${STOP_TIMEOUT_SECONDS}s ($K3S_KILLALL); see systemctl status k3s"
  fi
}

# The attached disk: the whole disk of DISK_SIZE_GB GiB that holds no partition and is not
# mounted (the system disk holds /). Lightsail names it /dev/xvdf in the API, but on Nitro
# instances it shows up as an NVMe device, so it is found by its size, and exactly one must match.
find_device() {
  local want_bytes=$((DISK_SIZE_GB * 1024 * 1024 * 1024)) name size type mounted found=""
  while read -r name size type; do
    [ "$type" = disk ] && [ "$size" = "$want_bytes" ] || continue
    if [ "$(lsblk -n -o NAME "/dev/$name" | wc -l)" -ne 1 ]; then
      continue
    fi
    mounted="$(lsblk -n -o MOUNTPOINT "/dev/$name" | tr -d '[:space:]')"
    if [ -n "$mounted" ] && [ "$mounted" != "$DATA_DIR" ]; then
      continue
    fi
    if [ -n "$found" ]; then
      fail "two disks of ${DISK_SIZE_GB} GiB ($found and /dev/$name); detach the one that is not this node's"
    fi
    found="/dev/$name"
  done < <(lsblk -b -d -n -o NAME,SIZE,TYPE)
  [ -n "$found" ] && echo "$found"
}

wait_for_device() {
  local deadline=$(($(date +%s) + DEVICE_TIMEOUT_SECONDS)) device
  until device="$(find_device)"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      fail "no ${DISK_SIZE_GB} GiB disk appeared within ${DEVICE_TIMEOUT_SECONDS}s; check the attachment (aws lightsail get-disks) and lsblk on the node"
    fi
    sleep "$POLL_INTERVAL_SECONDS"
  done
  echo "$device"
}

# The device's file system type, or nothing when it holds none. blkid -p probes the device
# itself; exit 2 is its "nothing found", any other failure stops the script: read as "empty",
# it would format a disk that holds the cluster.
file_system_of() {
  local type status=0
  type="$(blkid -p -o value -s TYPE "$1")" || status=$?
  case "$status" in
    0) echo "$type" ;;
    2) echo "" ;;
    *) fail "blkid could not read $1 (exit $status); check the disk with lsblk -f" ;;
  esac
}

# The data directory is listed in fstab by UUID (device names change between hosts). nofail keeps
# a host whose disk is missing reachable over SSH; k3s itself requires the mount (below).
write_fstab() {
  local uuid="$1" line
  line="UUID=$uuid $DATA_DIR $FS_TYPE defaults,nofail 0 2"
  if grep -qxF "$line" "$FSTAB" 2>/dev/null; then
    return 0
  fi
  # Any other line for the data directory is this node's earlier disk: replaced.
  grep -v "[[:space:]]${DATA_DIR}[[:space:]]" "$FSTAB" > "$FSTAB.new" 2>/dev/null || true
  echo "$line" >> "$FSTAB.new"
  mv "$FSTAB.new" "$FSTAB"
}

# k3s (either unit) does not start without the data directory mounted, at boot or ever:
# RequiresMountsFor (systemd.unit(5)).
require_mount_for_k3s() {
  local unit
  for unit in k3s k3s-agent; do
    install -d -m 0755 "$SYSTEMD_DIR/$unit.service.d"
    printf '[Unit]\nRequiresMountsFor=%s\n' "$DATA_DIR" > "$SYSTEMD_DIR/$unit.service.d/data-disk.conf"
  done
  systemctl daemon-reload
}

# /etc/rancher/node on the disk, through a symlink: the node password k3s writes there at first
# start goes with the data, and a new host presents the one the cluster knows.
keep_node_identity_on_disk() {
  local on_disk="$DATA_DIR/node-identity"
  install -d -m 0700 "$on_disk"
  if [ -L "$NODE_IDENTITY_DIR" ]; then
    return 0
  fi
  if [ -d "$NODE_IDENTITY_DIR" ]; then
    cp -a "$NODE_IDENTITY_DIR/." "$on_disk/"
    mv "$NODE_IDENTITY_DIR" "$NODE_IDENTITY_DIR.before-data-disk"
  fi
  mkdir -p "$(dirname "$NODE_IDENTITY_DIR")"
  ln -s "$on_disk" "$NODE_IDENTITY_DIR"
}

# Copies the data k3s has on the system disk onto the freshly formatted disk, with k3s stopped,
# compares the copy with the original, and only then moves the original aside (kept, renamed).
move_existing_data() {
  local device="$1" staging
  echo "copying the data of $NODE_NAME from $DATA_DIR onto $device, with k3s stopped"
  stop_k3s
  staging="$(mktemp -d)"
  mount "$device" "$staging"
  if ! cp -a "$DATA_DIR/." "$staging/"; then
    umount "$staging"
    fail "the copy of $DATA_DIR onto the disk failed; the original is untouched and k3s stopped (start it with systemctl start --no-block k3s)"
  fi
  if ! diff -r --no-dereference "$DATA_DIR/" "$staging/" >/dev/null; then
    umount "$staging"
    fail "the copy of $DATA_DIR on the disk differs from the original; the original is untouched and k3s stopped (start it with systemctl start --no-block k3s)"
  fi
  umount "$staging"
  rmdir "$staging"
  mv "$DATA_DIR" "$BEFORE_DISK_DIR"
  mkdir -p "$DATA_DIR"
  echo "the original stays in $BEFORE_DISK_DIR; remove it once k3s runs from the disk"
}

kubectl() {
  "$K3S_BIN" kubectl --request-timeout="${REQUEST_TIMEOUT_SECONDS}s" "$@"
}

# The first server of a cluster of several: neither a further server (ETCD_REJOINS) nor the one
# member (ETCD_SINGLE_MEMBER).
first_of_several() {
  [ "${ETCD_REJOINS:-false}" != true ] && [ "${ETCD_SINGLE_MEMBER:-false}" != true ]
}

# The etcd member name k3s keeps in its data: $DATA_DIR/server/db/etcd/name (k3s pkg/etcd/etcd.go,
# setName writes nameFile, dbDir/name, dbDir being <data-dir>/server/db/etcd). Read from the data,
# not from the Node's etcd.k3s.cattle.io/node-name annotation: the member controller deletes that
# once the member is removed (pkg/etcd/member_controller.go, sync).
etcd_member_name() {
  cat "$ETCD_DIR/name" 2>/dev/null || true
}

# kubectl through the other servers' APIs, each in turn, until one answers: its output in
# $answer, the last failure in $last_error (globals, not stdout: a subshell would lose them).
# Every server's serving certificate names its own private IP (k3s pkg/cli/server/server.go adds
# the node IPs to the SANs), and the admin kubeconfig's client certificate is the cluster's, so
# the local kubeconfig serves for every server.
answer=""
last_error=""
through_a_peer() {
  local peer errors
  errors="$(mktemp)"
  for peer in "${peers[@]}"; do
    if answer="$(kubectl --server "https://$peer:$KUBE_API_PORT" "$@" 2>"$errors")"; then
      rm -f "$errors"
      return 0
    fi
    last_error="through $peer: $(cat "$errors")"
  done
  rm -f "$errors"
  return 1
}

# The same through this server's own API, while its k3s runs.
locally() {
  if answer="$(kubectl "$@" 2>&1)"; then
    return 0
  fi
  last_error="$answer"
  return 1
}

# The servers, each as "name private-IP Ready EtcdIsVoter", into $answer, through `$1` (locally or
# through_a_peer). EtcdIsVoter is the condition k3s sets on each etcd Node: True for a healthy
# voting member; False for a learner, an unhealthy member or none (pkg/etcd/etcd.go,
# manageLearners, setEtcdStatusCondition).
list_servers() {
  "$1" get nodes -l node-role.kubernetes.io/etcd=true -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.status.addresses[?(@.type=="InternalIP")].address}{" "}{.status.conditions[?(@.type=="Ready")].status}{" "}{.status.conditions[?(@.type=="EtcdIsVoter")].status}{"\n"}{end}'
}

# Every other server in $1 must be Ready and a voting etcd member: with this one stopped, those
# two are the quorum (2 of 3) that commits its removal. Fills `peers` with their private IPs.
check_peers() {
  local name address ready voter
  peers=()
  while read -r name address ready voter; do
    if [ -z "$name" ] || [ "$name" = "$NODE_NAME" ]; then
      continue
    fi
    if [ "$ready" != True ]; then
      fail "server $name is not Ready: without it, removing this server's etcd member would leave etcd without its quorum, so nothing was changed; bring $name back (kubectl get nodes) and run pulumi up again"
    fi
    if [ "$voter" != True ]; then
      fail "server $name is not a voting etcd member (its EtcdIsVoter condition: ${voter:-none}): with this server stopped, etcd would have no quorum, so nothing was changed; see kubectl describe node $name and journalctl -u k3s there, and run pulumi up again"
    fi
    peers+=("$address")
  done <<< "$1"
}

# Whether another server's API shows this Node's removed-node-name annotation naming member $1
# (k3s pkg/etcd/member_controller.go, sync: etcd.k3s.cattle.io/removed-node-name, set after
# RemovePeer).
member_removed() {
  through_a_peer get node "$NODE_NAME" \
    -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/removed-node-name}' \
    && [ "$answer" = "$1" ]
}

# The member controller clears a removal that its Node's removed-node-name no longer matches: a
# Node that named a new member since (a move before this one) gets remove=false, the old
# removed-node-name deleted (member_controller.go, sync, "Resetting removed node flag"). Had that
# reset come after this run's request, the request is made again.
ask_again_if_reset() {
  through_a_peer get node "$NODE_NAME" -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/remove}' \
    || return 0
  if [ "$answer" != true ]; then
    through_a_peer annotate --overwrite node "$NODE_NAME" etcd.k3s.cattle.io/remove=true || true
  fi
}

# The first server of several leaves etcd before its host goes, with its k3s stopped first: k3s'
# etcd member controller, which carries out the removal asked for by the Node's
# etcd.k3s.cattle.io/remove annotation, runs only on the holder of the k3s-etcd lease (k3s
# pkg/etcd/etcd.go, Register: LeaderElectedClusterControllerStarts), most often this server. Left
# running, it would remove its own member (RemovePeer, allowSelfRemoval), its k3s would exit,
# systemd restart it, it find its tombstone and set its data aside (Register), and, with no
# server to join in its config, begin a second, empty cluster. Stopped, another server takes the
# lease and removes it; a stopped member of three leaves two running, who commit the removal.
#
# So: the member's name from the data; the other servers checked (Ready and voters) while this one
# still serves its API; their private IPs written as a pending record; k3s stopped, bounded; then
# the removal asked for and waited for through their APIs, each in turn; then the record for the
# new host, which rejoins through them. A run again after a timeout finds k3s stopped and the
# pending record, and asks through the servers it names: a removal that landed since counts as
# done. Nothing can start the stopped k3s during the wait: k3s-killall.sh stops its unit with
# `systemctl stop`, after which systemd's Restart= never starts it again (systemd.service(5));
# kured's pod on this host stops with it, and unattended-upgrades does not reboot
# (security-updates.sh). Masking would not hold: k3s' unit file is /etc/systemd/system/k3s.service
# (k3s install.sh, setup_env: FILE_K3S_SERVICE), which `systemctl mask` refuses to replace and
# which outranks a runtime mask in /run (systemd.unit(5), unit load path). Once the disk is
# detached, k3s requires a mount that then fails (RequiresMountsFor), so the host, started again
# by the detach, keeps it down. The check below that k3s is inactive makes the assumption loud.
leave_etcd() {
  local member deadline
  peers=()
  first_of_several || return 0
  [ -d "$ETCD_DIR/member/wal" ] || return 0
  member="$(etcd_member_name)"
  [ -n "$member" ] || fail "its etcd data holds no member name ($ETCD_DIR/name), so nothing was changed; check that directory"
  if [ -f "$REJOIN_RECORD" ] && [ "$(head -n 1 "$REJOIN_RECORD")" = "$member" ]; then
    echo "the etcd member of $NODE_NAME was removed already; its new host rejoins"
    return 0
  fi
  if systemctl is-active --quiet k3s; then
    if ! list_servers locally; then
      fail "cannot list the servers ($last_error), so k3s was left running and nothing unmounted; check systemctl status k3s and run pulumi up again"
    fi
    check_peers "$answer"
    if [ "${#peers[@]}" -eq 0 ]; then
      echo "no other server runs: the etcd member of $NODE_NAME stays"
      return 0
    fi
    if [ "${#peers[@]}" -lt 2 ]; then
      fail "only one other server (${peers[*]}) is listed: stopping this one would leave etcd one member of two, no quorum to remove it, so nothing was changed; check kubectl get nodes and run pulumi up again"
    fi
    printf '%s\n' "$member" "${peers[@]}" > "$REJOIN_RECORD.pending"
  elif [ -f "$REJOIN_RECORD.pending" ] && [ "$(head -n 1 "$REJOIN_RECORD.pending")" = "$member" ]; then
    mapfile -t peers < <(tail -n +2 "$REJOIN_RECORD.pending")
    if member_removed "$member"; then
      echo "the etcd member $member of $NODE_NAME was removed since the last run"
      mv "$REJOIN_RECORD.pending" "$REJOIN_RECORD"
      return 0
    fi
    if ! list_servers through_a_peer; then
      fail "k3s is stopped and no other server's API answers (${peers[*]}; last error: $last_error), so its etcd member $member was not removed and nothing unmounted; check those servers and run pulumi up again"
    fi
    check_peers "$answer"
  else
    fail "k3s is not running and no earlier run recorded the other servers, so its etcd member $member was not removed and nothing unmounted; start k3s (systemctl start --no-block k3s), wait for kubectl get nodes to answer and run pulumi up again"
  fi
  echo "stopping k3s on $NODE_NAME, then removing its etcd member $member through the other servers (${peers[*]}), which keep the quorum"
  stop_k3s
  if systemctl is-active --quiet k3s; then
    fail "k3s is active again after its stop, so its etcd member $member was not removed and nothing unmounted; see systemctl status k3s"
  fi
  if ! through_a_peer annotate --overwrite node "$NODE_NAME" etcd.k3s.cattle.io/remove=true; then
    fail "could not ask for the removal of its etcd member $member ($last_error); k3s is stopped and nothing unmounted; check the other servers' API (kubectl get nodes there) and run pulumi up again"
  fi
  deadline=$(($(date +%s) + LEAVE_TIMEOUT_SECONDS))
  until member_removed "$member"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      fail "its etcd member $member was not removed within ${LEAVE_TIMEOUT_SECONDS}s (asked through ${peers[*]}; last error: ${last_error:-none, the removal did not show}); k3s is stopped and nothing unmounted; see journalctl -u k3s on the other servers and run pulumi up again"
    fi
    ask_again_if_reset
    sleep "$POLL_INTERVAL_SECONDS"
  done
  mv "$REJOIN_RECORD.pending" "$REJOIN_RECORD"
  echo "the etcd member of $NODE_NAME is removed; its new host rejoins through ${peers[0]}"
}

# A server whose old host left the cluster before its disk moved: a further server's drain had its
# etcd member removed (node-membership.sh), the first server's unmount did (leave_etcd, which
# names the member it removed). Started on that member's data, etcd would find itself removed; k3s
# sets such data aside and joins anew when it finds its tombstone (k3s pkg/etcd/etcd.go, Register:
# "tombstone file has been detected, removing data dir to rejoin the cluster"), and this does the
# same before k3s starts, so the server joins as a new member at its new private IP. The
# certificates, tokens and volumes stay. For the first server only the removed member is set
# aside: a member it has joined since, under a new name, is its own.
set_aside_removed_etcd_member() {
  local removed=""
  [ -d "$ETCD_DIR" ] || return 0
  [ -f "$REJOIN_RECORD" ] && removed="$(head -n 1 "$REJOIN_RECORD")"
  if [ "${ETCD_REJOINS:-false}" = true ] || { [ -n "$removed" ] && [ "$(etcd_member_name)" = "$removed" ]; }; then
    # Only the latest copy stays: an older one is a member removed before that, of no use.
    rm -rf "$DATA_DIR/server/db"/etcd-removed-member-*
    mv "$ETCD_DIR" "$DATA_DIR/server/db/etcd-removed-member-$(date +%s)"
    echo "its etcd member was removed when the earlier host left: set aside, to join anew"
  fi
}

# The first server keeps its etcd member, which records the peer address of the host that ran it.
# k3s starts an existing member with what its data records and changes a member's peer address only
# in a cluster reset, and only while it is the one member (k3s pkg/etcd/etcd.go, Start:
# CurrentETCDOptions; Reset: MemberUpdate with the new peer URL). So on a new private IP a single
# server's install runs that reset before k3s starts (install-k3s-server.sh, ETCD_ADDRESS_MARKER).
# With further servers a reset would cut them off: that is refused here, before anything starts.
mark_changed_etcd_address() {
  local recorded
  [ "${ETCD_REJOINS:-false}" = true ] && return 0
  # Set aside (a member that left): the new one joins at this host's address.
  [ -d "$ETCD_DIR/member/wal" ] || return 0
  [ -f "$ADDRESS_RECORD" ] || return 0
  recorded="$(cat "$ADDRESS_RECORD")"
  [ "$recorded" = "$PRIVATE_IP" ] && return 0
  if [ "${ETCD_SINGLE_MEMBER:-false}" != true ]; then
    fail "its etcd member records the earlier host's address $recorded, not $PRIVATE_IP, and did not leave etcd before that host went (no $REJOIN_RECORD); k3s updates the address only by resetting the cluster to this one member, which would cut off the other servers; k3s was not started. See docs/lifecycle.md, Growing a node"
  fi
  printf '%s -> %s\n' "$recorded" "$PRIVATE_IP" > "$DATA_DIR/$ETCD_ADDRESS_MARKER"
  echo "its etcd member records the earlier host's address $recorded: the install resets it to $PRIVATE_IP"
}

mount_data() {
  local device type uuid
  device="$(wait_for_device)"
  type="$(file_system_of "$device")"
  if [ -z "$type" ]; then
    echo "formatting $device ($FS_TYPE): it holds no file system yet"
    mkfs."$FS_TYPE" -q -L k3s-data "$device"
    if [ -d "$DATA_DIR" ] && ! mountpoint -q "$DATA_DIR" && [ -n "$(ls -A "$DATA_DIR")" ]; then
      move_existing_data "$device"
    fi
  elif [ "$type" != "$FS_TYPE" ]; then
    fail "$device holds a $type file system, not $FS_TYPE; it was left alone (check lsblk -f)"
  else
    echo "$device holds a $FS_TYPE file system already; not formatting it"
  fi
  uuid="$(blkid -p -o value -s UUID "$device")" || fail "blkid read no UUID of $device"
  [ -n "$uuid" ] || fail "blkid read no UUID of $device"
  mkdir -p "$DATA_DIR"
  write_fstab "$uuid"
  if ! mountpoint -q "$DATA_DIR"; then
    if [ -n "$(ls -A "$DATA_DIR")" ]; then
      fail "$DATA_DIR holds data on the system disk while the disk holds its own; nothing was mounted over it (compare both, keep one)"
    fi
    mount "$DATA_DIR" || fail "mounting $device (UUID $uuid) at $DATA_DIR failed; see dmesg"
  fi
  mountpoint -q "$DATA_DIR" || fail "$DATA_DIR is not mounted after mount; see dmesg"
  require_mount_for_k3s
  keep_node_identity_on_disk
  if [ -f "$HOST_RECORD" ] && [ "$(cat "$HOST_RECORD")" != "$INSTANCE_ID" ]; then
    echo "the data comes from an earlier host of $NODE_NAME ($(cat "$HOST_RECORD"))"
    set_aside_removed_etcd_member
    mark_changed_etcd_address
  elif first_of_several && [ -f "$REJOIN_RECORD" ]; then
    # The disk came back to the host that left etcd (its replacement stopped half way).
    set_aside_removed_etcd_member
  elif first_of_several && [ -f "$REJOIN_RECORD.pending" ]; then
    # A leave that stopped half way (leave_etcd): its member may be removed by now, and k3s started
    # on it would find its tombstone and begin a new cluster (k3s pkg/etcd/etcd.go, Register).
    fail "its old host's leave of etcd began and did not finish ($REJOIN_RECORD.pending), so k3s was not started on its member: run pulumi up again with the change that moved it, whose unmount finishes the leave; only if another server shows no etcd.k3s.cattle.io/removed-node-name on node $NODE_NAME (kubectl get node $NODE_NAME -o yaml there) remove that file"
  fi
  printf '%s' "$INSTANCE_ID" > "$HOST_RECORD"
  printf '%s' "$PRIVATE_IP" > "$ADDRESS_RECORD"
  echo "data disk of $NODE_NAME mounted at $DATA_DIR (UUID $uuid)"
}

unmount_data() {
  if mountpoint -q "$DATA_DIR"; then
    leave_etcd
  fi
  stop_k3s
  if mountpoint -q "$DATA_DIR"; then
    umount "$DATA_DIR" || fail "$DATA_DIR would not unmount; see fuser -vm $DATA_DIR"
  fi
  echo "k3s stopped and $DATA_DIR unmounted on $NODE_NAME; the disk can be detached"
}

case "$action" in
  mount)
    : "${DISK_SIZE_GB:?DISK_SIZE_GB is required for mount}"
    : "${INSTANCE_ID:?INSTANCE_ID is required for mount}"
    : "${PRIVATE_IP:?PRIVATE_IP is required for mount}"
    mount_data
    ;;
  unmount)
    : "${KUBE_API_PORT:?KUBE_API_PORT is required for unmount}"
    unmount_data
    ;;
  *)
    echo "unknown action $action; use mount or unmount" >&2
    exit 2
    ;;
esac
