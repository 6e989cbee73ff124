"""The `apps`, `appNamespace`, `appSecrets` and `manifestsDir` settings, validated."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from .capacity import (
    MIN_VOLUME_BYTES,
    NOTHING_RESERVED,
    ContainerResources,
    NamespaceBudget,
    NodeCapacity,
    Reserved,
    VolumeClaim,
    Workload,
    bundle_advice,
    check_capacity,
    check_volumes_fit,
    data_disk_advice,
    parse_cpu_budget,
    parse_resources,
    storage_bytes,
)
from .catalog import Bundle, agent_capable_bundle_ids, server_capable_bundle_ids
from .errors import ConfigError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A Service name is a DNS-1035 label (it must start with a letter); the app's name also names its
# Deployment, container and labels, whose rules (DNS-1123 label/subdomain, label value) it then meets.
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The distribution reference grammar (github.com/distribution/reference, reference.go and regexp.go,
# which Docker and containerd use): [domain[:port]/]path[:tag][@digest], path components lowercase.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:(?P<domain>{_DOMAIN})/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)
IMAGE_NAME_MAX_LENGTH = 255
# The digests registries and containerd accept (OCI image spec, descriptor.md): lowercase hex of the
# algorithm's length.
IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
HTTP_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")

APP_KEYS = {
    "name",
    "image",
    "port",
    "replicas",
    "path",
    "host",
    "env",
    "secretEnv",
    "resources",
    "healthPath",
    "securityContext",
    "volumes",
}
VOLUME_KEYS = {"name", "mountPath", "size"}
# The pod volume that a read-only root filesystem mounts at /tmp (components/apps.py).
TMP_VOLUME_NAME = "tmp"
TMP_MOUNT_PATH = "/tmp"


# The capabilities the Pod Security Standards' baseline profile lets a container add
# (kubernetes.io/docs/concepts/security/pod-security-standards, Baseline, "Capabilities");
# the apps namespace enforces baseline, so the API server would refuse a pod adding any other.
BASELINE_ADDABLE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
CAPABILITY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
SECURITY_CONTEXT_KEYS = {"runAsNonRoot", "runAsUser", "readOnlyRootFilesystem", "capabilities"}
# Raw sockets are only needed for ping-like tools; the CIS Kubernetes Benchmark
# asks to minimise containers with NET_RAW, and baseline still grants it by default.
DEFAULT_DROPPED_CAPABILITIES = ("NET_RAW",)
MAX_USER_ID = 2**31 - 1


@dataclass(frozen=True)
class AppSecurity:
    """An app's overrides of the hardened pod defaults (see apps.py for what is always set)."""

    run_as_non_root: bool = False
    run_as_user: int | None = None
    read_only_root_filesystem: bool = False
    add_capabilities: tuple[str, ...] = ()
    drop_capabilities: tuple[str, ...] = DEFAULT_DROPPED_CAPABILITIES


@dataclass(frozen=True)
class AppVolume:
    """A PersistentVolumeClaim of the app's, mounted at mount_path (see components/apps.py)."""

    name: str
    mount_path: str
    size: str
    size_bytes: int

    def claim_name(self, app: str) -> str:
        return f"{app}-{self.name}"


@dataclass(frozen=True)
class AppSpec:
    name: str
    image: str
    port: int
    replicas: int
    path: str
    host: str | None
    env: dict[str, str]
    secret_env: tuple[str, ...]
    resources: ContainerResources
    health_path: str | None
    security: AppSecurity = AppSecurity()
    volumes: tuple[AppVolume, ...] = ()

    @property
    def secret_name(self) -> str:
        return f"{self.name}-env"


@dataclass(frozen=True)
class AppSettings:
    namespace: str
    specs: tuple[AppSpec, ...]
    # app name -> variable -> value; only ever read to build secret Outputs.
    secret_values: dict[str, dict[str, str]] = field(repr=False)
    manifests: tuple[dict[str, Any], ...]
    budget: NamespaceBudget
    # Logged by the program when the apps' sustained CPU exceeds the bundle's baseline (cpuBudget: warn).
    burst_warning: str | None = None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _app_error(index: int, name: str | None, problem: str, fix: str) -> ConfigError:
    where = f"apps[{index}]" + (f" ({name})" if name else "")
    return ConfigError("apps", f"{where}: {problem}", fix)


