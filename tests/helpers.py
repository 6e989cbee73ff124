"""What the tests share: running the program on the mock engine, and queries over what it declared."""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import runpy
import shutil
import stat
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate.utils
import pytest
import referencing
import yaml

from components.errors import ConfigError
from tools import cliconfig, mockengine, plandiff, pulumi_sdk, replacement, urns
from tools.mockengine import Registration, StackOutput

PROJECT_DIR = Path(__file__).resolve().parent.parent

# kubernetes-validate reads and parses the kind's schema and the 1.6 MB _definitions.json on every
# validate(): 14 ms a call, 2 ms with each file parsed once per test worker (about 420 calls in the
# suite). The validator only reads the schemas, so every call may share one parse.
schema_contents = kubernetes_validate.utils.schema_contents = functools.cache(
    kubernetes_validate.utils.schema_contents
)


def manual_text() -> str:
    """The manual as one text: README.md, the entry point, then every page of docs/."""
    pages = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
    return "\n".join(page.read_text() for page in pages)


def manual_section(page: str, heading: str) -> str:
    """The text of docs/<page> under `## <heading>`, up to the next level-2 heading."""
    text = (PROJECT_DIR / "docs" / page).read_text()
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


STACK_TYPE = "pulumi:pulumi:Stack"
# Resource types the tests look up, as the engine names them.
INSTANCE = "aws:lightsail/instance:Instance"
FIREWALL = "aws:lightsail/instancePublicPorts:InstancePublicPorts"
STATIC_IP = "aws:lightsail/staticIp:StaticIp"
COMMAND = "command:remote:Command"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
HELM_CHART = "kubernetes:helm.cattle.io/v1:HelmChart"
NAMESPACE = "kubernetes:core/v1:Namespace"
QUOTA = "kubernetes:core/v1:ResourceQuota"
# The HelmChart CRDs of the helm-controllers the tested k3s minors embed: the oldest and the pinned one
# (tests/fixtures/crds/README.md).
HELM_CHART_CRDS = ("helm.cattle.io_helmcharts_v0.16.13.yaml", "helm.cattle.io_helmcharts.yaml")
STACK_REFERENCE = "pulumi:pulumi:StackReference"
# A public address: documentation ranges such as 198.51.100.0/24 are refused as admin CIDRs.
ADMIN_CIDR = "1.2.3.4/32"
# The demo app as Pulumi.dev.yaml ships it, for tests that list the dev stack's apps in full.
DEMO_APP = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"][
    "lightsail-k3s:apps"
][0]


def config_source(values: dict[str, Any], stack: str = "dev"):
    """A settings ConfigSource holding `values` (short keys) on top of Pulumi.yaml's defaults, as the CLI passes them."""
    project = cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml")
    config = cliconfig.StackConfig(project.name)
    for key, value in values.items():
        config.set_structure(key, value)
    cliconfig.apply_project_config(stack, project, config)
    return config.for_program().get


def chart(**fields):
    """A chart of the `charts` config, valid unless `fields` say otherwise."""
    return {
        "name": "cache",
        "repo": "https://charts.example.com",
        "chart": "redis",
        "version": "1.2.3",
        **fields,
    }


