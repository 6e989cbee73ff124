"""HTTPS under a domain on the mock engine: Lightsail DNS in us-east-1, Let's Encrypt through k3s' Traefik."""

import dataclasses
import re
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.dns import name_servers_command
from components.traefik import LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING
from tests.helpers import (
    INGRESS,
    Declared,
    assert_no_second_ingress_controller,
    declared_objects,
    deploy,
    k3s_config,
    kubernetes_schema_version,
    mistyped,
    rejected,
    strict_crd_schema,
    write_executable,
)
from tools.mockengine import MOCK_NAME_SERVERS, MOCK_STATIC_IP

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DOMAIN = "example.com"
EMAIL = "ops@example.org"
AWS_PROVIDER = "pulumi:providers:aws"
ZONE = "aws:lightsail/domain:Domain"
RECORD = "aws:lightsail/domainEntry:DomainEntry"
HELM_CHART_CONFIG = "kubernetes:helm.cattle.io/v1:HelmChartConfig"
NAME_SERVERS = "command:local:Command"

APPS = [
    {"name": "storefront", "image": "ghcr.io/acme/storefront:2.3.1", "port": 8080},
    {
        "name": "orders-api",
        "image": "ghcr.io/acme/orders:1.8.0",
        "port": 3000,
        "path": "/api/orders",
    },
    {"name": "admin", "image": "ghcr.io/acme/admin:0.9.2", "port": 80, "host": "admin.example.com"},
]

# Keys of the values schema of the Traefik chart that k3s v1.36.1+k3s1 ships
# (traefik-helm-chart v39.0.7, traefik/values.schema.json; k3s packages it as
# traefik-39.0.701+up39.0.7). The root and every entry of `ports` have
# additionalProperties: false, so Helm refuses values with any other key.
CHART_TOP_LEVEL_KEYS = {
    "additionalArguments", "additionalVolumeMounts", "affinity", "api", "autoscaling", "certificatesResolvers",
    "commonLabels", "core", "deployment", "enabled", "env", "envFrom", "experimental", "extraObjects",
    "fullnameOverride", "gateway", "gatewayClass", "global", "hostNetwork", "hub", "image", "ingressClass",
    "ingressRoute", "instanceLabelOverride", "livenessProbe", "logs", "metrics", "nameOverride", "namespaceOverride",
    "nodeSelector", "oci_meta", "ocsp", "offering_version", "persistence", "podDisruptionBudget", "podSecurityContext",
    "podSecurityPolicy", "ports", "priorityClassName", "providers", "rbac", "readinessProbe", "resources",
    "securityContext", "service", "serviceAccount", "serviceAccountAnnotations", "startupProbe", "tlsOptions",
    "tlsStore", "tolerations", "topologySpreadConstraints", "tracing", "updateStrategy", "versionOverride", "volumes",
}  # fmt: skip
CHART_PORT_KEYS = {
    "allowACMEByPass", "appProtocol", "asDefault", "containerPort", "expose", "exposedPort", "forwardedHeaders",
    "hostIP", "hostPort", "http", "http3", "nodePort", "observability", "port", "protocol", "proxyProtocol",
    "targetPort", "transport",
}  # fmt: skip
CHART_PORT_HTTP_KEYS = {
    "encodedCharacters",
    "maxHeaderBytes",
    "middlewares",
    "redirections",
    "sanitizePath",
    "tls",
}
CHART_PERSISTENCE_KEYS = {
    "accessMode", "annotations", "enabled", "existingClaim", "name", "path", "size", "storageClass", "subPath",
    "volumeName",
}  # fmt: skip


@pytest.fixture(scope="module")
def aws_cli(tmp_path_factory):
    """A PATH holding a stand-in `aws`: the program only checks that the CLI is installed."""
    bin_dir = tmp_path_factory.mktemp("bin")
    write_executable(bin_dir / "aws", "#!/bin/sh\nexit 0\n")
    return {"PATH": str(bin_dir)}


@pytest.fixture(scope="module")
def https(aws_cli):
    return deploy(domain=DOMAIN, acmeEmail=EMAIL, apps=APPS, protect=True, environ=aws_cli)


@pytest.fixture(scope="module")
def own_dns_staging():
    # No zone of ours: nothing runs the AWS CLI, so none is needed.
    return deploy(
        domain=DOMAIN,
        acmeEmail=EMAIL,
        acmeStaging=True,
        manageDnsZone=False,
        apps=APPS,
        environ={"PATH": ""},
    )


def traefik_values(deployment) -> dict:
    return yaml.safe_load(deployment.one(HELM_CHART_CONFIG).inputs["spec"]["valuesContent"])


# Without a domain: plain HTTP, nothing of DNS or ACME.


