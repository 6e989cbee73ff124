"""Workloads hardened by default: Pod Security Admission, pod security contexts, NetworkPolicy, PodDisruptionBudgets."""

import kubernetes_validate
import pytest

from tests.helpers import DEPLOYMENT, deploy, kubernetes_schema_version, rejected

PDB = "kubernetes:policy/v1:PodDisruptionBudget"

RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
}
APPS = [
    {"name": "web", "image": "nginx:1.27.3", "port": 80, "replicas": 2},
    {
        "name": "api",
        "image": "ghcr.io/acme/api:2.0.1",
        "port": 8080,
        "path": "/api",
        "securityContext": RESTRICTED,
    },
    {
        "name": "worker",
        "image": "ghcr.io/acme/worker:1.0.0",
        "port": 9000,
        "path": "/jobs",
        "replicas": 3,
    },
]


@pytest.fixture(scope="module")
def hardened():
    return deploy(bundleId="medium_3_0", apps=APPS)


def pod_specs(deployment):
    return {
        d.inputs["metadata"]["name"]: d.inputs["spec"]["template"]["spec"]
        for d in deployment.of_type(DEPLOYMENT)
    }


def restricted_violations(pod):
    """What the restricted Pod Security Standard checks on these pods
    (kubernetes.io/docs/concepts/security/pod-security-standards, Restricted)."""
    problems = []
    for container in pod["containers"]:
        context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
        if context.get("runAsNonRoot") is not True:
            problems.append("runAsNonRoot")
        if context.get("runAsUser") == 0:
            problems.append("runAsUser 0")
        if container.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation")
        if context.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append("seccompProfile")
        capabilities = container.get("securityContext", {}).get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append("capabilities.drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append("capabilities.add")
    allowed_volumes = {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
    for volume in pod.get("volumes", []):
        if not set(volume) - {"name"} <= allowed_volumes:
            problems.append(f"volume {volume['name']}")
    return problems


def test_namespace_enforces_baseline_and_warns_and_audits_restricted_at_the_k3s_minor(hardened):
    labels = hardened.named("lightsail-k3s-dev-namespace").inputs["metadata"]["labels"]
    assert labels == {
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/enforce-version": "v1.36",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "v1.36",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": "v1.36",
    }


def test_pod_security_version_follows_k3s_version():
    labels = (
        deploy(k3sVersion="v1.35.2+k3s1")
        .named("lightsail-k3s-dev-namespace")
        .inputs["metadata"]["labels"]
    )
    assert {
        labels[f"pod-security.kubernetes.io/{mode}-version"]
        for mode in ("enforce", "warn", "audit")
    } == {"v1.35"}


def test_every_pod_gets_no_token_runtime_default_seccomp_and_no_privilege_escalation(hardened, dev):
    for deployment in (hardened, dev):
        for name, pod in pod_specs(deployment).items():
            assert pod["automountServiceAccountToken"] is False, name
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for container in pod["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_defaults_keep_common_root_images_running_under_baseline(hardened):
    web = pod_specs(hardened)["web"]
    (container,) = web["containers"]
    # nginx starts as root and chowns its cache: no runAsNonRoot, a writable root, root's capabilities.
    assert "runAsNonRoot" not in web["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is False
    # Only raw sockets go (CIS Kubernetes Benchmark); baseline would allow NET_RAW, ping-like tools are all that need it.
    assert container["securityContext"]["capabilities"] == {"drop": ["NET_RAW"]}
    assert "volumes" not in web
    # So the restricted profile warns about it, which is the point of warn mode.
    assert "runAsNonRoot" in restricted_violations(web)


def test_per_app_overrides_reach_the_restricted_profile(hardened):
    api = pod_specs(hardened)["api"]
    (container,) = api["containers"]
    assert api["securityContext"]["runAsNonRoot"] is True
    assert api["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {
        "drop": ["ALL"],
        "add": ["NET_BIND_SERVICE"],
    }
    # A read-only root still gets a writable /tmp.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert api["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert restricted_violations(api) == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_shipped_demo_app_passes_the_restricted_profile(stack):
    """The demo a fresh `make up` deploys: non-root, every capability dropped, a read-only root,
    an unprivileged port (no NET_BIND_SERVICE needed)."""
    deployment = deploy(stack)
    (pod,) = pod_specs(deployment).values()
    (container,) = pod["containers"]
    assert restricted_violations(pod) == []
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert [port["containerPort"] for port in container["ports"]] == [8080]
    assert {"name": "WHOAMI_PORT_NUMBER", "value": "8080"} in container["env"]


def test_apps_accept_traffic_only_from_traefiks_namespace_and_their_own(hardened):
    policy = hardened.named("lightsail-k3s-dev-ingress-policy").inputs
    assert policy["metadata"]["namespace"] == "apps"
    assert policy["spec"] == {
        # Every pod in the namespace, including those of existing manifests.
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                        }
                    },
                    {"podSelector": {}},
                ]
            }
        ],
    }


