"""A one-server k3s cluster as one component, for programs in any Pulumi language.

`Cluster` is what the multi-language package (provider/) offers: the component provider host
passes it its inputs as a plain dict, and the SDK's analyzer reads the schema from the type hints
below (pulumi/pulumi sdk/python/lib/pulumi/provider/experimental/analyzer.py, analyze_component:
the `args` annotation of `__init__` gives the inputs, the class's annotated attributes the
outputs). So this module keeps its annotations evaluated: no `from __future__ import annotations`.

The inputs pass the same checks as the stack's config (components/settings.py), each error naming
the input. The composition is the stack's first server: LightsailHost with the server firewall
and a static IP, then K3sServer on it.

One check of the stack's is not made here: k3sVersion against the release deployed before. The
stack reads that from its own `k3sVersion` output; a component in another program has no such
output (the stack outputs are that program's), and Pulumi offers no read of a component's previous
outputs. So the install script's check on the node, before it changes k3s, is the only one: a
refused version fails the install, after the host's changes of the same run. A program that keeps
the deployed release can gate the whole component as the stack does (components/k3s.py,
upgrade_checked): a depends_on in its options that fails on a refused version.
"""

import json
import re
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import pulumi

from . import settings
from .errors import ConfigError
from .host import HostArgs, LightsailHost
from .k3s import K3sServer, K3sServerArgs, server_firewall_rules

CLUSTER_TYPE = "lightsail-k3s:index:Cluster"
# The name names the node, the kubeconfig's cluster and the Lightsail resources: a DNS-1123 label.
CLUSTER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?")


class ClusterArgs(TypedDict):
    """The node and k3s on it; checked as the lightsail-k3s stack checks its config keys of the same names."""

    availability_zone: str
    """Lightsail availability zone, e.g. eu-central-1a; its region is the AWS provider's."""
    bundle_id: str
    """Lightsail bundle (instance size), e.g. small_3_0: 2 vCPU and 2 GB at least."""
    blueprint_id: str
    """Operating system: ubuntu_22_04, ubuntu_24_04 or debian_12."""
    k3s_version: str
    """Exact k3s release, e.g. v1.36.1+k3s1, of a tested Kubernetes minor."""
    admin_cidrs: list[str]
    """IPv4 CIDRs allowed to reach SSH and the Kubernetes API."""
    ssh_public_key: NotRequired[str]
    """An OpenSSH public key to log in with, its private half in the ssh-agent; without it a key is generated."""
    ssh_agent_socket: NotRequired[str]
    """The ssh-agent socket (SSH_AUTH_SOCK) holding the private half of ssh_public_key."""
    auto_snapshot_time: NotRequired[str]
    """Daily Lightsail snapshot hour in UTC (HH:00); none without it."""
    protect: NotRequired[bool]
    """Refuse to delete or replace the instance (and with it the cluster's data); true unless set false."""
    tags: NotRequired[dict[str, str]]
    """Tags on the Lightsail resources."""


