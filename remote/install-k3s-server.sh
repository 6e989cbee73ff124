#!/usr/bin/env bash
# Installs k3s as a server, or upgrades it in place, then waits until the node is Ready.
# Runs as root on the node, fed on stdin by components/k3s.py:
#   sudo env K3S_VERSION=v1.36.1+k3s1 NODE_NAME=lightsail-k3s-dev TLS_SANS=203.0.113.10 bash -s
# Safe to re-run: with the same version and config it changes nothing. It never
# uninstalls, so cluster data in /var/lib/rancher/k3s survives upgrades.
set -euo pipefail

: "${K3S_VERSION:?K3S_VERSION is required, e.g. v1.36.1+k3s1}"
: "${NODE_NAME:?NODE_NAME is required}"
: "${TLS_SANS:?TLS_SANS is required: comma-separated addresses the API certificate must name}"
READY_TIMEOUT_SECONDS="${READY_TIMEOUT_SECONDS:-300}"
POLL_INTERVAL_SECONDS="${POLL_INTERVAL_SECONDS:-5}"
K3S_CONFIG_DIR="${K3S_CONFIG_DIR:-/etc/rancher/k3s}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

# k3s reads flags from config.yaml; the install script rewrites the service's own
# flags on every run, so config belongs here, not in INSTALL_K3S_EXEC.
render_config() {
  local san
  local -a sans
  echo "# Written by lightsail-k3s on every pulumi up; edits here are overwritten."
  echo "node-name: \"$NODE_NAME\""
  echo 'write-kubeconfig-mode: "0600"'
  # Kubernetes Secrets (the apps' secretEnv values) are encrypted in the datastore.
  echo 'secrets-encryption: true'
  echo "tls-san:"
  IFS=',' read -r -a sans <<< "$TLS_SANS"
  for san in "${sans[@]}"; do
    echo "  - \"$san\""
  done
}

installed_version() {
  if [ -x "$K3S_BIN" ]; then
    "$K3S_BIN" --version | awk 'NR == 1 { print $3 }'
  fi
}

node_ready() {
  [ "$("$K3S_BIN" kubectl get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = "True" ]
}

mkdir -p "$K3S_CONFIG_DIR"
render_config > "$work_dir/config.yaml"
config_changed=true
if [ -f "$K3S_CONFIG_DIR/config.yaml" ] && cmp -s "$work_dir/config.yaml" "$K3S_CONFIG_DIR/config.yaml"; then
  config_changed=false
fi
install -m 0600 "$work_dir/config.yaml" "$K3S_CONFIG_DIR/config.yaml"

current_version="$(installed_version)"
if [ "$current_version" != "$K3S_VERSION" ]; then
  # install.sh from the release tag itself, not the moving get.k3s.io; it verifies
  # the binary against the release's sha256 list.
  url="https://raw.githubusercontent.com/k3s-io/k3s/${K3S_VERSION/+/%2B}/install.sh"
  curl -sfL --retry 5 --retry-connrefused -o "$work_dir/install.sh" "$url"
  echo "installing k3s $K3S_VERSION (installed: ${current_version:-none})"
  INSTALL_K3S_VERSION="$K3S_VERSION" INSTALL_K3S_EXEC="server" sh "$work_dir/install.sh"
elif [ "$config_changed" = true ]; then
  echo "k3s $K3S_VERSION is installed; config changed, restarting k3s"
  systemctl restart k3s
elif ! systemctl is-active --quiet k3s; then
  echo "k3s $K3S_VERSION is installed but not running; starting it"
  systemctl start k3s
else
  echo "k3s $K3S_VERSION is installed with this config; nothing to change"
fi

deadline=$(($(date +%s) + READY_TIMEOUT_SECONDS))
until node_ready; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "node $NODE_NAME was not Ready after ${READY_TIMEOUT_SECONDS}s; see: journalctl -u k3s" >&2
    exit 1
  fi
  sleep "$POLL_INTERVAL_SECONDS"
done
echo "node $NODE_NAME is Ready on k3s $K3S_VERSION"
