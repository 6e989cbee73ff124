#!/usr/bin/env bash
# Rotates k3s' client and server certificates, then waits until the node is Ready.
# Runs as root on the node (`sudo bash -s`), after assignments of NODE_NAME and WAIT_LIB_B64
# (the Ready wait, k3s-wait.sh) on stdin.
# The documented procedure (docs.k3s.io/cli/certificate): stop k3s, rotate, start.
# On start k3s writes a new /etc/rancher/k3s/k3s.yaml, which Pulumi then reads again.
set -euo pipefail

: "${NODE_NAME:?NODE_NAME is required}"
: "${WAIT_LIB_B64:?WAIT_LIB_B64 is required: the base64 of k3s-wait.sh}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-300}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"

# shellcheck source=/dev/null
source <(base64 -d <<< "$WAIT_LIB_B64")

echo "stopping k3s to rotate its certificates"
systemctl stop k3s
if ! "$K3S_BIN" certificate rotate; then
  echo "k3s certificate rotate failed; starting k3s with its old certificates" >&2
  systemctl start k3s
  exit 1
fi
systemctl start k3s

wait_for_node_ready "$READY_TIMEOUT_SECONDS" "the rotation"
echo "node $NODE_NAME is Ready with rotated certificates"
