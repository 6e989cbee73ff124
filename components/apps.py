"""The team's apps on the cluster, exposed through k3s' bundled Traefik.

The stack declares Apps with `Apps.from_args` and its checked settings (AppsArgs.of_settings); the
multi-language package (provider/) constructs it from the inputs below, which the SDK's analyzer
reads from the type hints (as for components/cluster.py): so no `from __future__ import annotations`
here. chart_secrets, a secret, arrives as an Output: it is checked once known, and the component waits
for that check (settings.secret_input).
"""

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from .app_settings import TMP_MOUNT_PATH, TMP_VOLUME_NAME, AppSpec, parse_app_settings
from .capacity import DEFAULT_LIMITS, DEFAULT_REQUESTS, NamespaceBudget
from .catalog import BUNDLES
from .charts import Charts, ChartsArgs, ChartSettings, parse_chart_secrets, parse_chart_specs
from .consumers import ConsumerSpec, ScopedKubeconfigs, ScopedKubeconfigsArgs
from .errors import ConfigError
from .k3s import kubernetes_minor
from .network_policy import ingress_policy, metadata_egress_policy
from .reboots import kured_chart, parse_reboot_window
from .settings import (
    PROJECT_DIR,
    Settings,
    parse_k3s_version,
    parse_stack_consumers,
    secret_input,
    secret_inputs_gate,
)
from .traefik import cert_resolver

# k3s ships Traefik as its ingress controller under this IngressClass
# (docs.k3s.io/networking/networking-services, "Traefik Ingress Controller"); installing a
# second controller is the mistake this project exists to prevent.
INGRESS_CLASS = "traefik"
# k3s runs Traefik (and the rest of its packaged components) in kube-system.
TRAEFIK_NAMESPACE = "kube-system"
# Pod Security Admission (kubernetes.io/docs/concepts/security/pod-security-admission):
# enforce the baseline profile, which common images meet; warn about and audit what
# the restricted profile would refuse, so each app can see how far it is from it.
POD_SECURITY_ENFORCE = "baseline"
POD_SECURITY_WARN_AND_AUDIT = "restricted"
# What a read-only root filesystem still needs: a writable /tmp, on the node's disk.
TMP_VOLUME_SIZE = "64Mi"
# The apps' volumes: claims on the StorageClass k3s bundles (k3s manifests/local-storage.yaml:
# provisioner rancher.io/local-path, volumeBindingMode WaitForFirstConsumer, reclaimPolicy Delete).
# A volume is a directory on the disk of the node its pod first starts on, and the PersistentVolume
# is pinned there (local-path-provisioner provisioner.go: nodeAffinity on kubernetes.io/hostname),
# so the pod keeps that node; local-path grants ReadWriteOnce (and ReadWriteOncePod) only.
# The class is named, never left to the default: pulumi-kubernetes reads it to see that a
# WaitForFirstConsumer claim is ready while Pending, else it waits for a binding that only the
# Deployment's pod brings (provider/pkg/await/awaiters.go, untilCoreV1PersistentVolumeClaimReady).
LOCAL_PATH_STORAGE_CLASS = "local-path"
VOLUME_ACCESS_MODE = "ReadWriteOnce"

# The component's type token. It was `AppStack` until the name said what the component holds; the
# alias below keeps every Kubernetes object of a stack deployed before at its URN (see Apps).
APPS_TYPE = "lightsail-k3s:index:Apps"
PREVIOUS_APPS_TYPE = "lightsail-k3s:index:AppStack"


@dataclass(frozen=True)
class IngressTls:
    """HTTPS through Traefik's certificate resolver; apps without a host are served at the domain."""

    domain: str
    cert_resolver: str

    def annotations(self) -> dict[str, str]:
        # Traefik's Ingress annotations (doc.traefik.io, Kubernetes Ingress routing
        # configuration): only the HTTPS entry point, with certificates from the resolver.
        return {
            "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
            "traefik.ingress.kubernetes.io/router.tls": "true",
            "traefik.ingress.kubernetes.io/router.tls.certresolver": self.cert_resolver,
        }


