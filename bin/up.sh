#!/usr/bin/env bash
# `make up`, `make preview` and `make destroy`: run that Pulumi CLI command (the first argument,
# default up) on the stack named by STACK (default dev), after the same checks.
# Stops early, with the command that fixes it, when a prerequisite is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTION="${1:-up}"
STACK="${STACK:-dev}"

fail() {
  echo "make $ACTION: $1" >&2
  echo "  fix: $2" >&2
  exit 1
}

case "$ACTION" in
  up | preview | destroy) ;;
  *) fail "unknown action '$ACTION'" "use make up, make preview or make destroy" ;;
esac

[ -f "Pulumi.$STACK.yaml" ] || fail "there is no stack file Pulumi.$STACK.yaml" \
  "copy Pulumi.dev.yaml to Pulumi.$STACK.yaml and edit it, or run with STACK=dev"

command -v pulumi >/dev/null 2>&1 || fail "the Pulumi CLI is not installed" \
  "curl -fsSL https://get.pulumi.com | sh   (then open a new shell)"

aws_credentials_present() {
  [ -n "${AWS_ACCESS_KEY_ID:-}" ] || [ -n "${AWS_PROFILE:-}" ] || [ -n "${AWS_WEB_IDENTITY_TOKEN_FILE:-}" ] ||
    [ -f "${AWS_SHARED_CREDENTIALS_FILE:-$HOME/.aws/credentials}" ] || [ -f "${AWS_CONFIG_FILE:-$HOME/.aws/config}" ]
}
aws_credentials_present || fail "no AWS credentials found (environment, AWS_PROFILE or ~/.aws)" \
  "aws configure   (or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"

# The virtualenv (the program's and the policy pack's Python) after the checks above, which need
# none of it: building it takes seconds on a fresh clone. make's -s hides its "is up to date".
"${MAKE:-make}" -s --no-print-directory "${VENV_TARGET:-.venv/.installed}"

# Without a login, use the local file backend: no Pulumi Cloud account needed.
if ! pulumi whoami >/dev/null 2>&1; then
  echo "make $ACTION: not logged in to a Pulumi backend; using the local file backend (~/.pulumi)"
  pulumi login --local
  if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    echo "make $ACTION: the local backend encrypts secrets with a passphrase; Pulumi will ask for it." \
      "Set PULUMI_CONFIG_PASSPHRASE to skip the prompt, and keep it: it is needed to read the kubeconfig."
  fi
fi

pulumi stack select --create "$STACK"

# destroy works from the stack's state alone; up and preview run the program, which needs adminCidrs.
if [ "$ACTION" = destroy ]; then
  exec pulumi destroy --stack "$STACK"
fi

admin_cidrs="$(pulumi config get adminCidrs --stack "$STACK" 2>/dev/null || true)"
if [ -z "$admin_cidrs" ] || [ "$admin_cidrs" = "[]" ]; then
  # The address detection (checkip.amazonaws.com, an IPv4 or a failure) is deploy-access.sh's.
  my_ip="$(bin/deploy-access.sh address)" ||
    fail "adminCidrs is not set and your public IPv4 could not be detected (see above)" \
      "pulumi config set --stack $STACK --path 'adminCidrs[0]' <your-public-ip>/32"
  pulumi config set --stack "$STACK" --path 'adminCidrs[0]' "$my_ip/32"
  echo "make $ACTION: set adminCidrs to [$my_ip/32] (your public IPv4) for SSH and the Kubernetes API"
fi

# An up from an address outside adminCidrs (a new home IP, a train) could not reach SSH or the
# Kubernetes API, which the update needs: open both to this machine for this run only, in a copy of
# the stack file, and close them again after it, also when it fails or is interrupted.
# A preview needs no opening (docs/environments.md, Previewing in pull requests).
if [ "$ACTION" = up ]; then
  this_address="$(bin/deploy-access.sh address)"
  admin_cidrs="$(pulumi config get adminCidrs --stack "$STACK")"
  if ! bin/deploy-access.sh covers "$this_address" "$admin_cidrs"; then
    echo "make up: your address $this_address is outside adminCidrs: opening SSH and the Kubernetes API" \
      "to $this_address/32 for this run, and closing them again after it"
    run_config="$(mktemp)"
    # shellcheck disable=SC2329 # run by the trap below
    close_after_run() {
      rm -f "$run_config"
      echo "make up: closing SSH and the Kubernetes API to $this_address again (an update of the firewall rules alone)"
      bin/deploy-access.sh close "$STACK"
    }
    trap close_after_run EXIT
    bin/deploy-access.sh open "$STACK" "$this_address" "$run_config"
    pulumi up --stack "$STACK" --config-file "$run_config" --policy-pack policy
    exit 0
  fi
fi

# The policy pack (policy/) runs in .venv, beside the program, on every preview and update.
pulumi "$ACTION" --stack "$STACK" --policy-pack policy
