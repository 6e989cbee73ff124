"""Helm charts on the mock engine: HelmCharts for k3s' helm-controller, their namespaces, secret values,
the apps' reach to them, the budget, and every refusal."""

import json
import subprocess
import sys

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.capacity import NodeCapacity
from components.catalog import BUNDLES
from components.charts import HELM_CHART_NAMESPACE, SECRET_VALUES_KEY
from tests.helpers import (
    ADMIN_CIDR,
    HELM_CHART,
    HELM_CHART_CRDS,
    NAMESPACE,
    PROJECT_DIR,
    QUOTA,
    chart,
    declared_objects,
    deploy,
    kubernetes_schema_version,
    rejected,
    strict_crd_schema,
)

FIXTURES = PROJECT_DIR / "tests" / "fixtures"
SECRET = "kubernetes:core/v1:Secret"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

PASSWORD = "kafka-hunter2-very-secret"
KAFKA = {
    "name": "kafka",
    "chart": "oci://registry-1.docker.io/bitnamicharts/kafka",
    "version": "32.4.3",
    "values": {
        "controller": {
            "replicaCount": 3,
            "resources": {
                "requests": {"cpu": "250m", "memory": "512Mi"},
                "limits": {"memory": "768Mi"},
            },
        },
        "metrics": {"jmx": {"resources": {"requests": {"cpu": 0.05, "memory": "64M"}}}},
    },
    "secretValues": ["sasl.client.passwords"],
}
KAFKA_UI = {
    "name": "kafka-ui",
    "repo": "https://provectus.github.io/kafka-ui-charts",
    "chart": "kafka-ui",
    "version": "0.7.6",
    "namespace": "kafka",
    "estimate": {"cpu": "100m", "memory": "256Mi"},
}
SECRETS = {"chartSecrets": {"kafka": {"sasl": {"client": {"passwords": PASSWORD}}}}}


@pytest.fixture(scope="module")
def kafka():
    return deploy(bundleId="large_3_0", charts=[KAFKA, KAFKA_UI], secrets=SECRETS)


@pytest.fixture(scope="module")
def kafka_first_preview():
    return deploy(
        bundleId="large_3_0", charts=[KAFKA, KAFKA_UI], secrets=SECRETS, first_preview=True
    )


def helm_charts(deployment):
    return {r.inputs["metadata"]["name"]: r for r in deployment.of_type(HELM_CHART)}


