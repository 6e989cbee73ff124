"""The components outside this stack: a second project (examples/k3s-only) and the multi-language package (provider/)."""

import base64
import json
import re
import runpy
import tomllib
from typing import Any, cast

import pytest
import yaml
from pulumi.provider.experimental.component import ComponentProvider

from components.apps import APPS_INPUT_DEFAULTS, APPS_TYPE, Apps, parse_apps_inputs
from components.cluster import (
    CLUSTER_TYPE,
    INPUT_DEFAULTS,
    Cluster,
    ClusterArgs,
    parse_cluster_args,
)
from components.errors import ConfigError
from components.k3s import registries_file
from components.registries import Registry
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


def plan(args: ClusterArgs):
    return parse_cluster_args("dev", args, environ={}, dry_run=True)


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
        plan(cast(ClusterArgs, {**VALID, **changes}))
    assert caught.value.key == f"lightsail-k3s:{key}" and fragment in str(caught.value), str(
        caught.value
    )


def test_cluster_inputs_become_the_clusters_spec():
    spec = plan(
        {**VALID, "protect": False, "tags": {"team": "platform"}, "auto_snapshot_time": "03:00"}
    )
    host = (spec.bundle.bundle_id, spec.blueprint_id, spec.availability_zone, spec.region)
    assert host == ("small_3_0", "ubuntu_24_04", "eu-central-1a", "eu-central-1")
    assert (
        spec.protect is False
        and spec.tags == {"team": "platform"}
        and spec.auto_snapshot_time == "03:00"
    )
    assert spec.k3s_version == "v1.36.1+k3s1"
    # Protected unless the caller says otherwise, as the stack's default; one server, no agents,
    # no backups, no domain.
    default = plan(VALID)
    assert default.protect is True
    assert (default.topology.server_count, default.topology.agent_count) == (1, 0)
    assert default.backups is None and default.https is None and not default.embedded_etcd


def test_a_cluster_name_that_cannot_name_a_node_is_refused():
    with pytest.raises(ConfigError, match="not a lowercase DNS label"):
        parse_cluster_args("Dev_Cluster", VALID, environ={}, dry_run=True)


@pytest.fixture(scope="module")
def host() -> dict[str, Any]:
    """provider/__main__.py's globals, as the plugin's host loads them (not run as __main__)."""
    return runpy.run_path(str(PROVIDER_DIR / "__main__.py"), run_name="provider")


@pytest.fixture(scope="module")
def schema(host) -> dict[str, Any]:
    """The schema the component provider host serves to `pulumi package add` (pulumi/provider/experimental/component.py)."""
    provider = ComponentProvider(host["COMPONENTS"], host["PACKAGE_NAME"], version=host["VERSION"])
    assert provider.schema is not None
    return json.loads(provider.schema)


def test_the_plugin_is_a_python_component_provider_host_of_both_components(host):
    assert yaml.safe_load((PROVIDER_DIR / "PulumiPlugin.yaml").read_text()) == {"runtime": "python"}
    source = (PROVIDER_DIR / "__main__.py").read_text()
    assert (
        "component_provider_host(components=COMPONENTS, name=PACKAGE_NAME, version=VERSION)"
        in source
    )
    assert host["COMPONENTS"] == [Cluster, Apps]
    # The host constructs a component by the last part of the type the engine asks for (component.py,
    # construct): the component's own type token must be the package's.
    assert CLUSTER_TYPE == f"{host['PACKAGE_NAME']}:index:Cluster"
    assert APPS_TYPE == f"{host['PACKAGE_NAME']}:index:Apps"


def test_the_package_is_versioned_as_the_components_package(schema):
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    assert schema["version"] == project["version"] != "0.0.0"


# Every input of Cluster and the schema type it has: the stack's config keys of the same names.
CLUSTER_INPUTS = {
    "availabilityZone": "string",
    "bundleId": "string",
    "blueprintId": "string",
    "k3sVersion": "string",
    "adminCidrs": "array",
    "deployCidrs": "array",
    "serverCount": "integer",
    "agentCount": "integer",
    "agentBundleId": "string",
    "agentPublicIps": "boolean",
    "sshPublicKey": "string",
    "sshAgentSocket": "string",
    "sshHostKey": "string",
    "sshHostKeys": "object",
    "autoSnapshotTime": "string",
    "backups": "boolean",
    "dataDiskGb": "integer",
    "etcdSnapshotSchedule": "string",
    "etcdSnapshotRetention": "integer",
    "certRotation": "integer",
    "protect": "boolean",
    "deleteUnreachable": "boolean",
    "requireImdsV2": "boolean",
    "tags": "object",
    "domain": "string",
    "manageDnsZone": "boolean",
    "acmeEmail": "string",
    "acmeStaging": "boolean",
    "burstAlarmPercent": "integer",
    "alarmEmail": "string",
    "registries": "object",
}