def parse_image(image: Any, index: int, name: str) -> str:
    fix = "pin a version tag or digest, e.g. ghcr.io/acme/web:1.4.2 or …@sha256:<digest>"
    if not isinstance(image, str) or not image:
        raise _app_error(index, name, f"image {image!r} is not an image reference", fix)
    reference = IMAGE_REFERENCE.fullmatch(image)
    if reference is None:
        hint = (
            " (the repository path must be lowercase)"
            if IMAGE_REFERENCE.fullmatch(image.lower())
            else ""
        )
        raise _app_error(
            index,
            name,
            f"image {image!r} is not a valid image reference ([registry[:port]/]repository[:tag][@digest]){hint}",
            fix,
        )
    if len(reference["name"]) > IMAGE_NAME_MAX_LENGTH:
        raise _app_error(
            index, name, f"image name is longer than {IMAGE_NAME_MAX_LENGTH} characters", fix
        )
    if reference["digest"] is not None:
        if not IMAGE_DIGEST.fullmatch(reference["digest"]):
            raise _app_error(
                index,
                name,
                f"image {image!r} has digest {reference['digest']!r}, not sha256:<64 hex> or sha512:<128 hex>",
                fix,
            )
        return image
    if reference["tag"] is None:
        raise _app_error(
            index,
            name,
            f"image {image!r} has no tag, so every pull may bring a different build",
            fix,
        )
    if reference["tag"] == "latest":
        raise _app_error(
            index, name, f"image {image!r} uses :latest, which moves between deploys", fix
        )
    return image


def parse_url_path(value: Any, key: str, index: int, name: str, example: str) -> str:
    """A URL path prefix in normal form, so that two spellings of one path cannot both be routed."""
    if not isinstance(value, str) or not HTTP_PATH.fullmatch(value):
        raise _app_error(
            index,
            name,
            f"{key} {value!r} is not a URL path starting with '/'",
            f"e.g. {key}: {example}",
        )
    segments = unquote(value).split("/")[1:]
    if value != "/" and (
        "%2f" in value.lower() or any(segment in ("", ".", "..") for segment in segments)
    ):
        normal = posixpath.normpath("/" + unquote(value).strip("/"))
        raise _app_error(
            index,
            name,
            f"{key} {value!r} is not in normal form (no empty, '.' or '..' segments, no encoded '/', no trailing '/')",
            f"write it as {normal}",
        )
    return value


def _parse_capability_list(
    raw: Any, field_name: str, index: int, name: str, fix: str
) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise _app_error(
            index,
            name,
            f"securityContext.capabilities.{field_name} {raw!r} is not a list of names",
            fix,
        )
    for capability in raw:
        if capability.startswith("CAP_"):
            raise _app_error(
                index,
                name,
                f"securityContext.capabilities.{field_name} names {capability!r}",
                f"Kubernetes names capabilities without the CAP_ prefix: {capability.removeprefix('CAP_')}",
            )
        if not CAPABILITY_NAME.fullmatch(capability):
            raise _app_error(
                index,
                name,
                f"securityContext.capabilities.{field_name} names {capability!r}, not a capability",
                fix,
            )
    return tuple(dict.fromkeys(raw))


