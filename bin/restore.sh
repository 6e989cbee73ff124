#!/usr/bin/env bash
# `make restore`: lists the etcd snapshots in a stack's backup bucket, or restores one
# onto the stack's servers with k3s' cluster-reset procedure, then waits for them Ready.
#
#   bin/restore.sh <stack>                     list the snapshots in the bucket
#   bin/restore.sh <stack> <snapshot|latest>   restore that one (latest: the newest)
#
# On replaced instances, set RESTORE_TOKEN_FILE to a file holding the server token the
# snapshot was taken with (the old nodeToken output); see docs/backups.md, Restore.
# Reads publicIp, sshUser, sshPrivateKey (if generated), sshHostKey, backupBucket and nodes from
# the stack's outputs; a read that fails stops it. The node-side work, sent on stdin:
# components/remote/restore-etcd-snapshot.sh on the first server and, with serverCount 3,
# components/remote/etcd-peer-restore.sh on the others (stopped before the restore, rejoined
# after it); both with the Ready wait, k3s-wait.sh. If it fails while other servers are stopped,
# it names them and says how to start or rejoin them.
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

# Servers whose k3s this run stopped (or was stopping) and has not started again, as
# "user@publicIp nodeName"; after_restore tells what they need if the restore fails.
stopped_servers=()
reset_done=false
work_dir="$(mktemp -d)"
report_stopped_servers() {
  local server
  if [ "$reset_done" = true ]; then
    echo "restore: the first server runs the restored snapshot, but k3s is stopped on these servers;" >&2
    echo "  never start them on their old etcd data (two of them would keep the old cluster's quorum):" >&2
    for server in "${stopped_servers[@]}"; do echo "  ${server% *} (${server#* })" >&2; done
    echo "  rejoin each one: set its etcd data aside, then start k3s and check it turns Ready:" >&2
    for server in "${stopped_servers[@]}"; do
      echo "    ssh ${server% *} 'sudo mv /var/lib/rancher/k3s/server/db /var/lib/rancher/k3s/server/db-before-restore-\$(date +%s) && sudo systemctl start --no-block k3s'" >&2
    done
    if [ -n "$restore_token" ]; then
      echo "  (replaced instances: first do on each what etcd-peer-restore.sh rejoin does with RESTORE_TOKEN:" >&2
      echo "   copy $token_drop_in from the first server, set server/tls and server/cred aside too, and on the" >&2
      echo "   first server delete its stale Node and <node>.node-password.k3s secret; see docs/backups.md, Runbook)" >&2
    fi
  else
    echo "restore: k3s is stopped on these servers, which still hold the cluster's data as it was:" >&2
    for server in "${stopped_servers[@]}"; do echo "  ${server% *} (${server#* })" >&2; done
    echo "  to run the cluster as it was, start k3s on each (and on the first server if it says it is stopped):" >&2
    for server in "${stopped_servers[@]}"; do
      echo "    ssh ${server% *} sudo systemctl start --no-block k3s" >&2
    done
  fi
}
on_exit() {
  local status=$?
  if [ "$status" -ne 0 ] && [ "${#stopped_servers[@]}" -gt 0 ]; then
    report_stopped_servers
  fi
  rm -rf "$work_dir"
}
trap on_exit EXIT

# Reads stack output $1 (with pulumi's flags after it) into $output_value. Returns 1 when the
# stack has no such output (pulumi: "current stack does not have output property '<name>'",
# pulumi/pulumi pkg/cmd/pulumi stack_output.go); any other failure (not logged in, a wrong
# passphrase, no such stack) stops the restore with pulumi's message and the check to make.
output_value=""
read_output() {
  local name="$1"
  shift
  if output_value="$(pulumi stack output --stack "$stack" "$@" "$name" 2>"$work_dir/pulumi-errors")"; then
    return 0
  fi
  if grep -q "does not have output property" "$work_dir/pulumi-errors"; then
    return 1
  fi
  sed 's/^/  pulumi: /' "$work_dir/pulumi-errors" >&2
  fail "could not read output $name of stack $stack" \
    "check that this works: pulumi stack output --stack $stack $name (pulumi login, PULUMI_CONFIG_PASSPHRASE)"
}

read_output backupBucket && bucket="$output_value" || bucket=""
[ -n "$bucket" ] || fail "stack $stack has no backup bucket (output backupBucket)" \
  "pulumi config set --stack $stack backups true && pulumi up --stack $stack, then wait for a snapshot"
read_output publicIp || fail "stack $stack has no publicIp output" "pulumi up --stack $stack"
host="$output_value"
read_output sshUser || fail "stack $stack has no sshUser output" "pulumi up --stack $stack"
user="$output_value"
read_output nodes --json || fail "stack $stack has no nodes output, which lists its servers" \
  "pulumi up --stack $stack (it exports nodes), then restore"
nodes="$output_value"

# The other servers, one "name publicIp privateIp" line each. The first server must be among
# the nodes: a stack whose outputs disagree is not restored.
servers_file="$work_dir/other-servers"
if ! python3 -c '
import json, sys
first = sys.argv[1]
servers = [node for node in json.load(sys.stdin) if node["role"] == "server"]
if first not in [server["publicIp"] for server in servers]:
    sys.exit(f"the first server {first} (output publicIp) is not among the servers in output nodes")
