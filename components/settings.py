"""Stack settings: read once from Pulumi config, validated, typed.

Every rule raises ConfigError before any resource is declared, naming the key,
the bad value and the fix. ConfigError is a pulumi.RunError, so the CLI prints
the message without a Python traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pulumi
import pulumi.runtime.config as runtime_config
import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from .alarms import AlarmSettings, parse_alarm_settings
from .app_settings import AppSettings, parse_app_settings
from .catalog import (
    BUNDLES,
    K3S_AGENT_MIN_RAM_GB,
    K3S_AGENT_MIN_VCPUS,
    K3S_SERVER_MIN_RAM_GB,
    K3S_SERVER_MIN_VCPUS,
    LIGHTSAIL_ZONES,
    Bundle,
    agent_capable_bundle_ids,
    server_capable_bundle_ids,
)
from .charts import ChartSettings, parse_charts
from .consumers import ConsumerSpec, parse_consumers
from .cost import LineItem, cost_breakdown
from .errors import PROJECT, STACK_FILE_VARIABLE, ConfigError, StackFileError
from .reboots import REBOOT_WINDOW_BY_DEFAULT, RebootWindow, kured_chart, parse_reboot_window
from .registries import Registry, parse_registries, set_fix

# libyaml's parser where PyYAML has it (its wheels do): the pure-Python one took 40% of a
# mock-engine run. Both build the same values; tools/cliconfig.py reads YAML through it too.
if yaml.__with_libyaml__:
    from yaml import CSafeLoader as SafeYamlLoader
else:
    from yaml import SafeLoader as SafeYamlLoader

PROJECT_DIR = Path(__file__).resolve().parent.parent

BLUEPRINTS = ("ubuntu_22_04", "ubuntu_24_04", "debian_12")

# [0-9], not \d: \d also matches other scripts' digits (e.g. Arabic-Indic), which no release tag holds.
K3S_VERSION_PATTERN = re.compile(r"v(?P<major>[0-9]+)\.(?P<minor>[0-9]+)\.[0-9]+\+k3s[0-9]+")
K3S_CHANNELS = ("latest", "stable", "testing")
# The Kubernetes minors this project is tested with: the pinned default (v1.36.1+k3s1) and the two
# minors before it, the three that upstream Kubernetes maintains at a time. Every object the stack
# declares is validated against the kubernetes-validate schema of each of them (tests/test_apps.py).
# Others need allowUntestedK3sVersion: true.
TESTED_K3S_MINORS = range(34, 37)
SNAPSHOT_TIME_PATTERN = re.compile(r"([01][0-9]|2[0-3]):00")
# The shortest admin prefix allowed, as a share of IPv4: all CIDRs together may cover at most one /8
# (1/256 of the address space). More than any team's offices and VPN, far less than "everyone".
ADMIN_CIDRS_SHORTEST_PREFIX = 8
ADMIN_CIDRS_MAX_ADDRESSES = 2 ** (32 - ADMIN_CIDRS_SHORTEST_PREFIX)
# Ranges no admin can connect from: the IANA IPv4 Special-Purpose Address Registry entries whose
# "Globally Reachable" is False (RFC 6890 and updates; www.iana.org/assignments/iana-ipv4-special-registry),
# the deprecated 6to4 relay range (RFC 7526), and multicast (RFC 5771). 192.0.0.9 and 192.0.0.10 are
# global exceptions inside 192.0.0.0/24 that no admin workstation has. Private, shared (CGNAT) and
# documentation ranges never reach the node's firewall.
NON_GLOBAL_IPV4 = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
BACKUPS_CHOICES = ("auto", "true", "false")
# Stacks whose name starts with this get backups unless `backups` says otherwise, and reboots in
# REBOOT_WINDOW_BY_DEFAULT unless `rebootWindow` says otherwise.
BACKUPS_BY_DEFAULT_PREFIX = "prod"
# A server's data disk (components/host.py): `dataDiskGb` is auto (on, at the default size, for
# stacks named prod*, as backups are), 0 (off) or a size in GB of at least the floor.
DATA_DISK_AUTO = "auto"
DATA_DISK_DEFAULT_GB = 40
# Holds k3s' datastore and certificates, the images containerd unpacks under
# /var/lib/rancher/k3s/agent (k3s' own and the apps'), and the local-path volumes the apps and
# Traefik's ACME store declare: the system disk of the smallest bundle, nano_3_0, is 20 GB and
# holds all of it and the OS. Our estimate, not a measurement.
DATA_DISK_MIN_GB = 20
# Five fields: minute hour day-of-month month day-of-week, as robfig/cron (which k3s uses) parses them.
CRON_FIELD_PATTERN = re.compile(r"[0-9*/,\-A-Za-z?]+")
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


@dataclass(frozen=True)
class Topology:
    """How many nodes of each role, and how agents are sized and reached."""

    server_count: int
    agent_count: int
    agent_bundle: Bundle
    agent_public_ips: bool


@dataclass(frozen=True)
class HttpsSettings:
    """The domain the apps are served under, its Lightsail DNS zone and the Let's Encrypt account."""

    domain: str
    manage_dns_zone: bool
    acme_email: str
    acme_staging: bool


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster part of the settings, checked: what the Cluster component declares (components/cluster.py).

    The stack builds it from its Settings (Settings.cluster); the multi-language Cluster parses its
    inputs into it with the same parsers (components/cluster.py, parse_cluster_args).
    """

    region: str
    availability_zone: str
    bundle: Bundle
    blueprint_id: str
    k3s_version: str
    admin_cidrs: tuple[str, ...]
    deploy_cidrs: tuple[str, ...]
    ssh_public_key: str | None
    ssh_agent_socket: str | None
    auto_snapshot_time: str | None
    protect: bool
    delete_unreachable: bool
    tags: Mapping[str, str]
    backups: BackupSettings | None
    cert_rotation: int
    topology: Topology
    alarms: AlarmSettings
    https: HttpsSettings | None
    ssh_host_keys: Mapping[str, str]
    # The private registries every node pulls from (registries): for the multi-language Cluster an
    # Output, its secret input checked once it arrives (secret_input).
    registries: pulumi.Input[Sequence[Registry]] = ()
    # GB of each server's data disk (dataDiskGb); 0: none.
    data_disk_gb: int = 0
    # Require IMDSv2 with a PUT hop limit of 1 on every instance, through the AWS CLI (components/host.py).
    require_imds_v2: bool = False

    def server_names(self, cluster_name: str) -> tuple[str, ...]:
        return server_names(cluster_name, self.topology.server_count)

    def agent_names(self, cluster_name: str) -> tuple[str, ...]:
        return agent_names(cluster_name, self.topology.agent_count)

    @property
    def generates_ssh_key(self) -> bool:
        return self.ssh_public_key is None

    @property
    def embedded_etcd(self) -> bool:
        """The one place that decides on etcd instead of SQLite: its snapshots back up the
        cluster, and several servers share their datastore through it."""
        return self.backups is not None or self.topology.server_count > 1


@dataclass(frozen=True)
class Settings:
    stack: str
    region: str
    availability_zone: str
    bundle: Bundle
    blueprint_id: str
    k3s_version: str
    admin_cidrs: tuple[str, ...]
    # The machine running this update, for this run only: beside admin_cidrs on SSH and the API.
    deploy_cidrs: tuple[str, ...]
    # Set when the stack file holds deployCidrs, which then stay open after the run.
    committed_deploy_cidrs_warning: str | None
    ssh_public_key: str | None
    ssh_agent_socket: str | None
    auto_snapshot_time: str | None
    protect: bool
    delete_unreachable: bool
    tags: Mapping[str, str]
    apps: AppSettings
    backups: BackupSettings | None
    cert_rotation: int
    topology: Topology
    alarms: AlarmSettings
    # Set when the stack serves its apps under a domain, over HTTPS.
    https: HttpsSettings | None = None
    # Node name → that node's own SSH host public key, for instances created before host keys were
    # pinned (sshHostKey and sshHostKeys); every other node gets a generated host key.
    ssh_host_keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Credentials (and mirrors) of the private registries, written to every node.
    registries: tuple[Registry, ...] = ()
    # Helm charts for k3s' helm-controller (components/charts.py), kured's among them with a window.
    charts: ChartSettings = ChartSettings()
    reboot_window: RebootWindow | None = None
    # GB of each server's data disk (dataDiskGb); 0: none.
    data_disk_gb: int = 0
    require_imds_v2: bool = False
    # The stacks that consume this one, each with a kubeconfig scoped to its namespaces.
    consumers: tuple[ConsumerSpec, ...] = ()

    @property
    def cluster_name(self) -> str:
        """Names the Cluster component, the first server's node, the kubeconfig context and the Kubernetes provider."""
        return f"{PROJECT}-{self.stack}"

    @property
    def cluster(self) -> ClusterSpec:
        """The cluster part, field for field: what the stack's Cluster component declares."""
        return ClusterSpec(
            **{field.name: getattr(self, field.name) for field in dataclasses.fields(ClusterSpec)}
        )

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the program logs before it declares anything: the apps' CPU burst, charts the
        budget counts nothing of, deployCidrs committed to the stack file."""
        return tuple(
            warning
            for warning in (
                self.apps.burst_warning,
                self.charts.uncounted_warning,
                self.committed_deploy_cidrs_warning,
            )
            if warning
        )

    @property
    def server_names(self) -> tuple[str, ...]:
        return server_names(self.cluster_name, self.topology.server_count)

    @property
    def agent_names(self) -> tuple[str, ...]:
        return agent_names(self.cluster_name, self.topology.agent_count)

    def cost_breakdown(self) -> list[LineItem]:
        """What the stack costs a month, line by line: each instance, its data disk, snapshots, the bucket."""
        topology = self.topology
        further_servers = [f"server-{n}" for n in range(2, topology.server_count + 1)]
        return cost_breakdown(
            {
                "server": self.bundle,
                **{server: self.bundle for server in further_servers},
                **{f"agent-{n}": topology.agent_bundle for n in range(1, topology.agent_count + 1)},
            },
            auto_snapshots=self.auto_snapshot_time is not None,
            backup_bucket=self.backups is not None,
            data_disks={server: self.data_disk_gb for server in ("server", *further_servers)},
        )


T = TypeVar("T")


def secret_input(raw: pulumi.Input[Any], key: str, parse: Callable[[Any], T]) -> pulumi.Output[T]:
    """A secret input of a multi-language component (registries, chartSecrets), checked by `parse`,
    the stack's parser of the key, once its value arrives; a secret Output.

    The component provider host passes a secret input as an Output (pulumi/pulumi
    sdk/python/lib/pulumi/provider/server.py, _select_value: a secret is always wrapped), whose value
    nothing can read while the component declares its children. So it is parsed in an apply, and the
    component waits for that (secret_inputs_gate): a bad value fails the component before any child
    is sent to the engine, as upgrade_checked stops the stack (components/k3s.py). A value that is
    not secret is refused, as the stack refuses these keys in plain text: it would stand in the
    caller's program and state for anyone to read. In a preview that cannot know the value yet,
    the check waits for the update, which runs it before anything else.
    """
    output = pulumi.Output.from_input(raw)

    def check(values: list[Any]) -> T:
        value, is_secret = values
        if not is_secret:
            raise ConfigError(
                key,
                "arrives in plain text, and it holds credentials",
                "pass it as a secret: pulumi.Output.secret(...) in a program, a value of "
                "`pulumi config set --secret` in Pulumi YAML (fn::secret)",
            )
        return parse(value)

    return pulumi.Output.secret(
        pulumi.Output.all(output, pulumi.Output.from_input(output.is_secret())).apply(check)
    )


def secret_inputs_gate(*checked: pulumi.Output[Any]) -> pulumi.ResourceOptions:
    """Options that hold a component until its secret inputs passed their checks (secret_input)."""
    return pulumi.ResourceOptions(depends_on=pulumi.Output.all(*checked).apply(lambda _: []))


def managed_namespaces(apps: AppSettings, charts: ChartSettings) -> tuple[str, ...]:
    """The namespaces this stack creates and keeps its policies on: the apps' and each chart's (kured's
    among them), the one list that consumers may be scoped to (components/consumers.py) and that gets
    the egress policy (components/network_policy.py)."""
    return (apps.namespace, *charts.namespaces)


def parse_stack_consumers(
    raw: Any, apps: AppSettings, charts: ChartSettings
) -> tuple[ConsumerSpec, ...]:
    """`consumers`, checked against the namespaces the stack manages, never one that admits
    privileged pods (kured's)."""
    return parse_consumers(
        raw,
        managed_namespaces(apps, charts),
        privileged_namespaces=[
            namespace for namespace, level in charts.namespaces.items() if level == "privileged"
        ],
    )


def server_names(cluster_name: str, count: int) -> tuple[str, ...]:
    """The servers' node names, which also name their resources: the first is the cluster's name."""
    return (cluster_name, *(f"{cluster_name}-server-{number}" for number in range(2, count + 1)))


def agent_names(cluster_name: str, count: int) -> tuple[str, ...]:
    return tuple(f"{cluster_name}-agent-{number}" for number in range(1, count + 1))


@dataclass(frozen=True)
class BackupSettings:
    """etcd snapshots to a Lightsail bucket; see components/backups.py."""

    schedule_cron: str
    retention: int


# A config source maps a full key ("lightsail-k3s:bundleId", "aws:region") to its
# raw string value as the CLI stores it (objects and arrays as JSON), or None.
ConfigSource = Callable[[str], str | None]
# Says whether a full key is stored as a secret.
SecretCheck = Callable[[str], bool]


def _raw(source: ConfigSource, key: str) -> str | None:
    return source(f"{PROJECT}:{key}")


def _json(source: ConfigSource, key: str, example: str) -> Any:
    raw = _raw(source, key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        # The value is not repeated: it may be a secret.
        raise ConfigError(
            key, "is a plain string, not a list or object", f"set it with --path, e.g. {example}"
        ) from None


def parse_region(source: ConfigSource) -> str:
    regions = ", ".join(LIGHTSAIL_ZONES)
    region = source("aws:region")
    if not region:
        raise ConfigError(
            "aws:region",
            "no AWS region is set",
            f"pulumi config set aws:region ap-northeast-2 (a region where Lightsail runs: {regions})",
        )
    if region not in LIGHTSAIL_ZONES:
        raise ConfigError(
            "aws:region",
            f"{region!r} is not a region where Lightsail runs",
            f"use one of: {regions} (aws lightsail get-regions lists them)",
        )
    return region


def parse_availability_zone(source: ConfigSource, region: str) -> str:
    zones = LIGHTSAIL_ZONES[region]
    zone = _raw(source, "availabilityZone") or zones[0]
    if zone not in zones:
        raise ConfigError(
            "availabilityZone",
            f"{zone!r} is not a Lightsail zone of region {region!r}",
            f"use one of: {', '.join(zones)}, e.g. pulumi config set availabilityZone {zones[0]} "
            "(aws lightsail get-regions --include-availability-zones lists them)",
        )
    return zone


def parse_bundle(source: ConfigSource) -> Bundle:
    bundle_id = _declared(source, "bundleId")
    valid = server_capable_bundle_ids()
    bundle = BUNDLES.get(bundle_id)
    if bundle is None:
        raise ConfigError(
            "bundleId",
            f"{bundle_id!r} is not a known Lightsail Linux bundle",
            f"use one of: {', '.join(valid)}",
        )
    if bundle_id not in valid:
        raise ConfigError(
            "bundleId",
            f"{bundle_id!r} has {bundle.vcpus} vCPU / {bundle.ram_gb:g} GB, below the k3s server minimum of "
            f"{K3S_SERVER_MIN_VCPUS} vCPU / {K3S_SERVER_MIN_RAM_GB} GB",
            f"use one of: {', '.join(valid)}",
        )
    return bundle


def parse_blueprint(source: ConfigSource) -> str:
    blueprint = _declared(source, "blueprintId")
    if blueprint not in BLUEPRINTS:
        raise ConfigError(
            "blueprintId", f"{blueprint!r} is not supported", f"use one of: {', '.join(BLUEPRINTS)}"
        )
    return blueprint


def parse_k3s_version(source: ConfigSource) -> str:
    text = _raw(source, "k3sVersion")
    if not text:
        raise ConfigError(
            "k3sVersion", "no k3s version is set", "pulumi config set k3sVersion v1.36.1+k3s1"
        )
    if text in K3S_CHANNELS or re.fullmatch(r"v?[0-9]+\.[0-9]+", text):
        raise ConfigError(
            "k3sVersion",
            f"{text!r} is a release channel, which moves: the same stack would install different k3s on different days",
            "pin an exact release such as v1.36.1+k3s1 (see github.com/k3s-io/k3s/releases)",
        )
    match = K3S_VERSION_PATTERN.fullmatch(text)
    if not match:
        raise ConfigError(
            "k3sVersion",
            f"{text!r} is not an exact k3s release (vX.Y.Z+k3sN)",
            "use a release tag such as v1.36.1+k3s1",
        )
    tested = f"v1.{TESTED_K3S_MINORS[0]} to v1.{TESTED_K3S_MINORS[-1]}"
    is_tested = int(match["major"]) == 1 and int(match["minor"]) in TESTED_K3S_MINORS
    if not is_tested and not _parse_boolean(source, "allowUntestedK3sVersion"):
        raise ConfigError(
            "k3sVersion",
            f"{text!r} is outside the Kubernetes minors this project is tested with ({tested})",
            f"pick a release from {tested}, e.g. v1.36.1+k3s1, or accept the risk: "
            "pulumi config set --type bool allowUntestedK3sVersion true",
        )
    return text


def _parse_cidrs(
    source: ConfigSource, key: str, example: str, fix: str, narrower_fix: str, public_fix: str
) -> tuple[str, ...]:
    """`key`'s list of public IPv4 CIDRs for SSH and the Kubernetes API, normalised; () when unset or empty.

    The rules adminCidrs and deployCidrs share: IPv4 networks written exactly (a bare address is a
    /32), never the whole internet nor more than a /8 together, only globally reachable ranges.
    `fix` answers a malformed list, `narrower_fix` one too wide, `public_fix` a range nobody connects from.
    """
    raw = _raw(source, key)
    value: Any = None
    if raw is not None:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            # A plain string, as `pulumi new` stores the template's answer for adminCidrs
            # (Pulumi.yaml template:): comma-separated CIDRs.
            value = [part.strip() for part in raw.split(",") if part.strip()]
    if value is None or value == []:
        return ()
    if not isinstance(value, list):
        raise ConfigError(key, f"{value!r} is not a non-empty list of IPv4 CIDRs", fix)
    networks = []
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(key, f"{item!r} is not a CIDR string", fix)
        try:
            # A bare address parses as a /32.
            network = ipaddress.IPv4Network(item, strict=True)
        except ValueError as error:
            hint = ""
            try:
                hint = f" (did you mean {ipaddress.IPv4Network(item, strict=False)}?)"
            except ValueError:
                pass
            raise ConfigError(key, f"{item!r} is not an IPv4 CIDR: {error}{hint}", fix) from None
        if network.prefixlen == 0:
            raise ConfigError(
                key,
                f"{item!r} would open SSH and the Kubernetes API to the whole internet",
                narrower_fix,
            )
        networks.append(network)
    covered = sum(n.num_addresses for n in ipaddress.collapse_addresses(networks))
    if covered > ADMIN_CIDRS_MAX_ADDRESSES:
        raise ConfigError(
            key,
            f"{', '.join(value)} together cover {covered:,} addresses ({covered / 2**32:.2%} of IPv4), more than "
            f"the {ADMIN_CIDRS_MAX_ADDRESSES:,} of a /{ADMIN_CIDRS_SHORTEST_PREFIX}: SSH and the Kubernetes API "
            "would be open to a large share of the internet",
            narrower_fix,
        )
    for item, network in zip(value, networks, strict=True):
        reserved = next((r for r in NON_GLOBAL_IPV4 if network.overlaps(r)), None)
        if reserved is not None:
            raise ConfigError(
                key,
                f"{item!r} is not a public address range: it overlaps {reserved}, which is not globally reachable "
                "(IANA IPv4 special-purpose registry); the firewall only ever sees public source addresses",
                public_fix,
            )
    return tuple(dict.fromkeys(str(n) for n in networks))


def parse_admin_cidrs(source: ConfigSource) -> tuple[str, ...]:
    example = "pulumi config set --path 'adminCidrs[0]' <your public IPv4>/32"
    fix = f"{example} (your public IPv4 as a /32; `make up` does this for you)"
    cidrs = _parse_cidrs(
        source,
        "adminCidrs",
        example,
        fix,
        narrower_fix=f"list the networks your team works from instead, e.g. {example}",
        public_fix="use the public address your traffic leaves from "
        f"(curl -s https://checkip.amazonaws.com), e.g. {example}",
    )
    if not cidrs:
        raise ConfigError(
            "adminCidrs",
            "no admin CIDRs are set, so nobody could reach SSH (22) or the Kubernetes API (6443)",
            fix,
        )
    return cidrs


def parse_deploy_cidrs(source: ConfigSource) -> tuple[str, ...]:
    """The deploying machine's addresses, opened beside adminCidrs for one run (bin/deploy-access.sh)."""
    fix = (
        "leave deployCidrs to `make up` and the deploy workflow, which set it to the deploying machine's "
        "public IPv4 (a /32) in a copy of the stack file for one run (docs/security.md, The firewall and `adminCidrs`); "
        "if the stack file holds it: pulumi config rm deployCidrs"
    )
    example = "pulumi config set --path 'deployCidrs[0]' <public IPv4>/32"
    return _parse_cidrs(source, "deployCidrs", example, fix, fix, fix)


def committed_deploy_cidrs_warning(stack_file: Path) -> str | None:
    """A warning when the stack file itself holds deployCidrs, which are meant for one run only."""
    if not stack_file.is_file():
        return None
    config = (yaml.load(stack_file.read_text(), Loader=SafeYamlLoader) or {}).get("config") or {}
    if config.get(f"{PROJECT}:deployCidrs") in (None, []):
        return None
    return (
        f"{stack_file.name} holds deployCidrs {config[f'{PROJECT}:deployCidrs']}: they open SSH and the "
        "Kubernetes API to a deploying machine for one run only, and from the stack file they stay open "
        "after it. Put lasting addresses in adminCidrs, then: pulumi config rm deployCidrs"
    )


def parse_ssh_public_key(source: ConfigSource) -> str | None:
    key = _raw(source, "sshPublicKey")
    if key is None or not key.strip():
        return None
    fix = 'pulumi config set sshPublicKey "$(cat ~/.ssh/id_ed25519.pub)", or remove it to let the stack generate a key'
    lines = key.strip().splitlines()
    if len(lines) > 1:
        raise ConfigError(
            "sshPublicKey",
            f"holds {len(lines)} lines; Lightsail imports exactly one public key",
            fix,
        )
    parts = key.strip().split(maxsplit=2)
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise ConfigError(
            "sshPublicKey",
            f"{key[:40]!r}… is not an OpenSSH public key ({', '.join(SSH_KEY_TYPES)})",
            fix,
        )
    _check_key_body("sshPublicKey", parts[0], parts[1], fix)
    return " ".join(parts)


def _check_key_body(key: str, key_type: str, body: str, fix: str) -> None:
    """Refuses config `key` unless `body` is a complete public key of `key_type`."""
    try:
        # Decodes the blob (SSH wire format, RFC 4253 section 6.6) and checks that it holds a complete key
        # of the type the line names: a 32-byte ed25519 key, RSA e and n, an ECDSA point on the named curve.
        load_ssh_public_key(f"{key_type} {body}".encode())
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            key, f"the key body is not a complete {key_type} public key", fix
        ) from None


def _host_key_fix(set_it: str) -> str:
    return (
        "set it to the node's ed25519 host key as OpenSSH prints it, e.g. the `ssh-ed25519 AAAA…` part of "
        f"`ssh-keyscan -t ed25519 <the node's public IP>` run from a network you trust, {set_it}"
    )


def _host_key(key: str, text: str, fix: str) -> str:
    """Refuses config `key` unless `text` is one bare OpenSSH public key; that key, normalised."""
    parts = text.strip().split()
    if len(parts) != 2 or parts[0] not in SSH_KEY_TYPES:
        raise ConfigError(
            key, "is not one OpenSSH public key (`<type> <base64>`, no host name or comment)", fix
        )
    _check_key_body(key, parts[0], parts[1], fix)
    return " ".join(parts)


def parse_ssh_host_key(source: ConfigSource) -> str | None:
    """The first server's own public host key to pin instead of installing a generated one."""
    key = _raw(source, "sshHostKey")
    if key is None or not key.strip():
        return None
    return _host_key("sshHostKey", key, _host_key_fix("or remove it"))


def _member_path(key: str, name: str) -> str:
    """`key.name` as `pulumi config set --path` takes it; a name with . [ ] or quotes needs ["…"]."""
    return (
        f"{key}.{name}" if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f"{key}[{json.dumps(name)}]"
    )


def parse_ssh_host_keys(
    source: ConfigSource,
    is_secret: SecretCheck,
    server_names: Sequence[str],
    agent_names: Sequence[str],
) -> dict[str, str]:
    """Existing nodes' own host keys by node name: sshHostKey for the first server, sshHostKeys for any node."""
    first_server = server_names[0]
    pinned: dict[str, str] = {}
    single = parse_ssh_host_key(source)
    if single is not None:
        pinned[first_server] = single
    example = "pulumi config set --path 'sshHostKeys.<node name>' 'ssh-ed25519 AAAA…'"
    by_name = _json(source, "sshHostKeys", example)
    if by_name is None or by_name == {}:
        return pinned
    if not isinstance(by_name, dict):
        raise ConfigError("sshHostKeys", "is not an object of node names to host keys", example)
    if is_secret(f"{PROJECT}:sshHostKeys"):
        # The CLI calls the whole key secret when one value is set with --secret.
        raise ConfigError(
            "sshHostKeys",
            "is stored as a secret, but host keys are public: the program passes them on in plain text "
            "(the connections' host_key, the first server's in the sshHostKey output), so encryption would "
            "promise a protection they do not get",
            f"set each entry again without --secret: {example}",
        )
    nodes = (*server_names, *agent_names)
    for name in sorted(by_name):
        path = _member_path("sshHostKeys", name)
        quoted = shlex.quote(path)
        # The full key: a node name may hold a colon, which ConfigError would read as a namespace.
        key = f"{PROJECT}:{path}"
        if name not in nodes:
            raise ConfigError(
                key,
                f"{name!r} is not a node of this stack, so the key would pin nothing: with serverCount "
                f"{len(server_names)} and agentCount {len(agent_names)} its nodes "
                f"are {', '.join(nodes)}",
                f"correct the node name (a typo, or a node that a lower serverCount or agentCount removed): "
                f"pulumi config rm --path {quoted}, then {example}",
            )
        if name == first_server and single is not None:
            raise ConfigError(
                key,
                f"pins the first server {first_server}, which sshHostKey pins too: one node, two settings",
                f"keep one: pulumi config rm --path {quoted}, or pulumi config rm sshHostKey",
            )
        value = by_name[name]
        fix = _host_key_fix(
            f"with pulumi config set --path {quoted} 'ssh-ed25519 AAAA…' (the key without the IP), "
            f"or remove it: pulumi config rm --path {quoted}"
        )
        if not isinstance(value, str) or not value.strip():
            found = "is empty" if value in ("", None) else f"is {value!r}, not a string"
            raise ConfigError(key, f"{found}: a host key is one OpenSSH public key", fix)
        pinned[name] = _host_key(key, value, fix)
    return pinned


def parse_auto_snapshot_time(source: ConfigSource) -> str | None:
    value = _raw(source, "autoSnapshotTime")
    if not value:
        return None
    if not SNAPSHOT_TIME_PATTERN.fullmatch(value):
        raise ConfigError(
            "autoSnapshotTime",
            f"{value!r} is not a whole UTC hour; Lightsail takes snapshots on the hour",
            "use HH:00 in UTC, e.g. pulumi config set autoSnapshotTime 18:00",
        )
    return value


def _declared(source: ConfigSource, key: str) -> str:
    """A key with a default in Pulumi.yaml, the defaults' one home: the CLI always passes it on."""
    value = _raw(source, key)
    if value is None:
        raise ConfigError(
            key,
            "has no value, although Pulumi.yaml declares its default: this Pulumi CLI did not apply the project's config",
            "use Pulumi CLI 3.44 or newer (curl -fsSL https://get.pulumi.com | sh)",
        )
    return value


def _parse_boolean(source: ConfigSource, key: str) -> bool:
    # Declared `type: boolean` in Pulumi.yaml: the CLI refuses anything but true and false before the program runs.
    return _declared(source, key) == "true"


def parse_protect(source: ConfigSource) -> bool:
    # On unless a stack turns it off: replacing or deleting the instance deletes the cluster's data.
    return _parse_boolean(source, "protect")


def has_aws_cli(environ: Mapping[str, str]) -> bool:
    """Whether the AWS CLI is on the deploying machine's PATH, for the calls no provider makes."""
    return shutil.which("aws", path=environ.get("PATH", "")) is not None


AWS_CLI_INSTALL = (
    "install the AWS CLI (docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)"
)


def parse_require_imds_v2(source: ConfigSource, environ: Mapping[str, str], dry_run: bool) -> bool:
    """requireImdsV2; `up` (not preview, which runs no command) needs the AWS CLI to set it."""
    required = _parse_boolean(source, "requireImdsV2")
    if required and not dry_run and not has_aws_cli(environ):
        raise ConfigError(
            "requireImdsV2",
            "each instance's metadata options are set with the AWS CLI "
            "(aws lightsail update-instance-metadata-options), which is not on PATH",
            f"{AWS_CLI_INSTALL}, or pulumi config set --type bool requireImdsV2 false "
            "(the app namespace's egress policy still keeps pods from the metadata service)",
        )
    return required


def parse_delete_unreachable(source: ConfigSource) -> bool:
    # Off unless asked for: a refresh during a brief outage must not drop Kubernetes objects from state.
    return _parse_boolean(source, "deleteUnreachable")


# Lightsail's tag rules: at most 50 tags per resource (API TagResource); keys 1-128 and values 0-256
# letters, numbers and spaces in UTF-8 or + - = . _ : / @ (API Tag; docs.aws.amazon.com/lightsail/
# 2016-11-28/api-reference/API_Tag.html and API_TagResource.html). The aws: key prefix, in any case,
# is reserved for AWS (AWS tagging rules, e.g. "Tag restrictions" in the AWS Batch user guide).
MAX_TAGS = 50
TAG_PUNCTUATION = frozenset(" +-=._:/@")


def _tag_text_is_allowed(text: str) -> bool:
    return all(character.isalnum() or character in TAG_PUNCTUATION for character in text)


def parse_tags(source: ConfigSource) -> dict[str, str]:
    example = "pulumi config set --path 'tags.team' platform"
    rules = "1-128 letters, digits, spaces or + - = . _ : / @, not starting with aws:"
    value = _json(source, "tags", example)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("tags", f"{value!r} is not an object of tag names to values", example)
    if len(value) > MAX_TAGS:
        raise ConfigError(
            "tags",
            f"has {len(value)} tags; Lightsail allows at most {MAX_TAGS} per resource",
            "remove some",
        )
    tags = {}
    for key, tag_value in value.items():
        if (
            not 1 <= len(key) <= 128
            or not _tag_text_is_allowed(key)
            or key.lower().startswith("aws:")
        ):
            raise ConfigError("tags", f"tag name {key!r} is not allowed ({rules})", example)
        if isinstance(tag_value, bool) or not isinstance(tag_value, (str, int, float)):
            raise ConfigError(
                "tags", f"tag {key!r} has value {tag_value!r}; values are strings", example
            )
        text = str(tag_value)
        if len(text) > 256 or not _tag_text_is_allowed(text):
            raise ConfigError(
                "tags",
                f"tag {key!r} has value {text!r}; values are at most 256 letters, digits, spaces or + - = . _ : / @",
                example,
            )
        tags[key] = text
    return tags


STACK_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# The node name and the kubeconfig context are f"{PROJECT}-{stack}"; a node name is also the value of
# the node's kubernetes.io/hostname label, so it must be a DNS-1123 label of at most 63 characters.
MAX_STACK_NAME_LENGTH = 63 - len(f"{PROJECT}-")


def parse_stack_name(stack: str) -> str:
    if not STACK_NAME.fullmatch(stack) or len(stack) > MAX_STACK_NAME_LENGTH:
        raise ConfigError(
            "pulumi:stack",
            f"stack name {stack!r} cannot name the node: {PROJECT}-<stack> is the k3s node name and kubeconfig "
            f"context, which must be lowercase letters, digits and '-' (starting and ending with a letter or digit), "
            f"so the stack name may have at most {MAX_STACK_NAME_LENGTH} of them",
            "rename the stack before its first deployment, e.g. pulumi stack rename "
            + (
                re.sub(r"[^a-z0-9-]+", "-", stack.lower())
                .strip("-")[:MAX_STACK_NAME_LENGTH]
                .strip("-")
                or "dev"
            ),
        )
    return stack


def _integer(source: ConfigSource, key: str, minimum: int, fix: str) -> int:
    # Declared `type: integer` in Pulumi.yaml: the CLI refuses anything else before the program runs.
    number = int(_declared(source, key))
    if number < minimum:
        raise ConfigError(key, f"{number} is below the minimum of {minimum}", fix)
    return number


def parse_backups(source: ConfigSource, stack: str) -> BackupSettings | None:
    """`backups` is auto (on for prod* stacks), true or false; then the snapshot schedule and retention."""
    value = _declared(source, "backups").strip().lower()
    if value not in BACKUPS_CHOICES:
        raise ConfigError(
            "backups",
            f"{value!r} is not one of {', '.join(BACKUPS_CHOICES)}",
            "pulumi config set backups true (or false; auto turns them on for stacks named prod*)",
        )
    enabled = stack.startswith(BACKUPS_BY_DEFAULT_PREFIX) if value == "auto" else value == "true"
    if not enabled:
        return None
    return BackupSettings(
        schedule_cron=parse_etcd_snapshot_schedule(source),
        retention=parse_etcd_snapshot_retention(source),
    )


def parse_reboot_window_setting(source: ConfigSource, stack: str) -> RebootWindow | None:
    """`rebootWindow`: auto (REBOOT_WINDOW_BY_DEFAULT for prod* stacks, else off), a window, or "" for off."""
    value = _declared(source, "rebootWindow")
    if value == "auto":
        by_default = stack.startswith(BACKUPS_BY_DEFAULT_PREFIX)
        return parse_reboot_window(REBOOT_WINDOW_BY_DEFAULT if by_default else "", "the default")
    return parse_reboot_window(value, "the window")


def parse_data_disk_gb(source: ConfigSource, stack: str) -> int:
    """`dataDiskGb`: auto (DATA_DISK_DEFAULT_GB for prod* stacks, else none), 0, or a size of at
    least DATA_DISK_MIN_GB."""
    value = _declared(source, "dataDiskGb").strip().lower()
    fix = (
        f"pulumi config set dataDiskGb {DATA_DISK_DEFAULT_GB} (0 for none; {DATA_DISK_AUTO} "
        f"gives stacks named {BACKUPS_BY_DEFAULT_PREFIX}* {DATA_DISK_DEFAULT_GB} GB)"
    )
    if value == DATA_DISK_AUTO:
        return DATA_DISK_DEFAULT_GB if stack.startswith(BACKUPS_BY_DEFAULT_PREFIX) else 0
    if not value.isdigit():
        raise ConfigError(
            "dataDiskGb", f"{value!r} is not {DATA_DISK_AUTO} or a whole number of GB", fix
        )
    size = int(value)
    if 0 < size < DATA_DISK_MIN_GB:
        raise ConfigError(
            "dataDiskGb",
            f"{size} GB is below the floor of {DATA_DISK_MIN_GB} GB, which holds k3s, its images "
            "and the apps' volumes",
            fix,
        )
    return size


def parse_etcd_snapshot_schedule(source: ConfigSource) -> str:
    value = _declared(source, "etcdSnapshotSchedule")
    fields = value.split()
    if len(fields) != 5 or not all(CRON_FIELD_PATTERN.fullmatch(field) for field in fields):
        raise ConfigError(
            "etcdSnapshotSchedule",
            f"{value!r} is not a five-field cron spec (minute hour day month weekday)",
            "pulumi config set etcdSnapshotSchedule '0 */6 * * *' (every 6 hours, node time UTC)",
        )
    return " ".join(fields)


def parse_etcd_snapshot_retention(source: ConfigSource) -> int:
    return _integer(
        source,
        "etcdSnapshotRetention",
        minimum=1,
        fix="pulumi config set etcdSnapshotRetention 14 (snapshots kept, on the node and in the bucket)",
    )


def parse_cert_rotation(source: ConfigSource) -> int:
    return _integer(
        source,
        "certRotation",
        minimum=0,
        fix="raise it by one to rotate k3s' certificates: pulumi config set certRotation 1",
    )


def parse_agent_count(source: ConfigSource) -> int:
    return _integer(
        source,
        "agentCount",
        minimum=0,
        fix="pulumi config set --type int agentCount 2 (0 for a server alone)",
    )


def parse_agent_bundle(source: ConfigSource, server_bundle: Bundle) -> Bundle:
    """Agents may be smaller than servers: they run no control plane or datastore."""
    bundle_id = _raw(source, "agentBundleId") or server_bundle.bundle_id
    valid = agent_capable_bundle_ids()
    if bundle_id not in valid:
        raise ConfigError(
            "agentBundleId",
            f"{bundle_id!r} is not a known Lightsail Linux bundle of at least the k3s agent minimum "
            f"({K3S_AGENT_MIN_VCPUS} vCPU / {K3S_AGENT_MIN_RAM_GB * 1024:g} MB)",
            f"use one of: {', '.join(valid)}",
        )
    return BUNDLES[bundle_id]


# Embedded etcd needs a majority of its members to work: 1 server, or 3, which survive the
# loss of one (docs.k3s.io/datastore/ha-embedded). Two would stop when either fails.
SERVER_COUNTS = (1, 3)


def parse_server_count(source: ConfigSource) -> int:
    fix = "pulumi config set --type int serverCount 3 (or 1)"
    count = _integer(source, "serverCount", minimum=1, fix=fix)
    if count not in SERVER_COUNTS:
        raise ConfigError(
            "serverCount",
            f"{count} servers cannot keep an etcd quorum: embedded etcd needs an odd number of members, "
            "and this stack supports 1 or 3 (3 survive the loss of one)",
            fix,
        )
    return count


def parse_topology(source: ConfigSource, server_bundle: Bundle, stack: str) -> Topology:
    topology = Topology(
        server_count=parse_server_count(source),
        agent_count=parse_agent_count(source),
        agent_bundle=parse_agent_bundle(source, server_bundle),
        agent_public_ips=_parse_boolean(source, "agentPublicIps"),
    )
    check_node_name_lengths(
        topology,
        f"{PROJECT}-{stack}",
        lambda excess: (
            f"use a stack name of at most {len(stack) - excess} characters (pulumi stack rename)"
        ),
    )
    return topology


def check_node_name_lengths(
    topology: Topology, cluster_name: str, shorter_name_fix: Callable[[int], str]
) -> None:
    """Node names are DNS labels of at most 63 characters; the last of each role is the longest.
    `shorter_name_fix` says how to shorten the name by the characters given."""
    for key, names in (
        ("serverCount", server_names(cluster_name, topology.server_count)),
        ("agentCount", agent_names(cluster_name, topology.agent_count)),
    ):
        node_name = names[-1] if names else cluster_name
        if len(node_name) > 63:
            raise ConfigError(
                key,
                f"the node name {node_name!r} would be longer than the 63 characters a Kubernetes node name may have",
                shorter_name_fix(len(node_name) - 63),
            )


# The top-level sections of a stack file the Pulumi CLI reads: the fields of workspace.ProjectStack
# (pulumi/pulumi sdk/go/common/workspace/project.go). It ignores any other (yaml.v3 without
# KnownFields), so a misspelt `confg:` would hand the program none of its values.
STACK_FILE_SECTIONS = ("config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt")


def check_stack_file_sections(stack_file: Path) -> None:
    """A top-level section the CLI does not read is a typo: stop, naming it, before any value is judged."""
    if not stack_file.is_file():
        return
    document = yaml.load(stack_file.read_text(), Loader=SafeYamlLoader)
    if not isinstance(document, dict):
        return
    for section in document:
        if section in STACK_FILE_SECTIONS:
            continue
        close = difflib.get_close_matches(str(section).lower(), STACK_FILE_SECTIONS, n=1)
        raise StackFileError(
            stack_file.name,
            f"the top-level section {section!r} is not one the Pulumi CLI reads "
            f"({', '.join(STACK_FILE_SECTIONS)}); it ignores it, so none of its values reach the program",
            f"rename {section}: to {close[0]}: in {stack_file.name}"
            if close
            else f"remove {section}: from {stack_file.name}",
        )


def plain_text_leaves(stack_file: Path, key: str) -> tuple[str, ...]:
    """The leaves of secret key `key` (appSecrets, registries) that the stack file holds
    unencrypted (a `secure:` map is encrypted), as --path paths: a name holding a dot or a bracket
    is quoted, as the CLI parses it (pulumi/pulumi sdk/go/common/resource/properties_path.go)."""
    if not stack_file.is_file():
        return ()
    config = (yaml.load(stack_file.read_text(), Loader=SafeYamlLoader) or {}).get("config") or {}
    plain: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict) and set(value) == {"secure"}:
            return
        if isinstance(value, dict):
            for name, member in value.items():
                name = str(name)
                quoted = re.search(r'[.\[\]"]', name) is not None
                walk(member, f'{path}["{name}"]' if quoted else f"{path}.{name}")
        elif isinstance(value, list):
            for position, member in enumerate(value):
                walk(member, f"{path}[{position}]")
        else:
            plain.append(path)

    if f"{PROJECT}:{key}" in config:
        walk(config[f"{PROJECT}:{key}"], key)
    return tuple(plain)


