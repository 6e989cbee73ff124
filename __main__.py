"""lightsail-k3s: a k3s cluster on one AWS Lightsail instance."""

import pulumi

from components.apps import AppStack, AppStackArgs
from components.backups import BackupBucket, BackupBucketArgs
from components.certificates import watch_kubeconfig_expiry
from components.host import HostArgs, LightsailHost
from components.k3s import K3sServer, K3sServerArgs, server_firewall_rules
from components.settings import load_settings

settings = load_settings()

node = LightsailHost(
    settings.cluster_name,
    HostArgs(
        availability_zone=settings.availability_zone,
        blueprint_id=settings.blueprint_id,
        bundle_id=settings.bundle.bundle_id,
        firewall_rules=server_firewall_rules(settings.admin_cidrs),
        static_ip=True,
        ssh_agent_socket=settings.ssh_agent_socket,
        auto_snapshot_time=settings.auto_snapshot_time,
        protect=settings.protect,
        tags=settings.tags,
        ssh_public_key=settings.ssh_public_key,
    ),
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
    )
    if settings.backups
    else None
)

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
        etcd_snapshots=backups.k3s_settings if backups else None,
        cert_rotation=settings.cert_rotation,
    ),
)

apps = AppStack(
    settings.cluster_name,
    AppStackArgs(settings=settings.apps, provider=k3s.provider, public_ip=node.public_ip),
)

ssh_key_file = f"~/.ssh/{settings.cluster_name}"
pulumi.export("publicIp", node.public_ip)
pulumi.export("privateIp", node.private_ip)
pulumi.export("instanceName", node.instance_name)
pulumi.export("sshUser", node.ssh_user)
pulumi.export(
    "sshCommand",
    pulumi.Output.concat("ssh ", f"-i {ssh_key_file} " if settings.generates_ssh_key else "", node.ssh_user, "@", node.public_ip),
)
if node.ssh_private_key is not None:
    pulumi.export("sshPrivateKey", node.ssh_private_key)
pulumi.export("kubeApiUrl", k3s.api_url)
pulumi.export("kubeconfig", k3s.kubeconfig)
pulumi.export("nodeToken", k3s.node_token)
pulumi.export("kubeconfigExpiresAt", watch_kubeconfig_expiry(k3s.kubeconfig, settings.cluster_name))
if backups:
    pulumi.export("backupBucket", backups.bucket_name)
pulumi.export("k3sVersion", settings.k3s_version)
pulumi.export("region", settings.region)
pulumi.export("bundleId", settings.bundle.bundle_id)
pulumi.export("monthlyCostUsd", settings.bundle.monthly_usd)
pulumi.export("appUrl", apps.app_url)
pulumi.export("appNamespace", settings.apps.namespace)
pulumi.export("apps", apps.urls)
