"""The policy pack (policy/): each rule passes and fails on small fake args, passes on the real stacks,
and the pack itself starts under pulumi-policy with our pulumi and answers the engine's Analyze call."""

import subprocess
import sys

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from components.capacity import K3S_MILLICORES
from components.catalog import BUNDLES
from policy import policies
from tests.helpers import ADMIN_CIDR, PROJECT_DIR, Declared, deploy, run_stack

PROD_URN = "urn:pulumi:prod-eu::lightsail-k3s::lightsail-k3s:index:LightsailNode$aws:lightsail/instance:Instance::node"
DEV_URN = PROD_URN.replace("prod-eu", "dev")


def options(protect=False, additional_secret_outputs=()):
    return PolicyResourceOptions(
        protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), list(additional_secret_outputs), None
    )


def resource_args(resource_type, props, urn=DEV_URN, **opts):
    return ResourceValidationArgs(
        resource_type, props, urn, urn.rsplit("::", 1)[1], options(**opts), None
    )


def violations(validate, args) -> list[str]:
    found = []
    validate(args, lambda message, urn=None: found.append(message))
    return found


def port(protocol, low, high, cidrs=(), ipv6=()):
    return {
        "protocol": protocol,
        "fromPort": low,
        "toPort": high,
        "cidrs": list(cidrs),
        "ipv6Cidrs": list(ipv6),
    }


# --- admin-ports-not-public


def firewall(*port_infos):
    return resource_args(policies.FIREWALL, {"portInfos": list(port_infos)})


def test_admin_ports_pass_for_admin_cidrs_and_public_web_ports():
    args = firewall(
        port("tcp", 22, 22, ["198.51.100.0/24"]),
        port("tcp", 6443, 6443, ["198.51.100.0/24"]),
        port("tcp", 80, 80, ["0.0.0.0/0"], ["::/0"]),
    )
    assert violations(policies.validate_admin_ports, args) == []


@pytest.mark.parametrize(
    "rule",
    [
        port("tcp", 22, 22, ["0.0.0.0/0"]),
        port("tcp", 6443, 6443, ["198.51.100.0/24"], ["::/0"]),
        port("tcp", 0, 65535, ["1.0.0.0/2"]),
        port("udp", 8472, 8472, ["0.0.0.0/0"]),
        port("all", 0, 65535, ["0.0.0.0/0"]),
    ],
)
def test_admin_ports_fail_when_open_to_the_internet(rule):
    assert len(violations(policies.validate_admin_ports, firewall(rule))) == 1


# --- secret-reads-stay-secret


def read_command(logging="none", secret_stdout=True):
    return resource_args(
        policies.REMOTE_COMMAND,
        {"create": "sudo cat /etc/rancher/k3s/k3s.yaml", "logging": logging},
        additional_secret_outputs=["stdout"] if secret_stdout else [],
    )


def test_secret_reads_pass_when_stdout_is_secret_and_unlogged():
    assert violations(policies.validate_secret_reads, read_command()) == []
    plain = resource_args(policies.REMOTE_COMMAND, {"create": "bash -s"})
    assert violations(policies.validate_secret_reads, plain) == []


def test_secret_reads_fail_when_stdout_is_plain_or_logged():
    assert (
        "stdout is not secret"
        in violations(policies.validate_secret_reads, read_command(secret_stdout=False))[0]
    )
    assert (
        "logged"
        in violations(policies.validate_secret_reads, read_command(logging="stdoutAndStderr"))[0]
    )


# --- prod-node-protected


@pytest.mark.parametrize("resource_type", [policies.DISK, policies.STATIC_IP])
def test_prod_protection_passes_when_protected_or_not_prod(resource_type):
    assert (
        violations(
            policies.validate_prod_protection,
            resource_args(resource_type, {}, PROD_URN, protect=True),
        )
        == []
    )
    assert (
        violations(policies.validate_prod_protection, resource_args(resource_type, {}, DEV_URN))
        == []
    )


@pytest.mark.parametrize("resource_type", [policies.DISK, policies.STATIC_IP])
def test_prod_protection_fails_for_an_unprotected_node_on_a_prod_stack(resource_type):
    found = violations(
        policies.validate_prod_protection, resource_args(resource_type, {}, PROD_URN)
    )
    assert len(found) == 1 and "'prod-eu'" in found[0]


def prod_resource(resource_type, name, protect):
    urn = PROD_URN.rsplit("::", 1)[0] + f"::{name}"
    return PolicyResource(resource_type, {}, urn, name, options(protect), None, None, [], {})


def data_violations(*resources) -> list[str]:
    found = []
    policies.validate_prod_data_protection(
        StackValidationArgs(list(resources)), lambda message, urn=None: found.append(message)
    )
    return found


