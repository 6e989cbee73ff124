"""The dev stack on the mock engine: resources, options and outputs of the core cluster."""

import hashlib

import yaml

from components.catalog import BUNDLES
from tests.helpers import (
    COMMAND,
    FIREWALL,
    INSTANCE,
    PROJECT_DIR,
    STATIC_IP,
    command,
    deploy,
    install_settings,
)
from tools.mockengine import (
    MOCK_AGENT_SECRET,
    MOCK_AGENT_TOKEN,
    MOCK_NODE_TOKEN,
    MOCK_STATIC_IP,
    private_ip_for,
)

# The dev stack's resources, by the component that owns each. Named one by one: a resource added,
# dropped, renamed or moved to another component fails the tests below until it is listed here.
DEV_RESOURCES = {
    "LightsailHost": [
        ("tls:index/privateKey:PrivateKey", "lightsail-k3s-dev-ssh"),
        ("tls:index/privateKey:PrivateKey", "lightsail-k3s-dev-host-key"),
        ("aws:lightsail/keyPair:KeyPair", "lightsail-k3s-dev-key"),
        (INSTANCE, "lightsail-k3s-dev-instance"),
        (STATIC_IP, "lightsail-k3s-dev-ip"),
        ("aws:lightsail/staticIpAttachment:StaticIpAttachment", "lightsail-k3s-dev-ip-attachment"),
        (FIREWALL, "lightsail-k3s-dev-firewall"),
        (COMMAND, "lightsail-k3s-dev-wait-for-boot"),
    ],
    "K3sServer": [
        (COMMAND, "lightsail-k3s-dev-install"),
        (COMMAND, "lightsail-k3s-dev-read-kubeconfig"),
        (COMMAND, "lightsail-k3s-dev-read-node-token"),
        (COMMAND, "lightsail-k3s-dev-read-agent-token"),
        (COMMAND, "lightsail-k3s-dev-read-certificate-expiry"),
        ("random:index/randomPassword:RandomPassword", "lightsail-k3s-dev-agent-secret"),
        ("pulumi:providers:kubernetes", "lightsail-k3s-dev-kubernetes"),
    ],
    "LightsailAlarms": [
        ("pulumi:providers:aws-native", "lightsail-k3s-dev-aws-native"),
        ("aws-native:lightsail:Alarm", "lightsail-k3s-dev-burst-capacity-server"),
        ("aws-native:lightsail:Alarm", "lightsail-k3s-dev-status-check-server"),
    ],
    # The demo app of Pulumi.dev.yaml and its namespace.
    "Apps": [
        ("kubernetes:core/v1:Namespace", "lightsail-k3s-dev-namespace"),
        ("kubernetes:core/v1:LimitRange", "lightsail-k3s-dev-limits"),
        ("kubernetes:core/v1:ResourceQuota", "lightsail-k3s-dev-quota"),
        ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "lightsail-k3s-dev-ingress-policy"),
        ("kubernetes:networking.k8s.io/v1:NetworkPolicy", "lightsail-k3s-dev-egress-policy"),
        ("kubernetes:apps/v1:Deployment", "lightsail-k3s-dev-whoami-deployment"),
        ("kubernetes:core/v1:Service", "lightsail-k3s-dev-whoami-service"),
        ("kubernetes:networking.k8s.io/v1:Ingress", "lightsail-k3s-dev-ingress-default-host"),
    ],
    # The credentials of examples/consumer, the dev stack's one consumer.
    "ScopedKubeconfigs": [
        ("kubernetes:core/v1:Namespace", "lightsail-k3s-dev-consumers-namespace"),
        ("kubernetes:core/v1:ServiceAccount", "lightsail-k3s-dev-consumer-example-account"),
        (
            "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
            "lightsail-k3s-dev-consumer-example-apps",
        ),
        ("kubernetes:core/v1:Secret", "lightsail-k3s-dev-consumer-example-token"),
    ],
}


def test_declares_the_core_resource_set(dev):
    expected = [resource for resources in DEV_RESOURCES.values() for resource in resources]
    assert sorted((r.type, r.name) for r in dev.resources if r.custom) == sorted(expected)


def test_every_resource_is_a_child_of_its_component(dev):
    owner = {
        name: component for component, resources in DEV_RESOURCES.items() for _, name in resources
    }
    for resource in dev.resources:
        if resource.custom:
            parent_type = resource.parent.split("::")[2].split("$")[-1]
            assert parent_type == f"lightsail-k3s:index:{owner[resource.name]}", (
                resource.name,
                parent_type,
            )


