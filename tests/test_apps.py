"""App delivery on the mock engine: provider, apps, Traefik ingress, secrets, budgets, manifests."""

import json
import re
import shutil
import tempfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components.app_settings import parse_image
from components.apps import APPS_TYPE, PREVIOUS_APPS_TYPE, ingress_name
from components.capacity import NamespaceBudget, NodeCapacity
from components.catalog import BUNDLES
from components.charts import CHARTS_TYPE
from components.consumers import SCOPED_KUBECONFIGS_TYPE
from components.settings import TESTED_K3S_MINORS
from tests.helpers import (
    DEPLOYMENT,
    INGRESS,
    PROJECT_DIR,
    assert_no_second_ingress_controller,
    declared_objects,
    deploy,
    kubernetes_resources,
    kubernetes_schema_version,
    rejected,
)
from tools.mockengine import MOCK_STATIC_IP

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROVIDER = "pulumi:providers:kubernetes"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"

SHOP_APPS = [
    {
        "name": "storefront",
        "image": "ghcr.io/acme/storefront:2.3.1",
        "port": 8080,
        "replicas": 2,
        "healthPath": "/healthz",
    },
    {
        "name": "orders-api",
        "image": "ghcr.io/acme/orders@sha256:" + "a" * 64,
        "port": 3000,
        "path": "/api/orders",
        "env": {"LOG_LEVEL": "info", "CACHE": True},
        "secretEnv": ["DATABASE_URL", "STRIPE_KEY"],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "400m", "memory": "256Mi"},
        },
    },
    {"name": "users-api", "image": "ghcr.io/acme/users:1.0.0", "port": 3001, "path": "/api/users"},
    {"name": "admin", "image": "ghcr.io/acme/admin:0.9.2", "port": 80, "host": "admin.example.com"},
]
SHOP_SECRETS = {
    "orders-api": {
        "DATABASE_URL": "postgres://orders:hunter2@db/orders",
        "STRIPE_KEY": "sk_live_123",
    }
}


@pytest.fixture(scope="module")
def shop():
    return deploy(
        bundleId="medium_3_0",
        apps=SHOP_APPS,
        secrets={"appSecrets": SHOP_SECRETS},
        manifestsDir=str(FIXTURES / "manifests"),
    )


def test_every_kubernetes_resource_uses_the_k3s_provider(dev, shop):
    for deployment in (dev, shop):
        provider = deployment.one(PROVIDER)
        resources = kubernetes_resources(deployment)
        assert resources
        for resource in resources:
            assert resource.provider.startswith(provider.urn + "::"), resource.name


def test_provider_waits_for_k3s_and_survives_kubeconfig_rereads(shop):
    provider = shop.one(PROVIDER)
    assert (
        provider.inputs["clusterIdentifier"]
        == "lightsail-k3s-dev@" + shop.one("aws:lightsail/instance:Instance").state["arn"]
    )
    assert shop.depends_on(provider, shop.named("lightsail-k3s-dev-install"))


