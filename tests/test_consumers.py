"""Least privilege: scoped kubeconfigs for consuming stacks, and pods kept from the instance metadata service."""

import base64
import subprocess

import kubernetes_validate
import pytest
import yaml
from pulumi.output import Unknown

from components.consumers import (
    CONSUMERS_NAMESPACE,
    SERVICE_ACCOUNT_NAME_ANNOTATION,
    SERVICE_ACCOUNT_TOKEN,
    ConsumerSpec,
    token_of,
)
from components.host import metadata_options_command
from components.network_policy import INSTANCE_METADATA_CIDR
from components.settings import TESTED_K3S_MINORS, managed_namespaces, parse_settings
from tests.helpers import (
    ADMIN_CIDR,
    INSTANCE,
    config_source,
    deploy,
    kubernetes_resources,
    rejected,
    write_executable,
)
from tools.mockengine import MOCK_SERVICE_ACCOUNT_TOKEN

SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
SECRET = "kubernetes:core/v1:Secret"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"
TWO_CONSUMERS = [
    {"name": "web-deploy", "namespaces": ["apps"], "role": "edit"},
    {"name": "dashboards", "namespaces": ["apps"], "role": "view"},
]


@pytest.fixture(scope="module")
def two():
    return deploy(consumers=TWO_CONSUMERS)


def of_consumer(deployment, type_, consumer):
    return [
        r
        for r in deployment.of_type(type_)
        if r.name.startswith(f"lightsail-k3s-dev-consumer-{consumer}-")
    ]


@pytest.mark.parametrize("consumer", TWO_CONSUMERS, ids=lambda c: c["name"])
def test_each_consumer_gets_a_service_account_bound_in_its_namespaces_only(two, consumer):
    (account,) = of_consumer(two, SERVICE_ACCOUNT, consumer["name"])
    assert account.inputs["metadata"] == {
        "name": consumer["name"],
        "namespace": CONSUMERS_NAMESPACE,
    }
    assert account.inputs["automountServiceAccountToken"] is False
    bindings = of_consumer(two, ROLE_BINDING, consumer["name"])
    assert [b.inputs["metadata"]["namespace"] for b in bindings] == consumer["namespaces"]
    for binding in bindings:
        assert binding.inputs["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": consumer["role"],
        }
        assert binding.inputs["subjects"] == [
            {"kind": "ServiceAccount", "name": consumer["name"], "namespace": CONSUMERS_NAMESPACE}
        ]
        # The binding waits for the namespace it grants in, and for the ServiceAccount.
        assert two.depends_on(binding, two.named("lightsail-k3s-dev-namespace"))
        assert two.depends_on(binding, account)


def test_no_binding_is_cluster_wide_and_no_role_is_made(two):
    types = {r.type for r in kubernetes_resources(two)}
    assert not {t for t in types if "ClusterRole" in t or t.endswith(":Role")}, types
    assert len(two.of_type(ROLE_BINDING)) == len(TWO_CONSUMERS)


@pytest.mark.parametrize("consumer", TWO_CONSUMERS, ids=lambda c: c["name"])
def test_each_consumer_gets_a_long_lived_token_made_after_its_service_account(two, consumer):
    (account,) = of_consumer(two, SERVICE_ACCOUNT, consumer["name"])
    (token,) = of_consumer(two, SECRET, consumer["name"])
    assert token.inputs["type"] == SERVICE_ACCOUNT_TOKEN
    assert token.inputs["metadata"] == {
        "name": f"{consumer['name']}-token",
        "namespace": CONSUMERS_NAMESPACE,
        "annotations": {SERVICE_ACCOUNT_NAME_ANNOTATION: consumer["name"]},
    }
    # Created after the account: the token controller deletes a token of a missing account.
    assert two.depends_on(token, account)
    # The token controller fills data in: the program sends none, and the SDK keeps it secret.
    assert "data" not in token.inputs and "stringData" not in token.inputs
    assert {"data", "stringData"} <= set(token.additional_secret_outputs)


def test_the_credentials_namespace_holds_no_binding(two):
    (namespace,) = [
        r for r in two.of_type(NAMESPACE) if r.inputs["metadata"]["name"] == CONSUMERS_NAMESPACE
    ]
    assert namespace.inputs["metadata"] == {"name": CONSUMERS_NAMESPACE}
    assert all(
        b.inputs["metadata"]["namespace"] != CONSUMERS_NAMESPACE for b in two.of_type(ROLE_BINDING)
    )