def test_instance_uses_the_configured_bundle_blueprint_and_zone(dev):
    instance = dev.one(INSTANCE)
    assert instance.inputs["bundleId"] == "small_3_0"
    assert instance.inputs["blueprintId"] == "ubuntu_24_04"
    assert instance.inputs["availabilityZone"] == "ap-northeast-2a"
    # Its only user data installs the SSH host key (tests/test_host_keys.py).
    assert instance.inputs["userData"].startswith("#!/usr/bin/env bash\n")
    assert "addOn" not in instance.inputs
    assert not instance.protect


def test_firewall_opens_ssh_and_api_to_admins_and_http_to_all_only():
    firewall = deploy(adminCidrs=["1.2.3.0/24", "5.6.7.8/32"]).one(FIREWALL)
    rules = {(p["protocol"], p["fromPort"], p["toPort"]): p for p in firewall.inputs["portInfos"]}
    assert set(rules) == {("tcp", 22, 22), ("tcp", 6443, 6443), ("tcp", 80, 80), ("tcp", 443, 443)}
    for port in (22, 6443):
        assert rules[("tcp", port, port)]["cidrs"] == ["1.2.3.0/24", "5.6.7.8/32"]
        assert "ipv6Cidrs" not in rules[("tcp", port, port)]
    for port in (80, 443):
        assert rules[("tcp", port, port)]["cidrs"] == ["0.0.0.0/0"]
        assert rules[("tcp", port, port)]["ipv6Cidrs"] == ["::/0"]


def test_firewall_replacement_deletes_first(dev):
    assert dev.one(FIREWALL).delete_before_replace


def test_static_ip_moves_to_a_replacement_instance_detach_first(dev):
    assert dev.one("aws:lightsail/staticIpAttachment:StaticIpAttachment").delete_before_replace


def test_every_instance_sets_its_replacement_order_itself():
    """Every instance sends the order as defined, never left to the provider's diff (see
    components/host.py): the first server create-first (its replacement is a new cluster), the
    further servers and agents delete-first, so a joining node leaves before its successor
    joins under its name (tests/test_replacement.py)."""
    instances = deploy(serverCount=3, agentCount=1).of_type(INSTANCE)
    assert {
        instance.name: (instance.delete_before_replace_defined, instance.delete_before_replace)
        for instance in instances
    } == {
        "lightsail-k3s-dev-instance": (True, False),
        "lightsail-k3s-dev-server-2-instance": (True, True),
        "lightsail-k3s-dev-server-3-instance": (True, True),
        "lightsail-k3s-dev-agent-1-instance": (True, True),
    }


def test_generated_key_is_imported_so_lightsail_keeps_no_private_key(dev):
    key_pair = dev.one("aws:lightsail/keyPair:KeyPair")
    assert key_pair.inputs["publicKey"].startswith("ssh-ed25519 ")
    assert dev.named("lightsail-k3s-dev-ssh").inputs["algorithm"] == "ED25519"


def test_user_public_key_is_imported_and_no_key_is_generated():
    public_key = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmcH1X2tFfSZVmWmXbb1TMzDJV0ZfHjVQW4XWm4K6jD me@laptop"
    )
    deployment = deploy(sshPublicKey=public_key, environ={"SSH_AUTH_SOCK": "/tmp/agent.sock"})
    assert [k.name for k in deployment.of_type("tls:index/privateKey:PrivateKey")] == [
        "lightsail-k3s-dev-host-key"
    ]
    assert deployment.one("aws:lightsail/keyPair:KeyPair").inputs["publicKey"] == public_key
    assert "sshPrivateKey" not in deployment.outputs
    assert deployment.outputs["sshCommand"].value == f"ssh ubuntu@{MOCK_STATIC_IP}"
    install = command(deployment, "install")
    assert install.inputs["connection"]["agentSocketPath"] == "/tmp/agent.sock"
    assert "privateKey" not in install.inputs["connection"]


def test_protect_guards_instance_and_static_ip():
    deployment = deploy(protect=True)
    assert deployment.one(INSTANCE).protect
    assert deployment.one(STATIC_IP).protect


def test_protect_is_on_unless_a_stack_turns_it_off(dev):
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]["protect"]
    assert declared == {**declared, "type": "boolean", "default": True}
    # protect=None removes the key altogether, so the program's own default shows.
    unset = deploy(protect=None)
    assert unset.one(INSTANCE).protect
    assert unset.one(STATIC_IP).protect
    # Pulumi.dev.yaml turns it off for the disposable dev stack.
    assert not dev.one(INSTANCE).protect


def test_provider_leaves_delete_unreachable_unset_by_default(dev):
    """Set even to false, the option would override PULUMI_K8S_DELETE_UNREACHABLE (pulumi-kubernetes provider.go)."""
    assert "deleteUnreachable" not in dev.one("pulumi:providers:kubernetes").inputs
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"][
        "deleteUnreachable"
    ]
    assert declared == {**declared, "type": "boolean", "default": False}


