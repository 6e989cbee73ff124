#!/usr/bin/env bash
# Waits until cloud-init has finished first boot on a fresh Lightsail instance,
# so the k3s install does not race first-boot package work for apt/dpkg locks.
# Runs as the SSH user, fed on stdin: bash -s < wait-for-boot.sh
set -euo pipefail

BOOT_TIMEOUT_SECONDS="${BOOT_TIMEOUT_SECONDS:-600}"

if ! command -v cloud-init >/dev/null 2>&1; then
  echo "cloud-init is not installed; nothing to wait for"
  exit 0
fi

status=0
timeout "$BOOT_TIMEOUT_SECONDS" cloud-init status --wait >/dev/null || status=$?
case "$status" in
  0) echo "cloud-init finished" ;;
  # cloud-init 23.4+ exits 2 when it finished with recoverable errors.
  2) echo "cloud-init finished with recoverable errors; continuing" >&2 ;;
  124)
    echo "cloud-init was still running after ${BOOT_TIMEOUT_SECONDS}s; see /var/log/cloud-init-output.log" >&2
    exit 1
    ;;
  *)
    echo "cloud-init failed (exit $status); see /var/log/cloud-init-output.log" >&2
    exit "$status"
    ;;
esac
