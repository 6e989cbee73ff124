"""lightsail-k3s: a k3s cluster on AWS Lightsail: one server or three, and as many agents as asked."""

import pulumi

from components.apps import Apps, AppsArgs
from components.cluster import Cluster
from components.cost import monthly_total
from components.k3s import deployment_gate, previous_deployment
from components.rollout import DIGESTS_OUTPUT, read_deployed_nodes
from components.settings import load_settings

settings = load_settings()
for warning in settings.warnings:
    pulumi.log.warn(warning)

# The previous deployment's outputs, read once through a StackReference (a read of a Pulumi
# builtin, not a cloud resource). Its k3sVersion and nodes gate both components, and so everything
# in them: a k3sVersion or a change the running cluster refuses stops the program before anything
# is sent to the engine, so a preview reports it and an `up` changes nothing (components/k3s.py,
# deployment_gate).
previous = previous_deployment()
gated = deployment_gate(previous, settings.cluster)

# Servers, agents, backups, alarms, the DNS zone and Traefik's ACME settings (components/cluster.py);
# which agents wait for which follows from the nodes deployed before (components/rollout.py).
cluster = Cluster.from_spec(
    settings.cluster_name, settings.cluster, gated, deployed=read_deployed_nodes(previous)
)

# The apps, the Helm charts (kured's among them) and the consumers' scoped kubeconfigs
# (components/apps.py), on the cluster's API.
apps = Apps.from_args(
    settings.cluster_name,
    AppsArgs.of_settings(settings, cluster.provider, cluster.public_ip, cluster.kubeconfig),
    gated,
)

pulumi.export("publicIp", cluster.public_ip)
pulumi.export("privateIp", cluster.private_ip)
pulumi.export("instanceName", cluster.instance_name)
pulumi.export("sshUser", cluster.ssh_user)
pulumi.export("sshHostKey", cluster.ssh_host_key)
pulumi.export("sshCommand", cluster.ssh_command)
if cluster.ssh_private_key is not None:
    pulumi.export("sshPrivateKey", cluster.ssh_private_key)
pulumi.export("kubeApiUrl", cluster.kube_api_url)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("consumerKubeconfigs", apps.consumer_kubeconfigs)
pulumi.export("nodeToken", cluster.node_token)
pulumi.export("kubeconfigExpiresAt", cluster.kubeconfig_expires_at)
# The first certificate to expire, the kubeconfig's or any node's: what the warning watches.
pulumi.export("certificatesExpireAt", cluster.certificates_expire_at)
if cluster.backup_bucket is not None:
    pulumi.export("backupBucket", cluster.backup_bucket)
pulumi.export("agentToken", cluster.agent_token)
pulumi.export("k3sVersion", settings.k3s_version)
pulumi.export("region", settings.region)
pulumi.export("bundleId", settings.bundle.bundle_id)
costs = settings.cost_breakdown()
pulumi.export("monthlyCostUsd", monthly_total(costs))
pulumi.export("costBreakdown", [item.as_output() for item in costs])
pulumi.export("nodes", cluster.nodes)
pulumi.export(DIGESTS_OUTPUT, cluster.restart_digests)
pulumi.export("appUrl", apps.app_url)
pulumi.export("appNamespace", settings.apps.namespace)
pulumi.export("apps", apps.urls)
pulumi.export("nameServers", cluster.name_servers)