def test_delete_unreachable_is_an_explicit_opt_in():
    provider = deploy(deleteUnreachable=True).one("pulumi:providers:kubernetes")
    assert provider.inputs["deleteUnreachable"] == "true"


def test_delete_unreachable_follows_the_providers_environment_variable_when_not_configured():
    environ = {"PULUMI_K8S_DELETE_UNREACHABLE": "true"}
    provider = deploy(deleteUnreachable=False, environ=environ).one("pulumi:providers:kubernetes")
    assert provider.inputs["deleteUnreachable"] == "true"


def test_auto_snapshot_and_tags_reach_the_lightsail_resources():
    deployment = deploy(autoSnapshotTime="18:00", tags={"team": "platform", "cost-center": 42})
    instance = deployment.one(INSTANCE)
    assert instance.inputs["addOn"] == {
        "type": "AutoSnapshot",
        "snapshotTime": "18:00",
        "status": "Enabled",
    }
    for type_ in (INSTANCE, "aws:lightsail/keyPair:KeyPair"):
        assert deployment.one(type_).inputs["tags"] == {"team": "platform", "cost-center": "42"}


def test_commands_connect_to_the_static_ip_as_the_instance_user(dev):
    for suffix in ("wait-for-boot", "install", "read-kubeconfig", "read-node-token"):
        connection = command(dev, suffix).inputs["connection"]
        assert connection["host"] == MOCK_STATIC_IP
        assert connection["user"] == "ubuntu"
        assert "connection" in command(dev, suffix).secret_inputs, (
            "the SSH private key must stay secret"
        )


def test_debian_blueprint_connects_as_admin():
    deployment = deploy(blueprintId="debian_12")
    assert command(deployment, "install").inputs["connection"]["user"] == "admin"
    assert deployment.outputs["sshUser"].value == "admin"


def test_wait_step_retries_dials_without_limit_under_its_own_timeout(dev):
    wait = command(dev, "wait-for-boot")
    assert wait.inputs["connection"]["dialErrorLimit"] == -1
    assert wait.custom_timeouts["create"] == "15m"
    assert "cloud-init status --wait" in wait.inputs["stdin"]
    for dependency in ("lightsail-k3s-dev-ip-attachment", "lightsail-k3s-dev-firewall"):
        assert dev.depends_on(wait, dev.named(dependency))


def test_install_feeds_the_packaged_script_its_settings_on_stdin(dev):
    install = command(dev, "install")
    assert install.inputs["create"] == "sudo bash -s"
    script = (PROJECT_DIR / "components" / "remote" / "install-k3s-server.sh").read_text()
    assert install.inputs["stdin"].endswith(script)
    assignments, config = install_settings(install)
    assert assignments["K3S_VERSION"] == "v1.36.1+k3s1"
    assert assignments["NODE_NAME"] == "lightsail-k3s-dev"
    assert config == {
        "node-name": "lightsail-k3s-dev",
        "write-kubeconfig-mode": "0600",
        "secrets-encryption": True,
        "tls-san": [MOCK_STATIC_IP],
        "agent-token": MOCK_AGENT_SECRET,
        # CIS hardening items; tests/test_upgrades_and_cis.py checks them on the node.
        "protect-kernel-defaults": True,
        "kube-apiserver-arg": config["kube-apiserver-arg"],
        "kubelet-arg": config["kubelet-arg"],
    }
    assert "stdin" in install.secret_inputs, "the agent token rides in the install's stdin"
    assert dev.depends_on(install, command(dev, "wait-for-boot"))


def test_version_change_is_an_in_place_update_and_instance_replacement_reruns_the_install(dev):
    install = command(dev, "install")
    # Changed inputs other than triggers run `update`: the same idempotent install.
    assert install.inputs["update"] == install.inputs["create"]
    # Replacing the instance changes its ARN; the static IP (the SSH host) does not.
    assert install.inputs["triggers"] == [dev.one(INSTANCE).state["arn"]]
    upgraded = command(deploy(k3sVersion="v1.36.2+k3s1"), "install")
    assert install_settings(upgraded)[0]["K3S_VERSION"] == "v1.36.2+k3s1"
    assert upgraded.inputs["triggers"] == install.inputs["triggers"], (
        "an upgrade must not replace (reinstall)"
    )


