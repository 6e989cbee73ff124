# shellcheck shell=bash
# Security updates on the node, as shell functions: unattended-upgrades, installed when the image
# lacks it, from the distribution's security pocket only, its own reboot off. Every blueprint is
# Ubuntu or Debian (components/node_updates.py). The settings come in SECURITY_UPDATES_CONF_B64,
# rendered in Python; they are apt configuration, read by the apt-daily timers both distributions
# enable, so nothing restarts here and k3s is never touched.
# A library, not a script: the install scripts load it from SECURITY_UPDATES_LIB_B64 (components/k3s.py).
# It reads the script's APT_CONF_DIR (overridable for the tests), SECURITY_UPDATES_CONF_B64 and
# SECURITY_UPDATES_CONF_NAME (the file's name there).

# apt waits this long for the dpkg lock (apt-daily may hold it at first boot), and an apt-get run
# is cut off after APT_TIMEOUT_SECONDS.
APT_LOCK_TIMEOUT_SECONDS="${APT_LOCK_TIMEOUT_SECONDS:-120}"
APT_TIMEOUT_SECONDS="${APT_TIMEOUT_SECONDS:-600}"

# Installs unattended-upgrades if missing, then writes its settings to
# $APT_CONF_DIR/$SECURITY_UPDATES_CONF_NAME through directory $1. Fails, saying what to check, when the package cannot be installed.
configure_security_updates() {
  local staged="$1/security-updates.conf" placed="$APT_CONF_DIR/$SECURITY_UPDATES_CONF_NAME"
  if ! dpkg-query -W -f '${Status}' unattended-upgrades 2>/dev/null | grep -q 'install ok installed'; then
    echo "installing unattended-upgrades (security updates)"
    if ! timeout "$APT_TIMEOUT_SECONDS" apt-get -q -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT_SECONDS" update ||
      ! DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT_SECONDS" \
        apt-get -q -y -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT_SECONDS" install unattended-upgrades; then
      echo "could not install unattended-upgrades (apt-get failed or took over ${APT_TIMEOUT_SECONDS}s); k3s was" \
        "not changed. Check the node's apt: sudo apt-get install unattended-upgrades" >&2
      return 1
    fi
  fi
  mkdir -p "$APT_CONF_DIR"
  base64 -d <<< "$SECURITY_UPDATES_CONF_B64" > "$staged"
  install -m 0644 "$staged" "$placed"
}