def test_without_domain_no_dns_resources_and_plain_http(dev):
    types = {r.type for r in dev.resources}
    assert not types & {AWS_PROVIDER, ZONE, RECORD, HELM_CHART_CONFIG, NAME_SERVERS}
    ingress = dev.one(INGRESS)
    assert "tls" not in ingress.inputs["spec"]
    assert "annotations" not in ingress.inputs["metadata"]
    assert "host" not in ingress.inputs["spec"]["rules"][0]
    assert dev.outputs["appUrl"].value == f"http://{MOCK_STATIC_IP}/"
    assert dev.outputs["kubeApiUrl"].value == f"https://{MOCK_STATIC_IP}:6443"
    assert dev.outputs["nameServers"].value == []
    config = k3s_config(dev.named("lightsail-k3s-dev-install"))
    assert config["tls-san"] == [MOCK_STATIC_IP]


# The zone: in us-east-1 whatever aws:region is.


def test_zone_and_records_use_an_explicit_us_east_1_provider(https):
    assert https.outputs["region"].value != "us-east-1"
    (provider,) = [p for p in https.of_type(AWS_PROVIDER)]
    assert provider.inputs["region"] == "us-east-1"
    zone = https.one(ZONE)
    assert zone.inputs["domainName"] == DOMAIN
    records = https.of_type(RECORD)
    assert {(r.inputs["name"], r.inputs["type"], r.inputs["target"]) for r in records} == {
        ("", "A", MOCK_STATIC_IP),
        ("*", "A", MOCK_STATIC_IP),
    }
    for resource in [zone, *records]:
        assert resource.provider.startswith(provider.urn + "::"), resource.name
    for record in records:
        assert record.inputs["domainName"] == DOMAIN
        assert https.depends_on(record, zone)
        assert https.depends_on(record, https.one("aws:lightsail/staticIp:StaticIp"))
    # Everything else stays in the stack's region, on the default provider.
    assert not https.one("aws:lightsail/instance:Instance").provider.startswith(provider.urn)


def test_zone_is_protected_with_the_stack(https):
    assert https.one(ZONE).protect
    assert (
        not deploy(
            domain=DOMAIN, acmeEmail=EMAIL, protect=False, environ={"PATH": ""}, preview=True
        )
        .one(ZONE)
        .protect
    )


def test_name_servers_are_read_from_the_zone_after_it_exists(https):
    read = https.one(NAME_SERVERS)
    assert read.inputs["create"] == name_servers_command(DOMAIN)
    zone = https.one(ZONE)
    assert https.depends_on(read, zone)
    assert read.inputs["triggers"] == [zone.state["arn"]]
    assert https.outputs["nameServers"].value == sorted(MOCK_NAME_SERVERS)