def test_pod_disruption_budget_only_for_apps_with_two_or_more_replicas(hardened):
    budgets = {p.inputs["metadata"]["name"]: p.inputs for p in hardened.of_type(PDB)}
    assert set(budgets) == {"web", "worker"}
    for name, budget in budgets.items():
        assert budget["metadata"]["namespace"] == "apps"
        assert budget["spec"] == {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        }
    deployments = {d.inputs["metadata"]["name"]: d.inputs for d in hardened.of_type(DEPLOYMENT)}
    for name in budgets:
        assert (
            deployments[name]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            == name
        )


def test_hardened_objects_validate_strictly_against_the_pinned_minor(hardened):
    schema_version = kubernetes_schema_version(hardened.outputs["k3sVersion"].value)
    kinds = set()
    for registration in hardened.resources:
        if registration.type.startswith("kubernetes:") and "kind" in registration.inputs:
            kubernetes_validate.validate(registration.inputs, schema_version, strict=True)
            kinds.add(registration.inputs["kind"])
    assert {"Namespace", "NetworkPolicy", "PodDisruptionBudget", "Deployment"} <= kinds


# Bad securityContext values: refused before any resource is declared.


def app_with(security_context):
    return [
        {
            "name": "web",
            "image": "ghcr.io/acme/web:1.0.0",
            "port": 8080,
            "securityContext": security_context,
        }
    ]


def test_security_context_must_be_an_object():
    rejected(
        "lightsail-k3s:apps",
        "apps[0] (web)",
        "securityContext 'strict' is not an object",
        apps=app_with("strict"),
    )


def test_security_context_unknown_keys():
    rejected(
        "lightsail-k3s:apps", "unknown keys ['privileged']", apps=app_with({"privileged": True})
    )


@pytest.mark.parametrize("key", ["runAsNonRoot", "readOnlyRootFilesystem"])
def test_security_context_flags_must_be_booleans(key):
    rejected(
        "lightsail-k3s:apps",
        f"securityContext.{key} 'yes' is not true or false",
        apps=app_with({key: "yes"}),
    )


@pytest.mark.parametrize("user", [-1, 2**31, "1000", True])
def test_run_as_user_must_be_a_user_id(user):
    rejected(
        "lightsail-k3s:apps",
        "securityContext.runAsUser",
        "is not a user ID",
        apps=app_with({"runAsUser": user}),
    )


def test_run_as_non_root_with_user_zero():
    rejected(
        "lightsail-k3s:apps",
        "runAsNonRoot: true with runAsUser: 0",
        apps=app_with({"runAsNonRoot": True, "runAsUser": 0}),
    )


def test_capabilities_beyond_baseline_are_refused():
    rejected(
        "lightsail-k3s:apps",
        "capabilities.add ['SYS_ADMIN']",
        "baseline",
        "add only from: AUDIT_WRITE, CHOWN,",
        apps=app_with({"capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}}),
    )


def test_capabilities_with_the_cap_prefix():
    rejected(
        "lightsail-k3s:apps",
        "'CAP_CHOWN'",
        "without the CAP_ prefix: CHOWN",
        apps=app_with({"capabilities": {"drop": ["CAP_CHOWN"]}}),
    )


@pytest.mark.parametrize(
    "capabilities",
    [{"drop": "ALL"}, {"drop": ["all"]}, {"keep": ["CHOWN"]}, ["ALL"], {"add": ["ALL"]}],
)
def test_malformed_capabilities(capabilities):
    rejected(
        "lightsail-k3s:apps",
        "securityContext.capabilities",
        apps=app_with({"capabilities": capabilities}),
    )
