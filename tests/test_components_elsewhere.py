"""The components outside this stack: a second project (examples/k3s-only) and the multi-language package (provider/)."""

import json
import runpy
import tomllib
from typing import Any, cast

import pytest
import yaml
from pulumi.provider.experimental.component import ComponentProvider

from components.cluster import CLUSTER_TYPE, Cluster, ClusterArgs, plan_single_server
from components.errors import ConfigError
from tests.helpers import ADMIN_CIDR, INSTANCE, PROJECT_DIR, Declared, run_program
from tools import mockengine

EXAMPLE_DIR = PROJECT_DIR / "examples" / "k3s-only"
PROVIDER_DIR = PROJECT_DIR / "provider"


def run_example(config: dict[str, Any]) -> Declared:
    """examples/k3s-only/__main__.py on the mock engine, its config as the CLI passes it (Pulumi.yaml defaults first)."""
    project = yaml.safe_load((EXAMPLE_DIR / "Pulumi.yaml").read_text())
    values = {
        f"{project['name']}:{key}": spec["default"]
        for key, spec in project["config"].items()
        if "default" in spec
    }
    values.update({f"{project['name']}:{key}": value for key, value in config.items()})
    values["aws:region"] = "eu-central-1"
    raw = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()
    }
    return run_program(
        EXAMPLE_DIR / "__main__.py", project["name"], raw, mockengine.LightsailMocks("eu-central-1")
    )


@pytest.fixture(scope="module")
def example() -> Declared:
    return run_example({"adminCidrs": [ADMIN_CIDR]})


def test_the_example_declares_a_host_and_k3s_through_the_cluster_component(example):
    cluster = example.one(CLUSTER_TYPE)
    host = example.one("lightsail-k3s:index:LightsailHost")
    server = example.one("lightsail-k3s:index:K3sServer")
    assert cluster.name == host.name == server.name == "dev"
    assert host.parent == server.parent == cluster.urn
    instance = example.one(INSTANCE)
    assert (
        instance.inputs["bundleId"] == "small_3_0"
        and instance.inputs["availabilityZone"] == "eu-central-1a"
    )
    assert example.depends_on(example.named("dev-install"), example.named("dev-wait-for-boot"))
    # No apps: nothing on the cluster but its provider.
    assert [r.type for r in example.resources if r.type.startswith("kubernetes:")] == []
    firewall = example.one("aws:lightsail/instancePublicPorts:InstancePublicPorts")
    admin_ports = {
        rule["fromPort"]
        for rule in firewall.inputs["portInfos"]
        if rule.get("cidrs") == [ADMIN_CIDR]
    }
    assert admin_ports == {22, 6443}


def test_the_example_exports_the_secret_kubeconfig_and_the_api_at_the_static_ip(example):
    static_ip = example.one("aws:lightsail/staticIp:StaticIp").state["ipAddress"]
    assert example.outputs["kubeApiUrl"].value == f"https://{static_ip}:6443"
    assert example.outputs["publicIp"].value == static_ip
    assert (
        example.outputs["kubeconfig"].secret
        and f"server: https://{static_ip}:6443" in example.outputs["kubeconfig"].value
    )
    assert not example.outputs["publicIp"].secret


VALID: ClusterArgs = {
    "availability_zone": "eu-central-1a",
    "bundle_id": "small_3_0",
    "blueprint_id": "ubuntu_24_04",
    "k3s_version": "v1.36.1+k3s1",
    "admin_cidrs": [ADMIN_CIDR],
}


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"bundle_id": "nano_3_0"}, "bundleId", "below the k3s server minimum"),
        ({"k3s_version": "stable"}, "k3sVersion", "release channel"),
        # Only the tested minors: the component offers no allowUntestedK3sVersion.
        ({"k3s_version": "v1.20.15+k3s1"}, "k3sVersion", "outside the Kubernetes minors"),
        ({"admin_cidrs": ["0.0.0.0/0"]}, "adminCidrs", "whole internet"),
        ({"availability_zone": "mars-1a"}, "availabilityZone", "not a Lightsail availability zone"),
        ({"blueprint_id": "windows_2022"}, "blueprintId", "not supported"),
        ({"tags": {"aws:owner": "x"}}, "tags", "aws:"),
        (
            {
                "ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
            },
            "sshAgentSocket",
            "no ssh-agent socket",
        ),
    ],
)
def test_cluster_inputs_are_checked_as_the_stacks_config_is_naming_the_input(
    changes, key, fragment
):
    with pytest.raises(ConfigError) as caught:
        plan_single_server("dev", cast(ClusterArgs, {**VALID, **changes}))
    assert caught.value.key == f"lightsail-k3s:{key}" and fragment in str(caught.value), str(
        caught.value
    )


