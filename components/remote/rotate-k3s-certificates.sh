#!/usr/bin/env bash
# A node's k3s client and server certificates, rotated (`rotate`, on the node), and an agent waited
# for on a server until it is Ready again (`ready`). Runs as root (`sudo bash -s -- ACTION`), fed on
# stdin by components/certificates.py after shell assignments of NODE_NAME, K3S_SERVICE (the unit
# k3s' install.sh writes: k3s on a server, k3s-agent on an agent) and WAIT_LIB_B64 (the bounded
# waits, k3s-wait.sh).
#   rotate: the documented procedure (docs.k3s.io/cli/certificate): stop the unit, `k3s certificate
#           rotate`, start it. On a server it rotates the server's and its agent's certificates; on an
#           agent, which has no server data directory, the agent's own (k3s pkg/cli/cert/cert.go,
#           rotate: "Agent detected, rotating agent certificates"; fixed for agents in k3s#9785).
#           A server then waits for its own Node to be Ready; an agent has no admin kubeconfig, so
#           its Ready wait runs on a server (`ready`).
#   ready:  on a server: waits until node NODE_NAME is Ready.
# On start k3s writes a new /etc/rancher/k3s/k3s.yaml on a server, which Pulumi then reads again.
set -euo pipefail

action="${1:?usage: rotate-k3s-certificates.sh rotate|ready}"
: "${NODE_NAME:?NODE_NAME is required}"
: "${K3S_SERVICE:?K3S_SERVICE is required: k3s on a server, k3s-agent on an agent}"
: "${WAIT_LIB_B64:?WAIT_LIB_B64 is required: the base64 of k3s-wait.sh}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-300}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
K3S_AGENT_DIR="${K3S_AGENT_DIR:-/var/lib/rancher/k3s/agent}"

# shellcheck source=/dev/null
source <(base64 -d <<< "$WAIT_LIB_B64")

# `k3s certificate rotate` deletes the kubelet's client certificate on servers and agents alike
# (k3s pkg/util/services/services.go, FilesForServices: agent/client-kubelet.crt), and k3s writes
# a new one when it starts again: its return says the restarted k3s is up and holds new
# certificates, where the Node's Ready alone could still be the one the old kubelet reported.
kubelet_certificate_issued() {
  [ -s "$K3S_AGENT_DIR/client-kubelet.crt" ]
}

case "$action" in
  rotate)
    echo "stopping $K3S_SERVICE to rotate the certificates of node $NODE_NAME"
    systemctl stop "$K3S_SERVICE"
    # The server's unit is Type=notify with TimeoutStartSec=0 (k3s install.sh), so a plain
    # `systemctl start` could wait forever: --no-block queues the start and returns at once
    # (systemctl(1)), and the waits below are bounded.
    if ! "$K3S_BIN" certificate rotate; then
      echo "k3s certificate rotate failed on node $NODE_NAME; starting $K3S_SERVICE with its old certificates" >&2
      systemctl start --no-block "$K3S_SERVICE"
      exit 1
    fi
    systemctl start --no-block "$K3S_SERVICE"
    wait_until "$READY_TIMEOUT_SECONDS" \
      "$K3S_SERVICE on node $NODE_NAME wrote no new $K3S_AGENT_DIR/client-kubelet.crt ${READY_TIMEOUT_SECONDS}s after the rotation; see: journalctl -u $K3S_SERVICE" \
      kubelet_certificate_issued
    if [ "$K3S_SERVICE" = k3s ]; then
      wait_for_node_ready "$READY_TIMEOUT_SECONDS" "the rotation"
      echo "node $NODE_NAME is Ready with rotated certificates"
    else
      echo "$K3S_SERVICE on node $NODE_NAME restarted with rotated certificates; a server waits for its Ready"
    fi
    ;;
  ready)
    wait_for_node_ready "$READY_TIMEOUT_SECONDS" "the rotation" \
      "journalctl -u $K3S_SERVICE on node $NODE_NAME"
    echo "node $NODE_NAME is Ready with rotated certificates"
    ;;
  *)
    echo "unknown action $action; use rotate or ready" >&2
    exit 2
    ;;
esac
