"""Agents on the mock engine: hosts, the join over the server's private IP, drain on removal, order, outputs."""

import hashlib
import json

import pytest

from components.catalog import BUNDLES
from tests.helpers import ADMIN_CIDR, COMMAND, INSTANCE, STATIC_IP, deploy, k3s_config
from tools.mockengine import (
    MOCK_AGENT_SECRET,
    MOCK_AGENT_TOKEN,
    MOCK_NODE_TOKEN,
    MOCK_STATIC_IP,
    node_certificate_expiry,
    private_ip_for,
    static_ip_for,
)

SERVER = "lightsail-k3s-dev"
AGENTS = ("lightsail-k3s-dev-agent-1", "lightsail-k3s-dev-agent-2")
SECRETS = (MOCK_AGENT_SECRET, MOCK_AGENT_TOKEN, MOCK_NODE_TOKEN)


@pytest.fixture(scope="module")
def two_agents():
    return deploy(agentCount=2, agentBundleId="micro_3_0", protect=True)


def test_each_agent_is_a_host_and_an_agent_without_a_key_or_address_of_its_own(two_agents):
    names = sorted(r.name for r in two_agents.resources if r.custom and r.name.startswith(AGENTS))
    assert names == sorted(
        f"{agent}-{suffix}"
        for agent in AGENTS
        for suffix in (
            "host-key",
            "instance",
            "firewall",
            "wait-for-boot",
            "install",
            "node",
            "k3s-stop",
            "join",
            "read-certificate-expiry",
        )
    )
    assert len(two_agents.of_type(INSTANCE)) == 3
    assert [r.name for r in two_agents.of_type(STATIC_IP)] == [f"{SERVER}-ip"]
    server_key = two_agents.named(f"{SERVER}-key").state["name"]
    for agent in AGENTS:
        instance = two_agents.named(f"{agent}-instance")
        assert instance.inputs["keyPairName"] == server_key
        assert instance.inputs["bundleId"] == "micro_3_0"


def test_agents_are_not_protected_so_lowering_agent_count_can_remove_them(two_agents):
    assert two_agents.named(f"{SERVER}-instance").protect
    for agent in AGENTS:
        assert not two_agents.named(f"{agent}-instance").protect


