#!/usr/bin/env bash
# Stops k3s for good on a node that leaves the cluster (an agent, or a joining server), on the node
# itself: the delete step of its `-k3s-stop` command (components/membership.py), which Pulumi runs
# after the node's drain and before its Node object is deleted on the first server. Without it the
# old host's kubelet would go on updating the Node, and running pods bound to it, once a
# replacement registers under the same name (Kubernetes requires the old node to be gone before
# its name is reused: kubernetes.io/docs/concepts/architecture/nodes, "Node name uniqueness").
# Runs as root (`sudo bash -s`), fed on stdin after shell assignments of NODE_NAME and K3S_UNIT
# (k3s-agent or k3s). Safe to re-run.
set -euo pipefail

: "${NODE_NAME:?NODE_NAME is required}"
: "${K3S_UNIT:?K3S_UNIT is required: k3s-agent or k3s}"
# Each step is bounded, so a hung stop fails with this script's message before Pulumi's timeout.
STOP_TIMEOUT_SECONDS="${STOP_TIMEOUT_SECONDS:-60}"
# Written by k3s' install.sh: stops every k3s unit, then the pods' containers, which outlive the
# unit, and their network (docs.k3s.io/upgrades/killall: "the K3s containers continue running
# when the K3s service is stopped").
K3S_KILLALL="${K3S_KILLALL:-/usr/local/bin/k3s-killall.sh}"

# A reboot of a host that is not yet deleted must not start it again.
if ! timeout "$STOP_TIMEOUT_SECONDS" systemctl disable "$K3S_UNIT"; then
  echo "could not disable $K3S_UNIT on $NODE_NAME within ${STOP_TIMEOUT_SECONDS}s; see systemctl status $K3S_UNIT there" >&2
  exit 1
fi
if ! timeout "$STOP_TIMEOUT_SECONDS" "$K3S_KILLALL"; then
  echo "k3s did not stop on $NODE_NAME within ${STOP_TIMEOUT_SECONDS}s ($K3S_KILLALL); see systemctl status $K3S_UNIT there" >&2
  exit 1
fi
echo "k3s stopped on $NODE_NAME"
