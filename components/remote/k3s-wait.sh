# shellcheck shell=bash
# Waiting on k3s, as shell functions: a bounded poll, and through it a node's release and Ready condition.
# A library, not a script: the node scripts load it from WAIT_LIB_B64, which the stack's commands
# (components/remote_scripts.py, node_program) and bin/restore.sh send on stdin before the script.
# It reads the script's K3S_BIN and NODE_NAME; POLL_INTERVAL_SECONDS (default 5) is for the tests.

# Runs the command after $2 until it succeeds; after $1 seconds prints $2, and what the command
# last printed on stderr (an unreachable API server, say, rather than a node that is not there
# yet), and fails.
wait_until() {
  local timeout_seconds="$1" failure="$2" deadline errors
  shift 2
  errors="$(mktemp)"
  deadline=$(($(date +%s) + timeout_seconds))
  until "$@" 2>"$errors"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$failure" >&2
      if [ -s "$errors" ]; then
        echo "last error: $(cat "$errors")" >&2
      fi
      rm -f "$errors"
      return 1
    fi
    sleep "${POLL_INTERVAL_SECONDS:-5}"
  done
  rm -f "$errors"
}

# Whether the API server reports node $NODE_NAME Ready. A failed look is a no; its error goes to
# stderr, which wait_until keeps for its message.
node_ready() {
  [ "$("$K3S_BIN" kubectl get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = "True" ]
}

# Waits up to $1 seconds for node $NODE_NAME to be Ready. Its failure says since when ($2, e.g.
# "the restore"; none: since the wait began) and where to look ($3; default the server's journal).
wait_for_node_ready() {
  local timeout_seconds="$1" since="${2:-}" logs="${3:-journalctl -u k3s}" late
  if [ -n "$since" ]; then
    late="${timeout_seconds}s after $since"
  else
    late="after ${timeout_seconds}s"
  fi
  wait_until "$timeout_seconds" "node $NODE_NAME was not Ready $late; see: $logs" node_ready
}

# The release node $NODE_NAME's kubelet last reported; k3s reports its own, e.g. v1.36.1+k3s1.
reported_version=""
node_reports_release() {
  reported_version="$("$K3S_BIN" kubectl get node "$NODE_NAME" \
    -o 'jsonpath={.status.nodeInfo.kubeletVersion}' || true)"
  [ "$reported_version" = "$1" ]
}

# Waits up to $1 seconds for node $NODE_NAME to report release $2, then up to $1 more for it to be
# Ready; $3 is where to look on failure (default the server's journal). Right after a restart the
# Node object still shows the old kubelet's Ready; the new release in its status means the
# restarted kubelet has reported, so the Ready that follows is its own. After a config change
# alone the release stays the same, and this cannot tell.
wait_for_node_on_release() {
  local timeout_seconds="$1" release="$2" logs="${3:-journalctl -u k3s}"
  if ! wait_until "$timeout_seconds" \
    "node $NODE_NAME did not report k3s $release after ${timeout_seconds}s" \
    node_reports_release "$release"; then
    echo "it reports ${reported_version:-no version}; see: $logs" >&2
    return 1
  fi
  wait_for_node_ready "$timeout_seconds" "" "$logs"
}