def stack_file_path(stack: str, environ: Mapping[str, str]) -> Path:
    """The stack's file: Pulumi.<stack>.yaml beside Pulumi.yaml, or the file `make plan CONFIG_FILE=`
    names (STACK_FILE_VARIABLE)."""
    named = environ.get(STACK_FILE_VARIABLE)
    return Path(named) if named else PROJECT_DIR / f"Pulumi.{stack}.yaml"


def parse_settings(
    source: ConfigSource,
    is_secret: SecretCheck,
    stack: str,
    environ: Mapping[str, str],
    dry_run: bool,
) -> Settings:
    region = parse_region(source)
    bundle = parse_bundle(source)
    ssh_public_key = parse_ssh_public_key(source)
    ssh_agent_socket = environ.get("SSH_AUTH_SOCK")
    if ssh_public_key and not ssh_agent_socket and not dry_run:
        raise ConfigError(
            "sshPublicKey",
            "a public key is configured, but no ssh-agent is running to hold its private half for the install over SSH",
            'start an agent and add the key (eval "$(ssh-agent)" && ssh-add ~/.ssh/id_ed25519), '
            "or remove sshPublicKey to let the stack generate a key",
        )
    stack_file = stack_file_path(stack, environ)
    # The charts need the topology (kured's one-node rule), which needs a valid stack name first.
    stack_name = parse_stack_name(stack)
    topology = parse_topology(source, bundle, stack)
    reboot_window = parse_reboot_window_setting(source, stack)
    # Before the apps: a data disk holds the servers' volumes.
    data_disk_gb = parse_data_disk_gb(source, stack)
    charts = parse_charts(
        charts_raw=_json(source, "charts", "pulumi config set --path 'charts[0].name' kafka"),
        secrets_raw=_json(
            source,
            "chartSecrets",
            "pulumi config set --secret --path 'chartSecrets.kafka.auth.password' <value>",
        ),
        secrets_are_secret=is_secret(f"{PROJECT}:chartSecrets"),
        plain_text_secret_paths=plain_text_leaves(stack_file, "chartSecrets"),
        app_namespace=_declared(source, "appNamespace"),
        declared=(
            kured_chart(
                reboot_window, single_node=topology.server_count + topology.agent_count == 1
            ),
        )
        if reboot_window
        else (),
    )
    settings = Settings(
        stack=stack_name,
        region=region,
        availability_zone=parse_availability_zone(source, region),
        bundle=bundle,
        blueprint_id=parse_blueprint(source),
        k3s_version=parse_k3s_version(source),
        admin_cidrs=parse_admin_cidrs(source),
        deploy_cidrs=parse_deploy_cidrs(source),
        committed_deploy_cidrs_warning=committed_deploy_cidrs_warning(stack_file),
        ssh_public_key=ssh_public_key,
        ssh_agent_socket=ssh_agent_socket,
        auto_snapshot_time=parse_auto_snapshot_time(source),
        protect=parse_protect(source),
        delete_unreachable=parse_delete_unreachable(source),
        require_imds_v2=parse_require_imds_v2(source, environ, dry_run),
        tags=parse_tags(source),
        backups=parse_backups(source, stack),
        data_disk_gb=data_disk_gb,
        cert_rotation=parse_cert_rotation(source),
        topology=topology,
        apps=parse_app_settings(
            apps_raw=_json(source, "apps", "pulumi config set --path 'apps[0].name' web"),
            namespace_raw=_declared(source, "appNamespace"),
            secrets_raw=_json(
                source,
                "appSecrets",
                "pulumi config set --secret --path 'appSecrets.web.API_KEY' <value>",
            ),
            secrets_are_secret=is_secret(f"{PROJECT}:appSecrets"),
            plain_text_secret_paths=plain_text_leaves(stack_file, "appSecrets"),
            manifests_dir_raw=_raw(source, "manifestsDir"),
            project_dir=PROJECT_DIR,
            bundle=bundle,
            cpu_budget_raw=_declared(source, "cpuBudget"),
            agent_bundle=topology.agent_bundle if topology.agent_count else None,
            reserved=charts.reserved,
            data_disk_gb=data_disk_gb,
        ),
        alarms=parse_alarm_settings(
            _declared(source, "burstAlarmPercent"), _declared(source, "alarmEmail")
        ),
        charts=charts,
        reboot_window=reboot_window,
    )
    # Checked once the rest is known: the apps' hosts must lie in the domain, and the host keys
    # are named by the topology's nodes.
    return dataclasses.replace(
        settings,
        https=parse_https(source, settings.apps, environ, dry_run),
        ssh_host_keys=parse_ssh_host_keys(
            source, is_secret, settings.server_names, settings.agent_names
        ),
        registries=parse_registries(
            _json(source, "registries", set_fix()),
            is_secret(f"{PROJECT}:registries"),
            plain_text_leaves(stack_file, "registries"),
        ),
        consumers=parse_stack_consumers(
            _json(source, "consumers", "pulumi config set --path 'consumers[0].name' web-deploy"),
            settings.apps,
            settings.charts,
        ),
    )


