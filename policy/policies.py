"""The lightsail-k3s policy pack's rules, as plain functions over pulumi-policy's args objects.

Resource policies see each resource's inputs and options before it is created or updated
(`Analyze`); the stack policy sees every resource's outputs once the deployment is planned
(`AnalyzeStack`; pulumi/pulumi pkg/resource/deploy/step_generator.go, AnalyzeResources).
Values still unknown during a preview make pulumi-policy skip the rule with an advisory note;
the rule then runs at `pulumi up`.

What a pack cannot see: whether a *stack output* is secret. The engine sends outputs with their
secret markers, but pulumi-policy's Python SDK strips them before a stack policy gets the values
(pulumi_policy/policy.py, AnalyzeStack: deserialize_properties without proxy_secrets). So
`secret-reads-stay-secret` checks the resources the secret outputs come from instead, and the
mock-engine tests check the outputs themselves.

The pack is self-contained (the CLI runs it from this directory): the bundle baselines below
mirror components/catalog.py, and a test keeps the two equal.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

INSTANCE = "aws:lightsail/instance:Instance"
STATIC_IP = "aws:lightsail/staticIp:StaticIp"
# A server's data disk (components/host.py): with one, the cluster's data is there.
DISK = "aws:lightsail/disk:Disk"
FIREWALL = "aws:lightsail/instancePublicPorts:InstancePublicPorts"
REMOTE_COMMAND = "command:remote:Command"
LIMIT_RANGE = "kubernetes:core/v1:LimitRange"

# Ports that only admins (and other nodes) may reach: SSH, the Kubernetes API, the kubelet,
# etcd, flannel VXLAN and WireGuard (k3s networking requirements, docs.k3s.io/installation/requirements).
ADMIN_PORTS = {
    "tcp": {22, 6443, 10250, 2379, 2380},
    "udp": {8472, 51820, 51821},
}
# Anything wider than a /8 (IPv4) or a /16 (IPv6) is the internet in all but name.
WIDEST_PRIVATE_PREFIX = {4: 8, 6: 16}

# Files on the node whose contents are credentials (k3s docs: kubeconfig and server tokens).
SECRET_FILES = re.compile(
    r"/etc/rancher/k3s/k3s\.yaml|/var/lib/rancher/k3s/server/(node-token|token|agent-token)"
)

K3S_RELEASE = re.compile(r"^v\d+\.\d+\.\d+\+k3s\d+$")
K3S_VERSION_ASSIGNMENT = re.compile(r"(?:^|[\s;])K3S_VERSION=(\S*)", re.MULTILINE)

IMAGE_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

# Per bundle: vCPUs and sustained CPU in millicores (vCPUs x baseline %), from components/catalog.py.
VCPUS = {
    "nano_3_0": 2,
    "micro_3_0": 2,
    "small_3_0": 2,
    "medium_3_0": 2,
    "large_3_0": 2,
    "xlarge_3_0": 4,
    "2xlarge_3_0": 8,
    "4xlarge_3_0": 16,
}
BASELINE_MILLICORES = {
    "nano_3_0": 100,
    "micro_3_0": 200,
    "small_3_0": 400,
    "medium_3_0": 400,
    "large_3_0": 600,
    "xlarge_3_0": 1600,
    "2xlarge_3_0": 3200,
    "4xlarge_3_0": 6400,
}
# k3s' own sustained CPU (k3s resource-profiling docs: ~10% of a core), as components/capacity.py counts it.
K3S_MILLICORES = 100

# Where each workload kind keeps its pod spec, and how many pods it runs at once on one node.
POD_SPEC_PATHS = {
    "kubernetes:core/v1:Pod": (),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def stack_name(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<type>::<name> (Pulumi resource URN format)."""
    return urn.split("::", 1)[0].split(":", 2)[2]


# --- admin ports never open to the internet -------------------------------------------------


def _covers_admin_port(port_info: Mapping[str, Any]) -> list[int]:
    protocol = str(port_info.get("protocol"))
    low, high = port_info.get("fromPort", 0), port_info.get("toPort", 0)
    protocols = ADMIN_PORTS if protocol == "all" else {protocol: ADMIN_PORTS.get(protocol, set())}
    return sorted(port for ports in protocols.values() for port in ports if low <= port <= high)


def _internet_wide(cidr: str) -> bool:
    network = ipaddress.ip_network(cidr, strict=False)
    return network.prefixlen < WIDEST_PRIVATE_PREFIX[network.version]