def test_the_multi_language_schema_has_the_clusters_inputs_and_outputs(schema):
    assert schema["name"] == "lightsail-k3s"
    resource = schema["resources"][CLUSTER_TYPE]
    assert resource["isComponent"] is True
    inputs = {name: spec.get("type") for name, spec in resource["inputProperties"].items()}
    assert inputs == CLUSTER_INPUTS
    # Named like the stack's config keys, typed as Pulumi.yaml types them.
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    stack_types = {
        key: declared[key].get("type", "object")
        for key in CLUSTER_INPUTS
        if key != "sshAgentSocket"
    }
    # backups is auto, true or false in the stack, and dataDiskGb auto or a number: a component
    # has no stack name for auto.
    # adminCidrs is untyped in Pulumi.yaml only so that `pulumi new` may store its template
    # answer as a string; the stack reads it as a list, as the component takes it.
    assert {
        **stack_types,
        "backups": "boolean",
        "dataDiskGb": "integer",
        "adminCidrs": "array",
    } == {key: kind for key, kind in CLUSTER_INPUTS.items() if key != "sshAgentSocket"}
    for key in ("adminCidrs", "deployCidrs"):
        assert resource["inputProperties"][key]["items"]["type"] == "string"
    for key in ("tags", "sshHostKeys"):
        assert resource["inputProperties"][key]["additionalProperties"]["type"] == "string"
    # Host -> username, password, mirror: strings; an Output as a whole, so a secret one can be passed.
    assert not resource["inputProperties"]["registries"].get("plain")
    registry = resource["inputProperties"]["registries"]["additionalProperties"]
    assert registry["type"] == "object" and registry["additionalProperties"]["type"] == "string"
    assert sorted(resource["requiredInputs"]) == [
        "adminCidrs",
        "availabilityZone",
        "blueprintId",
        "bundleId",
        "k3sVersion",
    ]
    assert all(spec.get("description") for spec in resource["inputProperties"].values())
    outputs = {name: spec.get("type") for name, spec in resource["properties"].items()}
    assert outputs == {
        **{
            name: "string"
            for name in (
                "kubeconfig",
                "kubeApiUrl",
                "publicIp",
                "privateIp",
                "instanceName",
                "sshUser",
                "sshHostKey",
                "sshCommand",
                "sshPrivateKey",
                "nodeToken",
                "agentToken",
                "kubeconfigExpiresAt",
                "certificatesExpireAt",
                "backupBucket",
            )
        },
        "nameServers": "array",
        "nodes": "array",
    }
    node = schema["types"]["lightsail-k3s:index:ClusterNode"]
    assert set(node["properties"]) == {
        "name",
        "role",
        "bundleId",
        "blueprintId",
        "privateIp",
        "instanceName",
        "publicIp",
        "certificatesExpireAt",
        "dataDiskGb",
    }
    assert (
        resource["properties"]["nodes"]["items"]["$ref"]
        == "#/types/lightsail-k3s:index:ClusterNode"
    )
    assert {"sshPrivateKey", "backupBucket"}.isdisjoint(resource["required"])
    assert "kubeconfig" in resource["required"]
    assert "IPv4 CIDRs" in resource["inputProperties"]["adminCidrs"]["description"]


def test_the_clusters_defaults_are_the_stacks():
    """Pulumi.yaml is the defaults' home; the component, installed without it, holds a copy."""
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]

    def as_config(value: Any) -> str:
        return json.dumps(value) if isinstance(value, bool) else str(value)

    stack_defaults = {key: as_config(declared[key]["default"]) for key in INPUT_DEFAULTS}
    assert {**stack_defaults, "backups": "false", "dataDiskGb": "0"} == INPUT_DEFAULTS