def test_agent_firewall_opens_ssh_to_admins_only_and_nothing_between_nodes(two_agents):
    for agent in AGENTS:
        rules = two_agents.named(f"{agent}-firewall").inputs["portInfos"]
        assert rules == [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrs": [ADMIN_CIDR]}]


def test_public_agents_get_a_static_ip_and_serve_http_and_https():
    deployment = deploy(agentCount=1, agentPublicIps=True)
    agent = AGENTS[0]
    assert deployment.named(f"{agent}-ip").type == STATIC_IP
    rules = {
        (p["fromPort"], tuple(p["cidrs"]))
        for p in deployment.named(f"{agent}-firewall").inputs["portInfos"]
    }
    assert rules == {(22, (ADMIN_CIDR,)), (80, ("0.0.0.0/0",)), (443, ("0.0.0.0/0",))}
    nodes = {node["name"]: node for node in deployment.outputs["nodes"].value}
    assert nodes[agent]["publicIp"] == static_ip_for(f"{agent}-ip-attachment")


def test_agents_join_the_server_over_its_private_ip_with_the_agent_token(two_agents):
    server_private_ip = private_ip_for(f"{SERVER}-instance")
    for agent in AGENTS:
        install = two_agents.named(f"{agent}-install")
        assert install.inputs["create"] == install.inputs["update"] == "sudo bash -s"
        config = k3s_config(install)
        assert {key: config[key] for key in ("node-name", "server", "token")} == {
            "node-name": agent,
            "server": f"https://{server_private_ip}:6443",
            "token": MOCK_AGENT_TOKEN,
        }
        assert "stdin" in install.secret_inputs
        assert install.inputs["logging"] == "none"
        assert {"stdout", "stderr"} <= set(install.additional_secret_outputs)
        # The install runs on the agent, over SSH to its own (dynamic) public address.
        assert (
            install.inputs["connection"]["host"]
            == two_agents.named(f"{agent}-instance").state["publicIpAddress"]
        )
        assert install.inputs["triggers"] == [two_agents.named(f"{agent}-instance").state["arn"]]


# Kubernetes' default disk thresholds, which every node's eviction-hard lists too (components/capacity.py).
DISK_THRESHOLDS = (
    "nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%,imagefs.inodesFree<5%"
)


def test_each_agents_kubelet_keeps_the_reservations_of_the_agents_own_bundle(two_agents):
    # micro_3_0 agents (1 GB) on a small_3_0 server (2 GB): an agent keeps room for k3s' agent alone.
    server = k3s_config(two_agents.named(f"{SERVER}-install"))
    assert server["kubelet-arg"][1:] == [
        "system-reserved=cpu=100m,memory=256Mi",
        "kube-reserved=cpu=100m,memory=768Mi",
        f"eviction-hard=memory.available<100Mi,{DISK_THRESHOLDS}",
    ]
    for agent in AGENTS:
        assert k3s_config(two_agents.named(f"{agent}-install"))["kubelet-arg"][1:] == [
            "system-reserved=cpu=100m,memory=192Mi",
            "kube-reserved=cpu=100m,memory=256Mi",
            f"eviction-hard=memory.available<100Mi,{DISK_THRESHOLDS}",
        ]


def test_a_larger_agent_bundle_keeps_more():
    deployment = deploy(agentCount=1, agentBundleId="large_3_0")
    assert k3s_config(deployment.named(f"{AGENTS[0]}-install"))["kubelet-arg"][1:] == [
        "system-reserved=cpu=100m,memory=384Mi",
        "kube-reserved=cpu=100m,memory=256Mi",
        f"eviction-hard=memory.available<256Mi,{DISK_THRESHOLDS}",
    ]


def test_agents_kubelet_is_set_up_as_the_servers(two_agents):
    """The same keys and flags, from the one function (components/k3s.py kubelet_config): the CIS
    settings equal, the reservations the node's own."""
    server = k3s_config(two_agents.named(f"{SERVER}-install"))
    kubelet_keys = ("protect-kernel-defaults", "kubelet-arg")
    assert server["protect-kernel-defaults"] is True
    assert server["kubelet-arg"][0] == "streaming-connection-idle-timeout=5m"
    for agent in AGENTS:
        config = k3s_config(two_agents.named(f"{agent}-install"))
        assert set(config) - {"node-name", "server", "token"} == set(kubelet_keys)
        assert config["protect-kernel-defaults"] == server["protect-kernel-defaults"]
        assert [arg.split("=")[0] for arg in config["kubelet-arg"]] == [
            arg.split("=")[0] for arg in server["kubelet-arg"]
        ]
        assert config["kubelet-arg"][0] == server["kubelet-arg"][0]


def test_no_token_appears_in_any_commands_plain_inputs(two_agents):
    commands = two_agents.of_type(COMMAND)
    # Boot waits; the server's install and four reads; each agent's install, node, k3s-stop, join
    # and expiry read.
    assert len(commands) == 3 + 5 + 2 * 5
    for resource in commands:
        plain = {
            key: value
            for key, value in resource.inputs.items()
            if key not in resource.secret_inputs
        }
        text = json.dumps(plain)
        for secret in SECRETS:
            assert secret not in text, (resource.name, secret[:6])


def test_removing_an_agent_drains_its_node_on_the_server_before_the_instance_goes(two_agents):
    for agent in AGENTS:
        join = two_agents.named(f"{agent}-join")
        assert join.inputs["connection"]["host"] == MOCK_STATIC_IP, (
            "drained through the first server"
        )
        assert join.inputs["create"] == "sudo bash -s -- ready"
        assert join.inputs["delete"] == "sudo bash -s -- drain"
        assert join.inputs["stdin"].startswith(f"NODE_NAME={agent}\n")
        assert "sudo bash -s -- drain" not in (join.inputs["update"], join.inputs["create"])
        # Pulumi deletes dependents first: the join (drain) before the install, before the instance.
        assert two_agents.depends_on(join, two_agents.named(f"{agent}-install"))
        assert two_agents.depends_on(
            two_agents.named(f"{agent}-install"), two_agents.named(f"{agent}-instance")
        )
        # A replaced agent re-uses its node name: the old node goes first.
        assert join.delete_before_replace
        assert join.inputs["triggers"] == [two_agents.named(f"{agent}-instance").state["arn"]]


def test_removing_an_agent_stops_its_k3s_between_the_drain_and_the_nodes_deletion(two_agents):
    """Dependents are deleted first: the join (drain), then -k3s-stop on the agent itself, then
    -node (the Node's deletion on the first server). None of them runs anything on create."""
    for agent in AGENTS:
        join, stop, node = (
            two_agents.named(f"{agent}-{suffix}") for suffix in ("join", "k3s-stop", "node")
        )
        instance = two_agents.named(f"{agent}-instance")
        assert stop.urn in join.dependencies
        assert node.urn in stop.dependencies
        assert two_agents.depends_on(node, two_agents.named(f"{agent}-install"))
        assert stop.inputs["connection"]["host"] == instance.state["publicIpAddress"]
        assert stop.inputs["delete"] == "sudo bash -s"
        assert stop.inputs["stdin"].startswith(f"NODE_NAME={agent}\nK3S_UNIT=k3s-agent\n")
        assert node.inputs["connection"]["host"] == MOCK_STATIC_IP
        assert node.inputs["delete"] == "sudo bash -s -- delete"
        assert node.inputs["stdin"].startswith(f"NODE_NAME={agent}\nWAIT_LIB_B64=")
        for command in (stop, node):
            assert "create" not in command.inputs and "update" not in command.inputs
            assert command.inputs["triggers"] == [instance.state["arn"]]
        # Replaced, the instance goes first, and with it these (tests/test_replacement.py).
        assert instance.delete_before_replace
    assert not two_agents.named(f"{SERVER}-instance").delete_before_replace


def test_an_agents_ready_wait_runs_again_whenever_its_install_does(two_agents):
    """The join's stdin carries the release the node must report and the digest of the
    install's stdin: whatever updates the install (a new k3sVersion, a config change) updates
    the join, which pulumi-command applies by running `update`, the Ready wait, in place."""
    for agent in AGENTS:
        join, install = two_agents.named(f"{agent}-join"), two_agents.named(f"{agent}-install")
        assert join.inputs["update"] == "sudo bash -s -- ready"
        assert "EXPECTED_VERSION=v1.36.1+k3s1\n" in join.inputs["stdin"]
        digest = hashlib.sha256(install.inputs["stdin"].encode()).hexdigest()
        assert f"INSTALL_DIGEST={digest}\n" in join.inputs["stdin"]
        assert "stdin" in join.secret_inputs, "a digest of a secret stays secret"
        # Neither is a trigger: a changed trigger replaces the join, and that runs `drain`.
        assert join.inputs["triggers"] == [two_agents.named(f"{agent}-instance").state["arn"]]
        assert join.custom_timeouts["update"] == join.custom_timeouts["create"]


def test_new_agents_install_after_the_server_all_at_once(two_agents):
    first, second = (two_agents.named(f"{agent}-install") for agent in AGENTS)
    for agent in AGENTS:
        install = two_agents.named(f"{agent}-install")
        assert two_agents.depends_on(install, two_agents.named(f"{SERVER}-install"))
        assert two_agents.depends_on(install, two_agents.named(f"{agent}-wait-for-boot"))
    assert not two_agents.depends_on(second, two_agents.named(f"{AGENTS[0]}-join"))
    assert not two_agents.depends_on(first, two_agents.named(f"{AGENTS[1]}-join"))


def test_agents_whose_k3s_restarts_install_one_at_a_time(two_agents):
    """A new kubelet setting (another agent bundle) restarts every agent's k3s: each waits for the
    one before it, as on an upgrade (tests/test_rollout.py has the cases)."""
    previous = {key: output.value for key, output in two_agents.outputs.items()}
    changed = deploy(
        agentCount=2, agentBundleId="small_3_0", protect=True, previous_outputs=previous
    )
    first, second = (changed.named(f"{agent}-install") for agent in AGENTS)
    assert changed.depends_on(second, changed.named(f"{AGENTS[0]}-join"))
    assert not changed.depends_on(first, changed.named(f"{AGENTS[1]}-join"))
    for agent in AGENTS:
        assert changed.depends_on(
            changed.named(f"{agent}-install"), changed.named(f"{SERVER}-install")
        )


def test_nodes_output_lists_every_node_and_cost_sums_them(two_agents):
    assert two_agents.outputs["nodes"].value == [
        {
            "name": SERVER,
            "role": "server",
            "bundleId": "small_3_0",
            "blueprintId": "ubuntu_24_04",
            "privateIp": private_ip_for(f"{SERVER}-instance"),
            "instanceName": two_agents.named(f"{SERVER}-instance").state["name"],
            # No data disk on a dev stack; the next run's checks read it (components/rollout.py).
            "dataDiskGb": 0,
            "certificatesExpireAt": node_certificate_expiry(SERVER).isoformat(),
            "publicIp": MOCK_STATIC_IP,
        },
        *(
            {
                "name": agent,
                "role": "agent",
                "bundleId": "micro_3_0",
                "blueprintId": "ubuntu_24_04",
                "privateIp": private_ip_for(f"{agent}-instance"),
                "instanceName": two_agents.named(f"{agent}-instance").state["name"],
                "certificatesExpireAt": node_certificate_expiry(agent).isoformat(),
            }
            for agent in AGENTS
        ),
    ]
    assert (
        two_agents.outputs["monthlyCostUsd"].value
        == BUNDLES["small_3_0"].monthly_usd + 2 * BUNDLES["micro_3_0"].monthly_usd
    )
    assert two_agents.outputs["agentToken"].secret


def test_agent_bundle_defaults_to_the_server_bundle():
    deployment = deploy(agentCount=1, bundleId="medium_3_0")
    assert deployment.named(f"{AGENTS[0]}-instance").inputs["bundleId"] == "medium_3_0"
    assert deployment.outputs["monthlyCostUsd"].value == 2 * BUNDLES["medium_3_0"].monthly_usd
