"""The egress policy of every namespace the stack runs workloads in: anywhere but the instance metadata service.

The metadata service (169.254.169.254) answers any process on the instance, pods included, and it
serves the instance's user data, which holds the node's SSH host private key (components/host.py,
launch_script). A pod that reads it can impersonate the node to the machine deploying the stack.

NetworkPolicies add up: a pod's allowed egress is the union of what every policy selecting it allows
(kubernetes.io/docs/concepts/services-networking/network-policies/, "The two sorts of pod
isolation"), so an "all but" policy only holds while no other policy of the namespace allows egress
more widely. Once a policy with policyTypes Egress selects a pod, its egress is denied except what
such policies allow: this policy is both that isolation and the one allowance. The apps' ingress
policy (components/apps.py) names policyTypes Ingress alone and so leaves egress to this one. k3s
enforces NetworkPolicy with its embedded controller (docs.k3s.io/networking/networking-services,
--disable-network-policy turns it off).

What stays allowed: every IPv4 address but the metadata service's (other pods, Services, the node,
the Kubernetes API, the internet), and every pod of every namespace by selector as well, so that DNS
(CoreDNS pods in kube-system) does not hang on whether the enforcing plugin matches pod IPs with
ipBlock, which the API leaves to the implementation ("ipBlock ... cluster-external IPs"). No IPv6
block: k3s' default cluster is IPv4 only, and the policy denies IPv6 egress that it does not name.
Pods on the host network bypass NetworkPolicy, and Pod Security's baseline profile, which the app
namespace and the charts' enforce, refuses them (components/apps.py, charts.py); kured's namespace
admits privileged pods, so no consumer may be scoped to it (components/consumers.py).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

INSTANCE_METADATA_CIDR = "169.254.169.254/32"
ANY_IPV4 = "0.0.0.0/0"
POLICY_NAME = "egress-all-but-instance-metadata"


def egress_rules() -> list[k8s.networking.v1.NetworkPolicyEgressRuleArgs]:
    return [
        k8s.networking.v1.NetworkPolicyEgressRuleArgs(
            to=[
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    ip_block=k8s.networking.v1.IPBlockArgs(
                        cidr=ANY_IPV4, except_=[INSTANCE_METADATA_CIDR]
                    )
                ),
                k8s.networking.v1.NetworkPolicyPeerArgs(
                    namespace_selector=k8s.meta.v1.LabelSelectorArgs()
                ),
            ]
        )
    ]


def metadata_egress_policy(
    resource_name: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> k8s.networking.v1.NetworkPolicy:
    """The policy for one namespace: every pod in it may reach anything but the metadata service."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=POLICY_NAME, namespace=namespace),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(),
            policy_types=["Egress"],
            egress=egress_rules(),
        ),
        opts=opts,
    )


def ingress_policy(
    resource_name: str,
    policy_name: str,
    namespace: pulumi.Input[str],
    from_namespaces: tuple[str, ...],
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.NetworkPolicy:
    """An ingress-only policy for every pod of `namespace`: only the pods of `from_namespaces` and the
    namespace's own pods reach them (plus the pod's own node, which keeps kubelet probes working:
    NetworkPolicySpec.ingress, k8s.io/api networking/v1). Egress stays metadata_egress_policy's."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=policy_name, namespace=namespace),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(),
            policy_types=["Ingress"],
            ingress=[
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[
                        *(
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={"kubernetes.io/metadata.name": peer}
                                )
                            )
                            for peer in from_namespaces
                        ),
                        k8s.networking.v1.NetworkPolicyPeerArgs(
                            pod_selector=k8s.meta.v1.LabelSelectorArgs()
                        ),
                    ]
                )
            ],
        ),
        opts=opts,
    )