class Declared:
    """One run's resources and outputs, with the queries tests ask of them."""

    def __init__(self, deployment: mockengine.Deployment):
        self.deployment = deployment
        self.resources: list[Registration] = deployment.resources
        self.outputs: dict[str, StackOutput] = deployment.outputs
        self.warnings: list[str] = deployment.warnings
        self.stack_references: list[str] = deployment.stack_references

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {[r.name for r in found]}")
        return found[0]

    def named(self, name: str) -> Registration:
        for registration in self.resources:
            if registration.name == name:
                return registration
        raise AssertionError(f"no resource named {name}; have {[r.name for r in self.resources]}")

    def continuing(self, previous_urns: list[str]) -> dict[str, str]:
        """Each resource's URN → the URN of a previous deployment's resource it keeps, as the engine matches them."""
        return urns.match_previous_as_engine(self._as_plan(), previous_urns)

    def engine_urns(self) -> dict[str, str]:
        """Each resource's URN → the one the engine gives it (tools/urns.py, engine_urns)."""
        return urns.engine_urns(self._as_plan())

    def _as_plan(self) -> list[dict[str, Any]]:
        return [
            {"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "aliases": r.aliases}
            for r in self.resources
        ]

    @functools.cached_property
    def by_urn(self) -> dict[str, Registration]:
        """Each resource by its URN (a run's result never changes: deploy() shares it between tests)."""
        return {r.urn: r for r in self.resources}

    def ancestors(self, registration: Registration) -> list[Registration]:
        by_urn = self.by_urn
        chain = []
        while registration.parent in by_urn:
            registration = by_urn[registration.parent]
            chain.append(registration)
        return chain

    def depends_on(self, dependent: Registration, dependency: Registration) -> bool:
        """True when `dependent` waits for `dependency`, directly, through a component or via inputs."""
        by_urn = self.by_urn
        targets = {dependency.urn} | {
            r.urn for r in self.resources if dependency in self.ancestors(r)
        }
        seen: set[str] = set()
        frontier = [dependent]
        while frontier:
            for urn in frontier.pop().dependencies:
                if urn in targets:
                    return True
                if urn not in seen and urn in by_urn:
                    seen.add(urn)
                    frontier.append(by_urn[urn])
        return False


def run_stack(stack: str, **options: Any) -> Declared:
    """Runs __main__.py for `stack` exactly as its stack file says (see mockengine.run for the options)."""
    return Declared(mockengine.run(stack, **options))


def run_program(
    main: Path,
    project: str,
    config: dict[str, str],
    mocks: pulumi_sdk.Mocks,
    stack: str = "dev",
    declared: list[Registration] | None = None,
) -> Declared:
    """Another project's __main__.py (an example) on the mock engine, `config` as the CLI passes it
    (full keys). `declared` collects what the run registers as it happens, for a run that fails."""
    registrations: list[Registration] = [] if declared is None else declared
    outputs: dict[str, StackOutput] = {}

    def on_stack_outputs(sent: dict[str, Any]) -> None:
        outputs.update(
            {
                key: StackOutput(mockengine.plain(v), mockengine.holds_secret(v), v)
                for key, v in sent.items()
            }
        )

    monitor = pulumi_sdk.RecordingMonitor(
        mocks,
        lambda request, state: registrations.append(mockengine._registration(request, state)),
        on_stack_outputs,
    )
    pulumi_sdk.run_program(
        lambda: runpy.run_path(str(main), run_name="__main__"),
        monitor,
        project=project,
        stack=stack,
        preview=False,
        config=config,
        secret_keys=[],
        logger=logging.getLogger(__name__),
    )
    return Declared(mockengine.Deployment(stack, config, [], registrations, outputs))


def deploy(
    stack: str = "dev",
    preview: bool = False,
    secrets: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    declared: list[Registration] | None = None,
    previous_outputs: dict[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    reads: list[tuple[str, str]] | None = None,
    first_preview: bool = False,
    untargeted: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> Declared:
    """Runs __main__.py for `stack`, with adminCidrs set as `make up` would set it.

    `untargeted`: resources an `up --target` leaves out, by name, with the state they kept.

    `previous_outputs`: the stack's outputs from its last deployment (none: a first deployment).
    `first_preview`: a preview before any command has run, every command's output unknown.
    `config` takes keys that cannot be keyword arguments: other namespaces' (aws:region), or keys
    chosen at run time.
    """
    overrides = {**(config or {}), **overrides}
    overrides.setdefault("adminCidrs", [ADMIN_CIDR])
    arguments = {
        "overrides": overrides,
        "secret_overrides": secrets,
        "preview": preview,
        "environ": environ,
        "previous_outputs": previous_outputs,
        "first_preview": first_preview,
        "untargeted": untargeted,
    }
    if declared is not None or reads is not None:
        # The caller collects what the run registers or reads as it happens: a run of its own.
        return run_stack(stack, declared=declared, reads=reads, **arguments)
    # Tests only read a run's result, and many modules deploy the same config: each one runs
    # once per test worker. The key is the run's whole input: its arguments and the mock
    # engine's tables, which a test may patch (the stack files do not change during a session).
    key = json.dumps([stack, arguments, mock_engine_tables()], sort_keys=True, default=repr)
    if key not in _DEPLOYED:
        _DEPLOYED[key] = run_stack(stack, **arguments)
    return _DEPLOYED[key]


_DEPLOYED: dict[str, Declared] = {}


def mock_engine_tables() -> dict[str, str]:
    """The mock engine's module-level tables (what its mocks answer with), as text."""
    return {
        name: repr(value)
        for name, value in vars(mockengine).items()
        if isinstance(value, (dict, list, set, tuple)) and not name.startswith("__")
    }


def rejected(
    key: str,
    *expected_fragments: str,
    run: Callable[..., Declared] = deploy,
    after_reading: Sequence[str] = (),
    **overrides: Any,
) -> str:
    """Runs `run` (deploy) with `overrides`, expecting a ConfigError for `key` before any resource
    is declared; its message.

    `key` as ConfigError takes it: "bundleId" for this project's, "aws:region" for another namespace's.
    `after_reading`: the types of the resources the program reads before it refuses, in order,
    exactly (a check against the previous deployment reads a StackReference); by default none.
    """
    declared: list[Registration] = []
    reads: list[tuple[str, str]] = []
    with pytest.raises(ConfigError) as caught:
        run(declared=declared, reads=reads, **overrides)
    assert [type_ for type_, _ in reads] == list(after_reading), f"read before the error: {reads}"
    recorded = [registration.type for registration in declared]
    message = str(caught.value)
    full_key = key if ":" in key else f"lightsail-k3s:{key}"
    assert caught.value.key == full_key, message
    assert f"config '{full_key}'" in message
    for fragment in expected_fragments:
        assert fragment in message, message
    assert recorded == [], f"resources were declared before the config error: {recorded}"
    return message


def mistyped(config_key: str, expected_type: str, /, **overrides: Any) -> None:
    """Deploys the dev stack with `overrides`, expecting the CLI's own type check (Pulumi.yaml's
    `type`) to refuse `config_key` before the program runs, in the CLI's words."""
    with pytest.raises(cliconfig.CliConfigError) as caught:
        deploy(**overrides)
    assert str(caught.value) == (
        f"Stack 'dev' with configuration key '{config_key}' must be of type '{expected_type}'"
    )


def command(deployment: Declared, suffix: str) -> Registration:
    """The dev stack's `lightsail-k3s-dev-<suffix>` resource."""
    return deployment.named(f"lightsail-k3s-dev-{suffix}")


def install_settings(install) -> tuple[dict[str, str], dict]:
    """The shell assignments that precede the install script on stdin, and the k3s config they carry."""
    prelude, _, _ = install.inputs["stdin"].partition("set -euo pipefail")
    assignments = dict(
        line.split("=", 1) for line in prelude.splitlines() if line and not line.startswith("#")
    )
    config = yaml.safe_load(base64.b64decode(assignments["K3S_CONFIG_B64"]))
    return assignments, config


def k3s_config(install) -> dict:
    """The k3s config a node's install carries (its /etc/rancher/k3s/config.yaml)."""
    return install_settings(install)[1]


def kubernetes_resources(deployment):
    return [r for r in deployment.resources if r.type.startswith("kubernetes:")]


def declared_objects(deployment):
    for registration in kubernetes_resources(deployment):
        if registration.type == "kubernetes:yaml/v2:ConfigGroup":
            yield from registration.inputs["objs"]
        else:
            yield registration.inputs


def write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# The one Helm object allowed: k3s' own customisation of its bundled Traefik
# (docs.k3s.io/helm, "Customizing Packaged Components with HelmChartConfig").
BUNDLED_TRAEFIK_CONFIG = (
    "kubernetes:helm.cattle.io/v1:HelmChartConfig",
    {"name": "traefik", "namespace": "kube-system"},
)


def assert_no_second_ingress_controller(deployment):
    """No chart, release, IngressClass, controller image or LoadBalancer; only a HelmChartConfig for k3s' Traefik."""
    controller_image = re.compile(
        r"^(docker\.io/)?(library/)?traefik:|ingress-nginx|haproxy|kong|contour|envoy"
    )
    for resource in deployment.resources:
        if resource.type == BUNDLED_TRAEFIK_CONFIG[0]:
            assert resource.inputs["metadata"] == BUNDLED_TRAEFIK_CONFIG[1], resource.inputs[
                "metadata"
            ]
        else:
            assert "helm" not in resource.type.lower() and not resource.type.endswith(
                ":IngressClass"
            ), resource.type
    for obj in declared_objects(deployment):
        assert obj["kind"] not in ("HelmChart", "IngressClass", "HelmRelease")
        if obj["kind"] == "HelmChartConfig":
            assert {
                k: obj["metadata"].get(k) for k in ("name", "namespace")
            } == BUNDLED_TRAEFIK_CONFIG[1]
        if obj["kind"] == "Service":
            assert obj["spec"].get("type", "ClusterIP") != "LoadBalancer"
        for container in (
            obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        ):
            assert not controller_image.search(container["image"]), container["image"]


def tool(name: str, path: str | None = None) -> str:
    """The absolute path of a command the tests run, or a failure naming the missing command."""
    found = shutil.which(name, path=path)
    if found is None:
        pytest.fail(f"the tests need `{name}` on PATH")
    return found


def kubernetes_schema_version(k3s_version: str) -> str:
    """The Kubernetes minor a k3s release ships (v1.36.1+k3s1 → "1.36.0"), as kubernetes-validate names its schemas."""
    match = re.match(r"v(\d+)\.(\d+)\.", k3s_version)
    assert match, f"{k3s_version!r} is not a k3s release"
    return f"{match[1]}.{match[2]}.0"


def closing_target() -> str:
    """The --target of bin/deploy-access.sh's closing update: a glob for every node's firewall."""
    (target,) = re.findall(
        r"^FIREWALLS='([^']+)'$", (PROJECT_DIR / "bin" / "deploy-access.sh").read_text(), re.M
    )
    return target


# Stand-ins for `make up` (tests/test_make_up.py) and the deploy workflow's steps (tests/test_workflows.py).
# Records every call; `whoami` and `config get` answer from the environment; `up` fails when
# STUB_UP_FAILS says so. `config set --config-file F` appends the setting to F, and `up` records
# the config file it reads, so a test sees which config each update ran with.
PULUMI_STUB = """#!/bin/bash
echo "pulumi $*" >> "$STUB_LOG"
config_file=""
args=("$@")
for i in "${!args[@]}"; do
  [ "${args[$i]}" = --config-file ] && config_file="${args[$((i + 1))]}"
done
case "$1" in
  whoami) [ -n "$STUB_LOGGED_IN" ] || exit 1 ;;
  config)
    if [ "$2" = "get" ]; then
      [ -n "$STUB_ADMIN_CIDRS" ] || [ -f "$STUB_LOG.admin" ] || exit 1
      echo "${STUB_ADMIN_CIDRS:-$(cat "$STUB_LOG.admin")}"
    fi
    if [ "$2" = "set" ] && [ -n "$config_file" ]; then echo "${*: -2}" >> "$config_file"
    elif [ "$2" = "set" ]; then echo "[\"${*: -1}\"]" > "$STUB_LOG.admin"; fi ;;
  up)
    if [ -n "$config_file" ]; then echo "  with: $(tail -n 1 "$config_file")" >> "$STUB_LOG"; fi
    case " $* " in
      *" --target "*) [ -z "$STUB_CLOSE_FAILS" ] || exit 1 ;;
      *) [ -z "$STUB_UP_FAILS" ] || exit 1 ;;
    esac ;;
esac
"""
CURL_STUB = """#!/bin/sh
echo "curl $*" >> "$STUB_LOG"
printf '%s\\n' "$STUB_MY_IP"
"""


def strict_crd_schema(crd_path: Path, schema_version: str) -> tuple[dict, referencing.Registry]:
    """The CRD's openAPIV3Schema as a strict JSON schema: unknown fields are errors, metadata is ObjectMeta."""
    crd = yaml.safe_load(crd_path.read_text())
    (version,) = crd["spec"]["versions"]

    def strict(node):
        if isinstance(node, dict):
            node = {key: strict(value) for key, value in node.items()}
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
        return node

    schema = strict(version["schema"]["openAPIV3Schema"])
    definitions = schema_contents(
        f"kubernetes-json-schema/v{schema_version}-local-strict/_definitions.json", schema_version
    )
    schema["properties"]["metadata"] = {
        "$ref": definitions["$id"] + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version['name']}"}
    schema["properties"]["kind"] = {"const": crd["spec"]["names"]["kind"]}
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return schema, referencing.Registry().with_resource(
        definitions["$id"], referencing.Resource.from_contents(definitions)
    )


# --- the engine's replacement order (tools/replacement.py) applied to what the program declares


def stack_snapshot(declared) -> list[replacement.Resource]:
    """The mock engine's registrations as the snapshot a deployment of them leaves (in their order,
    which follows dependencies)."""
    return [
        replacement.Resource(
            urn=r.urn,
            type=r.type,
            custom=r.custom,
            dependencies=tuple(r.dependencies),
            property_dependencies={k: tuple(v) for k, v in r.property_dependencies.items()},
            provider=r.provider.rpartition("::")[0] if r.provider else "",
            deleted_with=r.deleted_with,
            delete_before_replace=r.delete_before_replace,
            replace_with=tuple(r.replace_with),
        )
        for r in declared.resources
    ]


def provider_replaces(resource: replacement.Resource, keys: Collection[str]) -> bool:
    if resource.type not in plandiff.REPLACE_ON:
        raise AssertionError(f"no rule for what replaces a {resource.type} ({sorted(keys)})")
    return bool(plandiff.REPLACE_ON[resource.type] & set(keys))


def replace_instance(
    declared, node: str
) -> tuple[list[replacement.Resource], list[replacement.Step]]:
    """`pulumi up` after a change that replaces `node`'s instance (its bundle, say): what reads the
    new instance's name or ARN changes; nothing else does (a static IP keeps its address)."""
    return replace_instances(declared, [node])


def replace_instances(
    declared, nodes: Collection[str]
) -> tuple[list[replacement.Resource], list[replacement.Step]]:
    """replace_instance of several nodes in one `pulumi up` (a bundle change of every server)."""
    snapshot = stack_snapshot(declared)
    instances = {r.urn for r in snapshot if r.type == INSTANCE}
    replaced = {declared.named(f"{node}-instance").urn for node in nodes}

    def changed(resource: replacement.Resource, created_anew: Collection[str]) -> set[str]:
        if resource.urn in replaced:
            return {"bundleId"}
        return {
            key
            for key, urns in resource.property_dependencies.items()
            if instances.intersection(urns) & set(created_anew)
        }

    return snapshot, replacement.deployment(
        snapshot, [r.urn for r in snapshot], changed, provider_replaces
    )


ALARM = "aws-native:lightsail:Alarm"
FIRST_SERVER_READS = {
    f"lightsail-k3s-dev-read-{what}" for what in ("agent-token", "kubeconfig", "node-token")
}
# Every node's certificate-expiry read holds its install's digest in `triggers`; an install's
# stdin carries the tokens the first server's reads return, so when those are re-created the
# engine re-creates the expiry reads too. They only read the certificates again.
EXPIRY_READS = {
    f"lightsail-k3s-dev{node}-read-certificate-expiry"
    for node in ("", "-server-2", "-server-3", "-agent-1", "-agent-2")
}


def label(node: str) -> str:
    """A node's alarms are named after its label (components/alarms.py): server-2, agent-1."""
    return node.removeprefix("lightsail-k3s-dev-")


def deployed_servers(
    bundle_id: str = "small_3_0",
    count: int = 3,
    data_disk_gb: int = 0,
    rejoins: bool = True,
    blueprint_id: str | None = "ubuntu_24_04",
) -> dict:
    """The previous deployment's outputs as the self-read returns them: `count` servers of
    `bundle_id` on `blueprint_id` (None: deployed before `nodes` carried it), each with a data
    disk of `data_disk_gb` (0: none), which with `rejoins` a version of this program mounted whose
    moved servers rejoin etcd."""
    names = ["lightsail-k3s-dev", *(f"lightsail-k3s-dev-server-{n}" for n in range(2, count + 1))]
    extra: dict[str, object] = {"etcdLeavesStopped": True} if data_disk_gb and rejoins else {}
    if blueprint_id:
        extra["blueprintId"] = blueprint_id
    return {
        "k3sVersion": "v1.36.1+k3s1",
        "nodes": [
            {
                "name": name,
                "role": "server",
                "bundleId": bundle_id,
                "dataDiskGb": data_disk_gb,
                **extra,
            }
            for name in names
        ],
    }


def redeploy(before, after) -> tuple[list[replacement.Resource], list[replacement.Step]]:
    """`pulumi up` of the program `after` declares on the state `before` left: each input whose
    value differs changes (an instance's new bundle replaces it), resources `before` lacks are
    created. Returns the program's resources (what orders the chains now) and the steps."""
    old = {r.urn: r for r in before.resources}
    new = {r.urn: r for r in after.resources}

    def changed(resource: replacement.Resource, created_anew: Collection[str]) -> set[str]:
        now, then = new[resource.urn], old[resource.urn]
        return {
            key
            for key in set(now.inputs) | set(then.inputs)
            if now.inputs.get(key) != then.inputs.get(key)
            or set(now.property_dependencies.get(key, ())) & set(created_anew)
        }

    return stack_snapshot(after), replacement.deployment(
        stack_snapshot(before), [r.urn for r in after.resources], changed, provider_replaces
    )
