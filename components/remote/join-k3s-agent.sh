#!/usr/bin/env bash
# Joins this host to a k3s cluster as an agent, or upgrades it in place.
# Runs as root on the agent (`sudo bash -s`). components/k3s_agent.py feeds it on stdin,
# after shell assignments of K3S_VERSION, K3S_CONFIG_B64 (k3s' config.yaml with the
# server's private URL, the agent token, the node name and the kubelet's settings, base64-encoded),
# KUBELET_SYSCTL_CONF_B64 (the kernel values protect-kernel-defaults needs),
# UPGRADE_PATH_LIB_B64 (k3s-upgrade-path.sh), K3S_REGISTRIES_B64 (registries.yaml, empty without
# private registries) and REGISTRIES_LIB_B64 (k3s-registries.sh), SECURITY_UPDATES_LIB_B64 with
# SECURITY_UPDATES_CONF_B64 and _NAME (unattended-upgrades, security-updates.sh). The token and the
# registries' passwords live only in those root-only files, never on a command line.
# Safe to re-run: with the same version and config it changes nothing. Like every
# node, it refuses a downgrade or a skipped minor before touching anything.
# Whether the node became Ready is checked on a server (node-membership.sh ready),
# which also sees the node password a re-used node name must clear first.
set -euo pipefail

: "${K3S_VERSION:?K3S_VERSION is required, e.g. v1.36.1+k3s1}"
: "${K3S_CONFIG_B64:?K3S_CONFIG_B64 is required: the base64 of the k3s config.yaml to write}"
: "${UPGRADE_PATH_LIB_B64:?UPGRADE_PATH_LIB_B64 is required: the base64 of k3s-upgrade-path.sh}"
: "${SECURITY_UPDATES_LIB_B64:?SECURITY_UPDATES_LIB_B64 is required: the base64 of security-updates.sh}"
: "${SECURITY_UPDATES_CONF_B64:?SECURITY_UPDATES_CONF_B64 is required: the unattended-upgrades settings}"
: "${SECURITY_UPDATES_CONF_NAME:?SECURITY_UPDATES_CONF_NAME is required: their file name in apt.conf.d}"
: "${KUBELET_SYSCTL_CONF_B64:?KUBELET_SYSCTL_CONF_B64 is required: the kernel settings protect-kernel-defaults needs}"
: "${K3S_REGISTRIES_B64?K3S_REGISTRIES_B64 is required: the base64 of registries.yaml, empty for none}"
: "${REGISTRIES_LIB_B64:?REGISTRIES_LIB_B64 is required: the base64 of k3s-registries.sh}"
K3S_CONFIG_DIR="${K3S_CONFIG_DIR:-/etc/rancher/k3s}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
SYSCTL_DIR="${SYSCTL_DIR:-/etc/sysctl.d}"
APT_CONF_DIR="${APT_CONF_DIR:-/etc/apt/apt.conf.d}"
SERVICE=k3s-agent

work_dir="$(mktemp -d)"
trap 'rm -rf "$work_dir"' EXIT

# The release on the node (installed_version, check_upgrade_path, install_release) and the
# kubelet's kernel settings (apply_kubelet_sysctls), shared with the servers' install script.
# shellcheck source=/dev/null
source <(base64 -d <<< "$UPGRADE_PATH_LIB_B64")
# The private registries' file (place_registries), shared with the servers' install script.
# shellcheck source=/dev/null
source <(base64 -d <<< "$REGISTRIES_LIB_B64")

# unattended-upgrades, security pocket only, its reboot off (configure_security_updates), shared
# by every node's install.
# shellcheck source=/dev/null
source <(base64 -d <<< "$SECURITY_UPDATES_LIB_B64")

current_version="$(installed_version)"
check_upgrade_path "$current_version" "$K3S_VERSION"

# The kernel values protect-kernel-defaults needs, set before k3s-agent (re)starts, as on a server.
apply_kubelet_sysctls "$work_dir"

# Security updates from the distribution's security pocket, no automatic reboot (security-updates.sh).
configure_security_updates "$work_dir"

mkdir -p "$K3S_CONFIG_DIR"
base64 -d <<< "$K3S_CONFIG_B64" > "$work_dir/config.yaml"
config_changed=true
if [ -f "$K3S_CONFIG_DIR/config.yaml" ] && cmp -s "$work_dir/config.yaml" "$K3S_CONFIG_DIR/config.yaml"; then
  config_changed=false
fi
install -m 0600 "$work_dir/config.yaml" "$K3S_CONFIG_DIR/config.yaml"
# The registries' credentials, root-only; k3s-agent reads them only when it starts, as below.
place_registries "$work_dir" "$(head -n 1 "$work_dir/config.yaml")"

if [ "$current_version" != "$K3S_VERSION" ]; then
  # install.sh writes the k3s-agent unit and (re)starts it. Agent units are Type=exec
  # (k3s install.sh, setup_env), so the start does not wait for the join.
  echo "installing k3s agent $K3S_VERSION (installed: ${current_version:-none})"
  install_release "$K3S_VERSION" agent "$work_dir"
elif [ "$config_changed" = true ]; then
  echo "k3s agent $K3S_VERSION is installed; config or registries changed, restarting $SERVICE"
  systemctl restart "$SERVICE"
elif ! systemctl is-active --quiet "$SERVICE"; then
  echo "k3s agent $K3S_VERSION is installed but not running; starting $SERVICE"
  systemctl start "$SERVICE"
else
  echo "k3s agent $K3S_VERSION is installed with this config; nothing to change"
fi
