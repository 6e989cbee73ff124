"""Stack settings: read once from Pulumi config, validated, typed.

Every rule raises ConfigError before any resource is declared, naming the key,
the bad value and the fix. ConfigError is a pulumi.RunError, so the CLI prints
the message without a Python traceback.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from .app_settings import AppSettings, parse_app_settings
from .catalog import BUNDLES, K3S_SERVER_MIN_RAM_GB, K3S_SERVER_MIN_VCPUS, Bundle, server_capable_bundle_ids
from .errors import PROJECT, ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent

BLUEPRINTS = ("ubuntu_22_04", "ubuntu_24_04", "debian_12")

K3S_VERSION_PATTERN = re.compile(r"^v\d+\.\d+\.\d+\+k3s\d+$")
K3S_CHANNELS = ("latest", "stable", "testing")
SNAPSHOT_TIME_PATTERN = re.compile(r"^([01]\d|2[0-3]):00$")
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


@dataclass(frozen=True)
class Settings:
    stack: str
    region: str
    availability_zone: str
    bundle: Bundle
    blueprint_id: str
    k3s_version: str
    admin_cidrs: tuple[str, ...]
    ssh_public_key: str | None
    ssh_agent_socket: str | None
    auto_snapshot_time: str | None
    protect: bool
    delete_unreachable: bool
    tags: Mapping[str, str]
    apps: AppSettings

    @property
    def cluster_name(self) -> str:
        """Names the node, the kubeconfig context and the Kubernetes provider."""
        return f"{PROJECT}-{self.stack}"

    @property
    def generates_ssh_key(self) -> bool:
        return self.ssh_public_key is None


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
        raise ConfigError(key, "is a plain string, not a list or object", f"set it with --path, e.g. {example}") from None


def parse_region(source: ConfigSource) -> str:
    region = source("aws:region")
    if not region:
        raise ConfigError(
            "aws:region",
            "no AWS region is set",
            "pulumi config set aws:region ap-northeast-2 (any region where Lightsail runs)",
        )
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise ConfigError("aws:region", f"{region!r} is not an AWS region name", "use a name like ap-northeast-2")
    return region


def parse_availability_zone(source: ConfigSource, region: str) -> str:
    zone = _raw(source, "availabilityZone") or f"{region}a"
    if not re.fullmatch(re.escape(region) + r"[a-z]", zone):
        raise ConfigError(
            "availabilityZone",
            f"{zone!r} is not a zone of region {region!r}",
            f"use a zone of {region}, e.g. pulumi config set availabilityZone {region}a",
        )
    return zone


def parse_bundle(source: ConfigSource) -> Bundle:
    bundle_id = _raw(source, "bundleId") or "small_3_0"
    valid = server_capable_bundle_ids()
    bundle = BUNDLES.get(bundle_id)
    if bundle is None:
        raise ConfigError("bundleId", f"{bundle_id!r} is not a known Lightsail Linux bundle", f"use one of: {', '.join(valid)}")
    if bundle_id not in valid:
        raise ConfigError(
            "bundleId",
            f"{bundle_id!r} has {bundle.vcpus} vCPU / {bundle.ram_gb:g} GB, below the k3s server minimum of "
            f"{K3S_SERVER_MIN_VCPUS} vCPU / {K3S_SERVER_MIN_RAM_GB} GB",
            f"use one of: {', '.join(valid)}",
        )
    return bundle


def parse_blueprint(source: ConfigSource) -> str:
    blueprint = _raw(source, "blueprintId") or "ubuntu_24_04"
    if blueprint not in BLUEPRINTS:
        raise ConfigError("blueprintId", f"{blueprint!r} is not supported", f"use one of: {', '.join(BLUEPRINTS)}")
    return blueprint


def parse_k3s_version(source: ConfigSource) -> str:
    text = _raw(source, "k3sVersion")
    if not text:
        raise ConfigError("k3sVersion", "no k3s version is set", "pulumi config set k3sVersion v1.36.1+k3s1")
    if text in K3S_CHANNELS or re.fullmatch(r"v?\d+\.\d+", text):
        raise ConfigError(
            "k3sVersion",
            f"{text!r} is a release channel, which moves: the same stack would install different k3s on different days",
            "pin an exact release such as v1.36.1+k3s1 (see github.com/k3s-io/k3s/releases)",
        )
    if not K3S_VERSION_PATTERN.fullmatch(text):
        raise ConfigError(
            "k3sVersion", f"{text!r} is not an exact k3s release (vX.Y.Z+k3sN)", "use a release tag such as v1.36.1+k3s1"
        )
    return text


def parse_admin_cidrs(source: ConfigSource) -> tuple[str, ...]:
    example = "pulumi config set --path 'adminCidrs[0]' 203.0.113.7/32"
    fix = f"{example} (your public IPv4 as a /32; `make up` does this for you)"
    value = _json(source, "adminCidrs", example)
    if value is None or value == []:
        raise ConfigError(
            "adminCidrs", "no admin CIDRs are set, so nobody could reach SSH (22) or the Kubernetes API (6443)", fix
        )
    if not isinstance(value, list):
        raise ConfigError("adminCidrs", f"{value!r} is not a non-empty list of IPv4 CIDRs", fix)
    cidrs = []
    for item in value:
        if not isinstance(item, str):
            raise ConfigError("adminCidrs", f"{item!r} is not a CIDR string", fix)
        try:
            network = ipaddress.IPv4Network(item, strict=True)
        except ValueError as error:
            hint = ""
            try:
                hint = f" (did you mean {ipaddress.IPv4Network(item, strict=False)}?)"
            except ValueError:
                pass
            raise ConfigError("adminCidrs", f"{item!r} is not an IPv4 CIDR: {error}{hint}", fix) from None
        if network.prefixlen == 0:
            raise ConfigError(
                "adminCidrs",
                f"{item!r} would open SSH and the Kubernetes API to the whole internet",
                "list the networks your team works from instead, e.g. " + example,
            )
        cidrs.append(str(network))
    return tuple(dict.fromkeys(cidrs))


def parse_ssh_public_key(source: ConfigSource) -> str | None:
    key = _raw(source, "sshPublicKey")
    if key is None or not key.strip():
        return None
    fix = 'pulumi config set sshPublicKey "$(cat ~/.ssh/id_ed25519.pub)", or remove it to let the stack generate a key'
    parts = key.strip().split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise ConfigError("sshPublicKey", f"{key[:40]!r}… is not an OpenSSH public key ({', '.join(SSH_KEY_TYPES)})", fix)
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise ConfigError("sshPublicKey", "the key body is not valid base64", fix) from None
    embedded_type_length = int.from_bytes(blob[:4], "big")
    if blob[4 : 4 + embedded_type_length].decode(errors="replace") != parts[0]:
        raise ConfigError("sshPublicKey", f"the key body does not hold a {parts[0]} key", fix)
    return " ".join(parts)


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


def _parse_boolean(source: ConfigSource, key: str, default: bool) -> bool:
    value = _raw(source, key)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise ConfigError(key, f"{value!r} is not a boolean", f"pulumi config set --type bool {key} {str(default).lower()}")
    return value.lower() == "true"


def parse_protect(source: ConfigSource) -> bool:
    # On unless a stack turns it off: replacing or deleting the instance deletes the cluster's data.
    return _parse_boolean(source, "protect", default=True)


def parse_delete_unreachable(source: ConfigSource) -> bool:
    # Off unless asked for: a refresh during a brief outage must not drop Kubernetes objects from state.
    return _parse_boolean(source, "deleteUnreachable", default=False)


def parse_tags(source: ConfigSource) -> dict[str, str]:
    example = "pulumi config set --path 'tags.team' platform"
    value = _json(source, "tags", example)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("tags", f"{value!r} is not an object of tag names to values", example)
    tags = {}
    for key, tag_value in value.items():
        # Lightsail tag limits: key 1-128 characters, value 0-256.
        if not 1 <= len(key) <= 128 or key.startswith("aws:"):
            raise ConfigError("tags", f"tag name {key!r} is not allowed (1-128 characters, not starting with aws:)", example)
        if isinstance(tag_value, bool) or not isinstance(tag_value, (str, int, float)) or len(str(tag_value)) > 256:
            raise ConfigError(
                "tags", f"tag {key!r} has value {tag_value!r}; values are strings of at most 256 characters", example
            )
        tags[key] = str(tag_value)
    return tags


def parse_settings(
    source: ConfigSource, is_secret: SecretCheck, stack: str, environ: Mapping[str, str], dry_run: bool
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
    return Settings(
        stack=stack,
        region=region,
        availability_zone=parse_availability_zone(source, region),
        bundle=bundle,
        blueprint_id=parse_blueprint(source),
        k3s_version=parse_k3s_version(source),
        admin_cidrs=parse_admin_cidrs(source),
        ssh_public_key=ssh_public_key,
        ssh_agent_socket=ssh_agent_socket,
        auto_snapshot_time=parse_auto_snapshot_time(source),
        protect=parse_protect(source),
        delete_unreachable=parse_delete_unreachable(source),
        tags=parse_tags(source),
        apps=parse_app_settings(
            apps_raw=_json(source, "apps", "pulumi config set --path 'apps[0].name' web"),
            namespace_raw=_raw(source, "appNamespace"),
            secrets_raw=_json(source, "appSecrets", "pulumi config set --secret --path 'appSecrets.web.API_KEY' <value>"),
            secrets_are_secret=is_secret(f"{PROJECT}:appSecrets"),
            manifests_dir_raw=_raw(source, "manifestsDir"),
            project_dir=PROJECT_DIR,
            bundle=bundle,
        ),
    )


def load_settings() -> Settings:
    """Reads the running stack's config; the only place the program touches pulumi.Config."""
    return parse_settings(
        pulumi.runtime.get_config, pulumi.runtime.is_config_secret, pulumi.get_stack(), os.environ, pulumi.runtime.is_dry_run()
    )