def test_prod_protection_leaves_agents_removable():
    agent = prod_resource(policies.INSTANCE, "lightsail-k3s-prod-eu-agent-2-instance", False)
    assert data_violations(agent) == []
    server = prod_resource(policies.INSTANCE, "lightsail-k3s-prod-eu-instance", False)
    (found,) = data_violations(server)
    assert "lightsail-k3s-prod-eu-instance is not protected on stack 'prod-eu'" in found


def test_with_a_data_disk_the_disk_is_protected_and_the_instance_may_be_replaced():
    instance = prod_resource(policies.INSTANCE, "lightsail-k3s-prod-eu-instance", False)
    protected_disk = prod_resource(policies.DISK, "lightsail-k3s-prod-eu-data", True)
    assert data_violations(instance, protected_disk) == []
    open_disk = prod_resource(policies.DISK, "lightsail-k3s-prod-eu-data", False)
    (found,) = data_violations(instance, open_disk)
    assert "lightsail-k3s-prod-eu-data is not protected" in found


# --- k3s-version-pinned


def install(version_assignment):
    return resource_args(
        policies.REMOTE_COMMAND,
        {"create": "sudo bash -s", "stdin": f"{version_assignment}\nNODE_NAME=n\n"},
    )


def test_k3s_pinned_passes_for_an_exact_release():
    assert violations(policies.validate_k3s_pinned, install("K3S_VERSION=v1.36.1+k3s1")) == []


@pytest.mark.parametrize(
    "assignment",
    ["K3S_VERSION=stable", "K3S_VERSION=v1.36", "K3S_VERSION=", "INSTALL_K3S_CHANNEL=latest"],
)
def test_k3s_pinned_fails_for_channels_and_partial_versions(assignment):
    assert violations(policies.validate_k3s_pinned, install(assignment))


# --- images-pinned


def deployment(*images):
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return resource_args(
        "kubernetes:apps/v1:Deployment",
        {"spec": {"template": {"spec": {"containers": containers}}}},
    )


def test_images_pinned_pass_for_tags_and_digests():
    digest = "ghcr.io/acme/web@sha256:" + "a" * 64
    assert (
        violations(
            policies.validate_images_pinned,
            deployment("traefik/whoami:v1.11.0", digest, "host:5000/x:1"),
        )
        == []
    )


@pytest.mark.parametrize("image", ["nginx", "nginx:latest", "registry.local:5000/team/app"])
def test_images_pinned_fail_without_a_tag_or_with_latest(image):
    assert len(violations(policies.validate_images_pinned, deployment("busybox:1.36", image))) == 1


def test_images_pinned_reads_cronjob_pod_specs():
    cronjob = resource_args(
        "kubernetes:batch/v1:CronJob",
        {
            "spec": {
                "jobTemplate": {
                    "spec": {
                        "template": {"spec": {"initContainers": [{"name": "i", "image": "alpine"}]}}
                    }
                }
            }
        },
    )
    assert len(violations(policies.validate_images_pinned, cronjob)) == 1


# --- cpu-budget


def stack_resource(resource_type, props, name="r"):
    urn = f"urn:pulumi:dev::lightsail-k3s::{resource_type}::{name}"
    return PolicyResource(resource_type, props, urn, name, options(), None, None, [], {})


def budget_stack(bundle_id, replicas, cpu_request=None, cpu_limit=None):
    resources = {}
    if cpu_request:
        resources["requests"] = {"cpu": cpu_request}
    if cpu_limit:
        resources["limits"] = {"cpu": cpu_limit}
    container = {"name": "web", "image": "web:1", "resources": resources}
    return StackValidationArgs(
        [
            stack_resource(policies.INSTANCE, {"bundleId": bundle_id}),
            stack_resource(
                policies.LIMIT_RANGE,
                {
                    "metadata": {"namespace": "apps"},
                    "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "25m"}}]},
                },
            ),
            stack_resource(
                "kubernetes:apps/v1:Deployment",
                {
                    "metadata": {"namespace": "apps"},
                    "spec": {
                        "replicas": replicas,
                        "template": {"spec": {"containers": [container]}},
                    },
                },
            ),
        ]
    )


def test_cpu_budget_passes_when_k3s_and_the_requests_fit_the_baseline():
    # small_3_0 sustains 400m: k3s 100m + 6 x 50m = 400m.
    assert (
        violations(policies.validate_cpu_budget, budget_stack("small_3_0", 6, "50m", "250m")) == []
    )


def test_cpu_budget_fails_when_requests_exceed_the_baseline():
    found = violations(policies.validate_cpu_budget, budget_stack("small_3_0", 7, "50m"))
    assert (
        len(found) == 1
        and "450m" in found[0]
        and "baseline of 400m" in found[0]
        and "holds each to its baseline" in found[0]
    )


def test_cpu_budget_counts_the_limit_range_default_for_containers_without_requests():
    # 100m + 13 x 25m = 425m > 400m.
    assert violations(policies.validate_cpu_budget, budget_stack("small_3_0", 13))
    assert violations(policies.validate_cpu_budget, budget_stack("small_3_0", 12)) == []