def validate_admin_ports(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != FIREWALL:
        return
    for port_info in args.props.get("portInfos") or []:
        ports = _covers_admin_port(port_info)
        if not ports:
            continue
        wide = [
            c
            for c in [*(port_info.get("cidrs") or []), *(port_info.get("ipv6Cidrs") or [])]
            if _internet_wide(c)
        ]
        if wide:
            report_violation(
                f"ports {ports} ({port_info.get('protocol')}) are open to {', '.join(wide)}; "
                "list your admin networks in adminCidrs instead",
                None,
            )


# --- the reads behind kubeconfig, nodeToken and sshPrivateKey stay secret --------------------


def validate_secret_reads(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != REMOTE_COMMAND:
        return
    create = args.props.get("create") or ""
    if not SECRET_FILES.search(create):
        return
    if "stdout" not in args.opts.additional_secret_outputs:
        report_violation(
            f'{create!r} reads a credential but its stdout is not secret in state; add additional_secret_outputs=["stdout"]',
            None,
        )
    if args.props.get("logging") != "none":
        report_violation(
            f"{create!r} reads a credential but its output is logged; set logging=Logging.NONE",
            None,
        )


# --- node and static IP protected on prod stacks ---------------------------------------------


# Agents hold no cluster state, and lowering agentCount must be able to delete them
# (the program leaves them unprotected and drains each first; __main__.py).
AGENT_RESOURCE_NAME = re.compile(r"-agent-\d+-(instance|ip)$")


def validate_prod_protection(
    args: ResourceValidationArgs, report_violation: ReportViolation
) -> None:
    """The static IPs and data disks; the instances are the stack rule's below, since whether an
    instance holds the data depends on whether its host has a data disk."""
    if args.resource_type not in (STATIC_IP, DISK) or AGENT_RESOURCE_NAME.search(args.name):
        return
    stack = stack_name(args.urn)
    if stack.startswith("prod") and not args.opts.protect:
        report_violation(
            f"{args.name} is not protected on stack {stack!r}; deleting or replacing it loses the cluster "
            "or its address. Set: pulumi config set --type bool protect true",
            None,
        )


def validate_prod_data_protection(
    args: StackValidationArgs, report_violation: ReportViolation
) -> None:
    """A server's data is protected on prod*: its data disk (`<node>-data`) when it has one, else
    its instance, whose own disk then holds the data."""
    by_name = {resource.name: resource for resource in args.resources}
    for resource in args.resources:
        if resource.resource_type != INSTANCE or AGENT_RESOURCE_NAME.search(resource.name):
            continue
        stack = stack_name(resource.urn)
        if not stack.startswith("prod"):
            continue
        disk = by_name.get(resource.name.removesuffix("-instance") + "-data")
        holder = disk if disk is not None and disk.resource_type == DISK else resource
        if not holder.opts.protect:
            report_violation(
                f"{holder.name} is not protected on stack {stack!r}; deleting or replacing it loses "
                "the cluster's data. Set: pulumi config set --type bool protect true",
                holder.urn,
            )


# --- k3sVersion pinned -------------------------------------------------------------------------


def validate_k3s_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != REMOTE_COMMAND:
        return
    # The install takes its settings as shell assignments on stdin (components/k3s.py, install_program).
    for command_text in (args.props.get(key) or "" for key in ("create", "update", "stdin")):
        if "INSTALL_K3S_CHANNEL" in command_text:
            report_violation(
                "the k3s install follows a release channel, which moves; pin k3sVersion instead",
                None,
            )
        for version in K3S_VERSION_ASSIGNMENT.findall(command_text):
            version = version.strip("'\"")
            if not K3S_RELEASE.fullmatch(version):
                report_violation(
                    f"k3s version {version!r} is not an exact release (vX.Y.Z+k3sN); pin k3sVersion",
                    None,
                )


# --- container images pinned by tag or digest ------------------------------------------------


def _dig(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(field) or []


def image_problem(image: str) -> str | None:
    """Why an image reference may bring a different build on every pull, or None when it is pinned."""
    if IMAGE_DIGEST.search(image):
        return None
    last_segment = image.rsplit("/", 1)[-1]
    if ":" not in last_segment:
        return "has no tag"
    if last_segment.rsplit(":", 1)[1] == "latest":
        return "uses :latest"
    return None


def validate_images_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    path = POD_SPEC_PATHS.get(args.resource_type)
    if path is None:
        return
    pod_spec = _dig(args.props, path) or {}
    for container in _containers(pod_spec):
        image = container.get("image") or ""
        problem = image_problem(image)
        if problem:
            report_violation(
                f"container {container.get('name')!r} image {image!r} {problem}; pin a version tag or an @sha256 digest",
                None,
            )


# --- the CPU budget ----------------------------------------------------------------------------


def cpu_millicores(quantity: str | int | float) -> int:
    text = str(quantity)
    return int(text[:-1]) if text.endswith("m") else round(float(text) * 1000)


def _default_cpu_requests(resources: list) -> dict[str, int]:
    """Per namespace, the CPU request a LimitRange gives containers that set none."""
    defaults = {}
    for resource in resources:
        if resource.resource_type != LIMIT_RANGE:
            continue
        namespace = _dig(resource.props, ("metadata", "namespace")) or "default"
        for limit in _dig(resource.props, ("spec", "limits")) or []:
            cpu = (limit.get("defaultRequest") or {}).get("cpu")
            if limit.get("type") == "Container" and cpu is not None:
                defaults[namespace] = cpu_millicores(cpu)
    return defaults


def _pods_at_once(resource_type: str, props: Mapping[str, Any], nodes: int) -> int:
    if resource_type in (
        "kubernetes:apps/v1:Deployment",
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:apps/v1:ReplicaSet",
    ):
        replicas = _dig(props, ("spec", "replicas"))
        return 1 if replicas is None else int(replicas)
    if resource_type == "kubernetes:batch/v1:Job":
        parallelism = _dig(props, ("spec", "parallelism"))
        return 1 if parallelism is None else int(parallelism)
    if resource_type == "kubernetes:apps/v1:DaemonSet":
        return nodes
    return 1


def validate_cpu_budget(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The burst-credit rule of components/capacity.py over the whole stack and every node.

    k3s on each node plus every pod's CPU requests must fit the nodes' sustained baselines, summed;
    above them the instances spend burst credits and, without them, Lightsail holds each to its
    baseline. CPU limits may exceed a baseline (that is what bursting is for), but a pod runs on one
    node, so no container's limit may exceed the largest node's vCPUs.
    """
    instances = [r for r in args.resources if r.resource_type == INSTANCE]
    if not instances:
        args.not_applicable("the stack has no Lightsail instance")
    for instance in instances:
        if instance.props.get("bundleId") not in BASELINE_MILLICORES:
            report_violation(
                f"bundle {instance.props.get('bundleId')!r} has no known CPU baseline", instance.urn
            )
            return
    bundle_ids = [instance.props["bundleId"] for instance in instances]
    baseline = sum(BASELINE_MILLICORES[bundle_id] for bundle_id in bundle_ids)
    largest_vcpus = max(VCPUS[bundle_id] for bundle_id in bundle_ids)
    shown = ", ".join(sorted(set(bundle_ids)))
    defaults = _default_cpu_requests(args.resources)

    sustained = K3S_MILLICORES * len(instances)
    for resource in args.resources:
        path = POD_SPEC_PATHS.get(resource.resource_type)
        if path is None:
            continue
        namespace = _dig(resource.props, ("metadata", "namespace")) or "default"
        pod_request = 0
        for container in _containers(_dig(resource.props, path) or {}):
            resources = container.get("resources") or {}
            request = (resources.get("requests") or {}).get("cpu")
            limit = (resources.get("limits") or {}).get("cpu")
            if limit is not None and cpu_millicores(limit) > largest_vcpus * 1000:
                report_violation(
                    f"container {container.get('name')!r} has a CPU limit of {limit}, more than the largest node's "
                    f"{largest_vcpus} vCPUs ({shown})",
                    resource.urn,
                )
            pod_request += (
                cpu_millicores(request) if request is not None else defaults.get(namespace, 0)
            )
        sustained += pod_request * _pods_at_once(
            resource.resource_type, resource.props, len(instances)
        )

    if sustained > baseline:
        report_violation(
            f"k3s ({K3S_MILLICORES}m on each of {len(instances)} node(s)) and the pods' CPU requests sustain "
            f"{sustained}m, above the nodes' baseline of {baseline}m ({shown}): the instances spend burst credits, "
            "and without them Lightsail holds each to its baseline. Lower replicas or requests, or choose a larger bundleId",
            None,
        )


POLICIES = [
    ResourceValidationPolicy(
        name="admin-ports-not-public",
        description="SSH, the Kubernetes API and the other node ports are never open to the internet.",
        validate=validate_admin_ports,
    ),
    ResourceValidationPolicy(
        name="secret-reads-stay-secret",
        description="Commands that read the kubeconfig or a k3s token keep stdout secret and unlogged.",
        validate=validate_secret_reads,
    ),
    ResourceValidationPolicy(
        name="prod-node-protected",
        description="On stacks named prod*, the servers' static IPs and data disks are protected.",
        validate=validate_prod_protection,
    ),
    StackValidationPolicy(
        name="prod-data-protected",
        description=(
            "On stacks named prod*, what holds each server's data is protected: "
            "its data disk, or without one its instance."
        ),
        validate=validate_prod_data_protection,
    ),
    ResourceValidationPolicy(
        name="k3s-version-pinned",
        description="k3s is installed at an exact release, never a channel.",
        validate=validate_k3s_pinned,
    ),
    ResourceValidationPolicy(
        name="images-pinned",
        description="Container images name a version tag or a digest, never :latest or no tag.",
        validate=validate_images_pinned,
    ),
    # Advisory, like the program's default `cpuBudget: warn`: running above the baseline on
    # burst credits is a choice; the program itself refuses what cannot work.
    StackValidationPolicy(
        name="cpu-budget",
        description="k3s and the pods' CPU requests fit the node's sustained CPU baseline.",
        validate=validate_cpu_budget,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
]
