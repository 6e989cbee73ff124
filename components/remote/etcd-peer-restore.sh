#!/usr/bin/env bash
# A further server's part in restoring an etcd snapshot onto a cluster of several servers
# (docs.k3s.io/cli/etcd-snapshot, "Restoring Snapshots", Multiple Servers). Runs as root on
# that server (`sudo bash -s`) after assignments of PEER_STEP and WAIT_LIB_B64 (the Ready wait,
# k3s-wait.sh) on stdin:
#   stop    before the restore on the first server: stop k3s;
#   rejoin  after the first server is Ready again: set this server's old etcd data aside
#           and start k3s, which joins the restored cluster; then wait for this node Ready.
set -euo pipefail

: "${PEER_STEP:?PEER_STEP is required: stop or rejoin}"
: "${WAIT_LIB_B64:?WAIT_LIB_B64 is required: the base64 of k3s-wait.sh}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-300}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
K3S_CONFIG_DIR="${K3S_CONFIG_DIR:-/etc/rancher/k3s}"
K3S_DATA_DIR="${K3S_DATA_DIR:-/var/lib/rancher/k3s}"

NODE_NAME="$(sed -n 's/^node-name: *//p' "$K3S_CONFIG_DIR/config.yaml")"
[ -n "$NODE_NAME" ] || { echo "no node-name in $K3S_CONFIG_DIR/config.yaml: was this node set up by pulumi up?" >&2; exit 1; }

# shellcheck source=/dev/null
source <(base64 -d <<< "$WAIT_LIB_B64")

case "$PEER_STEP" in
  stop)
    echo "$NODE_NAME: stopping k3s for the restore"
    systemctl stop k3s
    ;;
  rejoin)
    # k3s' docs say to back up and delete the peer's db directory; moving it does both.
    if [ -d "$K3S_DATA_DIR/server/db" ]; then
      aside="$K3S_DATA_DIR/server/db-before-restore-$(date +%s)"
      mv "$K3S_DATA_DIR/server/db" "$aside"
      echo "$NODE_NAME: old etcd data moved to $aside"
    fi
    systemctl start k3s
    wait_for_node_ready "$READY_TIMEOUT_SECONDS" rejoining
    echo "node $NODE_NAME rejoined the restored cluster and is Ready"
    ;;
  *)
    echo "PEER_STEP must be stop or rejoin, not $PEER_STEP" >&2
    exit 1
    ;;
esac
