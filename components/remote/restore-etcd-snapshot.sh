#!/usr/bin/env bash
# Lists the etcd snapshots in the backup bucket, or restores one onto this node.
# Runs as root on the node (`sudo bash -s`); bin/restore.sh feeds it on stdin after
# shell assignments of WAIT_LIB_B64 (the Ready wait, k3s-wait.sh), SNAPSHOT (empty: only
# list; `latest`: the newest one in the bucket), ETCD_PEER_ADDRESSES (the other servers' private
# IPs, from the stack's nodes output; empty with one server) and, when restoring onto new
# instances, RESTORE_TOKEN (the server token the snapshot was taken with), TOKEN_DROP_IN (the
# config drop-in to hold it) and STALE_NODE_NAMES (the other servers, whose old Node objects come
# back with the snapshot). Nothing secret is put on a command line.
# K3S_CONFIG_DIR, K3S_BIN and ETCD_PEER_PORT are overridable for the tests.
#
# The bucket, endpoint and access key come from k3s' own config.yaml, written by
# `pulumi up`; with etcd-s3 set there, k3s lists and fetches snapshots from S3 and
# takes the bare snapshot name as the restore path (docs.k3s.io/cli/etcd-snapshot,
# "Restoring Snapshots"; docs.k3s.io/datastore/backup-restore).
set -euo pipefail

: "${WAIT_LIB_B64:?WAIT_LIB_B64 is required: the base64 of k3s-wait.sh}"
K3S_CONFIG_DIR="${K3S_CONFIG_DIR:-/etc/rancher/k3s}"
# The node name `pulumi up` wrote into k3s' config.
NODE_NAME="$(sed -n 's/^node-name: *//p' "$K3S_CONFIG_DIR/config.yaml")"
[ -n "$NODE_NAME" ] || { echo "no node-name in $K3S_CONFIG_DIR/config.yaml: was this node set up by pulumi up?" >&2; exit 1; }
SNAPSHOT="${SNAPSHOT:-}"
# true: only check the snapshot is in the bucket and print its name (`latest` resolved).
RESOLVE_ONLY="${RESOLVE_ONLY:-false}"
RESTORE_TOKEN="${RESTORE_TOKEN:-}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-300}"
# systemd kills a unit that has not stopped after its stop timeout (90 s by default, DefaultTimeoutStopSec);
# a stop still running after this bound is stuck.
STOP_TIMEOUT_SECONDS="${STOP_TIMEOUT_SECONDS:-120}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
# etcd's peer port: k3s listens on https://<node address>:2380 (k3s-io/k3s pkg/etcd/etcd.go, peerURL).
ETCD_PEER_PORT="${ETCD_PEER_PORT:-2380}"

# shellcheck source=/dev/null
source <(base64 -d <<< "$WAIT_LIB_B64")

# `k3s etcd-snapshot ls` prints: Name Location Size Created; keep the bucket's rows. It reads
# config.yaml like the server (k3s-io/k3s cmd/etcdsnapshot/main.go, configfilearg.MustParse),
# and its S3 flags answer to the server's names too (pkg/cli/cmds/etcd_snapshot.go,
# "s3-bucket,etcd-s3-bucket"), so the bucket settings `pulumi up` wrote apply.
bucket_snapshots() {
  "$K3S_BIN" etcd-snapshot ls 2>/dev/null | awk '$2 ~ /^s3:\/\// { print $1, $4 }'
}

if ! listing="$(bucket_snapshots)"; then
  listing=""
  listing_failed=true
else
  listing_failed=false
fi

if [ -z "$SNAPSHOT" ]; then
  if [ "$listing_failed" = true ]; then
    echo "could not list the snapshots: k3s etcd-snapshot ls failed; is k3s running? see: journalctl -u k3s" >&2
    exit 1
  fi
  if [ -z "$listing" ]; then
    echo "no etcd snapshots in the bucket yet"
  else
    echo "etcd snapshots in the bucket (name, taken at):"
    sort -k2 <<< "$listing" | awk '{ print "  " $0 }'
  fi
  exit 0
fi

if [ "$SNAPSHOT" = "latest" ]; then
  SNAPSHOT="$(sort -k2 <<< "$listing" | awk 'END { print $1 }')"
  [ -n "$SNAPSHOT" ] || { echo "there is no snapshot in the bucket to restore" >&2; exit 1; }
  echo "the newest snapshot in the bucket is $SNAPSHOT"
elif [ "$listing_failed" = true ]; then
  echo "warning: could not list the bucket (is k3s down?); restoring $SNAPSHOT as named" >&2
elif ! awk -v name="$SNAPSHOT" '$1 == name { found = 1 } END { exit !found }' <<< "$listing"; then
  echo "snapshot $SNAPSHOT is not in the bucket; the bucket holds:" >&2
  awk '{ print "  " $0 }' <<< "$listing" >&2
  exit 1
fi

if [ "$RESOLVE_ONLY" = true ]; then
  echo "snapshot: $SNAPSHOT"
  exit 0
fi

: "${ETCD_PEER_ADDRESSES?ETCD_PEER_ADDRESSES is required: the private IPs of the other servers, empty with one server}"
STALE_NODE_NAMES="${STALE_NODE_NAMES:-}"