# A registered domain: lowercase DNS labels, at least two, the last one a name, not a number.
DOMAIN_PATTERN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_domain(source: ConfigSource) -> str | None:
    domain = _raw(source, "domain")
    if not domain:
        return None
    if not DOMAIN_PATTERN.fullmatch(domain):
        raise ConfigError(
            "domain",
            f"{domain!r} is not a registered domain name (lowercase labels separated by dots, no scheme, "
            "no trailing dot, no wildcard)",
            "pulumi config set domain example.com",
        )
    return domain


def parse_manage_dns_zone(source: ConfigSource) -> bool:
    return _parse_boolean(source, "manageDnsZone")


def parse_acme_email(source: ConfigSource) -> str | None:
    email = _raw(source, "acmeEmail")
    if not email:
        return None
    if not EMAIL_PATTERN.fullmatch(email):
        raise ConfigError(
            "acmeEmail",
            f"{email!r} is not an email address",
            "pulumi config set acmeEmail ops@example.com (Let's Encrypt writes to it about expiring certificates)",
        )
    return email


def parse_acme_staging(source: ConfigSource) -> bool:
    return _parse_boolean(source, "acmeStaging")


def check_app_hosts_in_domain(apps: AppSettings, domain: str) -> None:
    """Every app host must be the domain or under it: only those names get DNS records and certificates."""
    routes: dict[tuple[str, str], str] = {}
    for index, app in enumerate(apps.specs):
        if app.host is not None and app.host != domain and not app.host.endswith("." + domain):
            raise ConfigError(
                "apps",
                f"apps[{index}] ({app.name}): host {app.host} is outside domain {domain}, so it gets no DNS record "
                "and no certificate",
                f"use a host under {domain} (e.g. {app.name}.{domain}), or leave host out to serve the app at {domain}",
            )
        route = (app.host or domain, app.path)
        if route in routes:
            raise ConfigError(
                "apps",
                f"apps[{index}] ({app.name}): path {app.path} on {route[0]} is already routed to {routes[route]} "
                f"(apps without a host are served at {domain})",
                "give each app its own path or host",
            )
        routes[route] = app.name