@pytest.fixture(scope="module")
def kubeconfigs(two):
    output = two.outputs["consumerKubeconfigs"]
    assert output.secret
    return {name: yaml.safe_load(text) for name, text in output.value.items()}


def test_each_consumer_kubeconfig_points_at_the_stacks_api_with_its_ca_and_the_token(
    two, kubeconfigs
):
    admin = yaml.safe_load(two.outputs["kubeconfig"].value)["clusters"][0]["cluster"]
    assert set(kubeconfigs) == {c["name"] for c in TWO_CONSUMERS}
    for consumer in TWO_CONSUMERS:
        config = kubeconfigs[consumer["name"]]
        (cluster,) = config["clusters"]
        assert cluster["cluster"] == {
            "server": admin["server"],
            "certificate-authority-data": admin["certificate-authority-data"],
        }
        assert cluster["cluster"]["server"] == two.outputs["kubeApiUrl"].value
        context = f"lightsail-k3s-dev-{consumer['name']}"
        assert config["current-context"] == context
        assert config["contexts"] == [
            {
                "name": context,
                "context": {"cluster": "lightsail-k3s-dev", "user": context, "namespace": "apps"},
            }
        ]
        assert config["users"] == [{"name": context, "user": {"token": MOCK_SERVICE_ACCOUNT_TOKEN}}]


def test_the_tokens_appear_in_no_plain_output(two):
    for name, output in two.outputs.items():
        if MOCK_SERVICE_ACCOUNT_TOKEN in repr(output.value):
            assert output.secret, name


def test_without_consumers_the_output_is_an_empty_secret_object_and_nothing_is_declared():
    deployment = deploy(consumers=[])
    assert deployment.outputs["consumerKubeconfigs"].value == {}
    assert deployment.outputs["consumerKubeconfigs"].secret
    for type_ in (SERVICE_ACCOUNT, ROLE_BINDING, SECRET):
        assert deployment.of_type(type_) == [], type_
    assert [r.inputs["metadata"]["name"] for r in deployment.of_type(NAMESPACE)] == ["apps"]


def test_removing_a_consumer_declares_its_account_and_token_no_more(two):
    # What the engine then deletes, revoking the token (docs/outputs.md, "Revoking").
    one = deploy(consumers=TWO_CONSUMERS[:1])
    kept = {r.name for r in kubernetes_resources(one)}
    gone = {r.name for r in kubernetes_resources(two)} - kept
    assert gone == {
        "lightsail-k3s-dev-consumer-dashboards-account",
        "lightsail-k3s-dev-consumer-dashboards-apps",
        "lightsail-k3s-dev-consumer-dashboards-token",
    }
    assert set(one.outputs["consumerKubeconfigs"].value) == {"web-deploy"}


def test_a_first_preview_leaves_the_kubeconfigs_unknown_and_declares_the_same_objects(two):
    preview = deploy(first_preview=True, consumers=TWO_CONSUMERS)
    # Unknown in a preview: the admin kubeconfig is not read yet, the token not yet written.
    assert isinstance(preview.outputs["consumerKubeconfigs"].value, Unknown)
    assert preview.outputs["consumerKubeconfigs"].secret
    assert sorted(r.name for r in kubernetes_resources(preview)) == sorted(
        r.name for r in kubernetes_resources(two)
    )


def test_a_token_secret_without_data_fails_naming_the_secret_and_the_check():
    consumer = ConsumerSpec("web-deploy", ("apps",), "edit")
    with pytest.raises(
        RuntimeError, match="lightsail-k3s-consumers/web-deploy-token .* no data.token"
    ):
        token_of(consumer, None)
    with pytest.raises(RuntimeError, match="kubectl -n lightsail-k3s-consumers describe secret"):
        token_of(consumer, {"ca.crt": "eA=="})
    assert token_of(consumer, {"token": base64.b64encode(b"t0k").decode()}) == "t0k"


@pytest.mark.parametrize("minor", TESTED_K3S_MINORS)
def test_every_consumer_object_and_the_egress_policy_match_each_tested_minors_schema(two, minor):
    objects = [
        r.inputs
        for r in kubernetes_resources(two)
        if r.type in (SERVICE_ACCOUNT, ROLE_BINDING, SECRET, NETWORK_POLICY, NAMESPACE)
    ]
    assert {o["kind"] for o in objects} == {
        "ServiceAccount",
        "RoleBinding",
        "Secret",
        "NetworkPolicy",
        "Namespace",
    }
    for obj in objects:
        kubernetes_validate.validate(obj, f"1.{minor}.0", strict=True)


# Refusals, each before anything is declared, naming the key and the entry.


