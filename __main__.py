"""lightsail-k3s: a k3s cluster on AWS Lightsail: one server or three, and as many agents as asked."""

from collections.abc import Sequence

import pulumi

from components.alarms import LightsailAlarms, LightsailAlarmsArgs
from components.apps import Apps, AppsArgs, IngressTls
from components.backups import BackupBucket, BackupBucketArgs
from components.capacity import NodeCapacity
from components.certificates import kubeconfig_expiry, watch_certificate_expiry
from components.cost import cost_breakdown, monthly_total
from components.dns import DnsZone, DnsZoneArgs
from components.host import HostArgs, LightsailHost, PortRule
from components.k3s import (
    K3sServer,
    K3sServerArgs,
    agent_firewall_rules,
    deployed_k3s_version,
    kubernetes_minor,
    server_firewall_rules,
    upgrade_checked,
)
from components.k3s_agent import K3sAgent, K3sAgentArgs
from components.k3s_peer import K3sPeerServer, K3sPeerServerArgs
from components.settings import load_settings
from components.traefik import TraefikAcme, TraefikAcmeArgs, cert_resolver

settings = load_settings()
if settings.apps.burst_warning:
    pulumi.log.warn(settings.apps.burst_warning)
if settings.committed_deploy_cidrs_warning:
    pulumi.log.warn(settings.committed_deploy_cidrs_warning)
https = settings.https

# The version-skew check against the previous deployment (its k3sVersion output, read once through
# a StackReference: a read of a Pulumi builtin, not a cloud resource) gates every resource below:
# a refused k3sVersion stops the program before anything is sent to the engine, so a preview
# reports it and an `up` changes nothing (components/k3s.py, upgrade_checked).
gated = pulumi.ResourceOptions(
    depends_on=upgrade_checked(deployed_k3s_version(), settings.k3s_version)
)

node = LightsailHost(
    settings.cluster_name,
    HostArgs(
        availability_zone=settings.availability_zone,
        blueprint_id=settings.blueprint_id,
        bundle_id=settings.bundle.bundle_id,
        firewall_rules=server_firewall_rules(settings.admin_cidrs, settings.deploy_cidrs),
        static_ip=True,
        ssh_agent_socket=settings.ssh_agent_socket,
        auto_snapshot_time=settings.auto_snapshot_time,
        protect=settings.protect,
        tags=settings.tags,
        ssh_public_key=settings.ssh_public_key,
        existing_host_key=settings.ssh_host_keys.get(settings.cluster_name),
    ),
    gated,
)

backups = (
    BackupBucket(
        settings.cluster_name,
        BackupBucketArgs(
            region=settings.region,
            schedule_cron=settings.backups.schedule_cron,
            retention=settings.backups.retention,
            tags=settings.tags,
        ),
        gated,
    )
    if settings.backups
    else None
)

topology = settings.topology


def further_host(
    name: str,
    bundle_id: str,
    firewall_rules: Sequence[PortRule],
    *,
    static_ip: bool,
    protect: bool,
) -> LightsailHost:
    """A host after the first (a further server or an agent): the first's zone, blueprint and key pair,
    and its own host key unless sshHostKeys pins the one it has."""
    return LightsailHost(
        name,
        HostArgs(
            availability_zone=settings.availability_zone,
            blueprint_id=settings.blueprint_id,
            bundle_id=bundle_id,
            firewall_rules=firewall_rules,
            static_ip=static_ip,
            ssh_agent_socket=settings.ssh_agent_socket,
            auto_snapshot_time=settings.auto_snapshot_time,
            protect=protect,
            tags=settings.tags,
            shared_key_pair=node.key_pair,
            existing_host_key=settings.ssh_host_keys.get(name),
            # The old node leaves (drained, k3s stopped, its Node deleted) before its successor
            # is created under the same name (components/membership.py, join_node).
            delete_before_replace=True,
        ),
        gated,
    )


peer_names = settings.server_names[1:]
# Further servers match the first: its bundle, its firewall, a static IP, its protection.
peer_hosts = [
    further_host(
        peer_name,
        settings.bundle.bundle_id,
        server_firewall_rules(settings.admin_cidrs, settings.deploy_cidrs),
        static_ip=True,
        protect=settings.protect,
    )
    for peer_name in peer_names
]