def test_secret_reads_keep_stdout_secret_and_unlogged(dev):
    for suffix, path in (
        ("read-kubeconfig", "/etc/rancher/k3s/k3s.yaml"),
        ("read-node-token", "/var/lib/rancher/k3s/server/node-token"),
        ("read-agent-token", "/var/lib/rancher/k3s/server/agent-token"),
    ):
        read = command(dev, suffix)
        assert read.inputs["create"] == f"sudo cat {path}"
        assert "stdout" in read.additional_secret_outputs
        assert read.inputs["logging"] == "none"
        assert dev.depends_on(read, command(dev, "install"))
        # Re-read whenever the install re-runs, or certRotation (0 by default) rotates the certificates.
        install_digest = hashlib.sha256(
            command(dev, "install").inputs["stdin"].encode()
        ).hexdigest()
        assert read.inputs["triggers"] == [dev.one(INSTANCE).state["arn"], install_digest, 0]


def test_secret_outputs_are_secret(dev):
    # A node's restart digest is taken of its install's stdin, which carries a token.
    for name in ("kubeconfig", "nodeToken", "agentToken", "sshPrivateKey", "nodeRestartDigests"):
        assert dev.outputs[name].secret, name
    assert dev.outputs["nodeToken"].value == MOCK_NODE_TOKEN
    assert dev.outputs["agentToken"].value == MOCK_AGENT_TOKEN


def test_kubeconfig_points_at_the_static_ip_under_the_stack_name(dev):
    kubeconfig = yaml.safe_load(dev.outputs["kubeconfig"].value)
    assert kubeconfig["current-context"] == "lightsail-k3s-dev"
    assert [c["name"] for c in kubeconfig["clusters"]] == ["lightsail-k3s-dev"]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{MOCK_STATIC_IP}:6443"
    assert kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] == "bW9jay1jYQ=="
    assert kubeconfig["contexts"] == [
        {
            "name": "lightsail-k3s-dev",
            "context": {"cluster": "lightsail-k3s-dev", "user": "lightsail-k3s-dev"},
        }
    ]
    assert kubeconfig["users"][0]["name"] == "lightsail-k3s-dev"
    assert kubeconfig["users"][0]["user"]["client-key-data"] == "bW9jay1rZXk="


def test_outputs_contract(dev):
    assert set(dev.outputs) == {
        "publicIp",
        "privateIp",
        "instanceName",
        "sshUser",
        "sshHostKey",
        "sshCommand",
        "sshPrivateKey",
        "kubeApiUrl",
        "kubeconfig",
        "nodeToken",
        "kubeconfigExpiresAt",
        "certificatesExpireAt",
        "agentToken",
        "nodes",
        "nodeRestartDigests",
        "k3sVersion",
        "region",
        "bundleId",
        "monthlyCostUsd",
        "nameServers",
        "costBreakdown",
        "appUrl",
        "appNamespace",
        "apps",
        "consumerKubeconfigs",
    }
    values = {key: output.value for key, output in dev.outputs.items()}
    assert values["publicIp"] == MOCK_STATIC_IP
    assert values["privateIp"] == private_ip_for("lightsail-k3s-dev-instance")
    assert values["instanceName"] == dev.one(INSTANCE).state["name"]
    assert values["kubeApiUrl"] == f"https://{MOCK_STATIC_IP}:6443"
    assert values["sshCommand"] == f"ssh -i ~/.ssh/lightsail-k3s-dev ubuntu@{MOCK_STATIC_IP}"
    assert values["k3sVersion"] == "v1.36.1+k3s1"
    assert values["region"] == "ap-northeast-2"
    assert values["bundleId"] == "small_3_0"
    assert values["monthlyCostUsd"] == BUNDLES["small_3_0"].monthly_usd == 12
    for name in ("publicIp", "kubeApiUrl", "k3sVersion", "monthlyCostUsd"):
        assert not dev.outputs[name].secret


def test_monthly_cost_follows_the_bundle():
    assert deploy(bundleId="large_3_0").outputs["monthlyCostUsd"].value == 44


def test_kubernetes_provider_is_stable_across_kubeconfig_rereads_and_waits_for_k3s(dev):
    provider = dev.one("pulumi:providers:kubernetes")
    assert (
        provider.inputs["clusterIdentifier"]
        == "lightsail-k3s-dev@" + dev.one(INSTANCE).state["arn"]
    )
    assert "kubeconfig" in provider.secret_inputs
    assert dev.depends_on(provider, command(dev, "install"))
    upgraded = deploy(k3sVersion="v1.36.2+k3s1").one("pulumi:providers:kubernetes")
    assert upgraded.inputs["clusterIdentifier"] == provider.inputs["clusterIdentifier"]


def test_preview_evaluates_the_same_program():
    deployment = deploy(preview=True)
    assert deployment.one(FIREWALL).delete_before_replace
    assert deployment.outputs["kubeconfig"].secret