@pytest.fixture(scope="module", params=HELM_CHART_CRDS)
def helm_chart_schema(request, kafka):
    schema, registry = strict_crd_schema(
        FIXTURES / "crds" / request.param,
        kubernetes_schema_version(kafka.outputs["k3sVersion"].value),
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_each_chart_is_a_helm_chart_in_kube_system_valid_against_the_crd(kafka, helm_chart_schema):
    charts = helm_charts(kafka)
    assert sorted(charts) == ["kafka", "kafka-ui"]
    for registration in charts.values():
        helm_chart_schema.validate(registration.inputs)
        assert registration.inputs["metadata"]["namespace"] == HELM_CHART_NAMESPACE == "kube-system"


@pytest.mark.parametrize(
    "broken",
    [
        {"valuesContent": {"a": 1}},
        {"valuesSecret": [{"name": "x", "keys": ["values.yaml"]}]},
        {"failurePolicy": "retry-forever"},
        {"valuesSecrets": [{"name": "x", "keys": "values.yaml"}]},
    ],
)
def test_the_crd_schema_catches_a_broken_helm_chart(kafka, helm_chart_schema, broken):
    obj = helm_charts(kafka)["kafka"].inputs
    with pytest.raises(jsonschema.ValidationError):
        helm_chart_schema.validate({**obj, "spec": {**obj["spec"], **broken}})


def test_every_other_object_matches_kubernetes_schema(kafka):
    version = kubernetes_schema_version(kafka.outputs["k3sVersion"].value)
    for obj in declared_objects(kafka):
        if obj["kind"] not in ("HelmChart", "HelmChartConfig"):
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_helm_chart_says_what_to_install_and_where(kafka):
    charts = helm_charts(kafka)
    kafka_spec = charts["kafka"].inputs["spec"]
    assert kafka_spec["chart"] == KAFKA["chart"] and "repo" not in kafka_spec
    assert kafka_spec["version"] == "32.4.3"
    assert kafka_spec["targetNamespace"] == "kafka"
    # The namespace is the stack's (below), not helm-controller's.
    assert "createNamespace" not in kafka_spec
    assert kafka_spec["failurePolicy"] == "abort"
    assert yaml.safe_load(kafka_spec["valuesContent"]) == KAFKA["values"]
    ui_spec = charts["kafka-ui"].inputs["spec"]
    assert (ui_spec["repo"], ui_spec["chart"], ui_spec["targetNamespace"]) == (
        "https://provectus.github.io/kafka-ui-charts",
        "kafka-ui",
        "kafka",
    )
    assert "valuesContent" not in ui_spec and "valuesSecrets" not in ui_spec


def test_secret_values_live_only_in_a_secret_that_is_secret_in_state(kafka):
    (secret,) = [
        s for s in kafka.of_type(SECRET) if s.inputs["metadata"]["name"] == "kafka-secret-values"
    ]
    assert secret.inputs["metadata"]["namespace"] == HELM_CHART_NAMESPACE
    assert "stringData" in secret.secret_inputs
    assert (
        yaml.safe_load(secret.inputs["stringData"][SECRET_VALUES_KEY])
        == SECRETS["chartSecrets"]["kafka"]
    )
    assert helm_charts(kafka)["kafka"].inputs["spec"]["valuesSecrets"] == [
        {"name": "kafka-secret-values", "keys": [SECRET_VALUES_KEY]}
    ]
    for registration in kafka.resources:
        if registration is not secret:
            assert PASSWORD not in repr(registration.inputs), registration.name
    for output in kafka.outputs.values():
        assert PASSWORD not in repr(output.value)


def test_the_chart_waits_for_its_namespace_and_secret(kafka):
    chart_of_kafka = helm_charts(kafka)["kafka"]
    namespace = next(n for n in kafka.of_type(NAMESPACE) if n.inputs["metadata"]["name"] == "kafka")
    secret = next(
        s for s in kafka.of_type(SECRET) if s.inputs["metadata"]["name"] == "kafka-secret-values"
    )
    assert kafka.depends_on(chart_of_kafka, namespace)
    assert kafka.depends_on(chart_of_kafka, secret)


def test_one_namespace_per_chart_namespace_with_the_apps_pod_security(kafka):
    namespaces = [n.inputs["metadata"] for n in kafka.of_type(NAMESPACE)]
    (kafka_namespace,) = [n for n in namespaces if n["name"] == "kafka"]
    (apps_namespace,) = [n for n in namespaces if n["name"] == "apps"]
    assert kafka_namespace["labels"] == apps_namespace["labels"]


def test_the_first_preview_declares_the_same_charts(kafka, kafka_first_preview):
    preview = helm_charts(kafka_first_preview)
    assert {name: r.inputs for name, r in preview.items()} == {
        name: r.inputs for name, r in helm_charts(kafka).items()
    }


# Who may reach whom: NetworkPolicy as Kubernetes evaluates it (networking/v1 NetworkPolicySpec): a pod
# that some policy selects for a direction accepts only what one of those policies allows; a pod no
# policy selects accepts everything. Both ends must allow a connection.


def _selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _peer_matches(peer, policy_namespace, other_namespace):
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is not None:
        return _selects(namespace_selector, {"kubernetes.io/metadata.name": other_namespace})
    return "podSelector" in peer and other_namespace == policy_namespace


def _allowed(policies, namespace, other, direction):
    kind, rules_key, peers_key = {
        "in": ("Ingress", "ingress", "from"),
        "out": ("Egress", "egress", "to"),
    }[direction]
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == namespace
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True
    return any(
        not rule.get(peers_key)
        or any(_peer_matches(peer, namespace, other) for peer in rule[peers_key])
        for policy in selecting
        for rule in policy["spec"].get(rules_key, [])
    )


def reaches(deployment, source, target):
    policies = [r.inputs for r in deployment.of_type(NETWORK_POLICY)]
    for policy in policies:
        # The evaluator reads empty pod selectors only: every policy here selects a whole namespace.
        assert policy["spec"]["podSelector"] == {}, policy
    return _allowed(policies, source, target, "out") and _allowed(policies, target, source, "in")


def test_the_apps_reach_the_charts_and_nothing_else_changes(kafka):
    assert reaches(kafka, "apps", "kafka")
    assert reaches(kafka, "kafka", "kafka")
    assert reaches(kafka, "kube-system", "kafka")
    # Towards the apps, as strict as before: Traefik and the apps themselves only.
    assert reaches(kafka, "kube-system", "apps")
    assert reaches(kafka, "apps", "apps")
    assert not reaches(kafka, "kafka", "apps")
    assert not reaches(kafka, "default", "apps")
    # And the charts are no one else's.
    assert not reaches(kafka, "default", "kafka")


def test_the_reach_check_sees_a_blocked_path(kafka):
    # The evaluator is not always yes: an egress policy in apps that lets out only DNS blocks Kafka.
    dns_only = {
        "metadata": {"namespace": "apps"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            }
                        }
                    ]
                }
            ],
        },
    }
    # In place of the apps' own egress policy, since policies add up.
    policies = [
        r.inputs
        for r in kafka.of_type(NETWORK_POLICY)
        if not (
            r.inputs["metadata"]["namespace"] == "apps"
            and "Egress" in r.inputs["spec"]["policyTypes"]
        )
    ] + [dns_only]
    assert not _allowed(policies, "apps", "kafka", "out")


