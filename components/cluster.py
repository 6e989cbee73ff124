"""The whole cluster as one component: servers, agents, backups, alarms, DNS and Traefik's ACME.

The stack declares it (__main__.py, from its checked Settings: `Cluster.from_spec`), and so does
the multi-language package (provider/): the component provider host passes its inputs as a plain
dict, and the SDK's analyzer reads the schema from the type hints below (pulumi/pulumi
sdk/python/lib/pulumi/provider/experimental/analyzer.py, analyze_component: the `args` annotation
of `__init__` gives the inputs, the class's annotated attributes the outputs). So this module keeps
its annotations evaluated: no `from __future__ import annotations`.

The inputs are named like the stack's config keys and pass the same parsers
(components/settings.py), each error naming the key; `registries`, a secret, arrives as an Output
and is checked once known, the component waiting for that check (settings.secret_input). Every child
is named after the component: the first server is `name`, the others `name-server-2` and
`name-server-3`, the agents `name-agent-N`, and the bucket, alarms, zone and ACME settings `name`
with their own types.

One check of the stack's is not made here: k3sVersion against the release deployed before. The
stack reads that from its own `k3sVersion` output; a component in another program has no such
output (the stack outputs are that program's), and Pulumi offers no read of a component's previous
outputs. So the install script's check on the node, before it changes k3s, is the only one: a
refused version fails the install, after the host's changes of the same run. A program that keeps
the deployed release can gate the whole component as the stack does (components/k3s.py,
upgrade_checked): a depends_on in its options that fails on a refused version.

For the same reason the component alone cannot tell which nodes run already: every agent whose
k3s restarts goes one at a time, as on an upgrade, and so do new ones (components/rollout.py).
The stack passes the nodes it deployed before (`from_spec`'s `deployed`), so on a new cluster, or
for an agent added, agents join at once.
"""

import asyncio
import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict, cast

import pulumi
import pulumi_kubernetes as k8s

from . import settings
from .alarms import LightsailAlarms, LightsailAlarmsArgs, parse_alarm_settings
from .backups import BackupBucket, BackupBucketArgs
from .capacity import NodeCapacity
from .certificates import kubeconfig_expiry, watch_certificate_expiry
from .dns import DnsZone, DnsZoneArgs
from .errors import ConfigError
from .host import PREVIOUS_HOST_TYPE, HostArgs, LightsailHost, PortRule
from .k3s import K3sServer, K3sServerArgs, agent_firewall_rules, server_firewall_rules
from .k3s_agent import K3sAgent, K3sAgentArgs
from .k3s_peer import K3sPeerServer, K3sPeerServerArgs
from .registries import parse_registries
from .rollout import (
    ETCD_REJOINS_FIELD,
    DeployedNodes,
    after_previous_server,
    kept_once_done,
    last_restarted,
)
from .traefik import TraefikAcme, TraefikAcmeArgs

CLUSTER_TYPE = "lightsail-k3s:index:Cluster"
# The name names the first node, the kubeconfig's cluster and the Lightsail resources: a DNS-1123
# label, short enough for the further nodes' names (name-server-3, name-agent-N) to be labels too.
CLUSTER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?")


