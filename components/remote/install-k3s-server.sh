#!/usr/bin/env bash
# Installs k3s as a server, or upgrades it in place, then waits until the node reports that
# release and is Ready.
# Runs as root on the node (`sudo bash -s`). components/k3s.py feeds it on stdin, after
# shell assignments of K3S_VERSION, NODE_NAME, K3S_CONFIG_B64 (k3s' config.yaml,
# rendered from data in Python and base64-encoded), the shell libraries UPGRADE_PATH_LIB_B64
# (the version-skew rule, k3s-upgrade-path.sh) and WAIT_LIB_B64 (the Ready wait, k3s-wait.sh),
# KUBELET_SYSCTL_CONF_B64 and AUDIT_POLICY_B64 (the CIS hardening files), K3S_REGISTRIES_B64
# (registries.yaml, empty without private registries) and REGISTRIES_LIB_B64 (k3s-registries.sh
# that writes it), SECURITY_UPDATES_LIB_B64 with SECURITY_UPDATES_CONF_B64 and _NAME
# (unattended-upgrades, security-updates.sh), so no setting, and no secret, ever appears on a
# command line.
# Safe to re-run: with the same version and config it changes nothing. It never
# uninstalls, so cluster data in /var/lib/rancher/k3s survives upgrades. It refuses
# a downgrade and a jump of more than one minor before touching anything.
set -euo pipefail

: "${K3S_VERSION:?K3S_VERSION is required, e.g. v1.36.1+k3s1}"
: "${NODE_NAME:?NODE_NAME is required}"
: "${UPGRADE_PATH_LIB_B64:?UPGRADE_PATH_LIB_B64 is required: the base64 of k3s-upgrade-path.sh}"
: "${SECURITY_UPDATES_LIB_B64:?SECURITY_UPDATES_LIB_B64 is required: the base64 of security-updates.sh}"
: "${SECURITY_UPDATES_CONF_B64:?SECURITY_UPDATES_CONF_B64 is required: the unattended-upgrades settings}"
: "${SECURITY_UPDATES_CONF_NAME:?SECURITY_UPDATES_CONF_NAME is required: their file name in apt.conf.d}"
: "${WAIT_LIB_B64:?WAIT_LIB_B64 is required: the base64 of k3s-wait.sh}"
: "${K3S_CONFIG_B64:?K3S_CONFIG_B64 is required: the base64 of the k3s config.yaml to write}"
: "${KUBELET_SYSCTL_CONF_B64:?KUBELET_SYSCTL_CONF_B64 is required: the kernel settings protect-kernel-defaults needs}"
: "${AUDIT_POLICY_B64:?AUDIT_POLICY_B64 is required: the audit policy of the API server}"
: "${K3S_REGISTRIES_B64?K3S_REGISTRIES_B64 is required: the base64 of registries.yaml, empty for none}"
: "${REGISTRIES_LIB_B64:?REGISTRIES_LIB_B64 is required: the base64 of k3s-registries.sh}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-300}"
K3S_CONFIG_DIR="${K3S_CONFIG_DIR:-/etc/rancher/k3s}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
K3S_SERVER_DIR="${K3S_SERVER_DIR:-/var/lib/rancher/k3s/server}"
SYSCTL_DIR="${SYSCTL_DIR:-/etc/sysctl.d}"
APT_CONF_DIR="${APT_CONF_DIR:-/etc/apt/apt.conf.d}"

K3S_DATA_DIR="${K3S_DATA_DIR:-/var/lib/rancher/k3s}"

# With a data disk (K3S_DATA_ON_DISK=true), the data directory must be its mount (data-disk.sh):
# k3s started on the system disk's empty directory would begin a new, empty cluster.
if [ "${K3S_DATA_ON_DISK:-false}" = true ] && ! mountpoint -q "$K3S_DATA_DIR"; then
  echo "the data disk of $NODE_NAME is not mounted at $K3S_DATA_DIR, so k3s was not installed or started;" \
    "see the data disk's mount (mountpoint $K3S_DATA_DIR; lsblk -f; journalctl -b) and run pulumi up again" >&2
  exit 1
fi