def test_dev_stack_deploys_the_demo_app_at_the_root(dev):
    deployment = dev.one(DEPLOYMENT)
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert re.fullmatch(r"traefik/whoami:v\d+\.\d+\.\d+", container["image"])
    ingress = dev.one(INGRESS)
    assert ingress.inputs["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/"
    assert dev.outputs["appUrl"].value == f"http://{MOCK_STATIC_IP}/"
    assert dev.outputs["appNamespace"].value == "apps"
    assert dev.outputs["apps"].value == {
        "whoami": {
            "service": "whoami.apps.svc.cluster.local",
            "port": 8080,
            "path": "/",
            "url": f"http://{MOCK_STATIC_IP}/",
        }
    }


def test_ingress_uses_traefik_and_routes_each_path_to_its_service_port(shop):
    services = {s.inputs["metadata"]["name"]: s for s in shop.of_type(SERVICE)}
    routes = {}
    for ingress in shop.of_type(INGRESS):
        assert ingress.inputs["spec"]["ingressClassName"] == "traefik"
        assert ingress.inputs["metadata"]["namespace"] == "apps"
        (rule,) = ingress.inputs["spec"]["rules"]
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service_port = services[backend["name"]].inputs["spec"]["ports"][0]["port"]
            assert backend["port"]["number"] == service_port
            assert path["pathType"] == "Prefix"
            routes[(rule.get("host"), path["path"])] = (backend["name"], service_port)
    assert routes == {
        (None, "/"): ("storefront", 8080),
        (None, "/api/orders"): ("orders-api", 3000),
        (None, "/api/users"): ("users-api", 3001),
        ("admin.example.com", "/"): ("admin", 80),
    }
    for service in shop.of_type(SERVICE):
        assert service.inputs["spec"]["type"] == "ClusterIP"
        assert service.inputs["spec"]["ports"][0]["targetPort"] == "http"


def test_no_second_ingress_controller_helm_chart_or_load_balancer(dev, shop):
    for deployment in (dev, shop):
        assert_no_second_ingress_controller(deployment)


def test_the_apps_children_are_named_after_the_component_and_keep_their_old_names_as_aliases(shop):
    component = shop.one(APPS_TYPE)
    children = [r for r in shop.resources if r.parent == component.urn]
    # The consumers' component has the Apps' own name, which its children's names start with: a
    # name of its own would move those (tools/urns.py, inherited: the parent's name is their prefix).
    assert children and all(
        child.name.startswith(component.name + "-")
        or (child.type == SCOPED_KUBECONFIGS_TYPE and child.name == component.name)
        for child in children
    ), [c.name for c in children]
    expected = (
        {(DEPLOYMENT, app["name"], "deployment") for app in SHOP_APPS}
        | {(SERVICE, app["name"], "service") for app in SHOP_APPS}
        | {(SECRET, "orders-api", "env")}
    )
    per_app = [r for r in children if r.type in (DEPLOYMENT, SERVICE, SECRET)]
    assert {(r.type, r.name) for r in per_app} == {
        (t, f"{component.name}-{app}-{kind}") for t, app, kind in expected
    }
    # Stacks deployed before the names carried the component's keep these objects (no delete and create).
    for resource in per_app:
        old_name = resource.name.removeprefix(component.name + "-")
        assert {"name": old_name} in resource.aliases, resource.name


PREFIX = "urn:pulumi:dev::lightsail-k3s::"
BEFORE_APPS = PREFIX + PREVIOUS_APPS_TYPE
# The dev stack's objects while the component was `AppStack`, as the engine names them; whoami's
# with the app's own names before commit 826f29e, named after the component since. Each must map to
# an object today, or Pulumi deletes it and creates it anew: the app is down in between.
APP_STACK_URNS = [
    BEFORE_APPS + "::lightsail-k3s-dev",
    BEFORE_APPS + "$kubernetes:core/v1:Namespace::lightsail-k3s-dev-namespace",
    BEFORE_APPS + "$kubernetes:core/v1:LimitRange::lightsail-k3s-dev-limits",
    BEFORE_APPS + "$kubernetes:core/v1:ResourceQuota::lightsail-k3s-dev-quota",
    BEFORE_APPS
    + "$kubernetes:networking.k8s.io/v1:NetworkPolicy::lightsail-k3s-dev-ingress-policy",
    BEFORE_APPS
    + "$kubernetes:networking.k8s.io/v1:Ingress::lightsail-k3s-dev-ingress-default-host",
]
WHOAMI_WITH_ITS_OWN_NAMES = [
    BEFORE_APPS + "$kubernetes:apps/v1:Deployment::whoami-deployment",
    BEFORE_APPS + "$kubernetes:core/v1:Service::whoami-service",
]
WHOAMI_NAMED_AFTER_THE_COMPONENT = [
    BEFORE_APPS + "$kubernetes:apps/v1:Deployment::lightsail-k3s-dev-whoami-deployment",
    BEFORE_APPS + "$kubernetes:core/v1:Service::lightsail-k3s-dev-whoami-service",
]


@pytest.mark.parametrize(
    "whoami",
    [WHOAMI_WITH_ITS_OWN_NAMES, WHOAMI_NAMED_AFTER_THE_COMPONENT],
    ids=["own", "component"],
)
def test_a_stack_from_when_apps_was_app_stack_keeps_every_object(dev, whoami):
    previous = [*APP_STACK_URNS, *whoami]
    kept = dev.continuing(previous)
    assert [urn for urn in previous if urn not in kept.values()] == []
    assert dev.one(APPS_TYPE).aliases == [{"type": PREVIOUS_APPS_TYPE}]


def test_every_object_of_the_apps_keeps_its_urn_from_when_apps_was_app_stack(shop):
    # The engine's URNs of today's objects, with the component's previous type: every object the
    # component declares inherits the alias. The objects of the manifests' ConfigGroup, which
    # pulumi-kubernetes registers itself, inherit in turn from the ConfigGroup, found under its alias.
    # The charts and the consumers' kubeconfigs were the stack's own then (tests/test_urns.py).
    apps = shop.one(APPS_TYPE)
    ours = [
        r
        for r in shop.resources
        if apps in shop.ancestors(r) or r is apps
        if not {CHARTS_TYPE, SCOPED_KUBECONFIGS_TYPE} & {a.type for a in [r, *shop.ancestors(r)]}
    ]
    engine = shop.engine_urns()
    previous = {r.urn: engine[r.urn].replace(APPS_TYPE, PREVIOUS_APPS_TYPE) for r in ours}
    assert {
        SECRET,
        "kubernetes:yaml/v2:ConfigGroup",
        "kubernetes:policy/v1:PodDisruptionBudget",
    } <= {r.type for r in ours}
    assert all(PREVIOUS_APPS_TYPE in urn for urn in previous.values())
    assert shop.continuing(list(previous.values())) == previous


def test_secret_env_values_live_only_in_a_secret_that_is_secret_in_state(shop):
    secret = shop.named("lightsail-k3s-dev-orders-api-env")
    assert secret.inputs["metadata"] == {
        "name": "orders-api-env",
        "namespace": "apps",
        "labels": {
            "app.kubernetes.io/name": "orders-api",
            "app.kubernetes.io/managed-by": "lightsail-k3s",
        },
    }
    assert secret.inputs["stringData"] == SHOP_SECRETS["orders-api"]
    assert "stringData" in secret.secret_inputs
    secret_values = set(SHOP_SECRETS["orders-api"].values())
    for registration in shop.resources:
        if registration is not secret:
            assert not any(value in repr(registration.inputs) for value in secret_values), (
                registration.name
            )
    for output in shop.outputs.values():
        assert not any(value in repr(output.value) for value in secret_values)
    orders = next(
        d for d in shop.of_type(DEPLOYMENT) if d.inputs["metadata"]["name"] == "orders-api"
    )
    env = {e["name"]: e for e in orders.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "info"}
    assert env["CACHE"] == {"name": "CACHE", "value": "true"}
    for variable in ("DATABASE_URL", "STRIPE_KEY"):
        assert env[variable] == {
            "name": variable,
            "valueFrom": {"secretKeyRef": {"name": "orders-api-env", "key": variable}},
        }


def test_app_shape_replicas_resources_and_probes(shop):
    deployments = {d.inputs["metadata"]["name"]: d.inputs["spec"] for d in shop.of_type(DEPLOYMENT)}
    assert set(deployments) == {"storefront", "orders-api", "users-api", "admin"}
    storefront = deployments["storefront"]
    assert storefront["replicas"] == 2
    container = storefront["template"]["spec"]["containers"][0]
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/healthz", "port": 8080},
        "initialDelaySeconds": 2,
        "periodSeconds": 10,
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert "tcpSocket" not in container["livenessProbe"]
    assert container["resources"] == {
        "requests": {"cpu": "25m", "memory": "64Mi"},
        "limits": {"cpu": "250m", "memory": "128Mi"},
    }
    assert storefront["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    orders = deployments["orders-api"]["template"]["spec"]["containers"][0]
    assert orders["resources"]["limits"] == {"cpu": "400m", "memory": "256Mi"}
    # Without healthPath: a TCP probe of the port, so a pod that is not listening gets no traffic.
    users = deployments["users-api"]["template"]["spec"]["containers"][0]
    assert users["readinessProbe"] == {
        "tcpSocket": {"port": 3001},
        "initialDelaySeconds": 2,
        "periodSeconds": 10,
    }
    assert users["livenessProbe"] == {
        "tcpSocket": {"port": 3001},
        "initialDelaySeconds": 15,
        "periodSeconds": 10,
    }


def test_namespace_budget_is_sized_from_the_bundle(dev, shop):
    for deployment, bundle in ((dev, BUNDLES["small_3_0"]), (shop, BUNDLES["medium_3_0"])):
        budget = NodeCapacity.of(bundle).budget
        quota = deployment.one("kubernetes:core/v1:ResourceQuota").inputs["spec"]["hard"]
        assert quota == {
            "requests.cpu": f"{budget.requests_cpu_millicores}m",
            "requests.memory": f"{budget.memory_mib}Mi",
            "limits.memory": f"{budget.memory_mib}Mi",
        }
        (limits,) = deployment.one("kubernetes:core/v1:LimitRange").inputs["spec"]["limits"]
        assert limits["max"] == {
            "cpu": f"{bundle.vcpus * 1000}m",
            "memory": f"{budget.memory_mib}Mi",
        }
        assert limits["default"] == {"cpu": "250m", "memory": "128Mi"}
        assert limits["defaultRequest"] == {"cpu": "25m", "memory": "64Mi"}
    # small_3_0: 2 vCPU less k3s, the OS and k3s' add-ons; 2 GiB less k3s, its add-ons, the OS and the eviction threshold.
    assert NodeCapacity.of(BUNDLES["small_3_0"]).budget == NamespaceBudget(
        requests_cpu_millicores=2000 - 100 - 100 - 200,
        memory_mib=2048 - 768 - 140 - 256 - 100,
        max_container_cpu_millicores=2000,
    )


def test_existing_manifests_are_applied_through_the_same_provider(shop):
    group = shop.one("kubernetes:yaml/v2:ConfigGroup")
    assert [(o["kind"], o["metadata"]["name"]) for o in group.inputs["objs"]] == [
        ("ConfigMap", "feature-flags"),
        ("ServiceAccount", "reporter"),
        ("CronJob", "nightly-report"),
    ]
    assert shop.depends_on(group, shop.named("lightsail-k3s-dev-namespace"))


def test_multi_app_outputs(shop):
    apps = shop.outputs["apps"].value
    assert apps["orders-api"] == {
        "service": "orders-api.apps.svc.cluster.local",
        "port": 3000,
        "path": "/api/orders",
        "url": f"http://{MOCK_STATIC_IP}/api/orders",
    }
    assert apps["admin"]["url"] == "http://admin.example.com/"
    assert shop.outputs["appUrl"].value == f"http://{MOCK_STATIC_IP}/"


@pytest.mark.parametrize("which", ["dev", "shop"])
def test_every_kubernetes_object_matches_the_schema_of_the_pinned_k3s_minor(which, dev, shop):
    deployment = {"dev": dev, "shop": shop}[which]
    version = deployment.outputs["k3sVersion"].value
    schema_version = kubernetes_schema_version(version)
    assert schema_version in kubernetes_validate.utils.all_versions(), (
        f"kubernetes-validate has no schema for Kubernetes {schema_version}; upgrade it with k3sVersion"
    )
    objects = list(declared_objects(deployment))
    assert len(objects) >= 6
    for obj in objects:
        kubernetes_validate.validate(obj, schema_version, strict=True)


@pytest.mark.parametrize("minor", TESTED_K3S_MINORS)
def test_every_kubernetes_object_matches_the_schema_of_each_tested_minor(minor, dev, shop):
    # What makes a minor "tested" (components/settings.py, TESTED_K3S_MINORS).
    schema_version = f"1.{minor}.0"
    assert schema_version in kubernetes_validate.utils.all_versions()
    for obj in [*declared_objects(dev), *declared_objects(shop)]:
        kubernetes_validate.validate(obj, schema_version, strict=True)


def test_schema_validation_catches_a_broken_object():
    broken = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two"},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.36.0", strict=True)


def test_preview_declares_the_same_plain_ingress():
    deployment = deploy(preview=True)
    assert deployment.one(INGRESS).inputs["spec"]["ingressClassName"] == "traefik"


# Bad input: one test per rule, each naming the key and the app.


def app(**fields):
    return {"name": "web", "image": "ghcr.io/acme/web:1.0.0", "port": 8080, **fields}


def test_duplicate_app_names():
    rejected("apps", "apps[1] (web)", "already used by apps[0]", apps=[app(), app(path="/other")])


@pytest.mark.parametrize("name", ["Web", "web_app", "-web", "web-", "1web", "a" * 64, None])
def test_app_names_must_name_a_service(name):
    rejected("apps", "apps[0]", "DNS-1035", apps=[app(name=name)])


@pytest.mark.parametrize(
    ("image", "fragment"),
    [
        ("ghcr.io/Acme/web:1.0.0", "must be lowercase"),
        ("ghcr.io//web:1.0.0", "not a valid image reference"),
        ("web:1.0.0 ", "not a valid image reference"),
        (":1.0.0", "not a valid image reference"),
        ("ghcr.io:https/web:1.0.0", "not a valid image reference"),
        ("web:" + "1" * 129, "not a valid image reference"),
        ("web:-1", "not a valid image reference"),
        ("web@sha256:" + "A" * 64, "not sha256:<64 hex>"),
        ("web@md5:" + "a" * 32, "not sha256:<64 hex>"),
        ("web@sha256:" + "a" * 63, "not sha256:<64 hex>"),
        ("a/" * 128 + "web:1", "longer than 255"),
    ],
)
def test_image_references_follow_the_distribution_grammar(image, fragment):
    rejected("apps", "apps[0] (web)", fragment, apps=[app(image=image)])


@pytest.mark.parametrize(
    "image",
    [
        "localhost:5000/team/web:1.2",
        "[::1]:5000/web:1.2",
        "registry.example.com:443/a__b/c-d---e.f:v1.2_rc-3",
        "ghcr.io/acme/web:1.0.0@sha256:" + "a" * 64,
        "docker.io/library/nginx@sha512:" + "b" * 128,
    ],
)
def test_image_references_the_grammar_allows(image):
    assert parse_image(image, 0, "web") == image


def test_an_allowed_image_reference_reaches_the_container_as_written():
    image = "localhost:5000/team/web:1.2@sha256:" + "a" * 64
    deployment = deploy(apps=[app(image=image)])
    assert (
        deployment.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"][0]["image"]
        == image
    )


def test_untagged_image():
    rejected("apps", "apps[0] (web)", "has no tag", apps=[app(image="ghcr.io/acme/web")])


def test_untagged_image_on_a_registry_with_a_port():
    rejected("apps", "has no tag", apps=[app(image="registry.local:5000/web")])


def test_latest_image():
    rejected("apps", "apps[0] (web)", ":latest", apps=[app(image="nginx:latest")])


@pytest.mark.parametrize("port", [0, 65536, "80", True])
def test_port_out_of_range(port):
    rejected("apps", "apps[0] (web)", "1-65535", apps=[app(port=port)])


def test_path_without_leading_slash():
    rejected("apps", "apps[0] (web)", "starting with '/'", apps=[app(path="api")])


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/api/", "/api"),
        ("//api", "/api"),
        ("/./api", "/api"),
        ("/api/../admin", "/admin"),
        ("/api/%2e%2e/admin", "/admin"),
    ],
)
def test_paths_must_be_in_normal_form(path, normal):
    rejected(
        "apps",
        "apps[0] (web)",
        f"path {path!r} is not in normal form",
        f"write it as {normal}",
        apps=[app(path=path)],
    )


