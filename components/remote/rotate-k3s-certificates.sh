#!/usr/bin/env bash
# Rotates k3s' client and server certificates, then waits until the node is Ready.
# Runs as root on the node (`sudo bash -s`), after a NODE_NAME assignment on stdin.
# The documented procedure (docs.k3s.io/cli/certificate): stop k3s, rotate, start.
# On start k3s writes a new /etc/rancher/k3s/k3s.yaml, which Pulumi then reads again.
set -euo pipefail

: "${NODE_NAME:?NODE_NAME is required}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-300}"
POLL_INTERVAL_SECONDS="${POLL_INTERVAL_SECONDS:-5}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"

node_ready() {
  [ "$("$K3S_BIN" kubectl get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = "True" ]
}

echo "stopping k3s to rotate its certificates"
systemctl stop k3s
if ! "$K3S_BIN" certificate rotate; then
  echo "k3s certificate rotate failed; starting k3s with its old certificates" >&2
  systemctl start k3s
  exit 1
fi
systemctl start k3s

deadline=$(($(date +%s) + READY_TIMEOUT_SECONDS))
until node_ready; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "node $NODE_NAME was not Ready ${READY_TIMEOUT_SECONDS}s after the rotation; see: journalctl -u k3s" >&2
    exit 1
  fi
  sleep "$POLL_INTERVAL_SECONDS"
done
echo "node $NODE_NAME is Ready with rotated certificates"
