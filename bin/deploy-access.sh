#!/usr/bin/env bash
# SSH (22) and the Kubernetes API (6443) for the machine running a `pulumi up`, for that run only:
# the update needs both (the remote commands, the Kubernetes provider), and the firewall opens them
# to adminCidrs alone. Used by `make up` (bin/up.sh) and the deploy workflow (.github/workflows/deploy.yml).
#
#   bin/deploy-access.sh address                     this machine's public IPv4
#   bin/deploy-access.sh covers ADDRESS CIDRS        succeeds when one of CIDRS (JSON, as `pulumi config get` prints them) holds ADDRESS
#   bin/deploy-access.sh open STACK ADDRESS FILE     writes FILE: Pulumi.STACK.yaml plus deployCidrs [ADDRESS/32], for `pulumi up --config-file FILE`
#   bin/deploy-access.sh open-firewalls STACK ADDRESS FILE [FLAG...]   writes FILE as open does, then updates the firewall rules alone from it
#   bin/deploy-access.sh close STACK [FLAG...]       updates the firewall rules alone, from Pulumi.STACK.yaml (no deployCidrs)
#
# The run's address goes into a copy of the stack file, never into the stack file itself: `pulumi up
# --config FLAG` saves what it is given into the stack file (pulumi/pulumi pkg/cmd/pulumi/operations/io.go,
# parseAndSaveConfigArray), and so does `pulumi config set`; `--config-file` reads the whole config from
# the given file instead (pkg/cmd/pulumi/stack/io.go, LoadProjectStack).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every node's firewall, one InstancePublicPorts per instance, as a --target glob: `**` matches
# anything, `*` anything but a colon (pulumi/pulumi pkg/resource/deploy/deployment.go, UrnTargets.getMatcher).
FIREWALLS='urn:pulumi:*::*::**aws:lightsail/instancePublicPorts:InstancePublicPorts::*'
IPV4='^[0-9]{1,3}(\.[0-9]{1,3}){3}$'

fail() {
  echo "deploy access: $1" >&2
  echo "  fix: $2" >&2
  exit 1
}

# Writes file $3: Pulumi.$1.yaml plus deployCidrs [$2/32].
write_run_config() {
  local stack="$1" address="$2" file="$3"
  [[ "$address" =~ $IPV4 ]] || fail "'$address' is not an IPv4 address" "pass this machine's public IPv4"
  cp "Pulumi.$stack.yaml" "$file"
  pulumi config set --stack "$stack" --config-file "$file" --path 'deployCidrs[0]' "$address/32"
}

ipv4_number() {
  local IFS=.
  local a b c d
  read -r a b c d <<<"$1"
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

case "${1:-}" in
  address)
    address="$(curl -fsS --max-time 10 https://checkip.amazonaws.com | tr -d '[:space:]')" ||
      fail "this machine's public IPv4 could not be read from checkip.amazonaws.com" \
        "check the network, or add your public IPv4 to adminCidrs: pulumi config set --path 'adminCidrs[1]' <your public IPv4>/32"
    [[ "$address" =~ $IPV4 ]] ||
      fail "checkip.amazonaws.com answered '$address', not an IPv4 address" \
        "check the network (a captive portal or proxy answers instead), then run again"
    echo "$address"
    ;;
  covers)
    address="$(ipv4_number "$2")"
    for cidr in $(printf '%s' "$3" | grep -oE '[0-9]+(\.[0-9]+){3}(/[0-9]+)?'); do
      bits=32
      [[ "$cidr" == */* ]] && bits="${cidr#*/}"
      mask=$(((0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF))
      network="$(ipv4_number "${cidr%/*}")"
      if (((address & mask) == (network & mask))); then
        exit 0
      fi
    done
    exit 1
    ;;
  open)
    write_run_config "$2" "$3" "$4"
    ;;
  open-firewalls)
    stack="$2" file="$4"
    write_run_config "$stack" "$3" "$file"
    shift 4
    # As close does, the firewalls alone (see there), from the copy with deployCidrs.
    pulumi up --stack "$stack" --config-file "$file" --yes --target "$FIREWALLS" --policy-pack policy "$@" ||
      fail "the firewall update that opens SSH and the Kubernetes API to this run's address failed (it may be half done)" \
        "bin/deploy-access.sh close $stack   (an update of the firewall rules alone)"
    ;;
  close)
    stack="$2"
    shift 2
    # Without deployCidrs (the stack file's own config), --target updates the firewalls alone. Every
    # other resource keeps its recorded state without a Check or Diff by its provider (no SSH, no call
    # to the Kubernetes API), and without --target-dependents nothing that depends on a firewall runs
    # (pulumi/pulumi pkg/resource/deploy/step_generator.go: generateSteps stubs Check and emits a
    # SameStep for an untargeted resource; isTargetedForUpdate adds dependents only with TargetDependents).
    pulumi up --stack "$stack" --yes --target "$FIREWALLS" --policy-pack policy "$@" ||
      fail "SSH and the Kubernetes API may still be open to this run's address" \
        "bin/deploy-access.sh close $stack   (an update of the firewall rules alone)"
    ;;
  *)
    fail "unknown command '${1:-}'" "bin/deploy-access.sh address | covers | open | open-firewalls | close (see the script's header)"
    ;;
esac