def test_encoded_slash_in_a_path():
    rejected("apps", "path '/api%2Fadmin' is not in normal form", apps=[app(path="/api%2Fadmin")])


def test_health_path_must_be_in_normal_form():
    rejected(
        "apps", "healthPath '/health/../x'", "write it as /x", apps=[app(healthPath="/health/../x")]
    )


@pytest.mark.parametrize("host", ["203.0.113.10", "10.0.0.1"])
def test_host_may_not_be_an_ip_address(host):
    rejected("apps", "apps[0] (web)", f"host {host!r} is an IP address", apps=[app(host=host)])


def test_hosts_that_differ_only_in_dots_and_dashes_get_their_own_ingress():
    deployment = deploy(apps=[app(host="a-b.example.com"), app(name="api", host="a.b-example.com")])
    names = sorted(i.inputs["metadata"]["name"] for i in deployment.of_type(INGRESS))
    assert names == ["host-a-b.example.com", "host-a.b-example.com"]


def test_long_hosts_get_distinct_valid_ingress_names():
    label = "a" * 62
    common = ".".join([label] * 3)  # 188 characters
    hosts = [f"{common}.{tail}" for tail in ("b" * 60 + "-c", "b" * 60 + "-d", "b" * 60 + ".c")]
    names = [ingress_name(host) for host in hosts] + [
        ingress_name(None),
        ingress_name("example.com"),
    ]
    assert len(set(names)) == len(names)
    subdomain = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
    for name in names:
        assert len(name) <= 253 and subdomain.fullmatch(name), name
    deployment = deploy(apps=[app(host=hosts[0]), app(name="api", host=hosts[1])])
    assert sorted(i.inputs["metadata"]["name"] for i in deployment.of_type(INGRESS)) == sorted(
        names[:2]
    )


