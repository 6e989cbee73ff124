"""Scaling on real AWS: an agent joins over the private network, then three servers take over and the agent is drained away.

Same prerequisites as test_cluster.py (Pulumi CLI, AWS credentials; run by `make e2e`). Creates up to
five billed Lightsail instances for about half an hour. What the mock engine cannot show: that a k3s
agent registers over the private IP with the agent token while the firewall keeps node ports closed,
that a single SQLite server converts to etcd and two servers join it, and that lowering agentCount
drains and deletes the node before its instance goes.
"""

from pulumi import automation as auto

from components.catalog import BUNDLES
from tests.e2e.aws import kube_get, requires_aws, throwaway_backend, throwaway_cluster, timed_up

pytestmark = requires_aws()


def cluster_nodes(outputs) -> dict[str, dict]:
    """Node name -> its labels and whether it is Ready, through the API with the kubeconfig output."""
    nodes = {}
    for item in kube_get(outputs, "/api/v1/nodes")["items"]:
        ready = next(c["status"] for c in item["status"]["conditions"] if c["type"] == "Ready")
        nodes[item["metadata"]["name"]] = {
            "labels": item["metadata"]["labels"],
            "ready": ready == "True",
        }
    return nodes


def test_agent_joins_then_three_servers_take_over_and_the_agent_is_drained():
    with (
        throwaway_backend() as backend,
        throwaway_cluster("e2e-scale", backend, agentCount="1", agentBundleId="micro_3_0") as stack,
    ):
        name = f"lightsail-k3s-{stack.name}"
        outputs = timed_up(stack, "create: 1 server, 1 agent").outputs

        nodes = cluster_nodes(outputs)
        assert set(nodes) == {name, f"{name}-agent-1"}
        assert all(node["ready"] for node in nodes.values())
        # k3s writes its token files as K10<CA hash>::<credentials> (k3s-io/k3s pkg/server/server.go,
        # writeToken with clientaccess.FormatToken).
        assert outputs["agentToken"].value.startswith("K10")
        # The program's own sum of list prices (components/cost.py), no answer from AWS: the server's
        # bundle and the agent's; the server's static IP is free while attached, the agent has none.
        assert (
            outputs["monthlyCostUsd"].value
            == BUNDLES[outputs["bundleId"].value].monthly_usd + BUNDLES["micro_3_0"].monthly_usd
        )

        stack.set_config("serverCount", auto.ConfigValue("3"))
        stack.set_config("agentCount", auto.ConfigValue("0"))
        outputs = timed_up(stack, "change: to 3 servers, 0 agents").outputs

        nodes = cluster_nodes(outputs)
        assert set(nodes) == {name, f"{name}-server-2", f"{name}-server-3"}
        for node in nodes.values():
            assert node["ready"]
            # k3s labels every etcd member so (k3s-io/k3s pkg/server/server.go, ETCDRoleLabelKey).
            assert node["labels"].get("node-role.kubernetes.io/etcd") == "true"
        assert [node["role"] for node in outputs["nodes"].value] == ["server"] * 3


def test_three_servers_and_two_agents_are_created_servers_one_at_a_time_agents_at_once():
    """A new cluster of five: the further servers join etcd one after the other, both agents at
    once after them (components/rollout.py). Its `up` is the suite's create time for 3+2 nodes."""
    with (
        throwaway_backend() as backend,
        throwaway_cluster(
            "e2e-five", backend, serverCount="3", agentCount="2", agentBundleId="micro_3_0"
        ) as stack,
    ):
        name = f"lightsail-k3s-{stack.name}"
        outputs = timed_up(stack, "create: 3 servers, 2 agents").outputs

        nodes = cluster_nodes(outputs)
        assert set(nodes) == {
            name,
            f"{name}-server-2",
            f"{name}-server-3",
            f"{name}-agent-1",
            f"{name}-agent-2",
        }
        assert all(node["ready"] for node in nodes.values())
        # Every node's digest is kept for the next `up` to compare with.
        assert set(outputs["nodeRestartDigests"].value) == set(nodes)