def parse_https(
    source: ConfigSource, apps: AppSettings | None, environ: Mapping[str, str], dry_run: bool
) -> HttpsSettings | None:
    """The domain, its zone and the ACME account; `apps`, when given, must be served inside the domain."""
    domain = parse_domain(source)
    manage_dns_zone = parse_manage_dns_zone(source)
    acme_email = parse_acme_email(source)
    acme_staging = parse_acme_staging(source)
    if domain is None:
        if acme_email is not None:
            raise ConfigError(
                "acmeEmail",
                "is set, but HTTPS needs a domain",
                "pulumi config set domain example.com",
            )
        if acme_staging:
            raise ConfigError(
                "acmeStaging",
                "is true, but HTTPS needs a domain",
                "pulumi config set domain example.com",
            )
        return None
    if acme_email is None:
        raise ConfigError(
            "acmeEmail",
            f"domain {domain} is set, and Let's Encrypt needs a contact address for its certificates",
            "pulumi config set acmeEmail ops@example.com",
        )
    if apps is not None:
        check_app_hosts_in_domain(apps, domain)
    # Preview does not run the command that reads the zone's name servers, so only up needs the CLI.
    if manage_dns_zone and not dry_run and not has_aws_cli(environ):
        raise ConfigError(
            "manageDnsZone",
            "the DNS zone's name servers are read with the AWS CLI (aws lightsail get-domain), which is not on PATH",
            f"{AWS_CLI_INSTALL}, "
            "or pulumi config set --type bool manageDnsZone false and serve the domain's DNS yourself",
        )
    return HttpsSettings(domain, manage_dns_zone, acme_email, acme_staging)


