"""Scoped kubeconfigs for the stacks that consume this one: each may act in its own namespaces only.

The `kubeconfig` output is k3s' admin credential, cluster-admin over everything. A stack that deploys
into one namespace gets, instead, a kubeconfig of its own: a ServiceAccount's long-lived token, bound
in each of its namespaces to one of Kubernetes' built-in user-facing ClusterRoles, `view` or `edit`
(kubernetes.io/docs/reference/access-authn-authz/rbac/, "User-facing roles"), through a RoleBinding:
a RoleBinding to a ClusterRole grants the role's rules in the binding's namespace only; never a
ClusterRoleBinding.

The token is a `kubernetes.io/service-account-token` Secret annotated with the ServiceAccount's name,
which the token controller fills in (`data.token`, `data.ca.crt`) after it is created
(kubernetes.io/docs/concepts/configuration/secret/, "Service account token Secrets"). pulumi-kubernetes
waits for that: a Secret of this type counts as created once its `data` is not empty, watched for up
to 5 seconds, and the watched object becomes the resource's outputs (pulumi/pulumi-kubernetes
provider/pkg/await/awaiters.go, untilCoreV1SecretInitialized). The Secret is created after its
ServiceAccount (its annotation is the ServiceAccount's name, an input): the controller deletes a token
Secret whose ServiceAccount does not exist (kubernetes/kubernetes#111556). Removing a consumer deletes
its ServiceAccount and Secret, and the API server then refuses the token: it checks that a legacy
token's Secret and ServiceAccount still exist (`--service-account-lookup`, on by default;
kubernetes/kubernetes pkg/serviceaccount/legacy.go, legacyValidator.Validate).

The ServiceAccounts and their Secrets live in a namespace of their own, CONSUMERS_NAMESPACE, where no
consumer is bound: `edit` reads the Secrets of its namespaces, so a token kept there would let one
consumer take another's.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from .errors import ConfigError

SCOPED_KUBECONFIGS_TYPE = "lightsail-k3s:index:ScopedKubeconfigs"
# Kubernetes' built-in user-facing ClusterRoles a consumer may hold in its namespaces. `admin` and
# `cluster-admin` are left out: `admin` may create Roles and RoleBindings in the namespace.
CONSUMER_ROLES = ("view", "edit")
CONSUMER_KEYS = ("name", "namespaces", "role")
# Where every consumer's ServiceAccount and token Secret live; no consumer has a binding here.
CONSUMERS_NAMESPACE = "lightsail-k3s-consumers"
# A consumer's name names its ServiceAccount (a DNS-1123 subdomain), its Secret and RoleBindings
# (`<name>-token`, `consumer-<name>`) and its kubeconfig's context: a DNS-1123 label keeps all valid.
CONSUMER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
SERVICE_ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"
EXAMPLE = (
    "pulumi config set --path 'consumers[0].name' web-deploy, "
    "pulumi config set --path 'consumers[0].namespaces[0]' apps, "
    "pulumi config set --path 'consumers[0].role' edit"
)


@dataclass(frozen=True)
class ConsumerSpec:
    """One consuming stack: a name, the stack's namespaces it may act in, and its role there."""

    name: str
    namespaces: tuple[str, ...]
    role: str

    @property
    def token_secret_name(self) -> str:
        return f"{self.name}-token"

    @property
    def binding_name(self) -> str:
        return f"consumer-{self.name}"


def _consumer_error(index: int, name: Any, problem: str, fix: str) -> ConfigError:
    where = f"consumers[{index}]" + (f" ({name})" if isinstance(name, str) and name else "")
    return ConfigError("consumers", f"{where}: {problem}", fix)