# The other etcd servers the API lists, as "name address": k3s' etcd metadata controller labels
# every etcd server's Node node-role.kubernetes.io/etcd=true and annotates it with its etcd address,
# etcd.k3s.cattle.io/node-address (k3s-io/k3s pkg/etcd/metadata_controller.go).
api_etcd_servers() {
  "$K3S_BIN" kubectl get nodes -l node-role.kubernetes.io/etcd=true --request-timeout=20s \
    -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.metadata.annotations.etcd\.k3s\.cattle\.io/node-address}{"\n"}{end}' |
    awk -v self="$NODE_NAME" '$1 != self'
}

# Whether etcd answers on $1's peer port. etcd runs inside the k3s process, so a server whose k3s
# is stopped refuses the connection, and a gone instance does not answer.
serves_etcd() {
  # shellcheck disable=SC2016 # $1 and $2 are the inner shell's arguments, the address and port.
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' serves_etcd "$1" "$ETCD_PEER_PORT" 2>/dev/null
}

# k3s' cluster reset makes this server a new one-member cluster and does not look at the others
# (k3s-io/k3s pkg/etcd/etcd.go, Reset); two others still running keep the old cluster's quorum,
# a split brain. So k3s must be stopped on every other server first (docs.k3s.io/cli/etcd-snapshot,
# Multiple Servers), and this checks it before touching anything. With no other server in the
# stack, the API (while it answers) is asked for etcd servers the stack does not know of.
read -ra etcd_peer_addresses <<< "$ETCD_PEER_ADDRESSES"
if [ "${#etcd_peer_addresses[@]}" -eq 0 ]; then
  if listed="$(api_etcd_servers)"; then
    while read -r name address; do
      [ -n "$name" ] || continue
      [ -n "$address" ] || { echo "etcd server $name has no etcd.k3s.cattle.io/node-address annotation: cannot check it is stopped" >&2; exit 1; }
      etcd_peer_addresses+=("$address")
    done <<< "$listed"
  else
    echo "warning: the API did not list the etcd servers (is k3s down?); the stack lists no other server, so none is checked" >&2
  fi
fi
for address in "${etcd_peer_addresses[@]}"; do
  if serves_etcd "$address"; then
    echo "refusing the cluster reset: the etcd member at $address still runs (port $ETCD_PEER_PORT answers);" >&2
    echo "  a reset here would leave it and the others with the old cluster's quorum. Stop k3s on every other" >&2
    echo "  server first (bin/restore.sh does, from the stack's nodes output); nothing was changed here" >&2
    exit 1
  fi
done

if [ -n "$RESTORE_TOKEN" ]; then
  : "${TOKEN_DROP_IN:?TOKEN_DROP_IN is required with RESTORE_TOKEN: the config drop-in to write}"
  # A snapshot's bootstrap data is encrypted with the server token it was taken with;
  # on a new instance k3s needs that token, given as --token or in its config file, for
  # the restore and for every start after it (docs.k3s.io/cli/etcd-snapshot, "Restoring
  # To New Hosts"). A root-only drop-in keeps it off the command line, and `pulumi up`,
  # which rewrites config.yaml, leaves config.yaml.d alone.
  token_config="$K3S_CONFIG_DIR/$TOKEN_DROP_IN"
  mkdir -p "$(dirname "$token_config")"
  (umask 077 && printf 'token: "%s"\n' "$RESTORE_TOKEN" > "$token_config")
  echo "wrote the snapshot's server token to $token_config"
fi

echo "stopping k3s to restore $SNAPSHOT"
if ! timeout "$STOP_TIMEOUT_SECONDS" systemctl stop k3s; then
  echo "k3s did not stop within ${STOP_TIMEOUT_SECONDS}s; nothing was restored. See: systemctl status k3s" >&2
  exit 1
fi
if ! "$K3S_BIN" server --cluster-reset "--cluster-reset-restore-path=$SNAPSHOT"; then
  echo "the restore of $SNAPSHOT failed; k3s is stopped. See the output above, then: systemctl start --no-block k3s" >&2
  if [ -n "$RESTORE_TOKEN" ]; then
    echo "(to start this instance on its own data again, first remove $token_config)" >&2
  fi
  exit 1
fi
# bin/restore.sh reads this line: from here on, the other servers may only rejoin.
echo "cluster reset done: $SNAPSHOT restored on $NODE_NAME"
# k3s' unit is Type=notify with TimeoutStartSec=0 (k3s install.sh): a blocking start could wait
# for ever. The start is queued, and the Ready wait is the bound.
systemctl start --no-block k3s

wait_for_node_ready "$READY_TIMEOUT_SECONDS" "the restore"
echo "restored $SNAPSHOT; node $NODE_NAME is Ready"

# The snapshot holds the old instances' Node objects, and their node-password secrets, whose
# hashes a replaced instance's new password does not match: its kubelet would be refused
# (k3s-io/k3s pkg/nodepassword/validate.go, Ensure). Deleting the Node would let the garbage
# collector remove the secret (it is owned by the Node: pkg/nodepassword/controller.go), but not
# before the rejoin, so both go now (docs.k3s.io/cli/etcd-snapshot, Restoring To New Hosts:
# delete the old nodes).
for stale in $STALE_NODE_NAMES; do
  "$K3S_BIN" kubectl delete node "$stale" --ignore-not-found --timeout=60s
  "$K3S_BIN" kubectl -n kube-system delete secret "$stale.node-password.k3s" --ignore-not-found --timeout=60s
  echo "deleted the old instance's Node $stale and its node password; the new instance registers afresh"
done
