"""The `registries` setting: each private registry's credentials, and optionally a mirror, checked.

Rendered as k3s' /etc/rancher/k3s/registries.yaml on every node (components/k3s.py,
registries_file), which k3s reads when it starts (docs.k3s.io/installation/private-registry).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

KEY = "registries"
FIELDS = ("username", "password", "mirror")
REQUIRED_FIELDS = ("username", "password")
# A registry as an image reference names it: DNS labels, an optional port. An image's first
# component is a registry only if it holds a dot or a colon, or is localhost; any other is a
# Docker Hub namespace (docs.k3s.io/installation/private-registry, "Default Endpoint Fallback").
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
REGISTRY_HOST = re.compile(rf"(?P<name>{_LABEL}(\.{_LABEL})*)(:(?P<port>[0-9]{{1,5}}))?")
# Docker Hub's other names: images name it docker.io, and so does k3s' config for it (k3s
# pkg/agent/containerd/config.go, configForHost, maps registry-1.docker.io back to docker.io).
DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "hub.docker.com")
EXAMPLE_HOST = "ghcr.io"


@dataclass(frozen=True)
class Registry:
    """One private registry: the host images name it by, its basic-auth credentials (the password
    usually a token), and a mirror endpoint that containerd tries before the host itself."""

    host: str
    username: str
    # Never in a repr: a Registry may reach a log or an error message.
    password: str = dataclasses.field(repr=False)
    mirror: str | None = None


def path(host: str, field: str | None = None) -> str:
    """The --path of a registry (or of one of its fields) as the CLI parses it: a host holds dots,
    so it is quoted (pulumi/pulumi sdk/go/common/resource/properties_path.go)."""
    quoted = f'{KEY}["{host}"]'
    return f"{quoted}.{field}" if field else quoted


def set_fix(host: str = EXAMPLE_HOST, field: str = "password") -> str:
    return f"pulumi config set --secret --path '{path(host, field)}' <value>"


def check_host(host: str) -> None:
    fix = f"name the registry as images do, e.g. {set_fix(field='username')}"
    if host in DOCKER_HUB_ALIASES:
        raise ConfigError(
            KEY,
            f"{path(host)}: Docker Hub is {DOCKER_HUB} in image names and in k3s' registries.yaml",
            f"use {path(DOCKER_HUB)}",
        )
    match = REGISTRY_HOST.fullmatch(host)
    port = match["port"] if match else None
    is_registry = match is not None and (
        "." in match["name"] or port is not None or match["name"] == "localhost"
    )
    if not is_registry or (port is not None and not 0 < int(port) < 65536):
        raise ConfigError(
            KEY,
            f"{path(host)}: {host!r} is not a registry host (a lowercase host name with a dot, or with a "
            "port, e.g. ghcr.io or registry.example.com:5000; no scheme, no path)",
            fix,
        )


def check_mirror(host: str, mirror: str) -> None:
    parts = urlsplit(mirror)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or (port is not None and not 0 < port < 65536)
    ):
        raise ConfigError(
            KEY,
            f"{path(host, 'mirror')} {mirror!r} is not an http(s) endpoint URL without credentials, query or fragment",
            f"pulumi config set --secret --path '{path(host, 'mirror')}' https://mirror.example.com:5000",
        )


def parse_registries(
    raw: Any, is_secret: bool, plain_text_paths: tuple[str, ...]
) -> tuple[Registry, ...]:
    """The registries, in the order given; plain_text_paths are the leaves the stack file holds unencrypted."""
    if not raw:
        return ()
    if not is_secret:
        raise ConfigError(
            KEY,
            "is stored in plain text, and it holds registry passwords",
            f"remove it (pulumi config rm {KEY}) and set each value with {set_fix()}",
        )
    # The CLI calls the whole key secret when any one leaf is; a value added later without
    # --secret would sit in the stack file in clear text.
    if plain_text_paths:
        leaf = plain_text_paths[0]
        raise ConfigError(
            KEY,
            f"{leaf} is stored in plain text in the stack file, next to encrypted values",
            f"encrypt it: pulumi config set --secret --path '{leaf}' <value> "
            "(and rotate a password stored so: it was readable)",
        )
    if not isinstance(raw, dict):
        raise ConfigError(KEY, "is not an object of registry hosts to credentials", set_fix())
    registries = []
    for host, entry in raw.items():
        check_host(host)
        if not isinstance(entry, dict):
            raise ConfigError(
                KEY,
                f"{path(host)} is not an object of {', '.join(FIELDS)}",
                set_fix(host, "username"),
            )
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise ConfigError(
                KEY,
                f"{path(host)} has unknown keys {unknown}; a registry takes {', '.join(FIELDS)} "
                "(a token goes in password)",
                f"pulumi config rm --path '{path(host, unknown[0])}'",
            )
        for field, value in entry.items():
            if not isinstance(value, str):
                # The type, never the value: it may be a secret.
                kind = "null" if value is None else type(value).__name__
                raise ConfigError(
                    KEY, f"{path(host, field)} is {kind}, not a string", set_fix(host, field)
                )
        for field in REQUIRED_FIELDS:
            if not entry.get(field):
                raise ConfigError(
                    KEY,
                    f"{path(host, field)} is {'empty' if field in entry else 'missing'}: containerd would pull "
                    f"from {host} without credentials",
                    set_fix(host, field),
                )
        mirror = entry.get("mirror") or None
        if "mirror" in entry and mirror is None:
            raise ConfigError(
                KEY,
                f"{path(host, 'mirror')} is empty",
                f"set an endpoint, or pulumi config rm --path '{path(host, 'mirror')}'",
            )
        if mirror is not None:
            check_mirror(host, mirror)
        registries.append(Registry(host, entry["username"], entry["password"], mirror))
    return tuple(registries)