# The first server of several whose old host left etcd (data-disk.sh, leave_etcd: the record names
# the member it removed, then the other servers' private IPs) rejoins through another server, as a
# further server joins: with `server` and the cluster's own token (on the disk), k3s finds no etcd
# data, bootstraps from that server and adds itself as a new member (k3s pkg/cluster/bootstrap.go,
# shouldBootstrapLoad: a join URL, a token and no initialized etcd; pkg/etcd/etcd.go, Start: join,
# MemberAddAsLearner). With a `server` it never begins a cluster of its own.
REJOIN_RECORD="$K3S_DATA_DIR/.lightsail-k3s-etcd-rejoin-through"
ETCD_DIR="$K3S_DATA_DIR/server/db/etcd"
TOKEN_FILE="$K3S_DATA_DIR/server/token"
# Through the first recorded server whose supervisor answers k3s' unauthenticated /ping (k3s
# pkg/server/router.go) over TLS with the cluster's server CA, on the disk: one that is down would
# hold the join up for good, since k3s joins through the one `server` it is given.
REQUEST_TIMEOUT_SECONDS="${REQUEST_TIMEOUT_SECONDS:-30}"
rejoin_through=""
if [ -f "$REJOIN_RECORD" ] && [ ! -d "$ETCD_DIR/member/wal" ]; then
  mapfile -t recorded_servers < <(tail -n +2 "$REJOIN_RECORD")
  if [ "${#recorded_servers[@]}" -eq 0 ] || [ ! -s "$TOKEN_FILE" ]; then
    echo "$NODE_NAME left etcd to rejoin it, but $REJOIN_RECORD names no server to rejoin through," \
      "or $TOKEN_FILE is missing; k3s was not installed or started (see docs/lifecycle.md, Growing a node)" >&2
    exit 1
  fi
  : "${KUBE_API_PORT:?KUBE_API_PORT is required to rejoin}"
  ping_errors=""
  for server in "${recorded_servers[@]}"; do
    if answer="$(curl -fsS --max-time "$REQUEST_TIMEOUT_SECONDS" --cacert "$K3S_DATA_DIR/server/tls/server-ca.crt" \
      "https://$server:$KUBE_API_PORT/ping" 2>&1)" && [ "$answer" = pong ]; then
      rejoin_through="$server"
      break
    fi
    ping_errors="$ping_errors $server: ${answer:-no answer};"
  done
  if [ -z "$rejoin_through" ]; then
    echo "$NODE_NAME left etcd to rejoin it, but none of the servers recorded to rejoin through answers" \
      "(${ping_errors% }); k3s was not installed or started: bring one back (kubectl get nodes there) and run pulumi up again" >&2
    exit 1
  fi
fi
# Without one, a server whose etcd data was set aside and whose config names no server to join
# would begin a new, empty cluster beside the running one (shouldBootstrapLoad: no join URL,
# "Managed etcd cluster initializing"): refused before anything changes.
if [ -z "$rejoin_through" ] && [ ! -d "$ETCD_DIR/member/wal" ] \
  && compgen -G "$K3S_DATA_DIR/server/db/etcd-removed-member-*" > /dev/null \
  && ! base64 -d <<< "$K3S_CONFIG_B64" | grep -q '^server:'; then
  echo "the etcd member of $NODE_NAME was set aside and no server to rejoin through is recorded:" \
    "started so, k3s would begin a new cluster beside the running one; k3s was not installed or started." \
    "See docs/lifecycle.md, Growing a node" >&2
  exit 1
fi

# Written by data-disk.sh when a single server's etcd member records an earlier host's address.
ETCD_ADDRESS_MARKER="$K3S_DATA_DIR/.lightsail-k3s-etcd-address-changed"
RESET_TIMEOUT_SECONDS="${RESET_TIMEOUT_SECONDS:-300}"
if [ -f "$ETCD_ADDRESS_MARKER" ]; then
  # Installed without starting: the reset below runs first (k3s install.sh, INSTALL_K3S_SKIP_START).
  export INSTALL_K3S_SKIP_START=true
fi

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

# The release on the node (installed_version, check_upgrade_path, install_release) and the
# kubelet's kernel settings (apply_kubelet_sysctls), shared with the agents' join script; components/k3s.py (upgrade_refusal) runs the same check at preview time.
# shellcheck source=/dev/null
source <(base64 -d <<< "$UPGRADE_PATH_LIB_B64")
# unattended-upgrades, security pocket only, its reboot off (configure_security_updates), shared
# by every node's install.
# shellcheck source=/dev/null
source <(base64 -d <<< "$SECURITY_UPDATES_LIB_B64")
# The wait for the node's release and Ready (wait_for_node_on_release), shared with every script
# that waits for a node.
# shellcheck source=/dev/null
source <(base64 -d <<< "$WAIT_LIB_B64")
# The private registries' file (place_registries), shared with the agents' join script.
# shellcheck source=/dev/null
source <(base64 -d <<< "$REGISTRIES_LIB_B64")

# Installs $1 at $2 with mode $3; notes whether the content changed.
config_changed=false
place() {
  if [ ! -f "$2" ] || ! cmp -s "$1" "$2"; then
    config_changed=true
  fi
  install -m "$3" "$1" "$2"
}

# Whether the k3s unit runs again, in a run other than $1 (an InvocationID).
k3s_restarted_since() {
  [ "$(systemctl show --property=InvocationID --value k3s)" != "$1" ] && systemctl is-active --quiet k3s
}

current_version="$(installed_version)"
check_upgrade_path "$current_version" "$K3S_VERSION"

# The kernel values protect-kernel-defaults needs, set before k3s (re)starts, as on an agent.
apply_kubelet_sysctls "$work_dir"

# Security updates from the distribution's security pocket, no automatic reboot (security-updates.sh).
configure_security_updates "$work_dir"

# The API server's audit policy and a root-only log directory must exist before it starts.
install -d -m 0700 "$K3S_SERVER_DIR" "$K3S_SERVER_DIR/logs"
base64 -d <<< "$AUDIT_POLICY_B64" > "$work_dir/audit.yaml"
place "$work_dir/audit.yaml" "$K3S_SERVER_DIR/audit.yaml" 0600

