#!/usr/bin/env bash
# A node's membership (an agent's, or a joining server's), seen from the first server. Runs as root on the server (`sudo bash -s -- ACTION`),
# fed on stdin after the shell assignment of NODE_NAME (components/k3s_agent.py).
#   ready: waits until the node has joined and is Ready.
#   drain: cordons the node, evicts its pods and deletes it, before its instance goes
#          (for a server, deleting its node also removes its etcd member).
#          Deleting the node also frees its name (and node password) for a replacement.
# Both are safe to re-run.
set -euo pipefail

action="${1:?usage: node-membership.sh ready|drain}"
: "${NODE_NAME:?NODE_NAME is required}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-600}"
DRAIN_TIMEOUT_SECONDS="${DRAIN_TIMEOUT_SECONDS:-300}"
POLL_INTERVAL_SECONDS="${POLL_INTERVAL_SECONDS:-5}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"

kubectl() {
  "$K3S_BIN" kubectl "$@"
}

node_ready() {
  [ "$(kubectl get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = "True" ]
}

case "$action" in
  ready)
    deadline=$(($(date +%s) + READY_TIMEOUT_SECONDS))
    until node_ready; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "node $NODE_NAME was not Ready after ${READY_TIMEOUT_SECONDS}s; see journalctl -u k3s-agent on it" >&2
        exit 1
      fi
      sleep "$POLL_INTERVAL_SECONDS"
    done
    echo "node $NODE_NAME is Ready"
    ;;
  drain)
    if ! kubectl get node "$NODE_NAME" >/dev/null 2>&1; then
      echo "node $NODE_NAME is not in the cluster; nothing to drain"
      exit 0
    fi
    kubectl cordon "$NODE_NAME"
    # DaemonSet pods (ServiceLB, for one) would come back at once; emptyDir data goes with the node.
    kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="${DRAIN_TIMEOUT_SECONDS}s"
    if [ "$(kubectl get node "$NODE_NAME" -o 'jsonpath={.metadata.labels.node-role\.kubernetes\.io/etcd}')" = "true" ]; then
      # A server: k3s' etcd member controller removes its member when asked with this
      # annotation and records the removal in another (k3s pkg/etcd/member_controller.go).
      # Waiting for it keeps the quorum right before the next server goes.
      kubectl annotate --overwrite node "$NODE_NAME" etcd.k3s.cattle.io/remove=true
      deadline=$(($(date +%s) + DRAIN_TIMEOUT_SECONDS))
      until [ -n "$(kubectl get node "$NODE_NAME" \
        -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/removed-node-name}')" ]; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
          echo "etcd member of $NODE_NAME was not removed after ${DRAIN_TIMEOUT_SECONDS}s; see journalctl -u k3s" >&2
          exit 1
        fi
        sleep "$POLL_INTERVAL_SECONDS"
      done
      echo "etcd member of $NODE_NAME removed"
    fi
    kubectl delete node "$NODE_NAME" --ignore-not-found
    echo "node $NODE_NAME drained and deleted"
    ;;
  *)
    echo "unknown action $action; use ready or drain" >&2
    exit 2
    ;;
esac