class ClusterArgs(TypedDict):
    """The cluster's settings; checked as the lightsail-k3s stack checks its config keys of the same names."""

    availability_zone: str
    """Lightsail availability zone, e.g. eu-central-1a; its region is the AWS provider's."""
    bundle_id: str
    """Lightsail bundle (instance size) of the servers, e.g. small_3_0: 2 vCPU and 2 GB at least."""
    blueprint_id: str
    """Operating system: ubuntu_22_04, ubuntu_24_04 or debian_12."""
    k3s_version: str
    """Exact k3s release, e.g. v1.36.1+k3s1, of a tested Kubernetes minor."""
    admin_cidrs: list[str]
    """IPv4 CIDRs allowed to reach SSH and the Kubernetes API."""
    deploy_cidrs: NotRequired[list[str]]
    """IPv4 CIDRs of the machine deploying this run, opened beside admin_cidrs."""
    server_count: NotRequired[int]
    """Servers: 1, or 3 for an etcd quorum that survives the loss of one."""
    agent_count: NotRequired[int]
    """Agents (workers); 0 unless set."""
    agent_bundle_id: NotRequired[str]
    """Lightsail bundle of the agents; the servers' unless set."""
    agent_public_ips: NotRequired[bool]
    """Give agents static IPs and open HTTP(S) on them; false unless set."""
    ssh_public_key: NotRequired[str]
    """An OpenSSH public key to log in with, its private half in the ssh-agent; without it a key is generated."""
    ssh_agent_socket: NotRequired[str]
    """The ssh-agent socket (SSH_AUTH_SOCK) holding the private half of ssh_public_key."""
    ssh_host_key: NotRequired[str]
    """The first server's own SSH host key, to pin on an instance created before host keys were pinned."""
    ssh_host_keys: NotRequired[dict[str, str]]
    """Node name to that node's own SSH host key, likewise."""
    auto_snapshot_time: NotRequired[str]
    """Daily Lightsail snapshot hour in UTC (HH:00); none without it."""
    backups: NotRequired[bool]
    """etcd snapshots to a Lightsail bucket; false unless set."""
    etcd_snapshot_schedule: NotRequired[str]
    """When backups take a snapshot: five-field cron, node time UTC."""
    etcd_snapshot_retention: NotRequired[int]
    """Snapshots kept, on the node and in the bucket."""
    cert_rotation: NotRequired[int]
    """Raise by one to rotate every node's k3s certificates; 0 unless set."""
    data_disk_gb: NotRequired[int]
    """GB of each server's data disk for k3s' data, so a new bundle keeps the cluster; 0 (none) unless set."""
    protect: NotRequired[bool]
    """Refuse to delete or replace the servers (and with them the cluster's data); true unless set false."""
    delete_unreachable: NotRequired[bool]
    """Let a refresh drop Kubernetes objects of an unreachable cluster from state; false unless set."""
    require_imds_v2: NotRequired[bool]
    """Require IMDSv2 with a PUT hop limit of 1 on every instance (needs the AWS CLI); false unless set."""
    tags: NotRequired[dict[str, str]]
    """Tags on the Lightsail resources."""
    domain: NotRequired[str]
    """A registered domain to serve HTTPS under, certificates from Let's Encrypt."""
    manage_dns_zone: NotRequired[bool]
    """Create the domain's Lightsail DNS zone (needs the AWS CLI); true unless set false."""
    acme_email: NotRequired[str]
    """Let's Encrypt's contact address; required with domain."""
    acme_staging: NotRequired[bool]
    """Use Let's Encrypt's staging CA; false unless set."""
    burst_alarm_percent: NotRequired[int]
    """Alarm when an instance's burst capacity falls below this percentage."""
    alarm_email: NotRequired[str]
    """Where Lightsail mails the alarms; the console only without it."""
    registries: NotRequired[pulumi.Input[dict[str, dict[str, str]]]]
    """Registry host (e.g. ghcr.io) to its username, password and optional mirror, for every node; a secret, else refused."""


# The inputs' defaults, as config strings: Pulumi.yaml's (the stack's one home for them; a test
# holds these to it), except backups and dataDiskGb, which are "auto" there: on for stacks named
# prod*, and a component has no stack name to go by. Only the tested minors: allowUntestedK3sVersion is no input.
INPUT_DEFAULTS = {
    "serverCount": "1",
    "agentCount": "0",
    "agentPublicIps": "false",
    "backups": "false",
    "dataDiskGb": "0",
    "etcdSnapshotSchedule": "0 */12 * * *",
    "etcdSnapshotRetention": "5",
    "certRotation": "0",
    "protect": "true",
    "deleteUnreachable": "false",
    "requireImdsV2": "false",
    "manageDnsZone": "true",
    "acmeStaging": "false",
    "burstAlarmPercent": "30",
    "alarmEmail": "",
    "allowUntestedK3sVersion": "false",
}


def config_key(input_name: str) -> str:
    """The stack's config key an input is named like: bundle_id is bundleId."""
    return re.sub(r"_([a-z])", lambda match: match.group(1).upper(), input_name)


# Inputs that hold credentials: they arrive as secret Outputs, checked once known (settings.secret_input).
SECRET_INPUTS = ("registries",)