def test_the_package_ships_the_components_with_their_remote_scripts():
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["packages"] == ["components"]
    assert project["tool"]["setuptools"]["package-data"]["components"] == ["remote/*.sh"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {
        "file": ["requirements.txt"]
    }
    assert (PROVIDER_DIR / "requirements.txt").read_text().splitlines()[-1] == ".."


APPS_INPUTS = {
    "kubeconfig": "string",
    "publicIp": "string",
    "bundleId": "string",
    "k3sVersion": "string",
    "apps": "array",
    "appNamespace": "string",
    "cpuBudget": "string",
    "domain": "string",
    "acmeStaging": "boolean",
    "protect": "boolean",
    "charts": "array",
    "chartSecrets": "object",
    "rebootWindow": "string",
    "serverCount": "integer",
    "agentCount": "integer",
    "consumers": "array",
}


def test_the_multi_language_schema_has_the_apps_inputs_and_outputs(schema):
    resource = schema["resources"][APPS_TYPE]
    assert resource["isComponent"] is True
    inputs = {name: spec.get("type") for name, spec in resource["inputProperties"].items()}
    assert inputs == APPS_INPUTS
    assert sorted(resource["requiredInputs"]) == [
        "bundleId",
        "k3sVersion",
        "kubeconfig",
        "publicIp",
    ]
    # The apps, charts and consumers as the stack's config holds them: objects of any values.
    for key in ("apps", "charts", "consumers"):
        assert resource["inputProperties"][key]["items"]["type"] == "object"
    # Named like the stack's config keys, typed as Pulumi.yaml types them (objects untyped there).
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    assert {
        key: declared[key].get("type", kind) for key, kind in APPS_INPUTS.items() if key in declared
    } == {key: kind for key, kind in APPS_INPUTS.items() if key in declared}
    assert set(APPS_INPUTS) - set(declared) == {"kubeconfig", "publicIp"}
    # The Cluster's outputs may feed these two, and a secret Output chartSecrets: not plain.
    assert not any(
        resource["inputProperties"][key].get("plain")
        for key in ("kubeconfig", "publicIp", "chartSecrets")
    )
    assert all(spec.get("description") for spec in resource["inputProperties"].values())
    assert {name: spec.get("type") for name, spec in resource["properties"].items()} == {
        "appUrl": "string",
        "urls": "object",
        "consumerKubeconfigs": "object",
    }
    # rebootWindow is auto in the stack, on for stacks named prod*: a component has no stack name.
    assert declared["rebootWindow"]["default"] == "auto"
    assert APPS_INPUT_DEFAULTS == {
        "app_namespace": declared["appNamespace"]["default"],
        "cpu_budget": declared["cpuBudget"]["default"],
        "protect": declared["protect"]["default"],
        "reboot_window": "",
        "server_count": int(declared["serverCount"]["default"]),
        "agent_count": int(declared["agentCount"]["default"]),
    }


WHOAMI = {"name": "whoami", "image": "traefik/whoami:v1.11.0", "port": 80, "path": "/"}


def apps_inputs(**changes: Any) -> Any:
    return {
        "kubeconfig": "apiVersion: v1",
        "public_ip": "198.51.100.7",
        "bundle_id": "small_3_0",
        "k3s_version": "v1.36.1+k3s1",
        "apps": [WHOAMI],
        **changes,
    }


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"apps": [{**WHOAMI, "port": "http"}]}, "apps", "apps[0] (whoami)"),
        ({"app_namespace": "kube-apps"}, "appNamespace", "not a usable namespace name"),
        ({"k3s_version": "stable"}, "k3sVersion", "release channel"),
        ({"bundle_id": "huge_9_0"}, "bundleId", "not a known Lightsail bundle"),
        ({"reboot_window": "Sundays"}, "rebootWindow", "not days then a UTC start-end"),
        (
            {"charts": [{"name": "traefik", "chart": "x", "version": "1.0.0"}]},
            "charts",
            "k3s installs",
        ),
        (
            {"consumers": [{"name": "ci", "namespaces": ["kube-system"], "role": "edit"}]},
            "consumers",
            "not one this stack manages",
        ),
        # kured's namespace admits privileged pods: no consumer's.
        (
            {
                "reboot_window": "Sun 03:00-05:00",
                "server_count": 1,
                "agent_count": 0,
                "consumers": [{"name": "ci", "namespaces": ["kured"], "role": "view"}],
            },
            "consumers",
            "kured",
        ),
    ],
)
def test_apps_inputs_are_checked_as_the_stacks_config_is_naming_the_key(changes, key, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_apps_inputs(apps_inputs(**changes))
    assert caught.value.key == f"lightsail-k3s:{key}" and fragment in str(caught.value), str(
        caught.value
    )


def test_apps_inputs_become_the_stacks_args():
    checked = parse_apps_inputs(apps_inputs(domain="example.com", acme_staging=True))
    args = checked.on(cast(Any, "provider"), {})
    assert [app.name for app in args.apps] == ["whoami"] and args.namespace == "apps"
    assert args.pod_security_version == "v1.36" and args.public_ip == "198.51.100.7"
    assert args.tls is not None and args.tls.domain == "example.com"
    assert args.tls.cert_resolver == "letsencrypt-staging"
    assert checked.warnings == ()
    assert args.charts.specs == () and args.consumers == ()
    # Volumes are kept unless the caller says the cluster is disposable, as the stack's protect.
    assert args.protect is True
    assert (
        parse_apps_inputs(apps_inputs(protect=False)).on(cast(Any, "provider"), {}).protect is False
    )


def test_the_yaml_example_uses_the_schemas_types_and_properties(schema):
    program = yaml.safe_load((PROJECT_DIR / "examples" / "yaml" / "Pulumi.yaml").read_text())
    assert program["runtime"] == "yaml"
    assert program["packages"] == {"lightsail-k3s": "../../provider"}
    resources = program["resources"]
    types = {name: resource["type"] for name, resource in resources.items()}
    assert sorted(types.values()) == sorted([APPS_TYPE, CLUSTER_TYPE])
    for name, resource in resources.items():
        spec = schema["resources"][resource["type"]]
        properties = set(resource["properties"])
        assert properties <= set(spec["inputProperties"]), (name, properties)
        assert set(spec["requiredInputs"]) <= properties, name
    # Every ${resource.output} names an output of that resource's type.
    text = (PROJECT_DIR / "examples" / "yaml" / "Pulumi.yaml").read_text()
    references = re.findall(r"\$\{(\w+)\.(\w+)\}", text)
    assert len(references) >= 5
    for resource_name, output in references:
        assert output in schema["resources"][types[resource_name]]["properties"], output
    # The one plain ${…}: the program's own config.
    assert set(re.findall(r"\$\{(\w+)\}", text)) <= set(program["config"])


def test_the_packages_apps_deploy_through_a_provider_of_their_own_for_the_kubeconfig(tmp_path):
    program = tmp_path / "__main__.py"
    program.write_text(
        "import pulumi\n"
        "from components.apps import Apps\n"
        f"apps = Apps('web', {apps_inputs()!r})\n"
        "pulumi.export('appUrl', apps.app_url)\n"
    )
    declared = run_program(program, "p", {}, mockengine.LightsailMocks("eu-central-1"))
    component = declared.one(APPS_TYPE)
    provider = declared.one("pulumi:providers:kubernetes")
    assert provider.parent == component.urn and provider.inputs["kubeconfig"] == "apiVersion: v1"
    deployment = declared.one("kubernetes:apps/v1:Deployment")
    assert deployment.parent == component.urn and deployment.provider.startswith(provider.urn)
    assert declared.outputs["appUrl"].value == "http://198.51.100.7/"


ADMIN_KUBECONFIG = (
    "apiVersion: v1\nclusters:\n- name: dev\n  cluster:\n"
    "    server: https://198.51.100.7:6443\n    certificate-authority-data: Q0E=\n"
)
KAFKA = {
    "name": "kafka",
    "chart": "oci://registry-1.docker.io/bitnamicharts/kafka",
    "version": "31.0.0",
    "namespace": "kafka",
    "secretValues": ["auth.password"],
    "estimate": {"cpu": "200m", "memory": "256Mi"},
}
PASSWORD = "kafka-password-1"
DEPLOYER = {"name": "deployer", "namespaces": ["apps", "kafka"], "role": "edit"}


def run_component(
    tmp_path, component: str, inputs: str, declared: list | None = None, export: str = ""
) -> Declared:
    """A program declaring the package's `component` (Apps or Cluster) with `inputs`, Python source
    in which `secret(...)` is pulumi.Output.secret: the component provider host passes a secret
    input as such an Output (pulumi/pulumi sdk/python/lib/pulumi/provider/server.py, _select_value)."""
    program = tmp_path / "__main__.py"
    program.write_text(
        "import pulumi\n"
        f"from components.{component.lower()} import {component}\n"
        "secret = pulumi.Output.secret\n"
        f"component = {component}('web', {inputs})\n"
        f"{export}\n"
    )
    return run_program(
        program, "p", {}, mockengine.LightsailMocks("eu-central-1"), declared=declared
    )


def test_the_packages_apps_take_the_stacks_charts_reboot_window_and_consumers(tmp_path):
    inputs = apps_inputs(
        kubeconfig=ADMIN_KUBECONFIG,
        charts=[KAFKA],
        reboot_window="Sun 03:00-05:00",
        server_count=3,
        agent_count=0,
        consumers=[DEPLOYER],
    )
    declared = run_component(
        tmp_path,
        "Apps",
        f"{{**{inputs!r}, 'chart_secrets': secret({{'kafka': {{'auth': {{'password': {PASSWORD!r}}}}}}})}}",
        export="pulumi.export('consumerKubeconfigs', component.consumer_kubeconfigs)",
    )
    component = declared.one(APPS_TYPE)
    charts = declared.one("lightsail-k3s:index:Charts")
    scoped = declared.one("lightsail-k3s:index:ScopedKubeconfigs")
    assert charts.parent == scoped.parent == component.urn
    helm_charts = {r.name: r for r in declared.of_type("kubernetes:helm.cattle.io/v1:HelmChart")}
    assert set(helm_charts) == {"web-charts-kured-chart", "web-charts-kafka-chart"}
    # Three servers: kured waits for drains, as the stack's does on more than one node.
    assert (
        "forceReboot: false"
        in helm_charts["web-charts-kured-chart"].inputs["spec"]["valuesContent"]
    )
    values = declared.named("web-charts-kafka-secret-values")
    assert values.inputs["stringData"] == {"values.yaml": f"auth:\n  password: {PASSWORD}\n"}
    assert "stringData" in values.secret_inputs
    assert [r.name for r in declared.resources if PASSWORD in repr(r.inputs)] == [values.name]
    bindings = declared.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert sorted(b.inputs["metadata"]["namespace"] for b in bindings) == ["apps", "kafka"]
    kubeconfigs = declared.outputs["consumerKubeconfigs"]
    assert kubeconfigs.secret and "current-context: web-deployer" in kubeconfigs.value["deployer"]


@pytest.mark.parametrize(
    ("chart_secrets", "fragment"),
    [
        # What a caller passes without marking it secret: it would sit in its state in plain text.
        (repr({"kafka": {"auth": {"password": PASSWORD}}}), "arrives in plain text"),
        (
            f"secret({{'kafka': {{'auth': {{'password': {PASSWORD!r}}}, 'extra': 'x'}}}})",
            "not under a secretValues path",
        ),
        # None given for a chart that lists secretValues: refused before any Output exists.
        (None, "has no value"),
    ],
)
def test_the_packages_apps_check_chart_secrets_before_declaring_anything(
    tmp_path, chart_secrets, fragment
):
    inputs = repr(apps_inputs(kubeconfig=ADMIN_KUBECONFIG, charts=[KAFKA]))
    if chart_secrets is not None:
        inputs = f"{{**{inputs}, 'chart_secrets': {chart_secrets}}}"
    declared: list = []
    with pytest.raises(ConfigError) as caught:
        run_component(tmp_path, "Apps", inputs, declared)
    assert caught.value.key == "lightsail-k3s:chartSecrets" and fragment in str(caught.value)
    assert PASSWORD not in str(caught.value)
    # The caller set no stack config: the fix says what to pass as the input.
    assert "--path 'chartSecrets" not in str(caught.value)
    assert declared == []


REGISTRIES = {"ghcr.io": {"username": "acme", "password": "registry-token-1"}}


def test_the_packages_cluster_writes_secret_registries_to_every_node(tmp_path):
    inputs = f"{{**{dict(VALID, agent_count=1)!r}, 'registries': secret({REGISTRIES!r})}}"
    declared = run_component(tmp_path, "Cluster", inputs)
    registries_b64 = base64.b64encode(
        registries_file((Registry("ghcr.io", "acme", "registry-token-1"),)).encode()
    ).decode()
    installs = [declared.named("web-install"), declared.named("web-agent-1-install")]
    for install in installs:
        assert registries_b64 in install.inputs["stdin"] and "stdin" in install.secret_inputs
    # Nowhere else, encoded or not.
    held = [
        r.name
        for r in declared.resources
        if registries_b64 in repr(r.inputs) or "registry-token-1" in repr(r.inputs)
    ]
    assert held == [install.name for install in installs]


@pytest.mark.parametrize(
    ("registries", "fragment"),
    [
        (repr(REGISTRIES), "arrives in plain text"),
        ("secret({'ghcr.io': {'username': 'acme'}})", "password"),
        ("secret({'registry-1.docker.io': {'username': 'a', 'password': 'b'}})", "docker.io"),
    ],
)
def test_the_packages_cluster_checks_registries_before_declaring_anything(
    tmp_path, registries, fragment
):
    declared: list = []
    with pytest.raises(ConfigError) as caught:
        run_component(tmp_path, "Cluster", f"{{**{VALID!r}, 'registries': {registries}}}", declared)
    assert caught.value.key == "lightsail-k3s:registries" and fragment in str(caught.value)
    assert declared == []


def test_the_packages_apps_declare_their_charts_when_a_preview_cannot_know_chart_secrets_yet(
    tmp_path,
):
    # A preview passes an input computed from a resource not yet created as unknown: its check
    # cannot run, and the SDK sends the unknown gate as no dependency; the update checks it.
    program = tmp_path / "__main__.py"
    program.write_text(
        "import asyncio\n"
        "import pulumi\n"
        "from components.apps import Apps\n"
        "def known(value):\n"
        "    future = asyncio.get_event_loop().create_future()\n"
        "    future.set_result(value)\n"
        "    return future\n"
        "unknown = pulumi.Output(set(), known(None), known(False), known(True))\n"
        f"Apps('web', {{**{apps_inputs(kubeconfig=ADMIN_KUBECONFIG, charts=[KAFKA])!r}, 'chart_secrets': unknown}})\n"
    )
    declared = run_program(program, "p", {}, mockengine.LightsailMocks("eu-central-1"))
    values = declared.named("web-charts-kafka-secret-values")
    assert values.inputs.get("stringData") is None and "stringData" in values.secret_inputs
    assert declared.named("web-charts-kafka-chart").inputs["spec"]["valuesSecrets"] == [
        {"name": "kafka-secret-values", "keys": ["values.yaml"]}
    ]


def test_the_components_page_names_every_input_and_its_yaml_uses_the_schemas(schema):
    page = (PROJECT_DIR / "docs" / "components.md").read_text()
    for type_token in (CLUSTER_TYPE, APPS_TYPE):
        inputs = schema["resources"][type_token]["inputProperties"]
        assert [name for name in inputs if f"`{name}`" not in page] == [], type_token
        outputs = schema["resources"][type_token]["properties"]
        assert [name for name in outputs if f"`{name}`" not in page] == [], type_token
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.DOTALL)
    used = {CLUSTER_TYPE: set(), APPS_TYPE: set()}
    for block in blocks:
        for resource in (yaml.safe_load(block).get("resources") or {}).values():
            spec = schema["resources"][resource["type"]]
            assert set(resource["properties"]) <= set(spec["inputProperties"]), resource
            used[resource["type"]] |= set(resource["properties"])
    # The examples show the stack keys the components gained with the charts, reboots and consumers.
    assert {"registries"} <= used[CLUSTER_TYPE]
    assert {"charts", "chartSecrets", "rebootWindow", "agentCount", "consumers"} <= used[APPS_TYPE]


