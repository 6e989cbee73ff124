#!/usr/bin/env bash
# Lightsail launch script (the instance's user_data), run once as root by cloud-init at the
# end of first boot: installs the SSH host key the stack generated, so every SSH connection
# from Pulumi can pin it (components/host.py). host.py puts HOST_KEY_B64 (the private key,
# base64) and HOST_PUBLIC_KEY right after this header; cloud-init keeps the whole script
# root-only on the node, and the instance metadata service serves it to local processes.
set -euo pipefail

: "${HOST_KEY_B64:?HOST_KEY_B64 is required: the base64 of the ed25519 host private key}"
: "${HOST_PUBLIC_KEY:?HOST_PUBLIC_KEY is required: the host public key, OpenSSH format}"
SSH_DIR="${SSH_DIR:-/etc/ssh}"

umask 077
base64 -d <<< "$HOST_KEY_B64" > "$SSH_DIR/ssh_host_ed25519_key.new"
mv -f "$SSH_DIR/ssh_host_ed25519_key.new" "$SSH_DIR/ssh_host_ed25519_key"
printf '%s\n' "$HOST_PUBLIC_KEY" > "$SSH_DIR/ssh_host_ed25519_key.pub"
chmod 0600 "$SSH_DIR/ssh_host_ed25519_key"
chmod 0644 "$SSH_DIR/ssh_host_ed25519_key.pub"

# A running sshd keeps the host keys it loaded; under socket activation (Ubuntu 24.04)
# each connection starts a fresh sshd, which reads the new key anyway.
for unit in ssh.service sshd.service; do
  if systemctl is-active --quiet "$unit"; then
    systemctl restart "$unit"
  fi
done
echo "installed the stack's SSH host key"