def test_two_apps_on_the_same_host_and_path():
    rejected(
        "apps",
        "apps[1] (api)",
        "path /v1 on host api.example.com is already routed to web",
        apps=[
            app(host="api.example.com", path="/v1"),
            app(name="api", host="api.example.com", path="/v1"),
        ],
    )


def test_same_path_on_different_hosts_is_fine():
    deployment = deploy(apps=[app(host="a.example.com"), app(name="api", host="b.example.com")])
    assert len(deployment.of_type(INGRESS)) == 2


def test_secret_env_without_a_secret_value():
    rejected(
        "appSecrets",
        "apps[0] (web) lists API_KEY",
        "pulumi config set --secret --path 'appSecrets.web.API_KEY'",
        apps=[app(secretEnv=["API_KEY"])],
    )


def test_app_secrets_stored_in_plain_text():
    rejected(
        "appSecrets",
        "stored in plain text",
        apps=[app(secretEnv=["API_KEY"])],
        appSecrets={"web": {"API_KEY": "x"}},
    )


def test_app_secrets_for_an_unknown_app():
    rejected(
        "appSecrets",
        "'ghost', which is not in apps",
        apps=[app()],
        secrets={"appSecrets": {"ghost": {"A": "b"}}},
    )


def test_app_secret_not_listed_in_secret_env():
    rejected(
        "appSecrets",
        "appSecrets.web.OTHER is not in the secretEnv of app 'web'",
        apps=[app(secretEnv=["API_KEY"])],
        secrets={"appSecrets": {"web": {"API_KEY": "k", "OTHER": "o"}}},
    )


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "null"),
        ({"nested": "hunter2"}, "dict"),
        (["hunter2"], "list"),
        (42, "int"),
        (True, "bool"),
    ],
)
def test_app_secret_values_must_be_strings(value, kind):
    # Set as one encrypted JSON object (pulumi config set --secret appSecrets '{...}'), the way a value
    # that is not a string reaches the program: `--secret --path` leaves are always strings.
    message = rejected(
        "appSecrets",
        f"appSecrets.web.API_KEY is {kind}, not a string",
        apps=[app(secretEnv=["API_KEY"])],
        secrets={"appSecrets": json.dumps({"web": {"API_KEY": value}})},
    )
    assert "hunter2" not in message and "None" not in message and "42" not in message


