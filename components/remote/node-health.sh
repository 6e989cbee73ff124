#!/usr/bin/env bash
# What `make health` (tools/health.py) reads on one node, one line each: its k3s certificates
# (`k3s certificate check --output json`, base64 on one line), whether it waits for a reboot
# (and for which packages), and, with LIST_SNAPSHOTS=true on the first server, the etcd snapshots
# in the backup bucket. Read-only; runs as root (`sudo bash -s`), its settings on stdin.
# A read that fails stops it with an error naming the check, never a silent "nothing to report".
set -euo pipefail

LIST_SNAPSHOTS="${LIST_SNAPSHOTS:-false}"
K3S_BIN="${K3S_BIN:-/usr/local/bin/k3s}"
# Written by a package that needs a reboot (Ubuntu's update-notifier-common; on Debian,
# unattended-upgrades' own kernel hook), listing the packages in .pkgs; what kured looks for too.
REBOOT_REQUIRED="${REBOOT_REQUIRED:-/var/run/reboot-required}"
READ_TIMEOUT_SECONDS="${READ_TIMEOUT_SECONDS:-60}"

if ! certificates="$(timeout "$READ_TIMEOUT_SECONDS" "$K3S_BIN" certificate check --output json)"; then
  echo "certificates: k3s certificate check failed or took over ${READ_TIMEOUT_SECONDS}s" \
    "(try: sudo k3s certificate check --output table)" >&2
  exit 1
fi
echo "certificates $(printf '%s' "$certificates" | base64 | tr -d '\n')"

if [ -e "$REBOOT_REQUIRED" ]; then
  packages=""
  if [ -f "$REBOOT_REQUIRED.pkgs" ]; then packages="$(sort -u "$REBOOT_REQUIRED.pkgs" | tr '\n' ' ')"; fi
  echo "reboot-required yes ${packages% }"
else
  echo "reboot-required no"
fi

if [ "$LIST_SNAPSHOTS" = true ]; then
  # Name Location Size Created; the bucket's rows are s3:// (restore-etcd-snapshot.sh reads them alike).
  if ! listing="$(timeout "$READ_TIMEOUT_SECONDS" "$K3S_BIN" etcd-snapshot ls)"; then
    echo "snapshots: k3s etcd-snapshot ls failed or took over ${READ_TIMEOUT_SECONDS}s" \
      "(try: sudo k3s etcd-snapshot ls; journalctl -u k3s)" >&2
    exit 1
  fi
  awk '$2 ~ /^s3:\/\// { print "snapshot", $1, $4 }' <<< "$listing"
  echo "snapshots listed"
fi
