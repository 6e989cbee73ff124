"""Which node waits for which: nodes join in parallel on a new cluster, and only the nodes whose k3s
restarts go one at a time.

Servers always go one at a time, the first, then each further one after the one before is Ready: a
joining server is added to etcd as a learner, and etcd admits one learner at a time, so k3s makes a
second joining server retry until the first is promoted ("Waiting for other members to finish
joining etcd cluster", k3s pkg/etcd/etcd.go, Start, retrying on rpctypes.ErrTooManyLearners);
joined at once, the second server's Ready wait would hold the first's catch-up too. Removing them
runs the same chain backwards, so etcd keeps its quorum.

Agents wait for every server. An agent whose k3s restarts in this run (its install or its
certRotation changed since the previous deployment) waits for the agent before it that restarts
too, each Ready before the next, as servers do; an agent new to the cluster, or one that does not
restart, waits for no other agent. Which agents restart is decided when the program runs, from the
previous deployment's `nodeRestartDigests` output (read, like `k3sVersion`, through the stack's
StackReference to itself; known in a preview too) against each node's digest now. A `dependsOn`
is fixed once a resource is declared, but it may be an Output that resolves to the list of
resources (pulumi sdk/python/lib/pulumi/runtime/_depends_on.py, _resolve_depends_on): each
agent's install waits for such a list. In a preview a digest whose inputs are unknown leaves the
list unknown, which the SDK sends as no dependency (the same file: `await outer.future() or []`);
nothing runs in a preview, and `pulumi up` runs the program again with every value known.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pulumi

from .errors import ConfigError

# The output that keeps each node's digest for the next deployment to compare with.
DIGESTS_OUTPUT = "nodeRestartDigests"

# Node name → its restart digest in the previous deployment; None for a node deployed before the
# digests were kept. A node absent is new. The whole map is None when the previous deployment
# cannot tell its nodes (a stack deployed before it exported `nodes`): then every node that
# restarts k3s might be one already running, and all go one at a time.
DeployedNodes = Mapping[str, str | None] | None


def restart_digest(install_stdin: pulumi.Output[str], cert_rotation: int) -> pulumi.Output[str]:
    """The SHA-256 of what restarts a node's k3s: the whole program its install runs (release,
    config.yaml, kubelet settings and whatever else the install renders) and its certRotation.

    A secret whenever the install's stdin is (it carries a token).
    """
    return install_stdin.apply(
        lambda text: hashlib.sha256(f"certRotation={cert_rotation}\n{text}".encode()).hexdigest()
    )


def kept_once_done(
    digest: pulumi.Output[str], read_after: pulumi.Output[Any]
) -> pulumi.Output[str]:
    """The digest to keep in the outputs, known only once `read_after` is: a read on the node after
    its install and Ready wait (its certificates' expiry). An update that stops before a node is
    done never registers the stack's outputs, whose values it cannot resolve, so the previous
    deployment's digest stays, and the next run still counts that node as restarting."""
    return pulumi.Output.all(digest, read_after).apply(lambda values: values[0])


def deployed_nodes(k3s_version: Any, nodes: Any, digests: Any) -> DeployedNodes:
    """The previous deployment's nodes and their digests, from its `k3sVersion`, `nodes` and
    `nodeRestartDigests` outputs (each None when it has none)."""
    if k3s_version is None and nodes is None:
        # Never deployed: a stack has no outputs before its first update.
        return {}
    if not isinstance(nodes, list):
        return None
    kept = digests if isinstance(digests, dict) else {}
    return {
        str(node["name"]): kept.get(node["name"])
        for node in nodes
        if isinstance(node, dict) and "name" in node
    }


def read_deployed_nodes(reference: pulumi.StackReference) -> pulumi.Output[DeployedNodes]:
    """deployed_nodes of the deployment `reference` reads (the stack's own previous one)."""
    return pulumi.Output.all(
        reference.get_output("k3sVersion"),
        reference.get_output("nodes"),
        reference.get_output(DIGESTS_OUTPUT),
    ).apply(lambda values: deployed_nodes(*values))


def restarts(deployed: DeployedNodes, node_name: str, digest: str) -> bool:
    """Whether this run restarts a running node's k3s: a node deployed before whose digest changed
    (or was not kept). A new node restarts nothing that runs; unknown nodes count as running."""
    if deployed is None:
        return True
    if node_name not in deployed:
        return False
    return deployed[node_name] != digest


def restarts_now(
    deployed: pulumi.Input[DeployedNodes], node_name: str, digest: pulumi.Output[str]
) -> pulumi.Output[bool]:
    """restarts, once the previous deployment's nodes and the node's digest are known."""
    return pulumi.Output.all(deployed, digest).apply(
        lambda values: restarts(values[0], node_name, values[1])
    )


def chained(
    restarting: pulumi.Output[bool], last_restarted: pulumi.Input[pulumi.Resource | None]
) -> pulumi.Output[pulumi.Resource | None]:
    """What a node waits for besides its host and the servers: the last node before it whose k3s
    restarts in this run, when its own does too; None otherwise. A `dependsOn` entry that resolves
    to None adds no dependency (_depends_on.py), so the host and the servers, listed beside it,
    stay dependencies in a preview too."""
    return pulumi.Output.all(restarting, last_restarted).apply(
        lambda values: values[1] if values[0] else None
    )


def last_restarted(
    restarting: pulumi.Output[bool],
    done: pulumi.Resource,
    before: pulumi.Input[pulumi.Resource | None],
) -> pulumi.Output[pulumi.Resource | None]:
    """The last node whose k3s restarts, for the next node: this one's `done` if it restarts, else
    the one before it."""
    return pulumi.Output.all(restarting, before).apply(
        lambda values: done if values[0] else values[1]
    )


def servers_bundle_change_refusal(nodes: Any, bundle_id: str) -> tuple[str, str] | None:
    """Why this run may not give a running cluster of several servers a new bundleId, or None.

    A bundle change replaces every server's instance (ForceNew). The further servers are replaced
    delete-first, and nothing makes one's replacement wait for another's Ready (their chains do not
    depend on each other: components/cluster.py; tools/replacement.py models the engine's order,
    pulumi/pulumi pkg/resource/deploy/step_generator.go), so two of three etcd members can be down at
    once and the cluster loses its quorum. `nodes` is the previous deployment's `nodes` output.
    """
    if not isinstance(nodes, list):
        return None
    servers = [node for node in nodes if isinstance(node, dict) and node.get("role") == "server"]
    deployed = sorted({str(node.get("bundleId")) for node in servers})
    if len(servers) < 2 or deployed == [bundle_id]:
        return None
    return (
        f"{bundle_id} would replace all {len(servers)} servers of this running cluster (deployed on "
        f"{', '.join(deployed)}) side by side: two of three etcd members could be down at once, and "
        "the cluster would lose its quorum",
        f"keep bundleId {deployed[0]}; add capacity as agents (agentCount, agentBundleId), or move "
        "to a new stack of the bigger bundle (docs/lifecycle.md, Growing a node)",
    )


def resize_checked(
    nodes: pulumi.Input[Any], bundle_id: str
) -> pulumi.Output[list[pulumi.Resource]]:
    """As k3s.upgrade_checked: nothing to wait for, or the ConfigError for bundleId, raised before
    anything is declared (every resource of the stack depends on it)."""

    def check(deployed_nodes: Any) -> list[pulumi.Resource]:
        refusal = servers_bundle_change_refusal(deployed_nodes, bundle_id)
        if refusal is not None:
            raise ConfigError("bundleId", *refusal)
        return []

    return pulumi.Output.from_input(nodes).apply(check)