for server in servers:
    if server["publicIp"] != first:
        print(server["name"], server["publicIp"], server["privateIp"])
' "$host" <<< "$nodes" > "$servers_file"; then
  fail "could not read the servers from output nodes of stack $stack" \
    "check: pulumi stack output --stack $stack --json nodes (each server needs name, role, publicIp, privateIp)"
fi
peer_names=()
peer_hosts=()
peer_private_ips=()
while read -r name public_ip private_ip; do
  peer_names+=("$name")
  peer_hosts+=("$public_ip")
  peer_private_ips+=("$private_ip")
done < "$servers_file"

restore_token=""
if [ -n "${RESTORE_TOKEN_FILE:-}" ]; then
  [ -r "$RESTORE_TOKEN_FILE" ] || fail "RESTORE_TOKEN_FILE=$RESTORE_TOKEN_FILE cannot be read" \
    "point it at the file holding the old nodeToken"
  restore_token="$(tr -d '[:space:]' < "$RESTORE_TOKEN_FILE")"
fi
# The k3s config drop-in, under /etc/rancher/k3s, that carries the restored token on every server.
token_drop_in="config.yaml.d/50-restored-token.yaml"

# The first server's host key is the stack's sshHostKey output, pinned like the stack's own
# commands pin it; other servers' keys are trusted on first sight. ~/.ssh/known_hosts is left alone.
if read_output sshHostKey && [ -n "$output_value" ]; then
  printf '%s %s\n' "$host" "$output_value" > "$work_dir/known_hosts"
fi
ssh_args=(-o BatchMode=yes -o ConnectTimeout=15 -o StrictHostKeyChecking=accept-new
  -o "UserKnownHostsFile=$work_dir/known_hosts")
if read_output sshPrivateKey --show-secrets && [ -n "$output_value" ]; then
  # The stack generated the key; without one, ssh uses your agent or ~/.ssh.
  (umask 077 && printf '%s\n' "$output_value" > "$work_dir/id")
  ssh_args+=(-i "$work_dir/id")
fi
output_value=""

# Both node scripts load the Ready wait from WAIT_LIB_B64, sent on stdin as the stack's own
# commands send it (components/remote_scripts.py, node_program).
wait_lib_b64="$(base64 < components/remote/k3s-wait.sh | tr -d '\n')"

# Settings first, then the node script, all on stdin: the token never reaches a command line.
peer_step() {
  local step="$1" index server
  for index in "${!peer_hosts[@]}"; do
    server="$user@${peer_hosts[$index]} ${peer_names[$index]}"
    echo "restore: $step on server $user@${peer_hosts[$index]}"
    # Counted as stopped from the moment its stop is asked for, until its rejoin succeeds.
    if [ "$step" = stop ]; then stopped_servers+=("$server"); fi
    {
      printf 'PEER_STEP=%q\nRESTORE_TOKEN=%q\nTOKEN_DROP_IN=%q\nWAIT_LIB_B64=%q\n' \
        "$step" "$restore_token" "$token_drop_in" "$wait_lib_b64"
      cat components/remote/etcd-peer-restore.sh
    } | ssh "${ssh_args[@]}" "$user@${peer_hosts[$index]}" sudo bash -s
    if [ "$step" = rejoin ]; then stopped_servers=("${stopped_servers[@]:1}"); fi
  done
}

# On replaced instances the snapshot brings back the old instances' Node objects and node
# passwords under the same names: the first server deletes them before the others rejoin.
stale_node_names=""
if [ -n "$restore_token" ]; then
  stale_node_names="${peer_names[*]}"
fi

on_first_server() {
  local resolve_only="$1"
  {
    printf 'SNAPSHOT=%q\nRESTORE_TOKEN=%q\nTOKEN_DROP_IN=%q\nRESOLVE_ONLY=%q\n' \
      "$snapshot" "$restore_token" "$token_drop_in" "$resolve_only"
    printf 'ETCD_PEER_ADDRESSES=%q\nSTALE_NODE_NAMES=%q\nWAIT_LIB_B64=%q\n' \
      "${peer_private_ips[*]}" "$stale_node_names" "$wait_lib_b64"
    cat components/remote/restore-etcd-snapshot.sh
  } | ssh "${ssh_args[@]}" "$user@$host" sudo bash -s | tee "$work_dir/first-server.log"
}

echo "restore: stack $stack, bucket $bucket, node $user@$host"
if [ -z "$snapshot" ]; then
  on_first_server false
  exit 0
fi
if [ "${#peer_hosts[@]}" -gt 0 ]; then
  # Several servers: check the snapshot (and pin `latest`) before stopping any of them,
  # then stop them all, restore on the first, and let the others rejoin.
  resolved="$(on_first_server true | sed -n 's/^snapshot: //p')"
  [ -n "$resolved" ] || exit 1
  snapshot="$resolved"
  peer_step stop
fi
if ! on_first_server false; then
  # The node script prints this line once k3s' cluster reset has succeeded.
  if grep -q '^cluster reset done' "$work_dir/first-server.log"; then reset_done=true; fi
  exit 1
fi
reset_done=true
peer_step rejoin