def test_every_chart_namespace_keeps_its_pods_from_the_instance_metadata_service(kafka):
    """Issue 25: each namespace a chart installs into gets the egress policy the apps' has
    (components/network_policy.py), and no other policy of the namespace allows egress."""
    from components.network_policy import INSTANCE_METADATA_CIDR, POLICY_NAME

    chart_namespaces = {
        r.inputs["metadata"]["name"]
        for r in kafka.of_type("kubernetes:core/v1:Namespace")
        if r.parent and "Charts" in r.parent
    }
    assert chart_namespaces
    for namespace in chart_namespaces:
        egress = [
            r.inputs
            for r in kafka.of_type(NETWORK_POLICY)
            if r.inputs["metadata"]["namespace"] == namespace
            and "Egress" in r.inputs["spec"]["policyTypes"]
        ]
        assert [policy["metadata"]["name"] for policy in egress] == [POLICY_NAME], namespace
        (rule,) = egress[0]["spec"]["egress"]
        assert rule["to"][0]["ipBlock"]["except"] == [INSTANCE_METADATA_CIDR]


# The budget: what the apps' quota leaves to the charts.


def test_the_budget_counts_the_charts_requests_and_the_quota_leaves_them_room(kafka):
    # kafka: 3 controllers x 250m and their 768Mi limits, the JMX exporter's 50m and 64M (61.04Mi);
    # kafka-ui: its estimate.
    cpu = 3 * 250 + 50 + 100
    memory = 3 * 768 + 62 + 256
    full = NodeCapacity.of(BUNDLES["large_3_0"]).budget
    quota = kafka.one(QUOTA).inputs["spec"]["hard"]
    assert quota["requests.cpu"] == f"{full.requests_cpu_millicores - cpu}m"
    assert quota["limits.memory"] == f"{full.memory_mib - memory}Mi"
    assert not any("counts nothing" in w for w in kafka.warnings)


def test_apps_that_no_longer_fit_beside_the_charts_are_refused_naming_them():
    app = {
        "name": "web",
        "image": "ghcr.io/acme/web:1.0.0",
        "port": 80,
        "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "2Gi"}},
    }
    message = rejected(
        "apps",
        "the charts (kafka 800m/2366Mi from its values (controller.resources x3, metrics.jmx.resources))",
        bundleId="large_3_0",
        apps=[app],
        charts=[KAFKA],
        secrets=SECRETS,
    )
    assert "set bundleId: the cheapest bundle that fits is xlarge_3_0" in message


def test_charts_that_leave_the_apps_nothing_are_refused():
    rejected(
        "charts",
        "but the small_3_0 node has 1600m and 784Mi for workloads, which leaves the apps nothing",
        charts=[chart(estimate={"memory": "2Gi"})],
    )


def test_a_chart_the_budget_cannot_count_is_named_in_a_warning():
    deployment = deploy(charts=[chart()])
    (warning,) = [w for w in deployment.warnings if "counts nothing" in w]
    assert "charts[0] (cache)" in warning and "estimate:" in warning


# Refusals, each before any resource, naming the key.


@pytest.mark.parametrize(
    "version, fragment",
    [
        (None, "version is missing"),
        ("", "version is missing"),
        ("^1.2.0", "not one exact version"),
        ("~1.2.3", "not one exact version"),
        (">=1.0.0", "not one exact version"),
        ("1.2", "not one exact version"),
        ("1.2.x", "not one exact version"),
        ("1.2.3 || 1.3.0", "not one exact version"),
        ("*", "not one exact version"),
        ("latest", "not one exact version"),
        (1.2, "not a string"),
    ],
)
def test_an_unpinned_or_ranged_version_is_refused(version, fragment):
    rejected("charts", "charts[0] (cache)", fragment, charts=[chart(version=version)])


@pytest.mark.parametrize("version", ["1.2.3", "v1.14.0", "0.1.0-rc.1", "39.0.701+up39.0.7"])
def test_exact_versions_are_accepted(version):
    (helm_chart,) = deploy(charts=[chart(version=version, estimate={"cpu": "10m"})]).of_type(
        HELM_CHART
    )
    assert helm_chart.inputs["spec"]["version"] == version


