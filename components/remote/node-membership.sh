#!/usr/bin/env bash
# A node's membership (an agent's, or a joining server's), seen from the first server. Runs as
# root on the server (`sudo bash -s -- ACTION`), fed on stdin by components/membership.py after
# shell assignments of NODE_NAME, EXPECTED_VERSION (the k3s release the node must run),
# INSTALL_DIGEST and WAIT_LIB_B64 (the bounded waits, k3s-wait.sh). The script does not read
# INSTALL_DIGEST: it is the SHA-256 of the node's install program, there so that a config change,
# which re-runs the install, also changes this stdin and so re-runs `ready`.
#   ready:  waits until the node has joined, reports EXPECTED_VERSION, and is Ready (on create,
#           and again after each upgrade or config change of the node).
#   drain:  cordons the node and evicts its pods; for a server, then has its etcd member removed,
#           while the server still runs, so the remaining members commit the removal.
#   delete: deletes the node, which frees its name (and node password) for a replacement.
# When a node goes, components/membership.py runs them in this order: drain, then k3s stops on
# the node itself (stop-k3s.sh), then delete, so no kubelet updates the Node under its name after.
# All are safe to re-run. Only the API server's answer that the node does not exist skips a
# step: an unreachable API, a timeout or any other error fails it, naming the node.
set -euo pipefail

action="${1:?usage: node-membership.sh ready|drain|delete}"
: "${NODE_NAME:?NODE_NAME is required}"
: "${WAIT_LIB_B64:?WAIT_LIB_B64 is required: the base64 of k3s-wait.sh}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-600}"
DRAIN_TIMEOUT_SECONDS="${DRAIN_TIMEOUT_SECONDS:-300}"
# How long one look at the API server may take before it counts as failed.
REQUEST_TIMEOUT_SECONDS="${REQUEST_TIMEOUT_SECONDS:-30}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"

kubectl() {
  "$K3S_BIN" kubectl --request-timeout="${REQUEST_TIMEOUT_SECONDS}s" "$@"
}

# shellcheck source=/dev/null
source <(base64 -d <<< "$WAIT_LIB_B64")

# Whether node $NODE_NAME is in the cluster: `--ignore-not-found` answers "no" with nothing, and
# only that. Any failure to ask stops the script: read as "not there", it would let Pulumi delete
# the instance undrained and, for a server, with its etcd member still counted in the quorum.
node_in_cluster() {
  local found
  if ! found="$(kubectl get node "$NODE_NAME" --ignore-not-found -o name 2>&1)"; then
    echo "cannot tell whether node $NODE_NAME is in the cluster, so it was left alone: $found" >&2
    echo "check the API server on the first server (systemctl status k3s; journalctl -u k3s)" \
      "and run pulumi up again" >&2
    exit 1
  fi
  [ -n "$found" ]
}

etcd_member_removed() {
  [ -n "$(kubectl get node "$NODE_NAME" \
    -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/removed-node-name}')" ]
}

case "$action" in
  ready)
    : "${EXPECTED_VERSION:?EXPECTED_VERSION is required for ready, e.g. v1.36.1+k3s1}"
    # The node is an agent or a further server: its own journal, under its unit, says why.
    wait_for_node_on_release "$READY_TIMEOUT_SECONDS" "$EXPECTED_VERSION" \
      "journalctl -u k3s-agent (a server: -u k3s) on that node"
    echo "node $NODE_NAME is Ready on k3s $EXPECTED_VERSION"
    ;;
  drain)
    if ! node_in_cluster; then
      echo "node $NODE_NAME is not in the cluster; nothing to drain"
      exit 0
    fi
    kubectl cordon "$NODE_NAME"
    # DaemonSet pods (ServiceLB, for one) would come back at once; emptyDir data goes with the node.
    kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="${DRAIN_TIMEOUT_SECONDS}s"
    # Read into a variable first: a failed look inside `[ ]` would read as "no etcd member".
    etcd_role="$(kubectl get node "$NODE_NAME" -o 'jsonpath={.metadata.labels.node-role\.kubernetes\.io/etcd}')"
    if [ "$etcd_role" = "true" ]; then
      # A server: k3s' etcd member controller removes its member when asked with this
      # annotation and records the removal in another (k3s pkg/etcd/member_controller.go).
      # Waiting for it keeps the quorum right before the next server goes. The server still
      # runs: going from 2 members to 1, stopping it first would leave 1 of 2, no quorum to
      # commit the removal.
      kubectl annotate --overwrite node "$NODE_NAME" etcd.k3s.cattle.io/remove=true
      wait_until "$DRAIN_TIMEOUT_SECONDS" \
        "etcd member of $NODE_NAME was not removed after ${DRAIN_TIMEOUT_SECONDS}s; see journalctl -u k3s" \
        etcd_member_removed
      echo "etcd member of $NODE_NAME removed"
    fi
    echo "node $NODE_NAME drained"
    ;;
  delete)
    if ! node_in_cluster; then
      echo "node $NODE_NAME is not in the cluster; nothing to delete"
      exit 0
    fi
    kubectl delete node "$NODE_NAME" --ignore-not-found --timeout="${DRAIN_TIMEOUT_SECONDS}s"
    echo "node $NODE_NAME deleted"
    ;;
  *)
    echo "unknown action $action; use ready, drain or delete" >&2
    exit 2
    ;;
esac