def args_source(args: Mapping[str, object]) -> settings.ConfigSource:
    """The inputs but the secret ones as the config the settings parsers read: raw strings, lists
    and objects as JSON."""
    raw = dict(INPUT_DEFAULTS)
    for key, value in args.items():
        if key in SECRET_INPUTS:
            continue
        if isinstance(value, bool):
            raw[config_key(key)] = "true" if value else "false"
        else:
            raw[config_key(key)] = (
                json.dumps(value) if isinstance(value, list | dict) else str(value)
            )
    return lambda key: raw.get(key.removeprefix(f"{settings.PROJECT}:"))


def parse_cluster_args(
    name: str, args: ClusterArgs, environ: Mapping[str, str], dry_run: bool
) -> settings.ClusterSpec:
    """Every input checked, each error naming its config key, before anything is declared."""
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
    bundle = settings.parse_bundle(source)
    topology = settings.Topology(
        server_count=settings.parse_server_count(source),
        agent_count=settings.parse_agent_count(source),
        agent_bundle=settings.parse_agent_bundle(source, bundle),
        agent_public_ips=source("agentPublicIps") == "true",
    )
    settings.check_node_name_lengths(
        topology, name, lambda excess: f"use a name of at most {len(name) - excess} characters"
    )
    host_keys = settings.parse_ssh_host_keys(
        source,
        lambda _key: False,
        settings.server_names(name, topology.server_count),
        settings.agent_names(name, topology.agent_count),
    )
    return settings.ClusterSpec(
        region=region,
        availability_zone=settings.parse_availability_zone(source, region),
        bundle=bundle,
        blueprint_id=settings.parse_blueprint(source),
        k3s_version=settings.parse_k3s_version(source),
        admin_cidrs=settings.parse_admin_cidrs(source),
        deploy_cidrs=settings.parse_deploy_cidrs(source),
        ssh_public_key=ssh_public_key,
        ssh_agent_socket=ssh_agent_socket,
        auto_snapshot_time=settings.parse_auto_snapshot_time(source),
        protect=settings.parse_protect(source),
        delete_unreachable=settings.parse_delete_unreachable(source),
        require_imds_v2=settings.parse_require_imds_v2(source, environ, dry_run),
        tags=settings.parse_tags(source),
        # "true" or "false": the stack name only matters to "auto", which is no input here.
        backups=settings.parse_backups(source, name),
        cert_rotation=settings.parse_cert_rotation(source),
        topology=topology,
        alarms=parse_alarm_settings(source("burstAlarmPercent") or "", source("alarmEmail") or ""),
        https=settings.parse_https(source, None, environ, dry_run),
        ssh_host_keys=host_keys,
        data_disk_gb=settings.parse_data_disk_gb(source, name),
    )


class ClusterNode(TypedDict):
    """One node of the cluster, as the stack's `nodes` output lists it."""

    name: str
    """The node's name, which also names its Lightsail resources."""
    role: str
    """server or agent."""
    bundleId: str
    """Its Lightsail bundle."""
    blueprintId: str
    """Its operating system (Lightsail blueprint)."""
    privateIp: str
    """Its private IP."""
    instanceName: str
    """Its Lightsail instance's name, whose metrics and alarms `make health` reads."""
    publicIp: NotRequired[str]
    """Its static IP; agents have one only with agent_public_ips."""
    certificatesExpireAt: str
    """The earliest expiry of its k3s certificates (ISO 8601)."""
    dataDiskGb: NotRequired[int]
    """A server's data disk size in GB, 0 for none; agents have no data disk."""