def test_name_server_command_passes_the_query_to_the_aws_cli_intact(tmp_path):
    write_executable(
        tmp_path / "aws", '#!/bin/sh\nfor arg in "$@"; do printf "%s\\n" "$arg"; done\n'
    )
    argv = subprocess.run(
        ["/bin/sh", "-c", name_servers_command(DOMAIN)],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert argv == [
        "lightsail", "get-domain", "--region", "us-east-1", "--domain-name", DOMAIN,
        "--query", "domain.domainEntries[?type=='NS'].target", "--output", "json",
    ]  # fmt: skip


def test_own_dns_means_no_zone_no_records_no_cli(own_dns_staging):
    types = {r.type for r in own_dns_staging.resources}
    assert not types & {AWS_PROVIDER, ZONE, RECORD, NAME_SERVERS}
    assert own_dns_staging.outputs["nameServers"].value == []
    assert own_dns_staging.outputs["appUrl"].value == f"https://{DOMAIN}/"


# Traefik: the k3s way, the chart k3s ships.


def test_traefik_is_customised_by_the_helm_chart_config_k3s_merges(https):
    config = https.one(HELM_CHART_CONFIG)
    assert config.inputs["apiVersion"] == "helm.cattle.io/v1"
    assert config.inputs["metadata"] == {"name": "traefik", "namespace": "kube-system"}
    assert set(config.inputs["spec"]) == {"valuesContent"}
    assert config.provider.startswith(https.one("pulumi:providers:kubernetes").urn + "::")


def test_values_hold_the_resolver_its_persistent_storage_and_the_redirect(https):
    values = traefik_values(https)
    (resolver_name,) = values["certificatesResolvers"]
    acme = values["certificatesResolvers"][resolver_name]["acme"]
    assert acme["email"] == EMAIL
    assert acme["caServer"] == LETS_ENCRYPT_PRODUCTION
    assert acme["httpChallenge"] == {"entryPoint": "web"}
    persistence = values["persistence"]
    assert persistence["enabled"] is True
    assert persistence["storageClass"] == "local-path"
    assert acme["storage"].startswith(persistence["path"].rstrip("/") + "/")
    # Chart v39+: entry point options live under `http` (traefik-helm-chart 266ff0e).
    assert values["ports"]["web"] == {
        "http": {
            "redirections": {
                "entryPoint": {"to": "websecure", "scheme": "https", "permanent": True}
            }
        }
    }
    for ingress in https.of_type(INGRESS):
        annotations = ingress.inputs["metadata"]["annotations"]
        assert annotations["traefik.ingress.kubernetes.io/router.tls.certresolver"] == resolver_name


def test_values_use_only_keys_of_the_chart_k3s_ships(https, own_dns_staging):
    for deployment in (https, own_dns_staging):
        values = traefik_values(deployment)
        assert set(values) <= CHART_TOP_LEVEL_KEYS
        for port in values["ports"].values():
            assert set(port) <= CHART_PORT_KEYS
            assert set(port.get("http", {})) <= CHART_PORT_HTTP_KEYS
        assert set(values["persistence"]) <= CHART_PERSISTENCE_KEYS


def test_acme_staging_uses_the_staging_ca_under_a_resolver_of_its_own(https, own_dns_staging):
    ((staging_name, staging),) = traefik_values(own_dns_staging)["certificatesResolvers"].items()
    assert staging["acme"]["caServer"] == LETS_ENCRYPT_STAGING
    (production_name,) = traefik_values(https)["certificatesResolvers"]
    assert staging_name != production_name
    for ingress in own_dns_staging.of_type(INGRESS):
        assert (
            ingress.inputs["metadata"]["annotations"][
                "traefik.ingress.kubernetes.io/router.tls.certresolver"
            ]
            == staging_name
        )


# Apps under the domain.


def test_ingresses_get_hosts_and_tls_through_the_resolver(https):
    ingresses = {i.inputs["spec"]["rules"][0]["host"]: i.inputs for i in https.of_type(INGRESS)}
    assert set(ingresses) == {DOMAIN, "admin.example.com"}
    for host, ingress in ingresses.items():
        assert ingress["spec"]["tls"] == [{"hosts": [host]}]
        assert (
            ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.entrypoints"]
            == "websecure"
        )
        assert (
            ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.tls"] == "true"
        )
    paths = [p["path"] for p in ingresses[DOMAIN]["spec"]["rules"][0]["http"]["paths"]]
    assert paths == ["/api/orders", "/"]


def test_app_urls_are_https(https):
    assert https.outputs["appUrl"].value == f"https://{DOMAIN}/"
    urls = {name: app["url"] for name, app in https.outputs["apps"].value.items()}
    assert urls == {
        "storefront": f"https://{DOMAIN}/",
        "orders-api": f"https://{DOMAIN}/api/orders",
        "admin": "https://admin.example.com/",
    }


def test_api_certificate_names_the_domain_and_the_api_url_uses_it(https):
    config = k3s_config(https.named("lightsail-k3s-dev-install"))
    assert config["tls-san"] == [MOCK_STATIC_IP, DOMAIN]
    assert https.outputs["kubeApiUrl"].value == f"https://{DOMAIN}:6443"
    # The kubeconfig keeps the static IP: it works before DNS propagates and without our zone.
    kubeconfig = yaml.safe_load(https.outputs["kubeconfig"].value)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{MOCK_STATIC_IP}:6443"


def test_still_no_second_ingress_controller(https, own_dns_staging):
    for deployment in (https, own_dns_staging):
        assert_no_second_ingress_controller(deployment)


@pytest.mark.parametrize(
    "kind, name",
    [
        ("HelmChart", "ingress-nginx"),
        ("HelmChartConfig", "nginx"),
        ("HelmChartConfig", "traefik-extra"),
    ],
)
def test_the_check_still_catches_another_chart(https, kind, name):
    bundled = https.one(HELM_CHART_CONFIG)
    other = dataclasses.replace(
        bundled,
        type=f"kubernetes:helm.cattle.io/v1:{kind}",
        inputs={
            **bundled.inputs,
            "kind": kind,
            "metadata": {"name": name, "namespace": "kube-system"},
        },
    )
    with pytest.raises(AssertionError):
        assert_no_second_ingress_controller(
            Declared(dataclasses.replace(https.deployment, resources=[*https.resources, other]))
        )


# Every object against its schema: Kubernetes' own, and the HelmChartConfig CRD that k3s ships.


@pytest.fixture(scope="module")
def helm_chart_config_schema(https):
    schema_version = kubernetes_schema_version(https.outputs["k3sVersion"].value)
    schema, registry = strict_crd_schema(
        FIXTURES / "crds" / "helm.cattle.io_helmchartconfigs.yaml", schema_version
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_every_object_matches_its_schema(https, own_dns_staging, helm_chart_config_schema):
    schema_version = re.sub(r"^v(\d+\.\d+)\..*", r"\1.0", https.outputs["k3sVersion"].value)
    for deployment in (https, own_dns_staging):
        for obj in declared_objects(deployment):
            if obj["kind"] == "HelmChartConfig":
                helm_chart_config_schema.validate(obj)
            else:
                kubernetes_validate.validate(obj, schema_version, strict=True)


@pytest.mark.parametrize(
    "broken",
    [
        {"spec": {"valuesContent": {"ports": {}}}},
        {"spec": {"valuesContent": "a: 1", "valuesContnet": "b: 2"}},
        {"metadata": {"name": "traefik", "namespace": "kube-system", "label": {}}},
        {"kind": "HelmChart"},
    ],
)
def test_helm_chart_config_schema_catches_a_broken_object(https, helm_chart_config_schema, broken):
    obj = {**https.one(HELM_CHART_CONFIG).inputs, **broken}
    with pytest.raises(jsonschema.ValidationError):
        helm_chart_config_schema.validate(obj)


# Bad input: each refused before any resource, naming the key.


def refused(key, *fragments, **overrides):
    # No `aws` on PATH unless a test gives one: whether this machine has the CLI must not matter.
    overrides.setdefault("environ", {"PATH": ""})
    return rejected(key, *fragments, **overrides)


def test_domain_without_acme_email():
    refused(
        "acmeEmail",
        "domain example.com is set",
        "pulumi config set acmeEmail",
        domain=DOMAIN,
        preview=True,
    )


@pytest.mark.parametrize(
    "domain",
    ["https://example.com", "Example.com", "example", "example.com.", "*.example.com", "exa mple.com", "-a.example.com",
     "203.0.113.10", "example.com/app"],
)  # fmt: skip
def test_malformed_domain(domain):
    refused(
        "domain",
        repr(domain),
        "not a registered domain name",
        domain=domain,
        acmeEmail=EMAIL,
        preview=True,
    )


def test_app_host_outside_the_domain():
    apps = [
        {"name": "shop", "image": "ghcr.io/acme/shop:1.0.0", "port": 80, "host": "shop.example.net"}
    ]
    refused(
        "apps", "apps[0] (shop)", "shop.example.net is outside domain example.com", "shop.example.com",
        domain=DOMAIN, acmeEmail=EMAIL, apps=apps, preview=True,
    )  # fmt: skip


def test_a_host_that_only_ends_like_the_domain_is_outside_it():
    apps = [
        {"name": "shop", "image": "ghcr.io/acme/shop:1.0.0", "port": 80, "host": "notexample.com"}
    ]
    refused(
        "apps",
        "outside domain example.com",
        domain=DOMAIN,
        acmeEmail=EMAIL,
        apps=apps,
        preview=True,
    )


def test_an_app_without_host_and_one_on_the_domain_cannot_share_a_path():
    apps = [
        {"name": "one", "image": "ghcr.io/acme/one:1.0.0", "port": 80},
        {"name": "two", "image": "ghcr.io/acme/two:1.0.0", "port": 80, "host": DOMAIN},
    ]
    refused(
        "apps",
        "apps[1] (two)",
        "already routed to one",
        domain=DOMAIN,
        acmeEmail=EMAIL,
        apps=apps,
        preview=True,
    )


def test_malformed_acme_email():
    refused(
        "acmeEmail",
        "'ops-at-example.org' is not an email address",
        domain=DOMAIN,
        acmeEmail="ops-at-example.org",
    )


@pytest.mark.parametrize("key, value", [("acmeEmail", EMAIL), ("acmeStaging", True)])
def test_acme_settings_without_a_domain(key, value):
    refused(key, "HTTPS needs a domain", "pulumi config set domain", **{key: value})


@pytest.mark.parametrize("key", ["manageDnsZone", "acmeStaging"])
def test_https_booleans_are_checked_by_the_cli_before_the_program_runs(key):
    mistyped(key, "boolean", domain=DOMAIN, acmeEmail=EMAIL, preview=True, config={key: "yes"})


def test_up_with_a_zone_needs_the_aws_cli_for_its_name_servers():
    refused(
        "manageDnsZone",
        "AWS CLI",
        "not on PATH",
        "manageDnsZone false",
        domain=DOMAIN,
        acmeEmail=EMAIL,
        environ={"PATH": ""},
    )


def test_preview_with_a_zone_needs_no_aws_cli():
    preview = deploy(domain=DOMAIN, acmeEmail=EMAIL, environ={"PATH": ""}, preview=True)
    assert preview.one(ZONE).inputs["domainName"] == DOMAIN
