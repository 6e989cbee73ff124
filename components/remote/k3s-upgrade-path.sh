# shellcheck shell=bash
# The version-skew rule for one node, as shell functions: Kubernetes moves one minor at a time
# and never downgrades (kubernetes.io/releases/version-skew-policy), and k3s follows it.
# A library, not a script: the node scripts load it from UPGRADE_PATH_LIB_B64 (components/k3s.py).

# v1.36.1+k3s1 -> "1 36 1 1"; fails on anything else.
release_fields() {
  local release='^v([0-9]+)\.([0-9]+)\.([0-9]+)\+k3s([0-9]+)$'
  [[ "$1" =~ $release ]] || return 1
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]} ${BASH_REMATCH[4]}"
}

# Fails, saying why and what to do, unless moving from $1 (installed) to $2 keeps the rule.
check_upgrade_path() {
  local installed="$1" target="$2" fields
  local -a old new
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