class Cluster(pulumi.ComponentResource):
    """A k3s server on a Lightsail instance with a static IP: kubeconfig and tokens as secret outputs."""

    kubeconfig: pulumi.Output[str]
    """Admin kubeconfig, its server the static IP (secret)."""
    kube_api_url: pulumi.Output[str]
    """The Kubernetes API, https://<static IP>:6443."""
    public_ip: pulumi.Output[str]
    """The static IP."""
    private_ip: pulumi.Output[str]
    """The instance's private IP, for agents joining."""
    instance_name: pulumi.Output[str]
    """The Lightsail instance's name."""
    ssh_user: pulumi.Output[str]
    """The login user of the blueprint."""
    ssh_private_key: pulumi.Output[str] | None
    """The generated SSH private key (secret); absent when ssh_public_key was given."""
    node_token: pulumi.Output[str]
    """The server token (secret)."""
    agent_token: pulumi.Output[str]
    """The token agents join with (secret)."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        plan = plan_single_server(name, args)
        super().__init__(CLUSTER_TYPE, name, None, opts)
        node, k3s = declare_single_server(name, plan, parent=self)
        self.kubeconfig = k3s.kubeconfig
        self.kube_api_url = k3s.api_url
        self.public_ip = node.public_ip
        self.private_ip = node.private_ip
        self.instance_name = node.instance_name
        self.ssh_user = node.ssh_user
        self.ssh_private_key = node.ssh_private_key
        self.node_token = k3s.node_token
        self.agent_token = k3s.agent_token
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "kubeApiUrl": self.kube_api_url,
                "publicIp": self.public_ip,
                "privateIp": self.private_ip,
                "instanceName": self.instance_name,
                "sshUser": self.ssh_user,
                "sshPrivateKey": self.ssh_private_key,
                "nodeToken": self.node_token,
                "agentToken": self.agent_token,
            }
        )


def args_source(args: ClusterArgs) -> settings.ConfigSource:
    """The inputs as the config the settings parsers read: raw strings, lists and objects as JSON."""
    raw = {
        "protect": "true",
        # Only the tested minors, as the stack's default: an input to go further is not offered.
        "allowUntestedK3sVersion": "false",
    }
    for key, value in args.items():
        camel = re.sub(r"_([a-z])", lambda match: match.group(1).upper(), key)
        if isinstance(value, bool):
            raw[camel] = "true" if value else "false"
        else:
            raw[camel] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return lambda key: raw.get(key.removeprefix(f"{settings.PROJECT}:"))


@dataclass(frozen=True)
class ServerPlan:
    """A one-server cluster's checked inputs, in the components' own Args."""

    host: HostArgs
    k3s_version: str


def plan_single_server(name: str, args: ClusterArgs) -> ServerPlan:
    """Every input checked, each error naming its input, before anything is declared."""
    if not CLUSTER_NAME.fullmatch(name):
        raise ConfigError(
            "name",
            f"{name!r} is not a lowercase DNS label of at most 50 characters",
            "use e.g. k3s-dev",
        )
    source = args_source(args)
    zone = args.get("availability_zone", "")
    region = next(
        (region for region, zones in settings.LIGHTSAIL_ZONES.items() if zone in zones), None
    )
    if region is None:
        raise ConfigError(
            "availabilityZone",
            f"{zone!r} is not a Lightsail availability zone",
            "use e.g. eu-central-1a",
        )
    ssh_public_key = settings.parse_ssh_public_key(source)
    ssh_agent_socket = args.get("ssh_agent_socket")
    if ssh_public_key and not ssh_agent_socket:
        raise ConfigError(
            "sshAgentSocket",
            "sshPublicKey is given, but no ssh-agent socket to reach the host with its private half",
            "pass the agent's socket (SSH_AUTH_SOCK), or leave sshPublicKey out to generate a key",
        )
    host = HostArgs(
        availability_zone=settings.parse_availability_zone(source, region),
        blueprint_id=settings.parse_blueprint(source),
        bundle_id=settings.parse_bundle(source).bundle_id,
        firewall_rules=server_firewall_rules(settings.parse_admin_cidrs(source)),
        static_ip=True,
        ssh_agent_socket=ssh_agent_socket,
        auto_snapshot_time=settings.parse_auto_snapshot_time(source),
        protect=settings.parse_protect(source),
        tags=settings.parse_tags(source),
        ssh_public_key=ssh_public_key,
    )
    return ServerPlan(host=host, k3s_version=settings.parse_k3s_version(source))


def declare_single_server(
    name: str, plan: ServerPlan, parent: pulumi.Resource
) -> tuple[LightsailHost, K3sServer]:
    """The host, then k3s on it, as the stack declares its first server."""
    node = LightsailHost(name, plan.host, pulumi.ResourceOptions(parent=parent))
    k3s = K3sServer(
        name,
        K3sServerArgs(
            host=node.public_ip,
            ssh_user=node.ssh_user,
            ssh_private_key=node.ssh_private_key,
            ssh_agent_socket=plan.host.ssh_agent_socket,
            instance_identity=node.instance_arn,
            k3s_version=plan.k3s_version,
            node_name=name,
            cluster_name=name,
            host_booted=[node.booted],
            delete_unreachable=False,
            ssh_host_key=node.ssh_host_key,
        ),
        pulumi.ResourceOptions(parent=parent),
    )
    return node, k3s