def parse_consumer(
    raw: Any,
    index: int,
    managed_namespaces: Sequence[str],
    privileged_namespaces: Sequence[str] = (),
) -> ConsumerSpec:
    if not isinstance(raw, dict):
        raise _consumer_error(index, None, "is not an object of name, namespaces and role", EXAMPLE)
    name = raw.get("name")
    unknown = sorted(set(raw) - set(CONSUMER_KEYS))
    if unknown:
        raise _consumer_error(
            index, name, f"unknown keys {unknown}", f"keep only {', '.join(CONSUMER_KEYS)}"
        )
    if not isinstance(name, str) or not CONSUMER_NAME.fullmatch(name):
        raise _consumer_error(
            index,
            None,
            f"name {name!r} is not a DNS-1123 label (lowercase letters, digits and -, at most 63)",
            f"pulumi config set --path 'consumers[{index}].name' web-deploy",
        )
    role = raw.get("role")
    if role not in CONSUMER_ROLES:
        raise _consumer_error(
            index,
            name,
            f"role {role!r} is not one of {', '.join(CONSUMER_ROLES)} (Kubernetes' built-in "
            "ClusterRoles, granted in the consumer's namespaces only)",
            f"pulumi config set --path 'consumers[{index}].role' edit (or view, to read only)",
        )
    namespaces = raw.get("namespaces")
    managed = ", ".join(managed_namespaces)
    if (
        not isinstance(namespaces, list)
        or not namespaces
        or not all(isinstance(namespace, str) for namespace in namespaces)
    ):
        raise _consumer_error(
            index,
            name,
            "namespaces is not a non-empty list of namespace names",
            f"pulumi config set --path 'consumers[{index}].namespaces[0]' <one of: {managed}>",
        )
    scoped = [
        namespace for namespace in managed_namespaces if namespace not in privileged_namespaces
    ]
    for namespace in namespaces:
        if namespace in privileged_namespaces:
            raise _consumer_error(
                index,
                name,
                f"namespace {namespace!r} admits privileged pods (kured's, which reboots the nodes): "
                "a consumer that may create pods there may run one as root on any node, with the "
                "node's credentials and its metadata service",
                f"use one of: {', '.join(scoped)}",
            )
        if namespace not in managed_namespaces:
            raise _consumer_error(
                index,
                name,
                f"namespace {namespace!r} is not one this stack manages ({managed}), so the stack "
                "could not keep its budget, Pod Security and network policies on what the consumer deploys there",
                f"use one of: {managed}",
            )
    return ConsumerSpec(name, tuple(dict.fromkeys(namespaces)), role)


