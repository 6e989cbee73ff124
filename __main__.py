"""lightsail-k3s: a k3s cluster on AWS Lightsail: one server or three, and as many agents as asked."""

import pulumi

from components.apps import Apps, AppsArgs, IngressTls
from components.charts import Charts, ChartsArgs
from components.cluster import Cluster
from components.consumers import ScopedKubeconfigs, ScopedKubeconfigsArgs
from components.cost import monthly_total
from components.k3s import kubernetes_minor, previous_deployment, upgrade_checked
from components.rollout import DIGESTS_OUTPUT, change_checked, read_deployed_nodes
from components.settings import load_settings, managed_namespaces
from components.traefik import cert_resolver

settings = load_settings()
if settings.apps.burst_warning:
    pulumi.log.warn(settings.apps.burst_warning)
if settings.charts.uncounted_warning:
    pulumi.log.warn(settings.charts.uncounted_warning)
if settings.committed_deploy_cidrs_warning:
    pulumi.log.warn(settings.committed_deploy_cidrs_warning)
https = settings.https

# The previous deployment's outputs, read once through a StackReference (a read of a Pulumi
# builtin, not a cloud resource). The version-skew check against its k3sVersion gates both
# components, and so everything in them, which awaits its parent: a refused k3sVersion stops the
# program before anything is sent to the engine, so a preview reports it and an `up` changes
# nothing (components/k3s.py, upgrade_checked).
previous = previous_deployment()
gated = pulumi.ResourceOptions(
    depends_on=pulumi.Output.all(
        upgrade_checked(previous.get_output("k3sVersion"), settings.k3s_version),
        # Changes to the running cluster that must not share a run (components/rollout.py).
        change_checked(
            previous,
            k3s_version=settings.k3s_version,
            bundle_id=settings.bundle.bundle_id,
            blueprint_id=settings.blueprint_id,
            data_disk_gb=settings.data_disk_gb,
            backups=settings.backups is not None,
            embedded_etcd=settings.cluster.embedded_etcd,
        ),
    ).apply(lambda gates: [resource for gate in gates for resource in gate])
)

# Servers, agents, backups, alarms, the DNS zone and Traefik's ACME settings (components/cluster.py);
# which agents wait for which follows from the nodes deployed before (components/rollout.py).
cluster = Cluster.from_spec(
    settings.cluster_name, settings.cluster, gated, deployed=read_deployed_nodes(previous)
)

apps = Apps.from_args(
    settings.cluster_name,
    AppsArgs(
        namespace=settings.apps.namespace,
        apps=settings.apps.specs,
        budget=settings.apps.budget,
        secret_values=settings.apps.secret_values,
        manifests=settings.apps.manifests,
        provider=cluster.provider,
        public_ip=cluster.public_ip,
        pod_security_version=kubernetes_minor(settings.k3s_version),
        tls=IngressTls(domain=https.domain, cert_resolver=cert_resolver(https.acme_staging))
        if https
        else None,
        protect=settings.protect,
    ),
    gated,
)

# Each chart's namespace, its secret values and its HelmChart, for k3s' helm-controller (components/charts.py).
charts = (
    Charts(
        f"{settings.cluster_name}-charts",
        ChartsArgs(
            charts=settings.charts,
            provider=cluster.provider,
            app_namespace=settings.apps.namespace,
            pod_security_version=kubernetes_minor(settings.k3s_version),
        ),
        gated,
    )
    if settings.charts.specs
    else None
)
# A kubeconfig per consuming stack, bound to its role in its namespaces only (components/consumers.py).
namespace_resources = {
    settings.apps.namespace: apps.namespace,
    **(charts.namespaces if charts else {}),
}
consumers = ScopedKubeconfigs(
    settings.cluster_name,
    ScopedKubeconfigsArgs(
        consumers=settings.consumers,
        provider=cluster.provider,
        admin_kubeconfig=cluster.kubeconfig,
        cluster_name=settings.cluster_name,
        namespaces={
            name: namespace_resources[name]
            for name in managed_namespaces(settings.apps, settings.charts)
        },
    ),
    gated,
)

ssh_key_file = f"~/.ssh/{settings.cluster_name}"
pulumi.export("publicIp", cluster.public_ip)
pulumi.export("privateIp", cluster.private_ip)
pulumi.export("instanceName", cluster.instance_name)
pulumi.export("sshUser", cluster.ssh_user)
pulumi.export("sshHostKey", cluster.ssh_host_key)
pulumi.export(
    "sshCommand",
    pulumi.Output.concat(
        "ssh ",
        f"-i {ssh_key_file} " if settings.cluster.generates_ssh_key else "",
        cluster.ssh_user,
        "@",
        cluster.public_ip,
    ),
)
if cluster.ssh_private_key is not None:
    pulumi.export("sshPrivateKey", cluster.ssh_private_key)
pulumi.export("kubeApiUrl", cluster.kube_api_url)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("consumerKubeconfigs", consumers.kubeconfigs)
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