def declared_keys(project_file: Path = PROJECT_DIR / "Pulumi.yaml") -> list[str]:
    """The project's own config keys, as Pulumi.yaml declares them: the keys this program reads."""
    declarations = yaml.load(project_file.read_text(), Loader=SafeYamlLoader).get("config") or {}
    return sorted(
        key.removeprefix(f"{PROJECT}:")
        for key in declarations
        if ":" not in key or key.startswith(f"{PROJECT}:")
    )


def check_unknown_keys(configured: Iterable[str], known: Sequence[str]) -> None:
    """A project key the program does not read is a typo or a leftover: stop, and name the closest known key."""
    for full_key in sorted(configured):
        namespace, _, name = full_key.partition(":")
        if namespace != PROJECT or name in known:
            continue
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if root in known:
            raise ConfigError(
                full_key,
                f"is not a setting of this program; it looks like a path into {root!r} set without --path",
                f"pulumi config rm {shlex.quote(name)}; pulumi config set --path {shlex.quote(name)} <value>",
            )
        by_lower = {key.lower(): key for key in known}
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
        if close:
            suggestion = by_lower[close[0]]
            raise ConfigError(
                full_key,
                f"is not a setting of this program; did you mean {suggestion!r}?",
                f"pulumi config rm {shlex.quote(name)}; pulumi config set {suggestion} <value>",
            )
        raise ConfigError(
            full_key,
            f"is not a setting of this program (settings: {', '.join(known)})",
            f"pulumi config rm {shlex.quote(name)}",
        )


def configured_keys() -> set[str]:
    """Every key of the stack's config, whether or not anything reads it.

    Under `pulumi up` the language host passes the whole map in PULUMI_CONFIG, and
    pulumi-language-python-exec hands it to set_all_config (pulumi/pulumi
    sdk/python/cmd/pulumi-language-python-exec); the mock engine calls set_all_config itself.
    """
    return set(pulumi.runtime.get_config_env()) | set(runtime_config.CONFIG.get())


def load_settings() -> Settings:
    """Reads the running stack's config; the only place the program touches pulumi.Config."""
    check_stack_file_sections(stack_file_path(pulumi.get_stack(), os.environ))
    check_unknown_keys(configured_keys(), declared_keys())
    return parse_settings(
        pulumi.runtime.get_config,
        pulumi.runtime.is_config_secret,
        pulumi.get_stack(),
        os.environ,
        pulumi.runtime.is_dry_run(),
    )