def parse_consumers(
    raw: Any, managed_namespaces: Sequence[str], privileged_namespaces: Sequence[str] = ()
) -> tuple[ConsumerSpec, ...]:
    """The `consumers` key checked against the namespaces the stack manages (settings.managed_namespaces),
    never one of them that admits privileged pods (`privileged_namespaces`: kured's)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("consumers", "is not a list of consumers", EXAMPLE)
    if CONSUMERS_NAMESPACE in managed_namespaces:
        raise ConfigError(
            "appNamespace",
            f"{CONSUMERS_NAMESPACE!r} is the namespace of the consumers' credentials",
            "pulumi config set appNamespace apps",
        )
    consumers = tuple(
        parse_consumer(entry, index, managed_namespaces, privileged_namespaces)
        for index, entry in enumerate(raw)
    )
    first_index: dict[str, int] = {}
    for index, consumer in enumerate(consumers):
        if consumer.name in first_index:
            raise _consumer_error(
                index,
                consumer.name,
                f"the name is already used by consumers[{first_index[consumer.name]}]",
                "give each consumer its own name",
            )
        first_index[consumer.name] = index
    return consumers


def context_name(cluster_name: str, consumer: ConsumerSpec) -> str:
    """The consumer's context and user: beside the admin kubeconfig's `cluster_name` when merged."""
    return f"{cluster_name}-{consumer.name}"


def consumer_kubeconfig(
    admin_kubeconfig: str, cluster_name: str, consumer: ConsumerSpec, token: str
) -> str:
    """A kubeconfig of the consumer's token, with the admin kubeconfig's server address and CA."""
    admin = yaml.safe_load(admin_kubeconfig)
    cluster = admin["clusters"][0]["cluster"]
    user = context_name(cluster_name, consumer)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": cluster["server"],
                    "certificate-authority-data": cluster["certificate-authority-data"],
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": user,
                "context": {
                    "cluster": cluster_name,
                    "user": user,
                    "namespace": consumer.namespaces[0],
                },
            }
        ],
        "current-context": user,
    }
    return yaml.safe_dump(config, sort_keys=False)


def token_of(consumer: ConsumerSpec, data: Mapping[str, str] | None) -> str:
    """The token the controller wrote into the Secret (base64 in `data`), or a failure naming it."""
    encoded = (data or {}).get("token")
    if not encoded:
        raise RuntimeError(
            f"the token Secret {CONSUMERS_NAMESPACE}/{consumer.token_secret_name} of consumer "
            f"{consumer.name} has no data.token: the token controller did not fill it in. Check "
            f"kubectl -n {CONSUMERS_NAMESPACE} describe secret {consumer.token_secret_name} and "
            "that kube-controller-manager runs, then run pulumi up again"
        )
    return base64.b64decode(encoded).decode()


@dataclass(frozen=True)
class ScopedKubeconfigsArgs:
    consumers: Sequence[ConsumerSpec]
    provider: k8s.Provider
    # The cluster's admin kubeconfig: its server address and CA go into every consumer's.
    admin_kubeconfig: pulumi.Input[str]
    # Names the clusters and contexts, as the admin kubeconfig's are named.
    cluster_name: str
    # Each namespace the stack manages (settings.managed_namespaces), to the resource creating it.
    namespaces: Mapping[str, pulumi.Resource]


class ScopedKubeconfigs(pulumi.ComponentResource):
    """Per consumer a ServiceAccount, its RoleBindings and token, and a kubeconfig of that token."""

    # Consumer name -> kubeconfig YAML; secret.
    kubeconfigs: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: ScopedKubeconfigsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(SCOPED_KUBECONFIGS_TYPE, name, None, opts)

        def on_cluster(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=list(depends_on)
            )

        kubeconfigs: dict[str, pulumi.Output[str]] = {}
        if args.consumers:
            namespace = k8s.core.v1.Namespace(
                f"{name}-consumers-namespace",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=CONSUMERS_NAMESPACE),
                opts=on_cluster(),
            )
            for consumer in args.consumers:
                kubeconfigs[consumer.name] = self._declare_consumer(
                    name, consumer, namespace.metadata.name, args, on_cluster
                )
        # Output.all of no values is a list, so no consumers is an empty object of its own.
        self.kubeconfigs = pulumi.Output.secret(
            pulumi.Output.all(**kubeconfigs) if kubeconfigs else pulumi.Output.from_input({})
        )
        self.register_outputs({"kubeconfigs": self.kubeconfigs})

    def _declare_consumer(
        self,
        name: str,
        consumer: ConsumerSpec,
        namespace: pulumi.Output[str],
        args: ScopedKubeconfigsArgs,
        on_cluster: Any,
    ) -> pulumi.Output[str]:
        prefix = f"{name}-consumer-{consumer.name}"
        account = k8s.core.v1.ServiceAccount(
            f"{prefix}-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=consumer.name, namespace=namespace),
            # A credential for another stack, never mounted into a pod.
            automount_service_account_token=False,
            opts=on_cluster(),
        )
        bindings = [
            k8s.rbac.v1.RoleBinding(
                f"{prefix}-{target}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=consumer.binding_name, namespace=target),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=consumer.role
                ),
                subjects=[
                    k8s.rbac.v1.SubjectArgs(
                        kind="ServiceAccount",
                        name=account.metadata.name,
                        namespace=account.metadata.namespace,
                    )
                ],
                opts=on_cluster(args.namespaces[target]),
            )
            for target in consumer.namespaces
        ]
        token = k8s.core.v1.Secret(
            f"{prefix}-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=consumer.token_secret_name,
                namespace=namespace,
                annotations={SERVICE_ACCOUNT_NAME_ANNOTATION: account.metadata.name},
            ),
            type=SERVICE_ACCOUNT_TOKEN,
            opts=on_cluster(account),
        )
        # Unknown in a preview that creates the Secret; the token is the created Secret's data.
        # The bindings are in place before a consumer gets the kubeconfig to use them.
        return pulumi.Output.secret(
            pulumi.Output.all(
                args.admin_kubeconfig,
                token.data,
                *(binding.metadata.name for binding in bindings),
            ).apply(
                lambda values: consumer_kubeconfig(
                    values[0], args.cluster_name, consumer, token_of(consumer, values[1])
                )
            )
        )