@pytest.fixture
def stack_with_app_secrets():
    """A stack file whose appSecrets mixes an encrypted value and one added later without --secret."""
    path = PROJECT_DIR / "Pulumi.mixed-secrets.yaml"
    config = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())
    config["config"]["lightsail-k3s:apps"] = [app(secretEnv=["API_KEY", "DB_URL"])]
    config["config"]["lightsail-k3s:appSecrets"] = {
        "web": {"API_KEY": {"secure": "v1:abc"}, "DB_URL": "postgres://hunter2@db"}
    }
    path.write_text(yaml.safe_dump(config))
    yield "mixed-secrets"
    path.unlink()


def test_every_app_secret_value_is_encrypted_in_the_stack_file(stack_with_app_secrets):
    message = rejected(
        "appSecrets",
        "appSecrets.web.DB_URL is stored in plain text in the stack file",
        "pulumi config set --secret --path 'appSecrets.web.DB_URL'",
        stack=stack_with_app_secrets,
    )
    assert "hunter2" not in message


def test_unknown_app_keys():
    rejected("apps", "unknown keys ['replica']", apps=[app(replica=2)])


def test_apps_that_do_not_fit_the_node():
    rejected(
        "apps",
        "memory limits",
        "small_3_0",
        "bundleId",
        apps=[app(replicas=4, resources={"limits": {"memory": "512Mi"}})],
    )