@dataclass(frozen=True)
class AppsArgs:
    namespace: str
    apps: Sequence[AppSpec]
    budget: NamespaceBudget
    provider: k8s.Provider
    public_ip: pulumi.Input[str]
    # The Kubernetes minor k3s runs, e.g. v1.36: Pod Security Admission checks pods against
    # that version of the profiles, so a k3s upgrade never tightens them unannounced.
    pod_security_version: str
    # app name -> variable -> value, for each app's secretEnv; made secret Outputs here.
    secret_values: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    # Kubernetes objects applied as given, after the namespace.
    manifests: Sequence[dict[str, Any]] = ()
    tls: IngressTls | None = None
    # The stack's protect: Pulumi then leaves the apps' claims, and the namespace holding them, in the
    # cluster when it deletes them (see _declare_app).
    protect: bool = True
    # Helm charts for k3s' helm-controller, kured's among them with a reboot window (components/charts.py).
    charts: ChartSettings = ChartSettings()
    # chart name -> its secret values tree; an Output where they arrive as one (the package's Apps).
    chart_secret_values: pulumi.Input[Mapping[str, Mapping[str, Any]]] = field(
        default_factory=dict, repr=False
    )
    # The stacks that consume this one, each with a kubeconfig scoped to its namespaces.
    consumers: Sequence[ConsumerSpec] = ()
    # The cluster's admin kubeconfig: its server address and CA go into every consumer's.
    admin_kubeconfig: pulumi.Input[str] = ""

    @classmethod
    def of_settings(
        cls,
        settings: Settings,
        provider: k8s.Provider,
        public_ip: pulumi.Input[str],
        admin_kubeconfig: pulumi.Input[str],
    ) -> "AppsArgs":
        """The stack's apps, charts and consumers, from its checked settings, on its Cluster's API."""
        https = settings.https
        return cls(
            namespace=settings.apps.namespace,
            apps=settings.apps.specs,
            budget=settings.apps.budget,
            secret_values=settings.apps.secret_values,
            manifests=settings.apps.manifests,
            provider=provider,
            public_ip=public_ip,
            pod_security_version=kubernetes_minor(settings.k3s_version),
            tls=IngressTls(domain=https.domain, cert_resolver=cert_resolver(https.acme_staging))
            if https
            else None,
            protect=settings.protect,
            charts=settings.charts,
            chart_secret_values=settings.charts.secret_values,
            consumers=settings.consumers,
            admin_kubeconfig=admin_kubeconfig,
        )


def served_host(app: AppSpec, tls: IngressTls | None) -> str | None:
    """The host an app is routed on: its own, else the domain under HTTPS, else any host."""
    return app.host or (tls.domain if tls else None)


def _labels(app: AppSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": app.name, "app.kubernetes.io/managed-by": "lightsail-k3s"}


def _probe(app: AppSpec, initial_delay: int) -> k8s.core.v1.ProbeArgs:
    """An HTTP probe of healthPath; without one, a TCP probe of the port: a pod is Ready (and
    receives traffic) once it listens, and is restarted when it stops listening."""
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=app.health_path, port=app.port)
        if app.health_path
        else None,
        tcp_socket=None if app.health_path else k8s.core.v1.TCPSocketActionArgs(port=app.port),
        initial_delay_seconds=initial_delay,
        period_seconds=10,
    )


def pod_security_labels(version: str) -> dict[str, str]:
    labels = {}
    for mode, level in (
        ("enforce", POD_SECURITY_ENFORCE),
        ("warn", POD_SECURITY_WARN_AND_AUDIT),
        ("audit", POD_SECURITY_WARN_AND_AUDIT),
    ):
        labels[f"pod-security.kubernetes.io/{mode}"] = level
        labels[f"pod-security.kubernetes.io/{mode}-version"] = version
    return labels


def pod_security_context(app: AppSpec) -> k8s.core.v1.PodSecurityContextArgs:
    return k8s.core.v1.PodSecurityContextArgs(
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        run_as_non_root=True if app.security.run_as_non_root else None,
        run_as_user=app.security.run_as_user,
    )


