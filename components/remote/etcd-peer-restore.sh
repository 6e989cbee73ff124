#!/usr/bin/env bash
# A further server's part in restoring an etcd snapshot onto a cluster of several servers
# (docs.k3s.io/cli/etcd-snapshot, "Restoring Snapshots", Multiple Servers). Runs as root on
# that server (`sudo bash -s`) after assignments of PEER_STEP, WAIT_LIB_B64 (the Ready wait,
# k3s-wait.sh) and, onto replaced instances, RESTORE_TOKEN (the server token the snapshot was
# taken with) and TOKEN_DROP_IN (the config drop-in to hold it) on stdin:
#   stop    before the restore on the first server: stop k3s;
#   rejoin  after the first server is Ready again: set this server's old etcd data aside
#           and start k3s, which joins the restored cluster; then wait for this node Ready.
set -euo pipefail

: "${PEER_STEP:?PEER_STEP is required: stop or rejoin}"
: "${WAIT_LIB_B64:?WAIT_LIB_B64 is required: the base64 of k3s-wait.sh}"
RESTORE_TOKEN="${RESTORE_TOKEN:-}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-300}"
# systemd kills a unit that has not stopped after its stop timeout (90 s by default, DefaultTimeoutStopSec);
# a stop still running after this bound is stuck.
STOP_TIMEOUT_SECONDS="${STOP_TIMEOUT_SECONDS:-120}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
K3S_CONFIG_DIR="${K3S_CONFIG_DIR:-/etc/rancher/k3s}"
K3S_DATA_DIR="${K3S_DATA_DIR:-/var/lib/rancher/k3s}"

NODE_NAME="$(sed -n 's/^node-name: *//p' "$K3S_CONFIG_DIR/config.yaml")"
[ -n "$NODE_NAME" ] || { echo "no node-name in $K3S_CONFIG_DIR/config.yaml: was this node set up by pulumi up?" >&2; exit 1; }

# shellcheck source=/dev/null
source <(base64 -d <<< "$WAIT_LIB_B64")

# Moves $K3S_DATA_DIR/server/$1 aside, if there is one.
set_aside() {
  local aside
  if [ -d "$K3S_DATA_DIR/server/$1" ]; then
    aside="$K3S_DATA_DIR/server/$1-before-restore-$(date +%s)"
    mv "$K3S_DATA_DIR/server/$1" "$aside"
    echo "$NODE_NAME: old $1 moved to $aside"
  fi
}

case "$PEER_STEP" in
  stop)
    echo "$NODE_NAME: stopping k3s for the restore"
    if ! timeout "$STOP_TIMEOUT_SECONDS" systemctl stop k3s; then
      echo "k3s on $NODE_NAME did not stop within ${STOP_TIMEOUT_SECONDS}s; see: systemctl status k3s" >&2
      exit 1
    fi
    ;;
  rejoin)
    # k3s' docs say to back up and delete the peer's db directory; moving it does both.
    set_aside db
    if [ -n "$RESTORE_TOKEN" ]; then
      : "${TOKEN_DROP_IN:?TOKEN_DROP_IN is required with RESTORE_TOKEN: the config drop-in to write}"
      # A replaced instance's config.yaml carries the replacement cluster's token, whose K10 hash
      # pins that cluster's CA; the restored first server has the old CA again, so the join would
      # be refused (docs.k3s.io/cli/token). A drop-in's `token` overrides config.yaml's: k3s reads
      # config.yaml, then config.yaml.d/*.yaml in name order, a later key replacing an earlier one
      # (k3s-io/k3s pkg/configfilearg/parser.go, readConfigFile).
      token_config="$K3S_CONFIG_DIR/$TOKEN_DROP_IN"
      mkdir -p "$(dirname "$token_config")"
      (umask 077 && printf 'token: "%s"\n' "$RESTORE_TOKEN" > "$token_config")
      echo "$NODE_NAME: wrote the snapshot's server token to $token_config"
      # Its certificate authorities and keys are the replacement cluster's, written when it
      # joined, so newer than the restored ones: k3s refuses to start a joining server whose
      # files are newer than the cluster's ("newer than datastore and could cause a cluster
      # outage", k3s-io/k3s pkg/cluster/bootstrap.go, ReconcileBootstrapData). Set aside, they
      # are written again from the cluster's.
      set_aside tls
      set_aside cred
    fi
    # k3s' unit is Type=notify with TimeoutStartSec=0 (k3s install.sh): a blocking start could
    # wait for ever. The start is queued, and the Ready wait is the bound.
    systemctl start --no-block k3s
    wait_for_node_ready "$READY_TIMEOUT_SECONDS" rejoining
    echo "node $NODE_NAME rejoined the restored cluster and is Ready"
    ;;
  *)
    echo "PEER_STEP must be stop or rejoin, not $PEER_STEP" >&2
    exit 1
    ;;
esac