k3s = K3sServer(
    settings.cluster_name,
    K3sServerArgs(
        host=node.public_ip,
        ssh_user=node.ssh_user,
        ssh_private_key=node.ssh_private_key,
        ssh_agent_socket=settings.ssh_agent_socket,
        instance_identity=node.instance_arn,
        k3s_version=settings.k3s_version,
        node_name=settings.cluster_name,
        cluster_name=settings.cluster_name,
        host_booted=[node.booted],
        delete_unreachable=settings.delete_unreachable,
        ssh_host_key=node.ssh_host_key,
        etcd_snapshots=backups.k3s_settings if backups else None,
        cert_rotation=settings.cert_rotation,
        cluster_init=settings.embedded_etcd,
        # Every server answers for the API: each one's static IP is in every certificate.
        tls_sans=[node.public_ip, *(host.public_ip for host in peer_hosts)],
        api_domain=https.domain if https else None,
        kubelet_args=NodeCapacity.of(settings.bundle).kubelet_args(),
    ),
    gated,
)

# Servers install, upgrade and rotate their certificates one at a time, each Ready before the
# next; removing them runs the other way, one at a time, so etcd keeps its quorum. Then the agents.
previous: pulumi.Resource = k3s.done
# Each node's earliest certificate expiry, by node name.
certificates_expire_at = {settings.cluster_name: k3s.certificates_expire_at}
for peer_name, peer_host in zip(peer_names, peer_hosts, strict=True):
    peer = K3sPeerServer(
        peer_name,
        K3sPeerServerArgs(
            connection=peer_host.ssh_connection(settings.ssh_agent_socket),
            server_connection=node.ssh_connection(settings.ssh_agent_socket),
            instance_identity=peer_host.instance_arn,
            k3s_version=settings.k3s_version,
            node_name=peer_name,
            first_server_private_ip=node.private_ip,
            server_token=k3s.node_token,
            shared_config=k3s.shared_config,
            after=[peer_host.booted, previous],
            cert_rotation=settings.cert_rotation,
        ),
        gated,
    )
    previous = peer.done
    certificates_expire_at[peer_name] = peer.certificates_expire_at

agent_hosts: list[LightsailHost] = []
for agent_name in settings.agent_names:
    agent_host = further_host(
        agent_name,
        topology.agent_bundle.bundle_id,
        agent_firewall_rules(
            settings.admin_cidrs,
            public_ingress=topology.agent_public_ips,
            deploy_cidrs=settings.deploy_cidrs,
        ),
        static_ip=topology.agent_public_ips,
        # Agents hold no cluster state, and lowering agentCount must be able to delete them.
        protect=False,
    )
    agent = K3sAgent(
        agent_name,
        K3sAgentArgs(
            connection=agent_host.ssh_connection(settings.ssh_agent_socket),
            server_connection=node.ssh_connection(settings.ssh_agent_socket),
            instance_identity=agent_host.instance_arn,
            k3s_version=settings.k3s_version,
            node_name=agent_name,
            server_private_ip=node.private_ip,
            agent_token=k3s.agent_token,
            kubelet_args=NodeCapacity.of_agent(topology.agent_bundle).kubelet_args(),
            # Servers upgrade and rotate first, then agents one at a time, each Ready before the next.
            after=[agent_host.booted, previous],
            cert_rotation=settings.cert_rotation,
        ),
        gated,
    )
    agent_hosts.append(agent_host)
    previous = agent.done
    certificates_expire_at[agent_name] = agent.certificates_expire_at

LightsailAlarms(
    settings.cluster_name,
    LightsailAlarmsArgs(
        region=settings.region,
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
        settings=settings.alarms,
    ),
    gated,
)

# Lightsail's name servers for the domain, to enter at the registrar; none without a zone of ours.
name_servers: pulumi.Input[list[str]] = []
if https:
    if https.manage_dns_zone:
        zone = DnsZone(
            settings.cluster_name,
            DnsZoneArgs(https.domain, static_ip=node.public_ip, protect=settings.protect),
            gated,
        )
        name_servers = zone.name_servers
    TraefikAcme(
        settings.cluster_name,
        TraefikAcmeArgs(
            acme_email=https.acme_email, acme_staging=https.acme_staging, provider=k3s.provider
        ),
        gated,
    )