def container_security_context(app: AppSpec) -> k8s.core.v1.SecurityContextArgs:
    security = app.security
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=security.read_only_root_filesystem,
        capabilities=k8s.core.v1.CapabilitiesArgs(
            add=list(security.add_capabilities) or None,
            drop=list(security.drop_capabilities) or None,
        )
        if security.add_capabilities or security.drop_capabilities
        else None,
    )


def ingress_name(host: str | None) -> str:
    """One Ingress per host, named after it; distinct hosts get distinct, valid names.

    An Ingress name is a DNS-1123 subdomain (at most 253 characters, dots allowed), so "host-" + the
    host is valid as it is and no two hosts share it. The few hosts too long for that are cut and end
    in a hash of the full host, so two long hosts with one prefix still differ, and the cut never
    leaves a trailing '-' or '.'.
    """
    if host is None:
        return "default-host"
    max_length = 253
    name = f"host-{host}"
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(host.encode()).hexdigest()[:16]
    return name[: max_length - len(digest) - 1].rstrip(".-") + "-" + digest


def app_url(app: AppSpec, public_ip: str, tls: IngressTls | None = None) -> str:
    if tls:
        return f"https://{served_host(app, tls)}{app.path}"
    return f"http://{app.host or public_ip}{app.path}"


def first_app_url(apps: Sequence[AppSpec], public_ip: str, tls: IngressTls | None) -> str:
    if apps:
        return app_url(apps[0], public_ip, tls)
    return f"https://{tls.domain}/" if tls else f"http://{public_ip}/"


class AppsInputs(TypedDict):
    """The apps on a Cluster's API; checked as the lightsail-k3s stack checks its config keys of the same names."""

    kubeconfig: pulumi.Input[str]
    """The cluster's admin kubeconfig (the Cluster's kubeconfig output)."""
    public_ip: pulumi.Input[str]
    """The address the apps are served at without a domain (the Cluster's publicIp output)."""
    bundle_id: str
    """The servers' Lightsail bundle, which sizes the namespace's budget (the Cluster's bundleId input)."""
    k3s_version: str
    """The cluster's k3s release: the pods are checked against its Kubernetes minor's Pod Security profiles."""
    apps: NotRequired[list[dict[str, Any]]]
    """The apps, each object as the stack's `apps` config holds it (name, image, port, path, host, healthPath, …)."""
    app_namespace: NotRequired[str]
    """The apps' namespace; apps unless set."""
    cpu_budget: NotRequired[str]
    """warn, enforce or off: what to do when the apps' sustained CPU exceeds the bundle's baseline."""
    domain: NotRequired[str]
    """The Cluster's domain: the apps are served under it over HTTPS."""
    acme_staging: NotRequired[bool]
    """The Cluster's acme_staging."""
    protect: NotRequired[bool]
    """Keep the apps' volumes (their claims and the namespace) in the cluster when Pulumi deletes them; true unless set false."""
    charts: NotRequired[list[dict[str, Any]]]
    """Helm charts for k3s' helm-controller, each object as the stack's `charts` config holds it (name, chart, version, …)."""
    chart_secrets: NotRequired[pulumi.Input[dict[str, Any]]]
    """Chart name to the values of its secretValues paths; a secret, else refused."""
    reboot_window: NotRequired[str]
    """When kured may reboot nodes that need it, one at a time, e.g. "Sun 03:00-05:00" (UTC); none unless set."""
    server_count: NotRequired[int]
    """The Cluster's server_count: with one node in all, kured reboots it even when a drain cannot finish."""
    agent_count: NotRequired[int]
    """The Cluster's agent_count, likewise."""
    consumers: NotRequired[list[dict[str, Any]]]
    """Stacks that deploy here, as the stack's `consumers` config holds them (name, namespaces, role)."""


# The stack's defaults of these keys (Pulumi.yaml; tests/test_components_elsewhere.py holds them to
# it); rebootWindow's is auto there, on for stacks named prod*, and a component has no stack name.
APPS_INPUT_DEFAULTS = {
    "app_namespace": "apps",
    "cpu_budget": "warn",
    "protect": True,
    "reboot_window": "",
    "server_count": 1,
    "agent_count": 0,
}


