"""A second project on the lightsail-k3s cluster: one workload, deployed with a kubeconfig scoped to it.

Everything it knows about the cluster comes from the cluster stack's outputs (docs/outputs.md, "Outputs"):
its own entry of `consumerKubeconfigs` (secret) for the Kubernetes provider, a ServiceAccount's token
that may act in the namespaces the cluster stack's `consumers` entry names and nowhere else, and
`appNamespace` for where to run, so the workload falls under the namespace's LimitRange and
ResourceQuota. Not the admin `kubeconfig`: this stack needs no rights beyond its namespace.
"""

import re

import pulumi
import pulumi_kubernetes as k8s

# <organization>/<project>/<stack>; each part as the Pulumi CLI allows in names.
STACK_REFERENCE_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
IMAGE = "traefik/whoami:v1.11.0"

config = pulumi.Config()
cluster_stack = config.require("clusterStack")
consumer_name = config.require("consumerName")
if not STACK_REFERENCE_NAME.fullmatch(cluster_stack):
    raise pulumi.RunError(
        f"config '{pulumi.get_project()}:clusterStack': {cluster_stack!r} is not <organization>/<project>/<stack>\n"
        "  fix: pulumi config set clusterStack organization/lightsail-k3s/dev (local or S3 backend), "
        "or <your-org>/lightsail-k3s/dev (Pulumi Cloud)"
    )


def own_kubeconfig(kubeconfigs: dict[str, str]) -> str:
    if consumer_name not in kubeconfigs:
        raise pulumi.RunError(
            f"config '{pulumi.get_project()}:consumerName': the cluster stack {cluster_stack} has no consumer "
            f"{consumer_name!r} in its consumerKubeconfigs output (it has: {', '.join(sorted(kubeconfigs)) or 'none'})\n"
            f"  fix: in the cluster stack, pulumi config set --path 'consumers[0].name' {consumer_name} (with its "
            "namespaces and role, docs/outputs.md) and pulumi up there; or set consumerName to one it has"
        )
    return kubeconfigs[consumer_name]


cluster = pulumi.StackReference("cluster", stack_name=cluster_stack)
# require_output fails the update when the cluster stack lacks the output, and keeps it secret
# when the cluster stack marked it so (pulumi/pulumi pkg/resource/deploy/builtins.go,
# secretOutputNames); the entry taken from it by apply stays secret with it.
provider = k8s.Provider(
    "cluster", kubeconfig=cluster.require_output("consumerKubeconfigs").apply(own_kubeconfig)
)
namespace = cluster.require_output("appNamespace")

labels = {"app.kubernetes.io/name": "hello", "app.kubernetes.io/part-of": pulumi.get_project()}
hello = k8s.apps.v1.Deployment(
    "hello",
    metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels),
    spec=k8s.apps.v1.DeploymentSpecArgs(
        replicas=1,
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
        template=k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
            spec=k8s.core.v1.PodSpecArgs(
                containers=[
                    k8s.core.v1.ContainerArgs(
                        name="hello",
                        image=IMAGE,
                        ports=[k8s.core.v1.ContainerPortArgs(container_port=80)],
                        resources=k8s.core.v1.ResourceRequirementsArgs(
                            requests={"cpu": "25m", "memory": "32Mi"},
                            limits={"cpu": "100m", "memory": "64Mi"},
                        ),
                    )
                ]
            ),
        ),
    ),
    opts=pulumi.ResourceOptions(provider=provider),
)

pulumi.export("clusterApi", cluster.require_output("kubeApiUrl"))
pulumi.export("namespace", namespace)
pulumi.export("deployment", hello.metadata.name)