def test_bad_resource_quantities():
    rejected(
        "apps",
        "resources.requests.memory '1GB'",
        apps=[app(resources={"requests": {"memory": "1GB"}})],
    )


def test_bad_app_namespace():
    rejected("appNamespace", "'kube-apps'", appNamespace="kube-apps")


def test_manifests_dir_that_does_not_exist():
    rejected("manifestsDir", "'k8s/missing' is not a directory", manifestsDir="k8s/missing")


@pytest.fixture
def manifests(tmp_path_factory):
    """A manifests directory inside the project (manifestsDir must be), removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix=".manifests-", dir=FIXTURES))
    yield directory
    shutil.rmtree(directory)


def manifests_dir(directory: Path) -> str:
    return str(directory.relative_to(PROJECT_DIR))


def config_map(name: str, namespace: str | None = None) -> dict:
    metadata = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}


def test_manifests_dir_with_invalid_yaml_names_the_line_but_not_its_content(manifests):
    (manifests / "ok.yaml").write_text(yaml.safe_dump(config_map("a")))
    (manifests / "broken.yaml").write_text("kind: Secret\nstringData:\n  password: [hunter2\n")
    message = rejected(
        "manifestsDir",
        "broken.yaml, line 4, column 1 is not valid UTF-8 YAML",
        manifestsDir=manifests_dir(manifests),
    )
    assert "hunter2" not in message and "password" not in message


def test_manifests_dir_with_a_non_kubernetes_document(manifests):
    (manifests / "notes.yaml").write_text(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\njust: notes\n"
    )
    rejected(
        "manifestsDir",
        "notes.yaml, document 2, is not a Kubernetes object",
        manifestsDir=manifests_dir(manifests),
    )


@pytest.mark.parametrize("outside", ["..", "/tmp"])
def test_manifests_dir_must_be_inside_the_project(outside):
    rejected(
        "manifestsDir",
        "outside the project",
        "pulumi config set manifestsDir k8s",
        manifestsDir=outside,
    )


def test_manifest_files_may_not_link_outside_the_project(manifests, tmp_path):
    (tmp_path / "stolen.yaml").write_text(yaml.safe_dump(config_map("a")))
    (manifests / "link.yaml").symlink_to(tmp_path / "stolen.yaml")
    rejected(
        "manifestsDir",
        "link.yaml links to a file outside the project",
        manifestsDir=manifests_dir(manifests),
    )


def test_duplicate_manifest_objects(manifests):
    (manifests / "a.yaml").write_text(yaml.safe_dump(config_map("flags")))
    (manifests / "b.yaml").write_text(
        yaml.safe_dump_all([config_map("flags", "apps"), config_map("flags", "default")])
    )
    rejected(
        "manifestsDir",
        "b.yaml, document 2 declares ConfigMap default/flags, which a.yaml, document 1 already declares",
        manifestsDir=manifests_dir(manifests),
    )


@pytest.mark.parametrize(
    ("kind", "name", "owner"),
    [
        ("Deployment", "web", "apps[0] (web)"),
        ("Service", "web", "apps[0] (web)"),
        ("Secret", "web-env", "apps[0] (web)"),
        ("PersistentVolumeClaim", "web-data", "apps[0] (web)"),
    ],
)
def test_manifests_may_not_declare_what_an_app_declares(manifests, kind, name, owner):
    document = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "apps"}}
    (manifests / "clash.yaml").write_text(yaml.safe_dump(document))
    volume = {"name": "data", "mountPath": "/data", "size": "1Gi"}
    rejected(
        "manifestsDir",
        f"declares {kind} apps/{name}, which {owner} already declares",
        apps=[app(secretEnv=["API_KEY"], volumes=[volume])],
        secrets={"appSecrets": {"web": {"API_KEY": "k"}}},
        manifestsDir=manifests_dir(manifests),
    )


def test_manifests_may_not_redeclare_the_app_namespace(manifests):
    (manifests / "ns.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
    )
    rejected(
        "manifestsDir",
        "declares Namespace apps, which appNamespace already declares",
        manifestsDir=manifests_dir(manifests),
    )


def test_same_name_in_other_namespaces_or_kinds_is_fine(manifests):
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "flags"},
        "stringData": {"k": "v"},
    }
    (manifests / "a.yaml").write_text(
        yaml.safe_dump_all([config_map("flags"), config_map("flags", "apps"), secret])
    )
    group = deploy(manifestsDir=manifests_dir(manifests)).one("kubernetes:yaml/v2:ConfigGroup")
    assert len(group.inputs["objs"]) == 3


def test_secret_manifest_values_are_secret_in_state(manifests):
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "apps"},
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"url": "postgres://hunter2@db"},
    }
    (manifests / "secret.yaml").write_text(yaml.safe_dump_all([secret, config_map("flags")]))
    deployment = deploy(manifestsDir=manifests_dir(manifests))
    group = deployment.one("kubernetes:yaml/v2:ConfigGroup")
    assert "objs" in group.secret_inputs
    assert group.inputs["objs"][0] == secret
    for registration in deployment.resources:
        if registration is not group:
            assert "hunter2" not in repr(registration.inputs), registration.name


def test_a_list_manifest_is_refused_naming_its_items(manifests):
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"name": "bundle"},
        "items": [config_map("a")],
    }
    (manifests / "bundle.yaml").write_text(yaml.safe_dump(listed))
    rejected(
        "manifestsDir", "bundle.yaml, document 1, is a List", manifestsDir=manifests_dir(manifests)
    )


def test_each_service_selects_only_the_pods_of_its_own_deployment(shop):
    deployments = {r.inputs["metadata"]["name"]: r.inputs for r in shop.of_type(DEPLOYMENT)}
    services = [r.inputs for r in shop.of_type(SERVICE)]
    assert len(services) == len(deployments) > 1
    for service in services:
        selector = service["spec"]["selector"]
        selected = [
            name
            for name, deployment in deployments.items()
            if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert selected == [service["metadata"]["name"]], (service["metadata"]["name"], selector)
