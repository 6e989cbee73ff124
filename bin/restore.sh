#!/usr/bin/env bash
# `make restore`: lists the etcd snapshots in a stack's backup bucket, or restores one
# onto the stack's node with k3s' cluster-reset procedure, then waits for the node Ready.
#
#   bin/restore.sh <stack>                     list the snapshots in the bucket
#   bin/restore.sh <stack> <snapshot|latest>   restore that one (latest: the newest)
#
# On a replaced instance, set RESTORE_TOKEN_FILE to a file holding the server token the
# snapshot was taken with (the old nodeToken output); see docs/backups.md, Restore.
# Reads publicIp, sshUser, sshPrivateKey (if generated), backupBucket and nodes from the
# stack's outputs. The node-side work, sent on stdin: components/remote/restore-etcd-snapshot.sh
# on the first server and, with serverCount 3, components/remote/etcd-peer-restore.sh on the
# others (stopped before the restore, rejoined after it); both with the Ready wait, k3s-wait.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "restore: $1" >&2
  echo "  fix: $2" >&2
  exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || fail "usage: bin/restore.sh <stack> [snapshot|latest]" \
  "make restore STACK=prod (lists), then make restore STACK=prod SNAPSHOT=<name>"
stack="$1"
snapshot="${2:-}"

command -v pulumi >/dev/null 2>&1 || fail "the Pulumi CLI is not installed" \
  "curl -fsSL https://get.pulumi.com | sh   (then open a new shell)"
command -v ssh >/dev/null 2>&1 || fail "ssh is not installed" "install an OpenSSH client"

output() {
  pulumi stack output --stack "$stack" "$@" 2>/dev/null
}

bucket="$(output backupBucket)" || bucket=""
[ -n "$bucket" ] || fail "stack $stack has no backup bucket (output backupBucket)" \
  "pulumi config set --stack $stack backups true && pulumi up --stack $stack, then wait for a snapshot"
host="$(output publicIp)" || fail "stack $stack has no publicIp output" "pulumi up --stack $stack"
user="$(output sshUser)" || fail "stack $stack has no sshUser output" "pulumi up --stack $stack"

restore_token=""
if [ -n "${RESTORE_TOKEN_FILE:-}" ]; then
  [ -r "$RESTORE_TOKEN_FILE" ] || fail "RESTORE_TOKEN_FILE=$RESTORE_TOKEN_FILE cannot be read" \
    "point it at the file holding the old nodeToken"
  restore_token="$(tr -d '[:space:]' < "$RESTORE_TOKEN_FILE")"
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT
# The first server's host key is the stack's sshHostKey output, pinned like the stack's own
# commands pin it; other servers' keys are trusted on first sight. ~/.ssh/known_hosts is left alone.
if host_key="$(output sshHostKey)" && [ -n "$host_key" ]; then
  printf '%s %s\n' "$host" "$host_key" > "$work_dir/known_hosts"
fi
ssh_args=(-o BatchMode=yes -o ConnectTimeout=15 -o StrictHostKeyChecking=accept-new
  -o "UserKnownHostsFile=$work_dir/known_hosts")
if private_key="$(output --show-secrets sshPrivateKey)" && [ -n "$private_key" ]; then
  # The stack generated the key; without one, ssh uses your agent or ~/.ssh.
  umask 077
  printf '%s\n' "$private_key" > "$work_dir/id"
  ssh_args+=(-i "$work_dir/id")
fi

# The other servers' public IPs, from the nodes output (absent on stacks from before it).
peers=()
if nodes="$(output --json nodes)"; then
  mapfile -t peers < <(python3 -c '
import json, sys
first = sys.argv[1]
for node in json.load(sys.stdin):
    if node["role"] == "server" and node["publicIp"] != first:
        print(node["publicIp"])
' "$host" <<< "$nodes")
fi

# Both node scripts load the Ready wait from WAIT_LIB_B64, sent on stdin as the stack's own
# commands send it (components/remote_scripts.py, node_program).
wait_lib_b64="$(base64 < components/remote/k3s-wait.sh | tr -d '\n')"

peer_step() {
  local step="$1" peer
  for peer in "${peers[@]}"; do
    echo "restore: $step on server $user@$peer"
    {
      printf 'PEER_STEP=%q\nWAIT_LIB_B64=%q\n' "$step" "$wait_lib_b64"
      cat components/remote/etcd-peer-restore.sh
    } | ssh "${ssh_args[@]}" "$user@$peer" sudo bash -s
  done
}

# Settings first, then the node script, all on stdin: the token never reaches a command line.
on_first_server() {
  local resolve_only="$1"
  {
    printf 'SNAPSHOT=%q\nRESTORE_TOKEN=%q\nRESOLVE_ONLY=%q\nWAIT_LIB_B64=%q\n' \
      "$snapshot" "$restore_token" "$resolve_only" "$wait_lib_b64"
    cat components/remote/restore-etcd-snapshot.sh
  } | ssh "${ssh_args[@]}" "$user@$host" sudo bash -s
}

echo "restore: stack $stack, bucket $bucket, node $user@$host"
if [ -z "$snapshot" ]; then
  on_first_server false
  exit 0
fi
if [ "${#peers[@]}" -gt 0 ]; then
  # Several servers: check the snapshot (and pin `latest`) before stopping any of them,
  # then stop them all, restore on the first, and let the others rejoin.
  resolved="$(on_first_server true | sed -n 's/^snapshot: //p')"
  [ -n "$resolved" ] || exit 1
  snapshot="$resolved"
  peer_step stop
fi
on_first_server false
peer_step rejoin
