# shellcheck shell=bash
# The k3s release on one node, as shell functions: the one installed, the version-skew rule for
# moving to another (Kubernetes moves one minor at a time and never downgrades,
# kubernetes.io/releases/version-skew-policy, and k3s follows it), the install of a release, and
# the kernel settings its kubelet needs before it starts.
# A library, not a script: the node scripts load it from UPGRADE_PATH_LIB_B64 (components/k3s.py).
# It reads the script's K3S_BIN, SYSCTL_DIR and KUBELET_SYSCTL_CONF_B64.

# The release at $K3S_BIN as it reports itself (v1.36.1+k3s1); nothing when none is installed.
installed_version() {
  if [ -x "$K3S_BIN" ]; then
    "$K3S_BIN" --version | awk 'NR == 1 { print $3 }'
  fi
}

# v1.36.1+k3s1 -> "1 36 1 1"; fails on anything else.
release_fields() {
  local release='^v([0-9]+)\.([0-9]+)\.([0-9]+)\+k3s([0-9]+)$'
  [[ "$1" =~ $release ]] || return 1
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]} ${BASH_REMATCH[4]}"
}

# Fails, saying why and what to do, unless moving from $1 (installed) to $2 keeps the rule.
# Nothing installed, or $2 itself, is no move.
check_upgrade_path() {
  local installed="$1" target="$2" fields
  local -a old new
  if [ -z "$installed" ] || [ "$installed" = "$target" ]; then
    return 0
  fi
  if ! fields="$(release_fields "$installed")"; then
    echo "refusing to change k3s: the node reports $installed, not a k3s release; check the node" >&2
    return 1
  fi
  read -r -a old <<< "$fields"
  if ! fields="$(release_fields "$target")"; then
    echo "refusing to install $target: not a k3s release of the form vX.Y.Z+k3sN" >&2
    return 1
  fi
  read -r -a new <<< "$fields"
  local i
  for i in 0 1 2 3; do
    if [ "${new[i]}" -gt "${old[i]}" ]; then break; fi
    if [ "${new[i]}" -lt "${old[i]}" ]; then
      echo "refusing to install k3s $target: it is older than the installed $installed, and Kubernetes does not" \
        "support downgrades (kubernetes.io/releases/version-skew-policy). Keep k3sVersion at $installed or newer;" \
        "to go back, restore a snapshot taken before the upgrade." >&2
      return 1
    fi
  done
  if [ "${new[0]}" -gt "${old[0]}" ] || [ "${new[1]}" -gt $((old[1] + 1)) ]; then
    echo "refusing to install k3s $target: it is more than one minor ahead of the installed $installed, and" \
      "Kubernetes upgrades one minor at a time (kubernetes.io/releases/version-skew-policy). Upgrade to the newest" \
      "v${old[0]}.$((old[1] + 1)).x+k3sN release first, then go on one minor at a time." >&2
    return 1
  fi
}

# Installs release $1 as $2 (server or agent) with the install.sh of the release's own tag, not
# the moving get.k3s.io, downloaded into directory $3. install.sh verifies the binary against the
# release's sha256 list.
install_release() {
  local release="$1" role="$2" installer="$3/install.sh"
  curl -sfL --retry 5 --retry-connrefused -o "$installer" \
    "https://raw.githubusercontent.com/k3s-io/k3s/${release/+/%2B}/install.sh"
  INSTALL_K3S_VERSION="$release" INSTALL_K3S_EXEC="$role" sh "$installer"
}

# protect-kernel-defaults (in config.yaml) makes the kubelet exit unless the kernel has the values
# in KUBELET_SYSCTL_CONF_B64 (components/k3s.py, KUBELET_SYSCTLS): sets them now, and for every
# boot, before k3s (re)starts. Written through directory $1. Fails, saying so, when they cannot be set.
apply_kubelet_sysctls() {
  local staged="$1/90-kubelet.conf" placed="$SYSCTL_DIR/90-kubelet.conf"
  mkdir -p "$SYSCTL_DIR"
  base64 -d <<< "$KUBELET_SYSCTL_CONF_B64" > "$staged"
  install -m 0644 "$staged" "$placed"
  if ! sysctl -q -p "$placed"; then
    echo "could not apply the kernel settings in $placed (sysctl -p failed); k3s was not started," \
      "as its kubelet would exit on protect-kernel-defaults. Check them with: sysctl -p $placed" >&2
    return 1
  fi
}