apps = Apps(
    settings.cluster_name,
    AppsArgs(
        namespace=settings.apps.namespace,
        apps=settings.apps.specs,
        budget=settings.apps.budget,
        secret_values=settings.apps.secret_values,
        manifests=settings.apps.manifests,
        provider=k3s.provider,
        public_ip=node.public_ip,
        pod_security_version=kubernetes_minor(settings.k3s_version),
        tls=IngressTls(domain=https.domain, cert_resolver=cert_resolver(https.acme_staging))
        if https
        else None,
    ),
    gated,
)

ssh_key_file = f"~/.ssh/{settings.cluster_name}"
pulumi.export("publicIp", node.public_ip)
pulumi.export("privateIp", node.private_ip)
pulumi.export("instanceName", node.instance_name)
pulumi.export("sshUser", node.ssh_user)
pulumi.export("sshHostKey", node.ssh_host_key)
pulumi.export(
    "sshCommand",
    pulumi.Output.concat(
        "ssh ",
        f"-i {ssh_key_file} " if settings.generates_ssh_key else "",
        node.ssh_user,
        "@",
        node.public_ip,
    ),
)
if node.ssh_private_key is not None:
    pulumi.export("sshPrivateKey", node.ssh_private_key)
pulumi.export("kubeApiUrl", k3s.api_url)
pulumi.export("kubeconfig", k3s.kubeconfig)
pulumi.export("nodeToken", k3s.node_token)
kubeconfig_expires_at = kubeconfig_expiry(k3s.kubeconfig)
pulumi.export("kubeconfigExpiresAt", kubeconfig_expires_at)
# The first certificate to expire, the kubeconfig's or any node's: what the warning watches.
pulumi.export(
    "certificatesExpireAt",
    watch_certificate_expiry(
        {
            "the kubeconfig's client certificate": kubeconfig_expires_at,
            **{
                f"a certificate of node {name}": expires_at
                for name, expires_at in certificates_expire_at.items()
            },
        },
        settings.cluster_name,
        next_rotation=settings.cert_rotation + 1,
    ),
)
if backups:
    pulumi.export("backupBucket", backups.bucket_name)
pulumi.export("agentToken", k3s.agent_token)
pulumi.export("k3sVersion", settings.k3s_version)
pulumi.export("region", settings.region)
pulumi.export("bundleId", settings.bundle.bundle_id)
costs = cost_breakdown(
    {
        "server": settings.bundle,
        **{f"server-{n}": settings.bundle for n in range(2, topology.server_count + 1)},
        **{f"agent-{n}": topology.agent_bundle for n in range(1, topology.agent_count + 1)},
    },
    auto_snapshots=settings.auto_snapshot_time is not None,
    backup_bucket=settings.backups is not None,
)
pulumi.export("monthlyCostUsd", monthly_total(costs))
pulumi.export("costBreakdown", [item.as_output() for item in costs])


def node_entry(
    name: str, role: str, bundle_id: str, host: LightsailHost, public: bool
) -> pulumi.Output:
    entry = {
        "name": name,
        "role": role,
        "bundleId": bundle_id,
        "privateIp": host.private_ip,
        "certificatesExpireAt": certificates_expire_at[name],
    }
    return pulumi.Output.from_input({**entry, "publicIp": host.public_ip} if public else entry)


pulumi.export(
    "nodes",
    pulumi.Output.all(
        *(
            node_entry(name, "server", settings.bundle.bundle_id, host, public=True)
            for name, host in zip(settings.server_names, [node, *peer_hosts], strict=True)
        ),
        *(
            node_entry(
                name, "agent", topology.agent_bundle.bundle_id, host, topology.agent_public_ips
            )
            for name, host in zip(settings.agent_names, agent_hosts, strict=True)
        ),
    ),
)
pulumi.export("appUrl", apps.app_url)
pulumi.export("appNamespace", settings.apps.namespace)
pulumi.export("apps", apps.urls)
pulumi.export("nameServers", name_servers)
