# shellcheck shell=bash
# The node's private registries, as a shell function: k3s' /etc/rancher/k3s/registries.yaml, which
# k3s reads only when it starts (docs.k3s.io/installation/private-registry), so a change needs a
# restart of k3s on that node, which the script that loads this makes.
# A library, not a script: the node scripts load it from REGISTRIES_LIB_B64 (components/k3s.py).
# It reads the script's K3S_CONFIG_DIR and K3S_REGISTRIES_B64 (the file, base64; empty: none),
# and sets its config_changed.

# Writes the file from K3S_REGISTRIES_B64 root-only (0600: it holds the registries' passwords),
# staged in directory $1. With no registries it removes a file this program wrote before, whose
# first line is $2 (the header of every file it writes, as its config.yaml's first line), and
# leaves one written by hand alone. Sets config_changed=true when the file on the node changed, so
# the script restarts k3s as it does for a changed config.yaml.
# shellcheck disable=SC2034 # config_changed is the loading script's, which reads it
place_registries() {
  local staged="$1/registries.yaml" placed="$K3S_CONFIG_DIR/registries.yaml" header="$2"
  base64 -d <<< "$K3S_REGISTRIES_B64" > "$staged"
  if [ -s "$staged" ]; then
    if [ ! -f "$placed" ] || ! cmp -s "$staged" "$placed"; then
      config_changed=true
    fi
    install -m 0600 "$staged" "$placed"
  elif [ -f "$placed" ] && [ "$(head -n 1 "$placed")" = "$header" ]; then
    rm -f "$placed"
    config_changed=true
  fi
}