def test_cpu_budget_lets_a_limit_exceed_the_baseline_but_not_the_vcpus():
    assert (
        violations(policies.validate_cpu_budget, budget_stack("small_3_0", 1, "50m", "1500m")) == []
    )
    found = violations(policies.validate_cpu_budget, budget_stack("small_3_0", 1, "50m", "3"))
    assert len(found) == 1 and "more than the largest node's 2 vCPUs (small_3_0)" in found[0]


def test_cpu_budget_is_advisory_like_the_programs_default():
    (rule,) = [p for p in policies.POLICIES if p.name == "cpu-budget"]
    assert rule.enforcement_level == policies.EnforcementLevel.ADVISORY


def test_policy_bundles_match_the_catalog():
    assert policies.BASELINE_MILLICORES == {
        b.bundle_id: b.baseline_millicores for b in BUNDLES.values()
    }
    assert policies.VCPUS == {b.bundle_id: b.vcpus for b in BUNDLES.values()}
    assert policies.K3S_MILLICORES == K3S_MILLICORES


# --- the real stacks pass every rule


@pytest.fixture(scope="module", params=["dev", "prod", "dev with two agents"])
def real_stack(request) -> Declared:
    if request.param == "dev with two agents":
        return deploy(agentCount=2)
    # prod's file holds a documentation range as a placeholder, which the program refuses until it is
    # replaced; the test replaces it with a public one, as the operator must.
    return (
        deploy()
        if request.param == "dev"
        else run_stack("prod", overrides={"adminCidrs": [ADMIN_CIDR]})
    )


def test_the_real_stacks_pass_every_policy(real_stack):
    found = []
    for registration in real_stack.resources:
        args = ResourceValidationArgs(
            registration.type,
            registration.inputs,
            registration.urn,
            registration.name,
            options(registration.protect, registration.additional_secret_outputs),
            None,
        )
        for policy in policies.POLICIES:
            if isinstance(policy, policies.ResourceValidationPolicy):
                policy.validate(
                    args, lambda message, urn=None, name=policy.name: found.append((name, message))
                )
    stack = StackValidationArgs(
        [
            PolicyResource(
                r.type, r.state or r.inputs, r.urn, r.name, options(r.protect), None, None, [], {}
            )
            for r in real_stack.resources
            if r.custom
        ]
    )
    for policy in policies.POLICIES:
        if isinstance(policy, policies.StackValidationPolicy):
            policy.validate(
                stack, lambda message, urn=None, name=policy.name: found.append((name, message))
            )
    assert found == []


def test_the_rules_see_the_real_read_commands_and_install():
    """Guards the rules against matching nothing: the real resources are what they inspect."""
    dev = deploy()
    reads = [
        r
        for r in dev.resources
        if r.type == policies.REMOTE_COMMAND and policies.SECRET_FILES.search(r.inputs["create"])
    ]
    assert len(reads) == 3  # kubeconfig, node token, agent token
    installs = [
        r
        for r in dev.resources
        if policies.K3S_VERSION_ASSIGNMENT.search(str(r.inputs.get("stdin")))
    ]
    assert len(installs) == 1


# --- the pack as the CLI runs it


@pytest.fixture(scope="module")
def running_pack():
    """`python -m pulumi.policy <engine> policy/`, as pulumi-language-python starts a policy pack (RunPlugin)."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(PROJECT_DIR / "policy")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        port = process.stdout.readline().strip()
        assert port.isdigit(), process.stderr.read()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.kill()
        process.wait()


def test_the_pack_starts_and_reports_its_policies(running_pack):
    info = running_pack.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "lightsail-k3s"
    assert {p.name for p in info.policies} == {p.name for p in policies.POLICIES}


def test_the_pack_refuses_ssh_open_to_the_internet(running_pack):
    properties = struct_pb2.Struct()
    properties.update({"portInfos": [port("tcp", 22, 22, ["0.0.0.0/0"])]})
    request = analyzer_pb2.AnalyzeRequest(
        type=policies.FIREWALL, properties=properties, urn=DEV_URN, name="fw"
    )
    response = running_pack.Analyze(request, timeout=30)
    assert [d.policyName for d in response.diagnostics] == ["admin-ports-not-public"]
    assert response.diagnostics[0].enforcementLevel == analyzer_pb2.MANDATORY


def test_cpu_budget_sums_the_baselines_of_every_node():
    # Two small_3_0 nodes sustain 2 x 400m, 2 x 100m of it for k3s: 12 x 50m fits, 13 x 50m does not.
    def two_nodes(replicas):
        args = budget_stack("small_3_0", replicas, "50m")
        return StackValidationArgs(
            [stack_resource(policies.INSTANCE, {"bundleId": "small_3_0"}, "agent"), *args.resources]
        )

    assert violations(policies.validate_cpu_budget, two_nodes(12)) == []
    found = violations(policies.validate_cpu_budget, two_nodes(13))
    assert len(found) == 1 and "850m" in found[0] and "baseline of 800m" in found[0]