def test_cluster_inputs_become_the_components_args():
    plan = plan_single_server(
        "dev",
        {**VALID, "protect": False, "tags": {"team": "platform"}, "auto_snapshot_time": "03:00"},
    )
    host = (plan.host.bundle_id, plan.host.blueprint_id, plan.host.availability_zone)
    assert host == ("small_3_0", "ubuntu_24_04", "eu-central-1a")
    assert (
        plan.host.protect is False
        and plan.host.tags == {"team": "platform"}
        and plan.host.auto_snapshot_time == "03:00"
    )
    assert plan.k3s_version == "v1.36.1+k3s1" and plan.host.static_ip
    # Protected unless the caller says otherwise, as the stack's default.
    assert plan_single_server("dev", VALID).host.protect is True


def test_a_cluster_name_that_cannot_name_a_node_is_refused():
    with pytest.raises(ConfigError, match="not a lowercase DNS label"):
        plan_single_server("Dev_Cluster", VALID)


def provider_schema() -> dict[str, Any]:
    """The schema the component provider host serves to `pulumi package add` (pulumi/provider/experimental/component.py)."""
    host_globals = runpy.run_path(str(PROVIDER_DIR / "__main__.py"), run_name="provider")
    provider = ComponentProvider([Cluster], host_globals["PACKAGE_NAME"])
    assert provider.schema is not None
    return json.loads(provider.schema)


def test_the_plugin_is_a_python_component_provider_host():
    assert yaml.safe_load((PROVIDER_DIR / "PulumiPlugin.yaml").read_text()) == {"runtime": "python"}
    source = (PROVIDER_DIR / "__main__.py").read_text()
    assert "component_provider_host(components=[Cluster], name=PACKAGE_NAME)" in source
    # The host constructs a component by the last part of the type the engine asks for (component.py,
    # construct): the component's own type token must be the package's.
    package_name = runpy.run_path(str(PROVIDER_DIR / "__main__.py"), run_name="provider")[
        "PACKAGE_NAME"
    ]
    assert CLUSTER_TYPE == f"{package_name}:index:Cluster"


def test_the_multi_language_schema_has_the_clusters_inputs_and_outputs():
    schema = provider_schema()
    assert schema["name"] == "lightsail-k3s"
    resource = schema["resources"][CLUSTER_TYPE]
    assert resource["isComponent"] is True
    inputs = {name: spec.get("type") for name, spec in resource["inputProperties"].items()}
    assert inputs == {
        "availabilityZone": "string",
        "bundleId": "string",
        "blueprintId": "string",
        "k3sVersion": "string",
        "adminCidrs": "array",
        "sshPublicKey": "string",
        "sshAgentSocket": "string",
        "autoSnapshotTime": "string",
        "protect": "boolean",
        "tags": "object",
    }
    assert resource["inputProperties"]["adminCidrs"]["items"]["type"] == "string"
    assert resource["inputProperties"]["tags"]["additionalProperties"]["type"] == "string"
    assert sorted(resource["requiredInputs"]) == [
        "adminCidrs",
        "availabilityZone",
        "blueprintId",
        "bundleId",
        "k3sVersion",
    ]
    outputs = {name: spec.get("type") for name, spec in resource["properties"].items()}
    assert outputs == {
        name: "string"
        for name in (
            "kubeconfig",
            "kubeApiUrl",
            "publicIp",
            "privateIp",
            "instanceName",
            "sshUser",
            "sshPrivateKey",
            "nodeToken",
            "agentToken",
        )
    }
    assert "sshPrivateKey" not in resource["required"] and "kubeconfig" in resource["required"]
    assert "IPv4 CIDRs" in resource["inputProperties"]["adminCidrs"]["description"]


def test_the_package_ships_the_components_with_their_remote_scripts():
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["packages"] == ["components"]
    assert project["tool"]["setuptools"]["package-data"]["components"] == ["remote/*.sh"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {
        "file": ["requirements.txt"]
    }
    assert (PROVIDER_DIR / "requirements.txt").read_text().splitlines()[-1] == ".."