mkdir -p "$K3S_CONFIG_DIR"
# k3s reads its flags from config.yaml; install.sh rewrites the service's own flags
# on every run, so settings belong in the file, not in INSTALL_K3S_EXEC.
base64 -d <<< "$K3S_CONFIG_B64" > "$work_dir/config.yaml"
if [ -n "$rejoin_through" ]; then
  echo "$NODE_NAME rejoins etcd through $rejoin_through"
  printf 'server: https://%s:%s\ntoken-file: %s\n' "$rejoin_through" "$KUBE_API_PORT" "$TOKEN_FILE" \
    >> "$work_dir/config.yaml"
fi
place "$work_dir/config.yaml" "$K3S_CONFIG_DIR/config.yaml" 0600
# The registries' credentials, root-only; k3s reads them only when it starts, as below.
place_registries "$work_dir" "$(head -n 1 "$work_dir/config.yaml")"

if [ "$current_version" != "$K3S_VERSION" ]; then
  echo "installing k3s $K3S_VERSION (installed: ${current_version:-none})"
  install_release "$K3S_VERSION" server "$work_dir"
elif [ -f "$ETCD_ADDRESS_MARKER" ]; then
  # A run after a reset that failed: k3s may neither restart nor start on etcd that still records
  # the earlier host's address; the reset below starts it.
  echo "k3s $K3S_VERSION is installed; its etcd address is reset before it starts"
elif [ "$config_changed" = true ]; then
  # The unit is Type=notify with TimeoutStartSec=0 (k3s install.sh, create_systemd_service_file):
  # a blocking restart could wait for ever. --no-block queues it; the wait below is bounded.
  echo "k3s $K3S_VERSION is installed; config or registries changed, restarting k3s"
  previous_run="$(systemctl show --property=InvocationID --value k3s)"
  systemctl restart --no-block k3s
  # The release stays the same, so the Node's Ready below could still be the one from before the
  # restart: first the unit's new run (a new InvocationID, systemd.exec(5)) must be active, which
  # the Type=notify unit is once k3s reports READY=1, after its API server and etcd are up
  # (k3s pkg/cli/server/server.go). So the next server restarts only once this one serves again.
  wait_until "$READY_TIMEOUT_SECONDS" \
    "k3s on node $NODE_NAME was not running again ${READY_TIMEOUT_SECONDS}s after its restart; see: journalctl -u k3s" \
    k3s_restarted_since "$previous_run"
elif ! systemctl is-active --quiet k3s; then
  echo "k3s $K3S_VERSION is installed but not running; starting it"
  systemctl start --no-block k3s
else
  echo "k3s $K3S_VERSION is installed with this config; nothing to change"
fi

if [ -f "$ETCD_ADDRESS_MARKER" ]; then
  # k3s changes the one member's peer address to this host's in a cluster reset, keeping the data,
  # and exits once etcd runs as that member (k3s pkg/etcd/etcd.go, Reset: MemberUpdate).
  echo "etcd on $NODE_NAME records an earlier host's address ($(cat "$ETCD_ADDRESS_MARKER")); resetting it"
  systemctl stop k3s 2>/dev/null || true
  if ! timeout "$RESET_TIMEOUT_SECONDS" "$K3S_BIN" server --cluster-reset > "$work_dir/reset.log" 2>&1; then
    echo "the etcd address reset on $NODE_NAME failed or took over ${RESET_TIMEOUT_SECONDS}s; k3s was not started." \
      "Its output: $(tail -n 5 "$work_dir/reset.log")" >&2
    exit 1
  fi
  rm -f "$ETCD_ADDRESS_MARKER"
  systemctl start --no-block k3s
fi

wait_for_node_on_release "$READY_TIMEOUT_SECONDS" "$K3S_VERSION"
# Ready means a voting member: k3s serves only once its etcd member is no learner (pkg/etcd/etcd.go,
# Test). A member under another name than the one removed is this host's own: the rejoin is done.
# The join's `server` and `token-file` go from the config with the record: k3s reads them only
# to join while its etcd holds no data, and skips that once it does (k3s pkg/cluster/bootstrap.go,
# shouldBootstrapLoad: "bootstrap already complete and initialized"), so the running k3s is not
# restarted; the config then is the program's again, and the next install finds it unchanged.
if [ -f "$REJOIN_RECORD" ] && [ -d "$ETCD_DIR/member/wal" ] \
  && [ "$(cat "$ETCD_DIR/name" 2>/dev/null)" != "$(head -n 1 "$REJOIN_RECORD")" ]; then
  base64 -d <<< "$K3S_CONFIG_B64" > "$work_dir/config.yaml"
  install -m 0600 "$work_dir/config.yaml" "$K3S_CONFIG_DIR/config.yaml"
  rm -f "$REJOIN_RECORD"
  echo "$NODE_NAME rejoined etcd as member $(cat "$ETCD_DIR/name")"
fi
echo "node $NODE_NAME is Ready on k3s $K3S_VERSION"