def parse_security_context(raw: Any, index: int, name: str) -> AppSecurity:
    """The app's `securityContext` overrides; they may harden the pod further, never past baseline."""
    fix = (
        "e.g. securityContext: {runAsNonRoot: true, runAsUser: 10001, readOnlyRootFilesystem: true, "
        "capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}"
    )
    if raw is None:
        return AppSecurity()
    if not isinstance(raw, dict):
        raise _app_error(index, name, f"securityContext {raw!r} is not an object", fix)
    unknown = set(raw) - SECURITY_CONTEXT_KEYS
    if unknown:
        raise _app_error(
            index,
            name,
            f"securityContext has unknown keys {sorted(unknown)}",
            f"allowed keys: {', '.join(sorted(SECURITY_CONTEXT_KEYS))}",
        )
    for flag in ("runAsNonRoot", "readOnlyRootFilesystem"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise _app_error(
                index, name, f"securityContext.{flag} {raw[flag]!r} is not true or false", fix
            )
    run_as_non_root = raw.get("runAsNonRoot", False)
    run_as_user = raw.get("runAsUser")
    if run_as_user is not None and (
        isinstance(run_as_user, bool)
        or not isinstance(run_as_user, int)
        or not 0 <= run_as_user <= MAX_USER_ID
    ):
        raise _app_error(
            index,
            name,
            f"securityContext.runAsUser {run_as_user!r} is not a user ID (0-{MAX_USER_ID})",
            "e.g. runAsUser: 10001",
        )
    if run_as_non_root and run_as_user == 0:
        raise _app_error(
            index,
            name,
            "securityContext sets runAsNonRoot: true with runAsUser: 0 (root), so the kubelet would refuse to start it",
            "use a non-zero runAsUser, e.g. 10001",
        )

    capabilities = raw.get("capabilities")
    if capabilities is None:
        return AppSecurity(run_as_non_root, run_as_user, raw.get("readOnlyRootFilesystem", False))
    if not isinstance(capabilities, dict) or set(capabilities) - {"add", "drop"}:
        raise _app_error(
            index,
            name,
            f"securityContext.capabilities {capabilities!r} may only hold add and drop",
            fix,
        )
    add = _parse_capability_list(capabilities.get("add", []), "add", index, name, fix)
    drop = _parse_capability_list(capabilities.get("drop", []), "drop", index, name, fix)
    beyond_baseline = sorted(set(add) - BASELINE_ADDABLE_CAPABILITIES)
    if beyond_baseline:
        raise _app_error(
            index,
            name,
            f"securityContext.capabilities.add {beyond_baseline} goes beyond the Pod Security Standards' baseline, "
            "which the apps namespace enforces, so the API server would refuse the pod",
            f"add only from: {', '.join(sorted(BASELINE_ADDABLE_CAPABILITIES))}",
        )
    return AppSecurity(
        run_as_non_root, run_as_user, raw.get("readOnlyRootFilesystem", False), add, drop
    )


def parse_volumes(raw: Any, index: int, name: str, security: AppSecurity) -> tuple[AppVolume, ...]:
    """The app's `volumes`: each a claim on local-path of `size`, mounted at `mountPath`."""
    fix = "e.g. volumes: [{name: data, mountPath: /var/lib/app, size: 5Gi}]"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _app_error(index, name, f"volumes {raw!r} is not a list of volumes", fix)
    volumes: list[AppVolume] = []
    for position, volume in enumerate(raw):
        where = f"volumes[{position}]"
        if not isinstance(volume, dict):
            raise _app_error(index, name, f"{where} {volume!r} is not an object", fix)
        unknown = set(volume) - VOLUME_KEYS
        if unknown:
            raise _app_error(
                index,
                name,
                f"{where} has unknown keys {sorted(unknown)}",
                f"allowed keys: {', '.join(sorted(VOLUME_KEYS))}",
            )
        missing = sorted(VOLUME_KEYS - set(volume))
        if missing:
            raise _app_error(
                index,
                name,
                f"{where}.{missing[0]} is missing",
                f"set apps[{index}].{where}.{missing[0]}",
            )
        volume_name, mount_path, size = volume["name"], volume["mountPath"], volume["size"]
        # It names the pod's volume (a DNS-1123 label) and, after the app's name, its claim.
        if not isinstance(volume_name, str) or not DNS_LABEL.fullmatch(volume_name):
            raise _app_error(
                index,
                name,
                f"{where}.name {volume_name!r} is not a DNS-1123 label",
                "lowercase letters, digits and '-', at most 63 characters, e.g. name: data",
            )
        if volume_name == TMP_VOLUME_NAME:
            raise _app_error(
                index,
                name,
                f"{where}.name {volume_name!r} is the name of the pod's own /tmp volume",
                "give the volume another name, e.g. name: data",
            )
        if any(v.name == volume_name for v in volumes):
            raise _app_error(
                index, name, f"{where}.name {volume_name!r} is already a volume of this app", fix
            )
        if (
            not isinstance(mount_path, str)
            or not mount_path.startswith("/")
            or mount_path == "/"
            or posixpath.normpath(mount_path) != mount_path
            or mount_path.startswith("//")
        ):
            raise _app_error(
                index,
                name,
                f"{where}.mountPath {mount_path!r} is not an absolute directory path in normal form, below /",
                "e.g. mountPath: /var/lib/app (no trailing '/', no '.' or '..' segments)",
            )
        if any(v.mount_path == mount_path for v in volumes) or (
            security.read_only_root_filesystem and mount_path == TMP_MOUNT_PATH
        ):
            raise _app_error(
                index,
                name,
                f"{where}.mountPath {mount_path} is already mounted in this app's container",
                "mount each volume at its own path",
            )
        size_bytes = storage_bytes(size) if isinstance(size, str) else None
        if size_bytes is None:
            raise _app_error(
                index,
                name,
                f"{where}.size {size!r} is not a Kubernetes quantity",
                "e.g. size: 5Gi (binary Ki, Mi, Gi, Ti; or decimal k, M, G, T)",
            )
        if size_bytes < MIN_VOLUME_BYTES:
            raise _app_error(
                index,
                name,
                f"{where}.size {size!r} is below 1Mi: a number without its unit is bytes",
                f"e.g. size: {size}Gi",
            )
        volumes.append(AppVolume(volume_name, mount_path, size, size_bytes))
    return tuple(volumes)


def parse_app(raw: Any, index: int, secrets: dict[str, dict[str, str]]) -> AppSpec:
    if not isinstance(raw, dict):
        raise _app_error(
            index,
            None,
            f"{raw!r} is not an object",
            "each app is an object with at least name, image and port",
        )
    name = raw.get("name")
    if not isinstance(name, str) or not DNS_1035_LABEL.fullmatch(name):
        raise _app_error(
            index,
            None,
            f"name {name!r} cannot name the app's Service (a DNS-1035 label)",
            "start with a lowercase letter, then lowercase letters, digits and '-', at most 63 characters, not ending in '-'",
        )
    unknown = set(raw) - APP_KEYS
    if unknown:
        raise _app_error(
            index,
            name,
            f"unknown keys {sorted(unknown)}",
            f"allowed keys: {', '.join(sorted(APP_KEYS))}",
        )
    for required in ("image", "port"):
        if required not in raw:
            raise _app_error(index, name, f"{required} is missing", f"set apps[{index}].{required}")
    image = parse_image(raw["image"], index, name)

    port = raw["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _app_error(
            index,
            name,
            f"port {port!r} is not a port number (1-65535)",
            "set the port the container listens on",
        )
    replicas = raw.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= 50:
        raise _app_error(
            index,
            name,
            f"replicas {replicas!r} is not a whole number from 0 to 50",
            "e.g. replicas: 2",
        )

    path = parse_url_path(raw.get("path", "/"), "path", index, name, "/api")
    host = raw.get("host")
    if host is not None and (not isinstance(host, str) or not DNS_SUBDOMAIN.fullmatch(host)):
        raise _app_error(
            index,
            name,
            f"host {host!r} is not a lowercase DNS name",
            "e.g. host: app.example.com, or leave it out",
        )
    if host is not None and _is_ip_address(host):
        raise _app_error(
            index,
            name,
            f"host {host!r} is an IP address; an Ingress host is a DNS name (Kubernetes refuses IPs there)",
            "leave host out to route any host, including the static IP",
        )
    health_path = raw.get("healthPath")
    if health_path is not None:
        health_path = parse_url_path(health_path, "healthPath", index, name, "/healthz")

    env = raw.get("env") or {}
    if not isinstance(env, dict):
        raise _app_error(
            index, name, f"env {env!r} is not an object", "e.g. env: {LOG_LEVEL: info}"
        )
    for variable, value in env.items():
        if not ENV_NAME.fullmatch(variable):
            raise _app_error(
                index,
                name,
                f"env name {variable!r} is not a valid variable name",
                "use letters, digits and _",
            )
        if isinstance(value, (dict, list)) or value is None:
            raise _app_error(
                index,
                name,
                f"env {variable} has value {value!r}; values are strings",
                f"e.g. {variable}: 'value'",
            )

    secret_env = raw.get("secretEnv") or []
    if not isinstance(secret_env, list) or not all(
        isinstance(v, str) and ENV_NAME.fullmatch(v) for v in secret_env
    ):
        raise _app_error(
            index,
            name,
            f"secretEnv {secret_env!r} is not a list of variable names",
            "e.g. secretEnv: [DATABASE_URL]",
        )
    for variable in secret_env:
        if variable in env:
            raise _app_error(
                index,
                name,
                f"{variable} is in both env and secretEnv",
                f"keep {variable} in one of them",
            )
        if variable not in secrets.get(name, {}):
            raise ConfigError(
                "appSecrets",
                f"apps[{index}] ({name}) lists {variable} in secretEnv, but appSecrets.{name}.{variable} has no value",
                f"pulumi config set --secret --path 'appSecrets.{name}.{variable}' <value>",
            )

    resources = parse_resources(raw.get("resources"), f"apps[{index}] ({name})")
    security = parse_security_context(raw.get("securityContext"), index, name)
    volumes = parse_volumes(raw.get("volumes"), index, name, security)
    if volumes and replicas > 1:
        raise _app_error(
            index,
            name,
            f"replicas {replicas} with volumes: a local-path volume lives on one node's disk, so its "
            "replicas would share one node and write the same data",
            "set replicas: 1 (0 stops the app and keeps its data), or remove volumes",
        )
    return AppSpec(
        name=name,
        image=image,
        port=port,
        replicas=replicas,
        path=path,
        host=host,
        env={k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in env.items()},
        secret_env=tuple(dict.fromkeys(secret_env)),
        resources=resources,
        health_path=health_path,
        security=security,
        volumes=volumes,
    )


def parse_app_secrets(
    raw: Any, is_secret: bool, plain_text_paths: tuple[str, ...]
) -> dict[str, dict[str, str]]:
    """The secret values; plain_text_paths are the leaves the stack file holds unencrypted."""
    fix = "pulumi config set --secret --path 'appSecrets.<app>.<VARIABLE>' <value>"
    if not raw:
        return {}
    if not is_secret:
        raise ConfigError(
            "appSecrets",
            "is stored in plain text",
            f"remove it (pulumi config rm appSecrets) and set each value with {fix}",
        )
    # The CLI calls the whole key secret when any one leaf is; a value added later without --secret
    # would sit in the stack file in clear text.
    if plain_text_paths:
        path = plain_text_paths[0]
        raise ConfigError(
            "appSecrets",
            f"{path} is stored in plain text in the stack file, next to encrypted values",
            f"encrypt it: pulumi config set --secret --path '{path}' <value> (and rotate the value: it was readable)",
        )
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(
            "appSecrets", "is not an object of app names to objects of variables", fix
        )
    for app, variables in raw.items():
        for variable, value in variables.items():
            if not isinstance(value, str):
                # The type, never the value: it is a secret.
                raise ConfigError(
                    "appSecrets",
                    f"appSecrets.{app}.{variable} is {type(value).__name__ if value is not None else 'null'}, not a string",
                    f"pulumi config set --secret --path 'appSecrets.{app}.{variable}' <value>",
                )
    return {app: dict(variables) for app, variables in raw.items()}


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _object_key(document: dict[str, Any]) -> tuple[str, str, str]:
    # Objects without a namespace land in "default" (namespaced kinds) or have none (cluster-scoped
    # kinds); either way two documents with one kind and name there are the same object.
    namespace = (
        ""
        if document["kind"] == "Namespace"
        else document["metadata"].get("namespace") or "default"
    )
    return (document["kind"], namespace, document["metadata"]["name"])


def _shown(key: tuple[str, str, str]) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def load_manifests(directory: Path, shown_as: str, project_dir: Path) -> tuple[dict[str, Any], ...]:
    fix = f"point manifestsDir at a directory of Kubernetes YAML files (it is {shown_as!r}, relative to Pulumi.yaml)"
    project_dir = project_dir.resolve()
    if not _inside(directory, project_dir):
        raise ConfigError(
            "manifestsDir",
            f"{shown_as!r} resolves to {directory}, outside the project ({project_dir})",
            "keep the manifests in the repository, e.g. pulumi config set manifestsDir k8s",
        )
    if not directory.is_dir():
        raise ConfigError("manifestsDir", f"{shown_as!r} is not a directory", fix)
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ConfigError("manifestsDir", f"{shown_as!r} holds no .yaml or .yml files", fix)
    objects = []
    first_seen: dict[tuple[str, str, str], str] = {}
    for file in files:
        relative = file.relative_to(directory)
        if not _inside(file.resolve(), project_dir):
            raise ConfigError(
                "manifestsDir",
                f"{relative} links to a file outside the project",
                "copy the file into the repository instead of linking to it",
            )
        try:
            documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            # Where, never what: the offending line may hold a secret (a Secret's stringData).
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ConfigError(
                "manifestsDir",
                f"{relative}{where} is not valid UTF-8 YAML",
                "fix the file there, or remove it",
            ) from None
        for number, document in enumerate(documents, start=1):
            if document is None:
                continue
            metadata = document.get("metadata") if isinstance(document, dict) else None
            if not (
                isinstance(document, dict)
                and isinstance(document.get("apiVersion"), str)
                and isinstance(document.get("kind"), str)
                and isinstance(metadata, dict)
                and isinstance(metadata.get("name"), str)
            ):
                raise ConfigError(
                    "manifestsDir",
                    f"{relative}, document {number}, is not a Kubernetes object (apiVersion, kind, metadata.name)",
                    "fix the document, or remove it",
                )
            if document["kind"].endswith("List"):
                raise ConfigError(
                    "manifestsDir",
                    f"{relative}, document {number}, is a {document['kind']}",
                    "list its items as documents",
                )
            key = _object_key(document)
            here = f"{relative}, document {number}"
            if key in first_seen:
                raise ConfigError(
                    "manifestsDir",
                    f"{here} declares {_shown(key)}, which {first_seen[key]} already declares",
                    "keep one of them",
                )
            first_seen[key] = here
            objects.append(document)
    return tuple(objects)


def parse_app_settings(
    apps_raw: Any,
    namespace_raw: str | None,
    secrets_raw: Any,
    secrets_are_secret: bool,
    plain_text_secret_paths: tuple[str, ...],
    manifests_dir_raw: str | None,
    project_dir: Path,
    bundle: Bundle,
    cpu_budget_raw: str,
    agent_bundle: Bundle | None = None,
    reserved: Reserved = NOTHING_RESERVED,
    data_disk_gb: int = 0,
) -> AppSettings:
    """`agent_bundle`: the agents' bundle when the cluster has agents, whose disks may hold volumes too.
    `reserved`: the charts' share of the node (components/charts.py), which the apps' budget leaves them.
    `data_disk_gb`: the servers' data disk (dataDiskGb), which holds their volumes; 0 for none."""
    namespace = namespace_raw or ""
    if not DNS_LABEL.fullmatch(namespace) or namespace.startswith("kube-"):
        raise ConfigError(
            "appNamespace",
            f"{namespace!r} is not a usable namespace name",
            "use a DNS-1123 label not starting with kube-, e.g. apps",
        )
    cpu_budget = parse_cpu_budget(cpu_budget_raw)
    secrets = parse_app_secrets(secrets_raw, secrets_are_secret, plain_text_secret_paths)

    apps_raw = [] if apps_raw is None else apps_raw
    if not isinstance(apps_raw, list):
        raise ConfigError(
            "apps", f"{apps_raw!r} is not a list of apps", "see the apps schema in docs/apps.md"
        )
    apps = tuple(parse_app(raw, index, secrets) for index, raw in enumerate(apps_raw))

    seen_names: dict[str, int] = {}
    seen_routes: dict[tuple[str | None, str], str] = {}
    seen_claims: dict[str, str] = {}
    for index, app in enumerate(apps):
        for position, volume in enumerate(app.volumes):
            claim = volume.claim_name(app.name)
            if claim in seen_claims:
                raise _app_error(
                    index,
                    app.name,
                    f"volumes[{position}] would be claim {claim}, which is already {seen_claims[claim]}'s",
                    "rename the volume",
                )
            seen_claims[claim] = f"apps[{index}] ({app.name}) volumes[{position}] ({volume.name})"
        if app.name in seen_names:
            raise _app_error(
                index,
                app.name,
                f"the name is already used by apps[{seen_names[app.name]}]",
                "give each app its own name",
            )
        seen_names[app.name] = index
        route = (app.host, app.path)
        if route in seen_routes:
            where = f"host {app.host}" if app.host else "the default host"
            raise _app_error(
                index,
                app.name,
                f"path {app.path} on {where} is already routed to {seen_routes[route]}",
                "give each app its own path or host",
            )
        seen_routes[route] = app.name
    for app_name, variables in secrets.items():
        if app_name not in seen_names:
            raise ConfigError(
                "appSecrets",
                f"has values for {app_name!r}, which is not in apps",
                f"pulumi config rm --path 'appSecrets.{app_name}'",
            )
        unused = sorted(set(variables) - set(apps[seen_names[app_name]].secret_env))
        if unused:
            raise ConfigError(
                "appSecrets",
                f"appSecrets.{app_name}.{unused[0]} is not in the secretEnv of app {app_name!r}, so no pod would get it",
                f"add {unused[0]} to apps[{seen_names[app_name]}].secretEnv, "
                f"or pulumi config rm --path 'appSecrets.{app_name}.{unused[0]}'",
            )

    workloads = [
        Workload(f"apps[{index}] ({app.name})", app.replicas, app.resources, surges=not app.volumes)
        for index, app in enumerate(apps)
    ]
    burst_warning = check_capacity(workloads, bundle, cpu_budget, reserved)
    check_volumes_fit_the_nodes(apps, bundle, agent_bundle, data_disk_gb)

    manifests: tuple[dict[str, Any], ...] = ()
    if manifests_dir_raw:
        manifests = load_manifests(
            (project_dir / manifests_dir_raw).resolve(), manifests_dir_raw, project_dir
        )
        check_manifests_leave_apps_alone(manifests, apps, namespace)
    return AppSettings(
        namespace, apps, secrets, manifests, NodeCapacity.of(bundle, reserved).budget, burst_warning
    )


def check_volumes_fit_the_nodes(
    apps: tuple[AppSpec, ...], bundle: Bundle, agent_bundle: Bundle | None, data_disk_gb: int = 0
) -> None:
    """Every node an app may start on (a server, or an agent) must hold all the volumes on its disk:
    a server's data disk when it has one (dataDiskGb: local-path keeps them under
    /var/lib/rancher/k3s, which lives there), else its own."""
    claims = [
        VolumeClaim(
            f"apps[{index}] ({app.name}) volumes[{position}] ({volume.name})",
            volume.size,
            volume.size_bytes,
        )
        for index, app in enumerate(apps)
        for position, volume in enumerate(app.volumes)
    ]
    if not claims:
        return
    if data_disk_gb:
        check_volumes_fit(
            claims,
            data_disk_gb,
            f"the servers' {data_disk_gb} GB data disk (dataDiskGb)",
            data_disk_advice,
        )
    else:
        check_volumes_fit(
            claims,
            bundle.disk_gb,
            f"the {bundle.bundle_id} server's {bundle.disk_gb} GB disk",
            bundle_advice("bundleId", server_capable_bundle_ids()),
        )
    if agent_bundle is not None:
        check_volumes_fit(
            claims,
            agent_bundle.disk_gb,
            f"the {agent_bundle.bundle_id} agents' {agent_bundle.disk_gb} GB disk",
            bundle_advice("agentBundleId", agent_capable_bundle_ids()),
        )


def check_manifests_leave_apps_alone(
    manifests: tuple[dict[str, Any], ...], apps: tuple[AppSpec, ...], namespace: str
) -> None:
    """No manifest may declare an object the apps already declare: two owners would overwrite each other."""
    owners = {("Namespace", "", namespace): "appNamespace"}
    for index, app in enumerate(apps):
        for kind, name in (
            ("Deployment", app.name),
            ("Service", app.name),
            *((("Secret", app.secret_name),) if app.secret_env else ()),
            *(("PersistentVolumeClaim", volume.claim_name(app.name)) for volume in app.volumes),
        ):
            owners[(kind, namespace, name)] = f"apps[{index}] ({app.name})"
    for document in manifests:
        key = _object_key(document)
        if key in owners:
            raise ConfigError(
                "manifestsDir",
                f"a manifest declares {_shown(key)}, which {owners[key]} already declares",
                f"remove it from the manifests, or rename {owners[key]}",
            )