def test_refuses_a_namespace_the_stack_does_not_manage():
    rejected(
        "consumers",
        "consumers[0] (web-deploy): namespace 'default' is not one this stack manages (apps)",
        "use one of: apps",
        consumers=[{"name": "web-deploy", "namespaces": ["apps", "default"], "role": "edit"}],
    )


def test_refuses_the_credentials_namespace_as_a_consumer_namespace():
    rejected(
        "consumers",
        f"namespace '{CONSUMERS_NAMESPACE}' is not one this stack manages",
        consumers=[{"name": "thief", "namespaces": [CONSUMERS_NAMESPACE], "role": "view"}],
    )


@pytest.mark.parametrize("role", ["admin", "cluster-admin", "Edit", None])
def test_refuses_an_unknown_role(role):
    rejected(
        "consumers",
        f"consumers[0] (web-deploy): role {role!r} is not one of view, edit",
        "consumers[0].role",
        consumers=[{"name": "web-deploy", "namespaces": ["apps"], "role": role}],
    )


def test_refuses_a_duplicate_consumer_name():
    rejected(
        "consumers",
        "consumers[1] (web-deploy): the name is already used by consumers[0]",
        consumers=[TWO_CONSUMERS[0], {**TWO_CONSUMERS[1], "name": "web-deploy"}],
    )


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        (
            {"name": "Web", "namespaces": ["apps"], "role": "edit"},
            "name 'Web' is not a DNS-1123 label",
        ),
        ({"name": "web", "namespaces": [], "role": "edit"}, "namespaces is not a non-empty list"),
        (
            {"name": "web", "namespaces": "apps", "role": "edit"},
            "namespaces is not a non-empty list",
        ),
        (
            {"name": "web", "namespaces": ["apps"], "role": "edit", "cluster": True},
            "unknown keys ['cluster']",
        ),
        ("web", "consumers[0]: is not an object"),
    ],
)
def test_refuses_a_malformed_entry(entry, fragment):
    rejected("consumers", fragment, consumers=[entry])


def test_refuses_an_app_namespace_that_is_the_credentials_namespace():
    rejected(
        "appNamespace",
        f"'{CONSUMERS_NAMESPACE}' is the namespace of the consumers' credentials",
        appNamespace=CONSUMERS_NAMESPACE,
        consumers=TWO_CONSUMERS[:1],
    )


def test_the_consumer_namespaces_are_checked_against_the_one_list_of_managed_namespaces():
    # The apps namespace moved: consumers follow managed_namespaces, not a literal.
    rejected(
        "consumers",
        "namespace 'apps' is not one this stack manages (shop)",
        appNamespace="shop",
        consumers=TWO_CONSUMERS[:1],
    )
    deployment = deploy(
        appNamespace="shop", consumers=[{**TWO_CONSUMERS[0], "namespaces": ["shop"]}]
    )
    (binding,) = deployment.of_type(ROLE_BINDING)
    assert binding.inputs["metadata"]["namespace"] == "shop"


# The egress policy: every workload namespace, anything but the metadata service.


def egress_policies(deployment, namespace):
    return [
        r
        for r in deployment.of_type(NETWORK_POLICY)
        if r.inputs["metadata"]["namespace"] == namespace
        and "Egress" in r.inputs["spec"].get("policyTypes", [])
    ]


@pytest.mark.parametrize("app_namespace", ["apps", "shop"])
def test_every_managed_namespace_has_one_egress_policy_allowing_all_but_the_metadata_service(
    app_namespace,
):
    deployment = deploy(appNamespace=app_namespace, consumers=[])
    settings = parse_settings(
        config_source(
            {"aws:region": "us-east-1", "adminCidrs": [ADMIN_CIDR], "appNamespace": app_namespace}
        ),
        lambda _key: False,
        "dev",
        {},
        dry_run=True,
    )
    assert managed_namespaces(settings.apps, settings.charts) == (app_namespace,)
    for namespace in managed_namespaces(settings.apps, settings.charts):
        (policy,) = egress_policies(deployment, namespace)
        spec = policy.inputs["spec"]
        # Every pod of the namespace; egress only, so the ingress policy keeps ingress.
        assert spec["podSelector"] == {}
        assert spec["policyTypes"] == ["Egress"]
        (rule,) = spec["egress"]
        assert "ports" not in rule
        assert rule["to"] == [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": [INSTANCE_METADATA_CIDR]}},
            {"namespaceSelector": {}},
        ]
        assert deployment.depends_on(policy, deployment.named("lightsail-k3s-dev-namespace"))