@pytest.mark.parametrize(
    "fields, fragments",
    [
        ({"repo": "http://charts.example.com"}, ("is plain HTTP", "https://charts.example.com")),
        (
            {"repo": "oci://ghcr.io/acme/charts"},
            ("is an OCI registry", "chart: oci://ghcr.io/acme/charts/redis"),
        ),
        ({"repo": "ftp://charts.example.com"}, ("not an https:// URL",)),
        ({"repo": "https://user:pw@charts.example.com"}, ("credentials",)),
        ({"chart": "acme/redis"}, ("not a chart name in repo",)),
        ({"repo": None, "chart": "redis"}, ("neither repo nor an oci:// reference",)),
        ({"repo": None, "chart": "http://example.com/redis-1.2.3.tgz"}, ("archive URL",)),
        ({"repo": None, "chart": "oci://ghcr.io/acme/redis:1.2.3"}, ("without a tag",)),
    ],
)
def test_a_bad_source_is_refused(fields, fragments):
    rejected("charts", "charts[0] (cache)", *fragments, charts=[chart(**fields)])


@pytest.mark.parametrize(
    "namespace, config, fragment",
    [
        ("apps", {}, "is the apps' namespace (appNamespace)"),
        ("shop", {"appNamespace": "shop"}, "is the apps' namespace (appNamespace)"),
        ("kube-system", {}, "one of Kubernetes' own"),
        ("default", {}, "one of Kubernetes' own"),
        ("Kafka", {}, "not a DNS label"),
    ],
)
def test_a_namespace_clash_is_refused(namespace, config, fragment):
    rejected("charts", fragment, charts=[chart(namespace=namespace)], **config)


def test_the_namespace_defaults_to_the_name():
    deployment = deploy(charts=[chart(estimate={"cpu": "10m"})])
    assert helm_charts(deployment)["cache"].inputs["spec"]["targetNamespace"] == "cache"


@pytest.mark.parametrize(
    "charts, fragment",
    [
        ([chart(name="traefik")], "a chart k3s installs itself"),
        ([chart(), chart()], "already used by charts[0]"),
        ([chart(name="x" * 51)], "at most 50 characters"),
        ([chart(valuse={})], "unknown keys ['valuse']"),
        ([chart(values=["a"])], "values ['a'] is not an object"),
        ([chart(secretValues="password")], "not a list of dotted value paths"),
        ([chart(secretValues=["auth", "auth.password"])], "which lies inside it"),
        (
            [chart(values={"auth": {"password": "x"}}, secretValues=["auth.password"])],
            "in both values and secretValues",
        ),
        ([chart(estimate={"cpu": "lots"})], "estimate"),
        (
            [chart(values={"resources": {"requests": {"memory": "1 GB"}}})],
            "charts[0] (cache).values.resources.requests.memory",
        ),
        ({"name": "cache"}, "is not a list of charts"),
    ],
)
def test_bad_charts_are_refused(charts, fragment):
    rejected("charts", fragment, charts=charts)


def test_a_secret_value_without_a_value_is_refused():
    rejected(
        "chartSecrets",
        "lists auth.password in secretValues, but chartSecrets.cache.auth.password has no value",
        "pulumi config set --secret --path 'chartSecrets.cache.auth.password'",
        charts=[chart(secretValues=["auth.password"])],
    )


def test_chart_secrets_in_plain_text_are_refused():
    rejected(
        "chartSecrets",
        "is stored in plain text",
        charts=[chart(secretValues=["auth.password"])],
        chartSecrets={"cache": {"auth": {"password": "x"}}},
    )


@pytest.mark.parametrize(
    "secrets, fragment",
    [
        ({"ghost": {"a": "b"}}, "has values for 'ghost', which is not in charts"),
        (
            {"cache": {"auth": {"password": "p", "user": "u"}}},
            "chartSecrets.cache.auth.user is not under a secretValues path",
        ),
    ],
)
def test_stray_chart_secrets_are_refused(secrets, fragment):
    message = rejected(
        "chartSecrets",
        fragment,
        charts=[chart(secretValues=["auth.password"])],
        secrets={"chartSecrets": secrets},
    )
    assert "'p'" not in message and "'u'" not in message


def test_make_plan_renders_the_helm_chart_and_masks_the_secret_values(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "--out", str(tmp_path)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env={
            "PATH": "",
            "PLAN_SET": f'adminCidrs=["{ADMIN_CIDR}"] bundleId=large_3_0 charts={json.dumps([KAFKA])}',
            "PLAN_SECRET": f"chartSecrets.kafka.sasl.client.passwords={PASSWORD}",
        },
    )
    assert result.returncode == 0, result.stderr
    files = {path.name: path.read_text() for path in (tmp_path / "dev" / "k8s").iterdir()}
    (helm_chart,) = [yaml.safe_load(text) for text in files.values() if "kind: HelmChart\n" in text]
    assert helm_chart["spec"]["chart"] == KAFKA["chart"]
    everything = (
        result.stdout
        + result.stderr
        + "".join(path.read_text() for path in (tmp_path / "dev").rglob("*") if path.is_file())
    )
    assert PASSWORD not in everything