class Cluster(pulumi.ComponentResource):
    """k3s on Lightsail: one server or three, agents, etcd backups, alarms, and HTTPS under a domain."""

    kubeconfig: pulumi.Output[str]
    """Admin kubeconfig, its server the first server's static IP or the domain (secret)."""
    kube_api_url: pulumi.Output[str]
    """The Kubernetes API, https://<static IP or api.domain>:6443."""
    public_ip: pulumi.Output[str]
    """The first server's static IP."""
    private_ip: pulumi.Output[str]
    """The first server's private IP, for agents joining."""
    instance_name: pulumi.Output[str]
    """The first server's Lightsail instance name."""
    ssh_user: pulumi.Output[str]
    """The login user of the blueprint."""
    ssh_host_key: pulumi.Output[str]
    """The first server's SSH host public key."""
    ssh_command: pulumi.Output[str]
    """ssh to the first server: `ssh -i ~/.ssh/<name> <user>@<ip>` with the generated key saved there, else `ssh <user>@<ip>`."""
    ssh_private_key: pulumi.Output[str] | None
    """The generated SSH private key (secret); absent when ssh_public_key was given."""
    node_token: pulumi.Output[str]
    """The server token (secret)."""
    agent_token: pulumi.Output[str]
    """The token agents join with (secret)."""
    kubeconfig_expires_at: pulumi.Output[str]
    """When the kubeconfig's client certificate expires (ISO 8601)."""
    certificates_expire_at: pulumi.Output[str]
    """The first certificate to expire, the kubeconfig's or any node's (ISO 8601)."""
    backup_bucket: pulumi.Output[str] | None
    """The Lightsail bucket of the etcd snapshots; absent without backups."""
    name_servers: pulumi.Output[list[str]]
    """The DNS zone's name servers, to enter at the registrar; none without a zone of ours."""
    nodes: pulumi.Output[list[ClusterNode]]
    """Every node: servers first, then agents."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        spec = parse_cluster_args(name, args, os.environ, pulumi.runtime.is_dry_run())
        if "registries" in args:
            # Checked by the stack's parser once the secret arrives; nothing is declared before.
            registries = settings.secret_input(
                args["registries"],
                "registries",
                lambda raw: parse_registries(raw, is_secret=True, plain_text_paths=()),
            )
            spec = dataclasses.replace(spec, registries=registries)
            opts = pulumi.ResourceOptions.merge(opts, settings.secret_inputs_gate(registries))
        self._declare(name, spec, opts, deployed=None)

    @classmethod
    def from_spec(
        cls,
        name: str,
        spec: settings.ClusterSpec,
        opts: pulumi.ResourceOptions | None = None,
        deployed: pulumi.Input[DeployedNodes] = None,
    ) -> "Cluster":
        """The cluster of settings already checked (the stack's, parsed once in components/settings.py).

        `deployed`: the nodes of the previous deployment and their restart digests
        (components/rollout.py, read_deployed_nodes); None when not known.
        """
        cluster = cls.__new__(cls)
        cluster._declare(name, spec, opts, deployed)
        return cluster

    def _declare(
        self,
        name: str,
        spec: settings.ClusterSpec,
        opts: pulumi.ResourceOptions | None,
        deployed: pulumi.Input[DeployedNodes],
    ) -> None:
        super().__init__(CLUSTER_TYPE, name, None, opts)
        # The stack declared these at its root before it had this component; the alias keeps each
        # at its URN, and their children follow through the engine's inheritedChildAlias (pulumi/
        # pulumi pkg/resource/deploy/step_generator.go, generateAliases; tools/urns.py). Resources
        # on the Kubernetes provider keep it too: a provider found under an alias is no change
        # (step_generator.go, providerChanged: "observed an aliased provider").
        child = pulumi.ResourceOptions(
            parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
        )
        # A host may come from before LightsailHost was LightsailNode's name and this component
        # existed, both at once: the alias specs do not combine, so this one says both.
        host_child = pulumi.ResourceOptions.merge(
            child,
            pulumi.ResourceOptions(
                aliases=[pulumi.Alias(type_=PREVIOUS_HOST_TYPE, parent=pulumi.ROOT_STACK_RESOURCE)]
            ),
        )
        server_rules = server_firewall_rules(spec.admin_cidrs, spec.deploy_cidrs)
        metadata_options_region = spec.region if spec.require_imds_v2 else None
        node = LightsailHost(
            name,
            HostArgs(
                availability_zone=spec.availability_zone,
                blueprint_id=spec.blueprint_id,
                bundle_id=spec.bundle.bundle_id,
                firewall_rules=server_rules,
                static_ip=True,
                ssh_agent_socket=spec.ssh_agent_socket,
                auto_snapshot_time=spec.auto_snapshot_time,
                protect=spec.protect,
                tags=spec.tags,
                ssh_public_key=spec.ssh_public_key,
                existing_host_key=spec.ssh_host_keys.get(name),
                data_disk_gb=spec.data_disk_gb,
                data_disk_etcd_single_member=spec.topology.server_count == 1,
                metadata_options_region=metadata_options_region,
            ),
            host_child,
        )
        backups = (
            BackupBucket(
                name,
                BackupBucketArgs(
                    region=spec.region,
                    schedule_cron=spec.backups.schedule_cron,
                    retention=spec.backups.retention,
                    tags=spec.tags,
                ),
                child,
            )
            if spec.backups
            else None
        )

        def further_host(
            host_name: str,
            bundle_id: str,
            firewall_rules: Sequence[PortRule],
            *,
            static_ip: bool,
            protect: bool,
            data_disk_gb: int = 0,
            instance_after: pulumi.Input[pulumi.Resource | None] = None,
        ) -> LightsailHost:
            """A host after the first (a further server or an agent): the first's zone, blueprint and
            key pair, and its own host key unless sshHostKeys pins the one it has."""
            return LightsailHost(
                host_name,
                HostArgs(
                    availability_zone=spec.availability_zone,
                    blueprint_id=spec.blueprint_id,
                    bundle_id=bundle_id,
                    firewall_rules=firewall_rules,
                    static_ip=static_ip,
                    ssh_agent_socket=spec.ssh_agent_socket,
                    auto_snapshot_time=spec.auto_snapshot_time,
                    protect=protect,
                    tags=spec.tags,
                    shared_key_pair=node.key_pair,
                    existing_host_key=spec.ssh_host_keys.get(host_name),
                    metadata_options_region=metadata_options_region,
                    # The old node leaves (drained, k3s stopped, its Node deleted) before its
                    # successor is created under the same name (components/membership.py, join_node).
                    delete_before_replace=True,
                    data_disk_gb=data_disk_gb,
                    # Its drain removed its etcd member: the data its disk brings joins anew.
                    data_disk_etcd_rejoins=True,
                    instance_after=instance_after,
                ),
                host_child,
            )

        server_names = spec.server_names(name)
        peer_names = server_names[1:]
        # Each further server's predecessor once done, set below as the servers are declared: a
        # running server's host waits for it, so servers change one at a time (rollout.py).
        server_before_done: list[asyncio.Future[pulumi.Resource]] = [
            asyncio.get_event_loop().create_future() for _ in peer_names
        ]
        # Further servers match the first: its bundle, its firewall, a static IP, its protection,
        # its data disk.
        peer_hosts = [
            further_host(
                peer_name,
                spec.bundle.bundle_id,
                server_rules,
                static_ip=True,
                protect=spec.protect,
                data_disk_gb=spec.data_disk_gb,
                instance_after=after_previous_server(deployed, peer_name, before_done),
            )
            for peer_name, before_done in zip(peer_names, server_before_done, strict=True)
        ]
        https = spec.https
        k3s = K3sServer(
            name,
            K3sServerArgs(
                host=node.public_ip,
                ssh_user=node.ssh_user,
                ssh_private_key=node.ssh_private_key,
                ssh_agent_socket=spec.ssh_agent_socket,
                instance_identity=node.instance_arn,
                k3s_version=spec.k3s_version,
                node_name=name,
                cluster_name=name,
                host_booted=[node.data_ready],
                delete_unreachable=spec.delete_unreachable,
                ssh_host_key=node.ssh_host_key,
                etcd_snapshots=backups.k3s_settings if backups else None,
                cert_rotation=spec.cert_rotation,
                cluster_init=spec.embedded_etcd,
                # Every server answers for the API: each one's static IP is in every certificate.
                # The addresses, not the attachments: this install waits for no further server.
                tls_sans=[
                    node.public_ip,
                    *(cast(pulumi.Output[str], host.static_ip_address) for host in peer_hosts),
                ],
                api_domain=https.domain if https else None,
                kubelet_args=NodeCapacity.of(spec.bundle).kubelet_args(),
                registries=spec.registries,
                data_disk=node.data_disk,
            ),
            child,
        )

        # Servers install, upgrade and rotate their certificates one at a time, each Ready before
        # the next, on a new cluster too (etcd adds one learner at a time); removing them runs the
        # other way, one at a time, so etcd keeps its quorum. Then the agents (components/rollout.py).
        previous: pulumi.Resource = k3s.done
        # Each node's earliest certificate expiry, and its restart digest, by node name.
        certificates_expire_at = {name: k3s.certificates_expire_at}
        restart_digests = {name: k3s.kept_digest}
        for peer_name, peer_host, before_done in zip(
            peer_names, peer_hosts, server_before_done, strict=True
        ):
            before_done.set_result(previous)
            peer = K3sPeerServer(
                peer_name,
                K3sPeerServerArgs(
                    connection=peer_host.ssh_connection(spec.ssh_agent_socket),
                    server_connection=node.ssh_connection(spec.ssh_agent_socket),
                    instance_identity=peer_host.instance_arn,
                    k3s_version=spec.k3s_version,
                    node_name=peer_name,
                    first_server_private_ip=node.private_ip,
                    server_token=k3s.node_token,
                    shared_config=k3s.shared_config,
                    after=[peer_host.data_ready, previous],
                    cert_rotation=spec.cert_rotation,
                    registries=spec.registries,
                    data_on_disk=peer_host.data_disk is not None,
                ),
                child,
            )
            previous = peer.done
            certificates_expire_at[peer_name] = peer.certificates_expire_at
            restart_digests[peer_name] = peer.kept_digest

        servers_done = previous
        # The last agent so far whose k3s restarts in this run: the next such agent waits for it.
        restarted: pulumi.Input[pulumi.Resource | None] = None

        topology = spec.topology
        agent_names = spec.agent_names(name)
        agent_hosts: list[LightsailHost] = []
        for agent_name in agent_names:
            agent_host = further_host(
                agent_name,
                topology.agent_bundle.bundle_id,
                agent_firewall_rules(
                    spec.admin_cidrs,
                    public_ingress=topology.agent_public_ips,
                    deploy_cidrs=spec.deploy_cidrs,
                ),
                static_ip=topology.agent_public_ips,
                # Agents hold no cluster state, and lowering agentCount must be able to delete them.
                protect=False,
            )
            agent = K3sAgent(
                agent_name,
                K3sAgentArgs(
                    connection=agent_host.ssh_connection(spec.ssh_agent_socket),
                    server_connection=node.ssh_connection(spec.ssh_agent_socket),
                    instance_identity=agent_host.instance_arn,
                    k3s_version=spec.k3s_version,
                    node_name=agent_name,
                    server_private_ip=node.private_ip,
                    agent_token=k3s.agent_token,
                    kubelet_args=NodeCapacity.of_agent(topology.agent_bundle).kubelet_args(),
                    # Every agent after the servers (servers upgrade and rotate first); those
                    # whose k3s restarts one at a time, each Ready before the next; new ones at once.
                    after=[agent_host.booted, servers_done],
                    deployed=deployed,
                    last_restarted=restarted,
                    cert_rotation=spec.cert_rotation,
                    registries=spec.registries,
                ),
                child,
            )
            agent_hosts.append(agent_host)
            restarted = last_restarted(agent.restarting, agent.done, restarted)
            certificates_expire_at[agent_name] = agent.certificates_expire_at
            restart_digests[agent_name] = agent.kept_digest

        LightsailAlarms(
            name,
            LightsailAlarmsArgs(
                region=spec.region,
                instances={
                    "server": node.instance_name,
                    **{
                        f"server-{number}": host.instance_name
                        for number, host in enumerate(peer_hosts, start=2)
                    },
                    **{
                        f"agent-{number}": host.instance_name
                        for number, host in enumerate(agent_hosts, start=1)
                    },
                },
                settings=spec.alarms,
            ),
            child,
        )

        name_servers: pulumi.Input[list[str]] = []
        if https:
            if https.manage_dns_zone:
                zone = DnsZone(
                    name,
                    DnsZoneArgs(https.domain, static_ip=node.public_ip, protect=spec.protect),
                    child,
                )
                name_servers = zone.name_servers
            TraefikAcme(
                name,
                TraefikAcmeArgs(
                    acme_email=https.acme_email,
                    acme_staging=https.acme_staging,
                    provider=k3s.provider,
                ),
                child,
            )

        def node_entry(
            node_name: str,
            role: str,
            bundle_id: str,
            host: LightsailHost,
            public: bool,
            data_disk_gb: int | None = None,
        ) -> pulumi.Output:
            entry: dict[str, object] = {
                "name": node_name,
                "role": role,
                "bundleId": bundle_id,
                # A new blueprint replaces the instance as a new bundle does: the next run's
                # checks compare both (components/rollout.py, change_checked).
                "blueprintId": spec.blueprint_id,
                "privateIp": host.private_ip,
                "instanceName": host.instance_name,
                "certificatesExpireAt": certificates_expire_at[node_name],
            }
            if data_disk_gb is not None:
                entry["dataDiskGb"] = data_disk_gb
                if data_disk_gb:
                    entry[ETCD_REJOINS_FIELD] = True
            return pulumi.Output.from_input(
                {**entry, "publicIp": host.public_ip} if public else entry
            )

        self.kubeconfig = k3s.kubeconfig
        self.kube_api_url = k3s.api_url
        self.public_ip = node.public_ip
        self.private_ip = node.private_ip
        self.instance_name = node.instance_name
        self.ssh_user = node.ssh_user
        self.ssh_host_key = node.ssh_host_key
        # Where docs/outputs.md has the generated key saved: ~/.ssh/ and the cluster's name.
        self.ssh_command = pulumi.Output.concat(
            "ssh ",
            f"-i ~/.ssh/{name} " if spec.generates_ssh_key else "",
            node.ssh_user,
            "@",
            node.public_ip,
        )
        self.ssh_private_key = node.ssh_private_key
        self.node_token = k3s.node_token
        self.agent_token = k3s.agent_token
        self.kubeconfig_expires_at = kubeconfig_expiry(k3s.kubeconfig)
        self.certificates_expire_at = watch_certificate_expiry(
            {
                "the kubeconfig's client certificate": self.kubeconfig_expires_at,
                **{
                    f"a certificate of node {node_name}": expires_at
                    for node_name, expires_at in certificates_expire_at.items()
                },
            },
            name,
            next_rotation=spec.cert_rotation + 1,
        )
        # Kept as the stack's nodeRestartDigests output, for the next deployment to compare with.
        # Not annotated, so no schema output: a program using the component has no read of it.
        self.restart_digests: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            **{
                node_name: kept_once_done(digest, certificates_expire_at[node_name])
                for node_name, digest in restart_digests.items()
            }
        )
        self.backup_bucket = backups.bucket_name if backups else None
        self.name_servers = pulumi.Output.from_input(name_servers)
        self.nodes = pulumi.Output.all(
            *(
                node_entry(
                    node_name,
                    "server",
                    spec.bundle.bundle_id,
                    host,
                    public=True,
                    # Read back by the next run's checks (components/rollout.py, change_checked).
                    data_disk_gb=spec.data_disk_gb,
                )
                for node_name, host in zip(server_names, [node, *peer_hosts], strict=True)
            ),
            *(
                node_entry(
                    node_name,
                    "agent",
                    topology.agent_bundle.bundle_id,
                    host,
                    topology.agent_public_ips,
                )
                for node_name, host in zip(agent_names, agent_hosts, strict=True)
            ),
        )
        # The Kubernetes provider of the cluster's API, for the Apps component and this program's
        # own Kubernetes resources. Not annotated, so no schema output: the analyzer would refer to
        # it as /kubernetes/…/schema.json#/resources/pulumi:providers:kubernetes (analyzer.py,
        # is_resource), a reference pulumi/pulumi pkg/codegen/schema/bind.go calls deprecated
        # ("use '#/provider' instead", pulumi/pulumi#20029) and means to refuse. Other languages
        # pass the kubeconfig output to a provider of their own, or to the package's Apps.
        self.provider: k8s.Provider = k3s.provider
        self.register_outputs(
            {
                "kubeconfig": self.kubeconfig,
                "kubeApiUrl": self.kube_api_url,
                "publicIp": self.public_ip,
                "privateIp": self.private_ip,
                "instanceName": self.instance_name,
                "sshUser": self.ssh_user,
                "sshHostKey": self.ssh_host_key,
                "sshCommand": self.ssh_command,
                "sshPrivateKey": self.ssh_private_key,
                "nodeToken": self.node_token,
                "agentToken": self.agent_token,
                "kubeconfigExpiresAt": self.kubeconfig_expires_at,
                "certificatesExpireAt": self.certificates_expire_at,
                "backupBucket": self.backup_bucket,
                "nameServers": self.name_servers,
                "nodes": self.nodes,
            }
        )