class CheckedAppsInputs(NamedTuple):
    """The inputs checked by the stack's parsers."""

    # The stack's Args on a given provider, with the charts' secret values (checked by chart_secrets).
    on: Callable[[k8s.Provider, pulumi.Input[Mapping[str, Mapping[str, Any]]]], AppsArgs]
    # The apps' burst warning and the charts' uncounted one, if any.
    warnings: tuple[str, ...]
    # parse_chart_secrets against the charts given: the chart_secrets input's check.
    chart_secrets: Callable[[Any], dict[str, dict[str, Any]]]


def parse_apps_inputs(inputs: AppsInputs) -> CheckedAppsInputs:
    """The inputs checked by the stack's parsers, chart_secrets once it arrives (see Apps)."""
    bundle_id = inputs["bundle_id"]
    if bundle_id not in BUNDLES:
        raise ConfigError(
            "bundleId",
            f"{bundle_id!r} is not a known Lightsail bundle",
            "pass the Cluster's bundleId",
        )
    k3s_version = parse_k3s_version(
        lambda key: {"k3sVersion": inputs["k3s_version"]}.get(key.partition(":")[2])
    )
    namespace_raw = inputs.get("app_namespace", APPS_INPUT_DEFAULTS["app_namespace"])
    reboot_window = parse_reboot_window(
        inputs.get("reboot_window", APPS_INPUT_DEFAULTS["reboot_window"]), "the window"
    )
    # kured reboots a single node even when its drain cannot finish (reboots.py, forceReboot), so
    # a guessed count of one would override the pod disruption budgets of a bigger cluster: with
    # a window, the counts must be the Cluster's, given.
    missing_counts = [
        config_key
        for key, config_key in (("server_count", "serverCount"), ("agent_count", "agentCount"))
        if reboot_window and key not in inputs
    ]
    if missing_counts:
        raise ConfigError(
            "rebootWindow",
            f"a reboot window without {' and '.join(missing_counts)}: "
            "kured forces a node's reboot past a drain that cannot finish only when the cluster "
            "has one node, and the Apps component cannot count the Cluster's nodes",
            "pass serverCount and agentCount with the values given to the Cluster",
        )
    node_count = inputs.get("server_count", APPS_INPUT_DEFAULTS["server_count"]) + inputs.get(
        "agent_count", APPS_INPUT_DEFAULTS["agent_count"]
    )
    declared = (kured_chart(reboot_window, single_node=node_count == 1),) if reboot_window else ()
    charts = parse_chart_specs(inputs.get("charts"), namespace_raw, declared)
    user_charts = charts.specs[len(declared) :]

    def chart_secrets(raw: Any) -> dict[str, dict[str, Any]]:
        return parse_chart_secrets(raw, True, (), user_charts, component_input=True)

    if "chart_secrets" not in inputs:
        # Refused now when a chart lists secretValues that nothing gives.
        chart_secrets(None)
    settings = parse_app_settings(
        apps_raw=inputs.get("apps", []),
        namespace_raw=namespace_raw,
        # No appSecrets input yet: its check is part of each app's (parse_app: every secretEnv
        # variable has a value), which would have to wait for the secret as chart_secrets' does.
        secrets_raw=None,
        secrets_are_secret=True,
        plain_text_secret_paths=(),
        manifests_dir_raw=None,
        project_dir=PROJECT_DIR,
        bundle=BUNDLES[bundle_id],
        cpu_budget_raw=inputs.get("cpu_budget", APPS_INPUT_DEFAULTS["cpu_budget"]),
        reserved=charts.reserved,
    )
    consumers = parse_stack_consumers(inputs.get("consumers"), settings, charts)
    domain = inputs.get("domain")
    tls = IngressTls(domain, cert_resolver(inputs.get("acme_staging", False))) if domain else None

    def on(
        provider: k8s.Provider, chart_secret_values: pulumi.Input[Mapping[str, Mapping[str, Any]]]
    ) -> AppsArgs:
        return AppsArgs(
            namespace=settings.namespace,
            apps=settings.specs,
            budget=settings.budget,
            provider=provider,
            public_ip=inputs["public_ip"],
            pod_security_version=kubernetes_minor(k3s_version),
            tls=tls,
            protect=inputs.get("protect", APPS_INPUT_DEFAULTS["protect"]),
            charts=charts,
            chart_secret_values=chart_secret_values,
            consumers=consumers,
            admin_kubeconfig=inputs["kubeconfig"],
        )

    warnings = tuple(w for w in (settings.burst_warning, charts.uncounted_warning) if w)
    return CheckedAppsInputs(on, warnings, chart_secrets)


