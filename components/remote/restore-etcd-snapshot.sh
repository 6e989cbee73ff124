#!/usr/bin/env bash
# Lists the etcd snapshots in the backup bucket, or restores one onto this node.
# Runs as root on the node (`sudo bash -s`); bin/restore.sh feeds it on stdin after
# shell assignments of WAIT_LIB_B64 (the Ready wait, k3s-wait.sh), SNAPSHOT (empty: only
# list; `latest`: the newest one in the bucket) and, when restoring onto a new instance, RESTORE_TOKEN (the
# server token the snapshot was taken with). Nothing secret is put on a command line.
# K3S_CONFIG_DIR and K3S_BIN are overridable for the tests.
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
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"

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

if [ -n "$RESTORE_TOKEN" ]; then
  # A snapshot's bootstrap data is encrypted with the server token it was taken with;
  # on a new instance k3s needs that token, given as --token or in its config file, for
  # the restore and for every start after it (docs.k3s.io/cli/etcd-snapshot, "Restoring
  # To New Hosts"). A root-only drop-in keeps it off the command line, and `pulumi up`,
  # which rewrites config.yaml, leaves config.yaml.d alone.
  mkdir -p "$K3S_CONFIG_DIR/config.yaml.d"
  token_config="$K3S_CONFIG_DIR/config.yaml.d/50-restored-token.yaml"
  (umask 077 && printf 'token: "%s"\n' "$RESTORE_TOKEN" > "$token_config")
  echo "wrote the snapshot's server token to $token_config"
fi

echo "stopping k3s to restore $SNAPSHOT"
systemctl stop k3s
if ! "$K3S_BIN" server --cluster-reset "--cluster-reset-restore-path=$SNAPSHOT"; then
  echo "the restore of $SNAPSHOT failed; k3s is stopped. See the output above, then: systemctl start k3s" >&2
  if [ -n "$RESTORE_TOKEN" ]; then
    echo "(to start this instance on its own data again, first remove $token_config)" >&2
  fi
  exit 1
fi
systemctl start k3s

wait_for_node_ready "$READY_TIMEOUT_SECONDS" "the restore"
echo "restored $SNAPSHOT; node $NODE_NAME is Ready"
