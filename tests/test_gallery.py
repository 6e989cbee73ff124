"""The shipped example examples/gallery/ (docs/gallery.md): planned as a user plans it, with
`make plan STACK=gallery CONFIG_FILE=examples/gallery/Pulumi.gallery.yaml` and the secrets as
SECRET=, through the real __main__.py on the mock engine."""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.settings import TESTED_K3S_MINORS
from tests.helpers import (
    ADMIN_CIDR,
    HELM_CHART_CRDS,
    PROJECT_DIR,
    install_settings,
    kubernetes_schema_version,
    run_stack,
    strict_crd_schema,
)
from tools import cliconfig

CONFIG_FILE = PROJECT_DIR / "examples" / "gallery" / "Pulumi.gallery.yaml"
STACK = "gallery"
SERVICES = ("catalog", "orders", "users")
KAFKA_PASSWORD = "kafka-placeholder-4f1c9e"
REGISTRY_TOKEN = "ghp_placeholder-token-8d2a"
# Every secret docs/gallery.md says to set, with placeholder values.
SECRETS = {
    'registries["ghcr.io"].username': "gallery-bot",
    'registries["ghcr.io"].password': REGISTRY_TOKEN,
    "chartSecrets.kafka.sasl.client.passwords": KAFKA_PASSWORD,
    "appSecrets.gateway.SESSION_SECRET": "session-placeholder-77b1",
    **{f"appSecrets.{service}.KAFKA_PASSWORD": KAFKA_PASSWORD for service in SERVICES},
    **{
        f"appSecrets.{service}.DATABASE_URL": f"postgres://{service}:db-placeholder@db.internal/{service}"
        for service in SERVICES
    },
    "appSecrets.orders.PAYMENT_API_KEY": "payment-placeholder-0a9e",
    "appSecrets.users.JWT_SIGNING_KEY": "jwt-placeholder-51c3",
}
SECRET_TEXT = " ".join(f"'{key}={value}'" for key, value in SECRETS.items())


def plan_gallery(out: Path, config_file: Path = CONFIG_FILE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.plan", "--stack", STACK, "--config-file", str(config_file)]
        + ["--out", str(out)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "PLAN_SET": f'adminCidrs=["{ADMIN_CIDR}"]', "PLAN_SECRET": SECRET_TEXT},
    )


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("gallery-plan")
    result = plan_gallery(out)
    assert result.returncode == 0, result.stderr
    return result, out / STACK


def objects(stack_dir: Path) -> dict[str, dict]:
    return {
        path.name: yaml.safe_load(path.read_text())
        for path in sorted((stack_dir / "k8s").iterdir())
    }


def gallery(**options):
    """The example on the mock engine in process, with the same config as the plan."""

    def secrets(config: cliconfig.StackConfig) -> None:
        config.set_structure("adminCidrs", [ADMIN_CIDR])
        for key, value in SECRETS.items():
            config.set_path(key, cliconfig.Secure(value))

    return run_stack(STACK, config_file=CONFIG_FILE, edit_config=secrets, **options)