@pytest.mark.parametrize(
    ("counts", "force_reboot"),
    [
        ({"server_count": 1, "agent_count": 0}, True),
        ({"server_count": 1, "agent_count": 1}, False),
        ({"server_count": 3, "agent_count": 0}, False),
    ],
)
def test_the_packages_kured_forces_the_reboot_of_a_single_node_only(counts, force_reboot):
    checked = parse_apps_inputs(apps_inputs(reboot_window="Sat,Sun 02:00-04:00", **counts))
    (kured,) = checked.on(cast(Any, "provider"), {}).charts.specs
    assert kured.name == "kured" and kured.namespace == "kured"
    assert kured.values["configuration"]["rebootDays"] == ["sat", "sun"]
    assert kured.values["configuration"]["forceReboot"] is force_reboot


@pytest.mark.parametrize(
    ("counts", "missing"),
    [({}, "serverCount and agentCount"), ({"server_count": 3}, "agentCount")],
)
def test_a_reboot_window_without_the_clusters_node_counts_is_refused(counts, missing):
    """A guessed single node would force reboots past failed drains on a bigger cluster."""
    with pytest.raises(ConfigError) as refused:
        parse_apps_inputs(apps_inputs(reboot_window="Sat,Sun 02:00-04:00", **counts))
    message = str(refused.value)
    assert "rebootWindow" in message and f"a reboot window without {missing}" in message
    assert "pass serverCount and agentCount with the values given to the Cluster" in message
