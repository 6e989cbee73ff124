#!/usr/bin/env bash
# Takes an on-demand etcd snapshot before k3s changes its release, and prints its name: the point to
# go back to (`make restore STACK=<stack> SNAPSHOT=<name>`, docs/upgrades.md).
# Runs as root on the first server (`sudo bash -s`), before that server's install, which every other
# node's install follows, so the snapshot holds the cluster as it was before any node upgraded.
# components/k3s.py declares it only where the cluster runs on embedded etcd, and feeds it on stdin
# after shell assignments of K3S_VERSION (the release the install is about to put in place),
# SNAPSHOT_TO_BUCKET (true with backups: the snapshot must reach the bucket too) and
# UPGRADE_PATH_LIB_B64 (k3s-upgrade-path.sh, for the release installed). Its stdin changes with
# K3S_VERSION alone, so pulumi-command runs it again when, and only when, k3sVersion changes.
# The bucket and its key come from k3s' own config.yaml, written by `pulumi up`: `k3s etcd-snapshot`
# reads it as the server does, and uploads to the bucket when etcd-s3 is set there
# (docs.k3s.io/cli/etcd-snapshot; k3s-io/k3s pkg/cli/etcdsnapshot/etcd_snapshot.go).
# A failed or unbounded snapshot fails the command, so the install never runs without it.
set -euo pipefail

: "${K3S_VERSION:?K3S_VERSION is required, e.g. v1.36.1+k3s1}"
: "${SNAPSHOT_TO_BUCKET:?SNAPSHOT_TO_BUCKET is required: true or false}"
: "${UPGRADE_PATH_LIB_B64:?UPGRADE_PATH_LIB_B64 is required: the base64 of k3s-upgrade-path.sh}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
K3S_SERVER_DIR="${K3S_SERVER_DIR:-/var/lib/rancher/k3s/server}"
SNAPSHOT_TIMEOUT_SECONDS="${SNAPSHOT_TIMEOUT_SECONDS:-600}"
LIST_TIMEOUT_SECONDS="${LIST_TIMEOUT_SECONDS:-120}"
# k3s names an on-demand snapshot <name>-<node>-<unix time> (docs.k3s.io/cli/etcd-snapshot, --name).
SNAPSHOT_NAME=pre-upgrade

# shellcheck source=/dev/null
source <(base64 -d <<< "$UPGRADE_PATH_LIB_B64")

installed="$(installed_version)"
if [ -z "$installed" ]; then
  echo "k3s is not installed yet: nothing to snapshot before installing $K3S_VERSION"
  exit 0
fi
if [ "$installed" = "$K3S_VERSION" ]; then
  echo "k3s stays on $installed: no snapshot needed"
  exit 0
fi
# k3s keeps embedded etcd's data here (k3s-io/k3s pkg/etcd/etcd.go, DBDir); a server that moves
# from SQLite to etcd in this very run has none yet, and its data is not in etcd to snapshot.
if [ ! -d "$K3S_SERVER_DIR/db/etcd" ]; then
  echo "warning: no embedded etcd data on this server yet (it moves from SQLite to etcd in this run):" \
    "no etcd snapshot before the upgrade from $installed to $K3S_VERSION" >&2
  exit 0
fi

fail() {
  echo "$1; k3s was not changed (still $installed)." >&2
  echo "  fix: $2" >&2
  exit 1
}

# This run's snapshots as "name location" lines: `k3s etcd-snapshot ls` prints Name, Location, Size,
# Created, one row per copy (on the node, file://; in the bucket, s3://).
snapshots_named() {
  timeout "$LIST_TIMEOUT_SECONDS" "$K3S_BIN" etcd-snapshot ls |
    awk -v prefix="$SNAPSHOT_NAME-" 'index($1, prefix) == 1 { print $1, $2 }'
}

before="$(snapshots_named)" ||
  fail "could not list the etcd snapshots (k3s etcd-snapshot ls failed or took over ${LIST_TIMEOUT_SECONDS}s)" \
    "check k3s on this server: sudo k3s etcd-snapshot ls; journalctl -u k3s"
echo "taking an etcd snapshot before upgrading k3s from $installed to $K3S_VERSION"
timeout "$SNAPSHOT_TIMEOUT_SECONDS" "$K3S_BIN" etcd-snapshot save --name "$SNAPSHOT_NAME" ||
  fail "the etcd snapshot before the upgrade failed or took over ${SNAPSHOT_TIMEOUT_SECONDS}s" \
    "check it by hand: sudo k3s etcd-snapshot save --name $SNAPSHOT_NAME; journalctl -u k3s; then run pulumi up again"
after="$(snapshots_named)" ||
  fail "could not list the etcd snapshots after taking one" "check: sudo k3s etcd-snapshot ls"
taken="$(grep -vxF -f <(printf '%s\n' "$before") <<< "$after" || true)"
name="$(awk 'NR == 1 { print $1 }' <<< "$taken")"
[ -n "$name" ] ||
  fail "k3s etcd-snapshot save succeeded, but no new $SNAPSHOT_NAME-* snapshot is listed" \
    "check: sudo k3s etcd-snapshot ls"
if [ "$SNAPSHOT_TO_BUCKET" = true ] && ! awk -v name="$name" '$1 == name && $2 ~ /^s3:\/\// { found = 1 } END { exit !found }' <<< "$taken"; then
  fail "the snapshot $name was taken on the node but did not reach the backup bucket" \
    "check the bucket settings k3s uses: sudo k3s etcd-snapshot ls; journalctl -u k3s"
fi
echo "etcd snapshot before the upgrade from $installed to $K3S_VERSION: $name"
if [ "$SNAPSHOT_TO_BUCKET" = true ]; then
  echo "to go back to it: make restore STACK=<stack> SNAPSHOT=$name (docs/upgrades.md, Rolling back)"
else
  # make restore restores from the bucket; without backups the snapshot is on this server alone.
  location="$(awk -v name="$name" '$1 == name { print $2; exit }' <<< "$taken")"
  echo "it is on this server only (no backups: ${location#file://}); to go back to it, see docs/upgrades.md, Rolling back"
fi