def test_the_makefile_passes_config_file_to_the_plan():
    result = subprocess.run(
        ["make", "-n", "plan", f"STACK={STACK}", f"CONFIG_FILE={CONFIG_FILE}"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"--stack '{STACK}' --config-file '{CONFIG_FILE}'" in result.stdout


def test_the_gallery_plans_on_medium_3_0_within_the_budget_without_a_burst_warning(planned):
    result, stack_dir = planned
    assert "warning:" not in result.stdout + result.stderr
    document = json.loads((stack_dir / "plan.json").read_text())
    (instance,) = [
        r for r in document["resources"] if r["type"] == "aws:lightsail/instance:Instance"
    ]
    assert instance["inputs"]["bundleId"] == "medium_3_0"
    (quota,) = [o for o in objects(stack_dir).values() if o["kind"] == "ResourceQuota"]
    assert quota["spec"]["hard"]["limits.memory"].endswith("Mi")


@pytest.mark.parametrize("minor", TESTED_K3S_MINORS)
def test_every_object_but_the_helm_chart_matches_the_kubernetes_schema(planned, minor):
    checked = 0
    for obj in objects(planned[1]).values():
        if obj["kind"] != "HelmChart":
            kubernetes_validate.validate(obj, f"1.{minor}.0", strict=True)
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("crd", HELM_CHART_CRDS)
def test_the_kafka_helm_chart_matches_the_crd_and_is_pinned(planned, crd):
    document = json.loads((planned[1] / "plan.json").read_text())
    k3s_version = document["outputs"]["k3sVersion"]
    schema, registry = strict_crd_schema(
        PROJECT_DIR / "tests" / "fixtures" / "crds" / crd, kubernetes_schema_version(k3s_version)
    )
    (chart,) = [o for o in objects(planned[1]).values() if o["kind"] == "HelmChart"]
    jsonschema.Draft202012Validator(schema, registry=registry).validate(chart)
    spec = chart["spec"]
    assert spec["chart"] == "oci://registry-1.docker.io/bitnamicharts/kafka"
    assert spec["version"] == "32.4.4"
    assert spec["targetNamespace"] == "kafka"
    values = yaml.safe_load(spec["valuesContent"])
    # One combined KRaft node, its log on a local-path volume, the image from Bitnami Legacy.
    assert values["controller"]["replicaCount"] == 1
    assert values["broker"]["replicaCount"] == 0
    assert values["controller"]["persistence"]["storageClass"] == "local-path"
    assert values["image"] == {"repository": "bitnamilegacy/kafka", "tag": "4.0.0-debian-12-r10"}
    assert values["global"]["security"]["allowInsecureImages"] is True
    assert "passwords" not in values["sasl"]["client"]
    assert spec["valuesSecrets"] == [{"name": "kafka-secret-values", "keys": ["values.yaml"]}]


def test_the_apps_probe_their_health_paths_and_reach_kafka(planned):
    found = objects(planned[1])
    for app in ("frontend", "gateway", *SERVICES):
        (container,) = found[f"deployment-apps-{app}.yaml"]["spec"]["template"]["spec"][
            "containers"
        ]
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz", app
        assert container["image"].startswith("ghcr.io/the-gallery/"), app
        if app in SERVICES:
            env = {e["name"]: e for e in container["env"]}
            assert env["KAFKA_BOOTSTRAP"]["value"] == "kafka.kafka.svc.cluster.local:9092"
            assert env["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"{app}-env"
    # Kafka's namespace lets the apps' namespace in.
    policy = found["networkpolicy-kafka-allow-apps-traefik-and-same-namespace.yaml"]
    (ingress,) = policy["spec"]["ingress"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}} in (
        ingress["from"]
    )


def test_the_catalog_keeps_its_images_on_a_volume_claim(planned):
    found = objects(planned[1])
    claim = found["persistentvolumeclaim-apps-catalog-images.yaml"]
    assert claim["spec"]["storageClassName"] == "local-path"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    catalog = found["deployment-apps-catalog.yaml"]["spec"]
    assert catalog["strategy"]["type"] == "Recreate"


def test_no_secret_appears_in_the_plan_output_or_files(planned):
    result, stack_dir = planned
    texts = [result.stdout, result.stderr] + [
        path.read_text() for path in stack_dir.rglob("*") if path.is_file()
    ]
    for value in SECRETS.values():
        if value == "gallery-bot":
            continue
        for text in texts:
            assert value not in text
    document = json.loads((stack_dir / "plan.json").read_text())
    for key in ("registries", "appSecrets", "chartSecrets"):
        assert document["config"][f"lightsail-k3s:{key}"] == "[secret]"
    assert objects(stack_dir)["secret-apps-orders-env.yaml"]["stringData"] == {
        "DATABASE_URL": "[secret]",
        "KAFKA_PASSWORD": "[secret]",
        "PAYMENT_API_KEY": "[secret]",
    }


def test_the_node_install_writes_the_registry_credentials_in_secret_stdin():
    deployment = gallery()
    (install,) = [r for r in deployment.resources if r.name.endswith("-install")]
    assert "stdin" in install.secret_inputs
    assignments, _ = install_settings(install)
    registries = yaml.safe_load(base64.b64decode(assignments["K3S_REGISTRIES_B64"]))
    assert registries["configs"]["ghcr.io"]["auth"] == {
        "username": "gallery-bot",
        "password": REGISTRY_TOKEN,
    }


def test_the_first_preview_of_the_gallery_declares_every_app_and_the_chart():
    deployment = gallery(first_preview=True)
    names = {r.name for r in deployment.resources}
    for app in ("frontend", "gateway", *SERVICES):
        assert any(re.search(rf"-{app}(-|$)", name) for name in names), app
    assert deployment.of_type("kubernetes:helm.cattle.io/v1:HelmChart")


def test_the_stack_file_checks_read_the_config_file(tmp_path: Path):
    """A secret written in clear text into the --config-file is refused, as in Pulumi.<stack>.yaml."""
    leaky = tmp_path / "Pulumi.gallery.yaml"
    text = (
        CONFIG_FILE.read_text()
        + "  lightsail-k3s:appSecrets:\n    gateway: {SESSION_SECRET: plain-text}\n"
    )
    leaky.write_text(text)
    result = plan_gallery(tmp_path / "out", config_file=leaky)
    assert result.returncode == 1
    assert "appSecrets" in result.stderr
    assert "plain-text" not in result.stderr
