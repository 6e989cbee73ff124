#!/usr/bin/env bash
# A node's membership (an agent's, or a joining server's), seen from the first server. Runs as
# root on the server (`sudo bash -s -- ACTION`), fed on stdin by components/membership.py after
# shell assignments of NODE_NAME, EXPECTED_VERSION (the k3s release the node must run),
# INSTALL_DIGEST and WAIT_LIB_B64 (the bounded waits, k3s-wait.sh). The script does not read
# INSTALL_DIGEST: it is the SHA-256 of the node's install program, there so that a config change,
# which re-runs the install, also changes this stdin and so re-runs `ready`.
#   ready:  waits until the node has joined, reports EXPECTED_VERSION, and is Ready (on create,
#           and again after each upgrade or config change of the node).
#   drain:  for a server, first checks that every other server is Ready and a voting etcd member;
#           cordons the node and evicts its pods; a server of two then has its etcd member removed
#           while it runs (stopped, one of two would be no quorum).
#   delete: a server of three, its k3s stopped by now, has its etcd member removed (two of three
#           commit it); then deletes the node, which frees its name (and node password) for a
#           replacement.
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

# The Node's etcd member, as k3s annotates it (etcd.k3s.cattle.io/node-name; pkg/etcd/etcd.go,
# NodeNameAnnotation): empty once the member controller removed it (member_controller.go, sync,
# deletes it and sets removed-node-name).
etcd_member_of_node() {
  kubectl get node "$NODE_NAME" -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/node-name}'
}

# Whether the Node records member $removed_member removed. If not, and the removal annotation is
# no longer "true", the request is made again: the member controller clears a removal whose
# removed-node-name the Node's member no longer matches (a server that rejoined under a new member
# since; member_controller.go, sync, "Resetting removed node flag"), which may come after this
# request.
removed_member=""
etcd_member_removed() {
  local removed asked
  removed="$(kubectl get node "$NODE_NAME" \
    -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/removed-node-name}')" || return 1
  [ "$removed" = "$removed_member" ] && return 0
  asked="$(kubectl get node "$NODE_NAME" -o 'jsonpath={.metadata.annotations.etcd\.k3s\.cattle\.io/remove}')" \
    || return 1
  if [ "$asked" != true ]; then
    kubectl annotate --overwrite node "$NODE_NAME" etcd.k3s.cattle.io/remove=true >/dev/null || return 1
  fi
  return 1
}

# Asks k3s' etcd member controller to remove member $1 (the removal annotation, k3s
# pkg/etcd/member_controller.go) and waits, bounded, until the Node records it removed.
remove_etcd_member() {
  removed_member="$1"
  kubectl annotate --overwrite node "$NODE_NAME" etcd.k3s.cattle.io/remove=true >/dev/null \
    || fail_on "asking for the removal of its etcd member $removed_member"
  wait_until "$DRAIN_TIMEOUT_SECONDS" \
    "etcd member $removed_member of $NODE_NAME was not removed after ${DRAIN_TIMEOUT_SECONDS}s; see journalctl -u k3s on every server" \
    etcd_member_removed
  echo "etcd member $removed_member of $NODE_NAME removed"
}

fail_on() {
  echo "node $NODE_NAME: $1 failed, so it was left as it is; check the API server on the first server (systemctl status k3s) and run pulumi up again" >&2
  exit 1
}

# The etcd servers, "name Ready EtcdIsVoter" each. EtcdIsVoter is k3s' condition on each etcd
# Node: True only for a healthy voting member (pkg/etcd/etcd.go, manageLearners,
# setEtcdStatusCondition).
etcd_servers=""
list_etcd_servers() {
  etcd_servers="$(kubectl get nodes -l node-role.kubernetes.io/etcd=true -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{" "}{.status.conditions[?(@.type=="EtcdIsVoter")].status}{"\n"}{end}')" \
    || fail_on "listing the servers"
}

# Every other server must be Ready and a voting member, or the leaving one's going (stopped, then
# removed) would leave etcd without its quorum.
check_other_servers() {
  local name ready voter
  while read -r name ready voter; do
    if [ -z "$name" ] || [ "$name" = "$NODE_NAME" ]; then
      continue
    fi
    if [ "$ready" != True ] || [ "$voter" != True ]; then
      echo "server $name is not Ready and a voting etcd member (Ready: ${ready:-none}, EtcdIsVoter: ${voter:-none})," \
        "so $NODE_NAME was left as it is: without $name, its going would leave etcd without its quorum;" \
        "bring $name back (kubectl describe node $name) and run pulumi up again" >&2
      exit 1
    fi
  done <<< "$etcd_servers"
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
    # Read into a variable first: a failed look inside `[ ]` would read as "no etcd member".
    etcd_role="$(kubectl get node "$NODE_NAME" -o 'jsonpath={.metadata.labels.node-role\.kubernetes\.io/etcd}')"
    if [ "$etcd_role" = "true" ]; then
      list_etcd_servers
      check_other_servers
    fi
    kubectl cordon "$NODE_NAME"
    # DaemonSet pods (ServiceLB, for one) would come back at once; emptyDir data goes with the node.
    kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="${DRAIN_TIMEOUT_SECONDS}s"
    if [ "$etcd_role" = "true" ]; then
      if [ "$(grep -c . <<< "$etcd_servers")" -ge 3 ]; then
        # One of three: its member is removed once its k3s is stopped (delete, below). Removed
        # while it ran, its k3s would exit, systemd restart it, it find its tombstone and rejoin
        # from this old host as a new member under its node name (k3s pkg/etcd/etcd.go, Register
        # and join), and its new host's join then fail: "duplicate node name found". Stopped, two
        # of three run and commit the removal.
        echo "the etcd member of $NODE_NAME is removed once its k3s is stopped"
      else
        # One of two (the servers going down to one): stopped first, it would leave one member of
        # two, no quorum to commit its removal, so it goes while it still runs.
        member="$(etcd_member_of_node)" || fail_on "reading its etcd member"
        if [ -n "$member" ]; then
          remove_etcd_member "$member"
        fi
      fi
    fi
    echo "node $NODE_NAME drained"
    ;;
  delete)
    if ! node_in_cluster; then
      echo "node $NODE_NAME is not in the cluster; nothing to delete"
      exit 0
    fi
    etcd_role="$(kubectl get node "$NODE_NAME" -o 'jsonpath={.metadata.labels.node-role\.kubernetes\.io/etcd}')"
    if [ "$etcd_role" = "true" ]; then
      # A server whose k3s is stopped now (stop-k3s.sh ran after its drain): the member it still
      # has goes first, while the Node that names it exists. Another server holds the k3s-etcd
      # lease, whose member controller carries the removal out (pkg/etcd/etcd.go, Register).
      member="$(etcd_member_of_node)" || fail_on "reading its etcd member"
      if [ -n "$member" ]; then
        remove_etcd_member "$member"
      fi
    fi
    kubectl delete node "$NODE_NAME" --ignore-not-found --timeout="${DRAIN_TIMEOUT_SECONDS}s"
    echo "node $NODE_NAME deleted"
    ;;
  *)
    echo "unknown action $action; use ready, drain or delete" >&2
    exit 2
    ;;
esac
