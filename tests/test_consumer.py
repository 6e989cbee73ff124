"""examples/consumer on the mock engine, its StackReference answered with the dev stack's real outputs.

The mocked read answers as the engine's builtin provider does (pulumi/pulumi
pkg/resource/deploy/builtins.go, readStackReference): `name`, `outputs`, and `secretOutputNames`, from
which the SDK marks each output secret (sdk/python/lib/pulumi/stack_reference.py, require_output).
"""

import re
from typing import Any

import kubernetes_validate
import pulumi
import pytest
import yaml

from tests.helpers import PROJECT_DIR, STACK_REFERENCE, Declared, manual_section, run_program
from tools import pulumi_sdk

CONSUMER_DIR = PROJECT_DIR / "examples" / "consumer"


class ClusterStackMocks(pulumi_sdk.Mocks):
    """Answers the StackReference read with a cluster stack's outputs; other resources echo their inputs."""

    def __init__(self, cluster: Declared):
        self.cluster = cluster
        self.references: list[str] = []

    def new_resource(self, args: pulumi_sdk.MockResourceArgs):
        if args.typ == STACK_REFERENCE:
            self.references.append(args.inputs["name"])
            outputs = {key: output.value for key, output in self.cluster.outputs.items()}
            secret_names = sorted(
                key for key, output in self.cluster.outputs.items() if output.secret
            )
            return args.resource_id, {
                "name": args.inputs["name"],
                "outputs": outputs,
                "secretOutputNames": secret_names,
            }
        state = dict(args.inputs)
        if args.typ.startswith("kubernetes:"):
            state["metadata"] = {
                "name": f"{args.name}-x1y2z3",
                **(args.inputs.get("metadata") or {}),
            }
        return f"{args.name}-id", state

    def call(self, args: pulumi_sdk.MockCallArgs):
        return {}, None


def consumer_config(**overrides: Any) -> dict[str, str]:
    """Pulumi.yaml defaults, then overrides, as the CLI hands config to the program."""
    project = yaml.safe_load((CONSUMER_DIR / "Pulumi.yaml").read_text())
    values = {
        f"{project['name']}:{key}": spec["default"] for key, spec in project["config"].items()
    }
    values.update({f"{project['name']}:{key}": value for key, value in overrides.items()})
    return values


def run_consumer(cluster: Declared, **config: Any) -> tuple[Declared, ClusterStackMocks]:
    mocks = ClusterStackMocks(cluster)
    return run_program(
        CONSUMER_DIR / "__main__.py", "lightsail-k3s-consumer", consumer_config(**config), mocks
    ), mocks


@pytest.fixture(scope="module")
def consumer(dev):
    return run_consumer(dev, clusterStack="acme/lightsail-k3s/prod")


def test_references_the_stack_named_in_its_config(consumer):
    _, mocks = consumer
    assert mocks.references == ["acme/lightsail-k3s/prod"]


def test_defaults_to_the_self_managed_backend_name_of_dev(dev):
    _, mocks = run_consumer(dev)
    assert mocks.references == ["organization/lightsail-k3s/dev"]


def test_builds_its_provider_from_its_own_scoped_kubeconfig_kept_secret(consumer, dev):
    deployment, _ = consumer
    provider = deployment.one("pulumi:providers:kubernetes")
    scoped = dev.outputs["consumerKubeconfigs"].value["example"]
    assert provider.inputs["kubeconfig"] == scoped
    assert provider.inputs["kubeconfig"] != dev.outputs["kubeconfig"].value
    assert "kubeconfig" in provider.secret_inputs
    # A token bound in the app namespace, not the admin's client certificate.
    user = yaml.safe_load(scoped)["users"][0]["user"]
    assert set(user) == {"token"}


def test_refuses_a_consumer_name_the_cluster_stack_has_no_kubeconfig_for(dev):
    with pytest.raises(
        pulumi.RunError, match=r"consumerName': the cluster stack .* has no consumer 'ci'"
    ):
        run_consumer(dev, consumerName="ci")


def test_runs_one_workload_in_the_clusters_app_namespace_through_that_provider(consumer, dev):
    deployment, _ = consumer
    (workload,) = deployment.of_type("kubernetes:apps/v1:Deployment")
    assert workload.inputs["metadata"]["namespace"] == dev.outputs["appNamespace"].value
    assert workload.provider.startswith(deployment.one("pulumi:providers:kubernetes").urn + "::")
    assert deployment.outputs["clusterApi"].value == dev.outputs["kubeApiUrl"].value


def test_the_workload_matches_the_schema_of_the_clusters_kubernetes_minor(consumer, dev):
    (workload,) = consumer[0].of_type("kubernetes:apps/v1:Deployment")
    minor = ".".join(dev.outputs["k3sVersion"].value.lstrip("v").split(".")[:2])
    kubernetes_validate.validate(workload.inputs, f"{minor}.0", strict=True)


def test_refuses_a_stack_name_without_organization_and_project(dev):
    with pytest.raises(
        pulumi.RunError, match=r"clusterStack': 'dev' is not <organization>/<project>/<stack>"
    ):
        run_consumer(dev, clusterStack="dev")


def test_the_outputs_contract_marks_the_credentials_secret(dev):
    secret = {key for key, output in dev.outputs.items() if output.secret}
    # Exactly these: a consumer reading publicIp or kubeApiUrl must get plain values. The restart
    # digests are taken of installs that carry a token (components/rollout.py).
    assert secret == {
        "kubeconfig",
        "nodeToken",
        "agentToken",
        "sshPrivateKey",
        "nodeRestartDigests",
        "consumerKubeconfigs",
    }


def documented_outputs_table() -> dict[str, tuple[str, bool]]:
    section = manual_section("outputs.md", "Outputs")
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|\s*(yes)?\s*\|", section, re.MULTILINE)
    return {name: (kind.strip(), secret == "yes") for name, kind, secret in rows}


def test_the_documented_outputs_table_is_the_programs_outputs(dev):
    json_type = {
        str: "string",
        int: "number",
        float: "number",
        dict: "object",
        list: "array",
        bool: "boolean",
    }
    table = documented_outputs_table()
    assert set(dev.outputs) <= set(table), set(dev.outputs) - set(table)
    outputs_page = (PROJECT_DIR / "docs" / "outputs.md").read_text()
    for conditional in set(table) - set(dev.outputs):
        assert re.search(rf"^\| `{conditional}` \|.*\(only with", outputs_page, re.MULTILINE), (
            conditional
        )
    for name, output in dev.outputs.items():
        kind, secret = table[name]
        assert kind.split()[0].rstrip(":") == json_type[type(output.value)], name
        assert secret == output.secret, name