def test_no_other_policy_of_the_app_namespace_allows_egress(dev):
    # Policies add up: another allowing egress more widely would reopen the metadata service.
    for policy in dev.of_type(NETWORK_POLICY):
        spec = policy.inputs["spec"]
        if "egress" in spec or "Egress" in spec.get("policyTypes", []):
            assert policy.name == "lightsail-k3s-dev-egress-policy", policy.name
        else:
            assert spec["policyTypes"] == ["Ingress"], policy.name


# The instance's metadata options (requireImdsV2): IMDSv2 required, PUT hop limit 1.

METADATA_OPTIONS = "command:local:Command"


@pytest.fixture(scope="module")
def aws_cli(tmp_path_factory) -> dict[str, str]:
    """A PATH holding a stand-in `aws`: the program only checks that the CLI is installed."""
    bin_dir = tmp_path_factory.mktemp("bin")
    write_executable(bin_dir / "aws", "#!/bin/sh\nexit 0\n")
    return {"PATH": str(bin_dir)}


def test_by_default_the_metadata_options_are_left_as_lightsail_sets_them(dev):
    assert [r for r in dev.of_type(METADATA_OPTIONS) if r.name.endswith("-metadata-options")] == []


def test_require_imds_v2_sets_every_nodes_metadata_options_after_its_first_boot(aws_cli):
    deployment = deploy(requireImdsV2=True, serverCount=3, agentCount=1, environ=aws_cli)
    instances = {r.name.removesuffix("-instance"): r for r in deployment.of_type(INSTANCE)}
    commands = {
        r.name.removesuffix("-metadata-options"): r for r in deployment.of_type(METADATA_OPTIONS)
    }
    assert set(commands) == set(instances) and len(commands) == 4
    for node, options in commands.items():
        instance = instances[node]
        assert options.inputs["create"] == metadata_options_command(
            "ap-northeast-2", instance.state["name"]
        )
        # Again for a new instance; after cloud-init's first boot, which reads the user data.
        assert options.inputs["triggers"] == [instance.state["arn"]]
        assert deployment.depends_on(options, deployment.named(f"{node}-wait-for-boot"))
        assert "delete" not in options.inputs and "update" not in options.inputs


def test_the_metadata_options_command_reaches_the_aws_cli_as_the_api_names_them(tmp_path):
    write_executable(
        tmp_path / "aws", '#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done\n'
    )
    argv = subprocess.run(
        ["/bin/sh", "-c", metadata_options_command("eu-north-1", "lightsail-k3s-dev-instance-x")],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert argv == [
        "lightsail", "update-instance-metadata-options", "--region", "eu-north-1",
        "--instance-name", "lightsail-k3s-dev-instance-x", "--http-tokens", "required",
        "--http-put-response-hop-limit", "1", "--http-endpoint", "enabled", "--output", "json",
    ]  # fmt: skip


def test_require_imds_v2_needs_the_aws_cli_on_up_and_not_on_preview():
    rejected(
        "requireImdsV2",
        "aws lightsail update-instance-metadata-options), which is not on PATH",
        "pulumi config set --type bool requireImdsV2 false",
        requireImdsV2=True,
        environ={"PATH": ""},
    )
    preview = deploy(requireImdsV2=True, environ={"PATH": ""}, preview=True)
    assert len(preview.of_type(METADATA_OPTIONS)) == 1


def test_a_consumer_may_be_scoped_to_a_chart_namespace_and_waits_for_it():
    """A chart's namespace is one the stack manages (settings.managed_namespaces): a consumer bound
    there gets its RoleBinding after the chart namespace exists, and the namespace its egress policy."""
    kafka = {
        "name": "kafka",
        "chart": "oci://registry-1.docker.io/bitnamicharts/kafka",
        "version": "32.4.4",
        "estimate": {"cpu": "250m", "memory": "512Mi"},
    }
    consumer = {"name": "stream-ops", "namespaces": ["kafka"], "role": "view"}
    deployment = deploy(bundleId="large_3_0", charts=[kafka], consumers=[consumer])
    (binding,) = of_consumer(deployment, ROLE_BINDING, "stream-ops")
    assert binding.inputs["metadata"]["namespace"] == "kafka"
    assert deployment.depends_on(
        binding, deployment.named("lightsail-k3s-dev-charts-namespace-kafka")
    )
    assert "kafka" in {
        r.inputs["metadata"]["namespace"]
        for r in deployment.of_type(NETWORK_POLICY)
        if "Egress" in r.inputs["spec"]["policyTypes"]
    }