class Apps(pulumi.ComponentResource):
    """The app namespace with its resource budget, the apps, their Ingresses and any existing
    manifests; the Helm charts (kured's with a reboot window) and the consumers' scoped kubeconfigs.

    The charts and the kubeconfigs are children here, not of the Cluster: the charts take their room
    from the apps' budget (capacity.py) and let the apps' namespace in, and a consumer is scoped to
    the apps' namespace and the charts', each created by a child here. kured is node maintenance, but
    it is one more chart, counted in the same budget, in a namespace consumers may not use; the
    Cluster would only hand it to the charts and their budget back here.
    """

    urls: pulumi.Output[dict[str, Any]]
    """Each app's in-cluster service, port, path and URL, by app name."""
    app_url: pulumi.Output[str]
    """The first app's URL."""
    consumer_kubeconfigs: pulumi.Output[dict[str, str]]
    """Each consumer's kubeconfig, scoped to its namespaces, by consumer name (secret)."""

    def __init__(self, name: str, args: AppsInputs, opts: pulumi.ResourceOptions | None = None):
        # Checked before anything is declared, chart_secrets once the secret arrives (the
        # component waits for it); the provider for the kubeconfig is a child.
        checked = parse_apps_inputs(args)
        for warning in checked.warnings:
            pulumi.log.warn(warning)
        chart_secret_values: pulumi.Input[Mapping[str, Mapping[str, Any]]] = {}
        if "chart_secrets" in args:
            secret_values = secret_input(
                args["chart_secrets"], "chartSecrets", checked.chart_secrets
            )
            opts = pulumi.ResourceOptions.merge(opts, secret_inputs_gate(secret_values))
            chart_secret_values = secret_values

        def on_own_provider(apps: "Apps") -> AppsArgs:
            provider = k8s.Provider(
                f"{name}-kubernetes",
                kubeconfig=args["kubeconfig"],
                opts=pulumi.ResourceOptions(parent=apps),
            )
            return checked.on(provider, chart_secret_values)

        self._declare(name, on_own_provider, opts)

    @classmethod
    def from_args(
        cls, name: str, args: AppsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> "Apps":
        """The apps of settings already checked, on a provider of the caller's (the stack's Cluster's)."""
        apps = cls.__new__(cls)
        apps._declare(name, lambda _: args, opts)
        return apps

    def _declare(
        self,
        name: str,
        args_of: Callable[["Apps"], AppsArgs],
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        # Every child's URN contains the component's type, so without the alias a new token would
        # delete and recreate every Kubernetes object of a stack. Children inherit it: the engine
        # looks each child up under its parent's old URN too, old names included (pulumi/pulumi
        # pkg/resource/deploy/step_generator.go, generateAliases and inheritedChildAlias).
        aliases = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=PREVIOUS_APPS_TYPE)])
        super().__init__(APPS_TYPE, name, None, pulumi.ResourceOptions.merge(opts, aliases))
        args = args_of(self)

        def on_cluster(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=list(depends_on)
            )

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace, labels=pod_security_labels(args.pod_security_version)
            ),
            # Deleting a namespace deletes every claim in it, and with them their volumes' data, the
            # claims Pulumi kept included: on a protected stack it stays (a changed appNamespace
            # leaves the old one behind; docs/apps.md, "Volumes").
            opts=pulumi.ResourceOptions.merge(
                on_cluster(), pulumi.ResourceOptions(retain_on_delete=args.protect)
            ),
        )
        namespace_name = namespace.metadata.name
        # What creates the namespace, for others that declare objects in it (components/consumers.py).
        # Not annotated: no output of the package's schema.
        self.namespace: k8s.core.v1.Namespace = namespace
        budget = args.budget
        # The same numbers the program checked the apps against (components/capacity.py),
        # so the API server never refuses a pod the check accepted, rolling-update surge included.
        limit_range = k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="container-defaults", namespace=namespace_name
            ),
            spec=k8s.core.v1.LimitRangeSpecArgs(
                limits=[
                    k8s.core.v1.LimitRangeItemArgs(
                        type="Container",
                        default_request=DEFAULT_REQUESTS,
                        default=DEFAULT_LIMITS,
                        max=budget.container_max(),
                    )
                ]
            ),
            opts=on_cluster(),
        )
        quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="node-budget", namespace=namespace_name),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(hard=budget.quota()),
            opts=on_cluster(),
        )

        # k3s enforces NetworkPolicy with its embedded controller (docs.k3s.io
        # networking: --disable-network-policy turns it off). Once a policy selects a
        # pod, only the traffic a policy allows reaches it, plus traffic from the
        # pod's own node, which keeps kubelet probes working (NetworkPolicySpec.ingress,
        # k8s.io/api networking/v1). This one restricts ingress only; egress is the
        # metadata policy's below, the namespace's only egress policy.
        ingress_policy(
            f"{name}-ingress-policy",
            "allow-traefik-and-same-namespace",
            namespace_name,
            (TRAEFIK_NAMESPACE,),
            on_cluster(),
        )
        # Anywhere but the instance metadata service, which serves the node's SSH host key.
        metadata_egress_policy(f"{name}-egress-policy", namespace_name, on_cluster())

        services: dict[str, k8s.core.v1.Service] = {}
        for app in args.apps:
            services[app.name] = self._declare_app(
                name,
                app,
                args.secret_values.get(app.name, {}),
                namespace_name,
                on_cluster(limit_range, quota),
                args.protect,
            )

        tls = args.tls
        hosts = list(dict.fromkeys(served_host(app, tls) for app in args.apps))
        for host in hosts:
            routed = [app for app in args.apps if served_host(app, tls) == host]
            k8s.networking.v1.Ingress(
                f"{name}-ingress-{ingress_name(host)}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=ingress_name(host),
                    namespace=namespace_name,
                    annotations=tls.annotations() if tls else None,
                ),
                spec=k8s.networking.v1.IngressSpecArgs(
                    ingress_class_name=INGRESS_CLASS,
                    # No secretName: the certificate comes from the resolver, not a Secret.
                    tls=[k8s.networking.v1.IngressTLSArgs(hosts=[host])] if tls and host else None,
                    rules=[
                        k8s.networking.v1.IngressRuleArgs(
                            host=host,
                            http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                                paths=[
                                    k8s.networking.v1.HTTPIngressPathArgs(
                                        path=app.path,
                                        path_type="Prefix",
                                        backend=k8s.networking.v1.IngressBackendArgs(
                                            service=k8s.networking.v1.IngressServiceBackendArgs(
                                                name=services[app.name].metadata.name,
                                                port=k8s.networking.v1.ServiceBackendPortArgs(
                                                    number=app.port
                                                ),
                                            )
                                        ),
                                    )
                                    # Longest prefix first, as Traefik and readers both expect.
                                    for app in sorted(
                                        routed, key=lambda a: len(a.path), reverse=True
                                    )
                                ]
                            ),
                        )
                    ],
                ),
                opts=on_cluster(),
            )

        if args.manifests:
            # Applied as given, through the same provider; their CRD kinds are
            # skipped in preview until the CRD exists (pulumi-kubernetes).
            # A Secret's values are secret in state too: objs are the ConfigGroup's own inputs.
            objs = [
                {
                    **obj,
                    **{
                        field: pulumi.Output.secret(obj[field])
                        for field in ("data", "stringData")
                        if field in obj
                    },
                }
                if obj["kind"] == "Secret"
                else obj
                for obj in args.manifests
            ]
            k8s.yaml.v2.ConfigGroup(f"{name}-manifests", objs=objs, opts=on_cluster(namespace))

        # The charts and the consumers' credentials are children of the apps: the charts take their
        # room from the apps' budget and let the apps' namespace in, and a consumer is scoped to the
        # apps' namespace and the charts' (kured's among them, node maintenance as it is: it is one
        # more chart, counted in the same budget). The stack declared both at its root before; the
        # alias keeps each at its URN, and their children follow (tools/urns.py, inheritedChildAlias).
        moved_here = pulumi.ResourceOptions(
            parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
        )
        charts = (
            Charts(
                f"{name}-charts",
                ChartsArgs(
                    charts=args.charts,
                    secret_values=args.chart_secret_values,
                    provider=args.provider,
                    app_namespace=args.namespace,
                    pod_security_version=args.pod_security_version,
                ),
                moved_here,
            )
            if args.charts.specs
            else None
        )
        consumers = ScopedKubeconfigs(
            name,
            ScopedKubeconfigsArgs(
                consumers=args.consumers,
                provider=args.provider,
                admin_kubeconfig=args.admin_kubeconfig,
                cluster_name=name,
                # The namespaces the consumers were checked against (settings.managed_namespaces).
                namespaces={args.namespace: namespace, **(charts.namespaces if charts else {})},
            ),
            moved_here,
        )
        self.consumer_kubeconfigs = consumers.kubeconfigs

        self.urls = pulumi.Output.from_input(args.public_ip).apply(
            lambda ip: {
                app.name: {
                    "service": f"{app.name}.{args.namespace}.svc.cluster.local",
                    "port": app.port,
                    "path": app.path,
                    "url": app_url(app, ip, tls),
                }
                for app in args.apps
            }
        )
        self.app_url = pulumi.Output.from_input(args.public_ip).apply(
            lambda ip: first_app_url(args.apps, ip, tls)
        )
        self.register_outputs(
            {
                "appUrl": self.app_url,
                "apps": self.urls,
                "consumerKubeconfigs": self.consumer_kubeconfigs,
            }
        )

    def _declare_app(
        self,
        name: str,
        app: AppSpec,
        secret_values: Mapping[str, str],
        namespace: pulumi.Output[str],
        opts: pulumi.ResourceOptions,
        protect: bool,
    ) -> k8s.core.v1.Service:
        labels = _labels(app)

        def named(kind: str) -> tuple[str, pulumi.ResourceOptions]:
            # Named after the component; the alias keeps the objects of stacks deployed before,
            # whose names were the app's alone (without it: deleted and recreated, downtime).
            old_name = f"{app.name}-{kind}"
            return f"{name}-{old_name}", pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(name=old_name)])
            )

        env = [k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in app.env.items()]
        if app.secret_env:
            secret_name, secret_opts = named("env")
            secret = k8s.core.v1.Secret(
                secret_name,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=app.secret_name, namespace=namespace, labels=labels
                ),
                type="Opaque",
                # The pulumi-kubernetes SDK makes a Secret's data secret in state.
                string_data={variable: secret_values[variable] for variable in app.secret_env},
                opts=secret_opts,
            )
            env += [
                k8s.core.v1.EnvVarArgs(
                    name=variable,
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                            name=secret.metadata.name, key=variable
                        )
                    ),
                )
                for variable in app.secret_env
            ]

        # local-path's reclaim policy is Delete: deleting a claim deletes its directory on the node
        # (local-path-provisioner provisioner.go, deleteFor: the teardown script's rm -rf). On a
        # protected stack Pulumi drops a removed claim from its state and leaves it in the cluster
        # (pulumi/pulumi pkg/resource/deploy/step.go, DeleteStep: RetainOnDelete is a no-op delete).
        # The size is what the disk check counts: local-path does not enforce it, and the API server
        # refuses to resize a claim whose StorageClass does not allow expansion (k3s' does not), so a
        # changed size leaves the claim as it was created.
        claims = [
            k8s.core.v1.PersistentVolumeClaim(
                f"{name}-{volume.claim_name(app.name)}-claim",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=volume.claim_name(app.name), namespace=namespace, labels=labels
                ),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    access_modes=[VOLUME_ACCESS_MODE],
                    storage_class_name=LOCAL_PATH_STORAGE_CLASS,
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                        requests={"storage": volume.size}
                    ),
                ),
                opts=pulumi.ResourceOptions.merge(
                    opts,
                    pulumi.ResourceOptions(
                        retain_on_delete=protect,
                        ignore_changes=["spec.resources.requests.storage"],
                    ),
                ),
            )
            for volume in app.volumes
        ]
        read_only_root = app.security.read_only_root_filesystem
        volume_mounts = [
            *(
                [k8s.core.v1.VolumeMountArgs(name=TMP_VOLUME_NAME, mount_path=TMP_MOUNT_PATH)]
                if read_only_root
                else []
            ),
            *(
                k8s.core.v1.VolumeMountArgs(name=volume.name, mount_path=volume.mount_path)
                for volume in app.volumes
            ),
        ]
        pod_volumes = [
            *(
                [
                    k8s.core.v1.VolumeArgs(
                        name=TMP_VOLUME_NAME,
                        empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=TMP_VOLUME_SIZE),
                    )
                ]
                if read_only_root
                else []
            ),
            *(
                k8s.core.v1.VolumeArgs(
                    name=volume.name,
                    persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                        claim_name=claim.metadata.name
                    ),
                )
                for volume, claim in zip(app.volumes, claims, strict=True)
            ),
        ]

        container = k8s.core.v1.ContainerArgs(
            name=app.name,
            image=app.image,
            ports=[k8s.core.v1.ContainerPortArgs(container_port=app.port, name="http")],
            env=env or None,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests=app.resources.requests, limits=app.resources.limits
            ),
            readiness_probe=_probe(app, initial_delay=2),
            liveness_probe=_probe(app, initial_delay=15),
            security_context=container_security_context(app),
            volume_mounts=volume_mounts or None,
        )
        deployment_name, deployment_opts = named("deployment")
        # An app with volumes runs one pod, and a new one only once the old one is gone (Recreate):
        # two pods never write one volume's data. A Deployment cannot be switched to Recreate in
        # place: the API server keeps the rollingUpdate it defaulted and then refuses the pair
        # (pulumi/pulumi-kubernetes#2843, kubernetes/kubernetes#24198), so a change of strategy,
        # an app gaining or losing its volumes, replaces the Deployment, the old one deleted first
        # (its name is the new one's).
        strategy = (
            k8s.apps.v1.DeploymentStrategyArgs(type="Recreate")
            if app.volumes
            # One extra pod at a time during a rollout: the surge the budget leaves room for.
            else k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1),
            )
        )
        k8s.apps.v1.Deployment(
            deployment_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=app.name, namespace=namespace, labels=labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=app.replicas,
                strategy=strategy,
                selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"app.kubernetes.io/name": app.name}
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        containers=[container],
                        # The apps do not talk to the Kubernetes API; a mounted token would
                        # only help an attacker who got into the container.
                        automount_service_account_token=False,
                        security_context=pod_security_context(app),
                        volumes=pod_volumes or None,
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(
                deployment_opts,
                pulumi.ResourceOptions(
                    replace_on_changes=["spec.strategy.type"], delete_before_replace=True
                ),
            ),
        )
        if app.replicas >= 2:
            # Voluntary evictions (kubectl drain, a node upgrade) leave at least all but
            # one replica serving; pods that are not Ready anyway may always be evicted,
            # so a broken rollout cannot block a drain (PodDisruptionBudget docs,
            # unhealthyPodEvictionPolicy).
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-{app.name}-disruption-budget",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=app.name, namespace=namespace, labels=labels
                ),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=1,
                    selector=k8s.meta.v1.LabelSelectorArgs(
                        match_labels={"app.kubernetes.io/name": app.name}
                    ),
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
                opts=opts,
            )
        service_name, service_opts = named("service")
        return k8s.core.v1.Service(
            service_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=app.name, namespace=namespace, labels=labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector={"app.kubernetes.io/name": app.name},
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=app.port, target_port="http")],
            ),
            opts=service_opts,
        )
