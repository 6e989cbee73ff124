"""The engine's replacement order (tools/replacement.py): checked against the engine's own lifecycle
tests, then applied to this stack, where a replaced node must leave before its successor joins."""

from collections.abc import Collection

import pytest

from tests.helpers import (
    ALARM,
    EXPIRY_READS,
    FIRST_SERVER_READS,
    deploy,
    label,
    replace_instance,
)
from tools.replacement import (
    CREATE_REPLACEMENT,
    DELETE_REPLACED,
    Resource,
    Step,
    dependent_replacements,
    deployment,
    happens_before,
)

# --- the engine's cases (pulumi/pulumi pkg/engine/lifecycletest/delete_before_replace_test.go)


def replaces_on_a(resource: Resource, keys: Collection[str]) -> bool:
    # The lifecycle tests' provider: Diff replaces when input "A" differs from the old output.
    return "A" in keys


def test_the_complex_graph_of_test_delete_before_replace():
    """TestDeleteBeforeReplace (generateComplexTestDependencyGraph): A, C and D are providers; a
    change to R replaces the resource R is provider of and the one whose "A" depends on R, not
    the one whose "B" does. Replacing A must replace A, B, C, E, F and K."""
    provider = "pulumi:providers:pkgA"
    resource_type = "pkgA:m:typA"
    snapshot = [
        Resource("A", provider, delete_before_replace=True),
        Resource("B", resource_type, provider="A"),
        Resource("C", provider, dependencies=("A",), property_dependencies={"A": ("A",)}),
        Resource("D", provider, dependencies=("A",), property_dependencies={"B": ("A",)}),
        Resource("E", resource_type, provider="C"),
        Resource("F", resource_type, dependencies=("C",), property_dependencies={"A": ("C",)}),
        Resource("G", resource_type, dependencies=("C",), property_dependencies={"B": ("C",)}),
        Resource("H", resource_type, provider="D"),
        Resource("I", resource_type, dependencies=("D",), property_dependencies={"A": ("D",)}),
        Resource("J", resource_type, dependencies=("D",), property_dependencies={"B": ("D",)}),
        Resource(
            "K", resource_type, dependencies=("F", "G"), property_dependencies={"A": ("F", "G")}
        ),
        Resource(
            "L", resource_type, dependencies=("F", "G"), property_dependencies={"B": ("F", "G")}
        ),
    ]
    steps = deployment(
        snapshot,
        [r.urn for r in snapshot],
        lambda resource, _: {"A"} if resource.urn == "A" else set(),
        replaces_on_a,
    )
    assert {s.urn for s in steps if s.op == CREATE_REPLACEMENT} == set("ABCEFK")
    # All of them go, dependents first, in A's own chain, before A comes back.
    assert [(s.op, s.urn) for s in steps if s.chain == "A"] == [
        *((DELETE_REPLACED, urn) for urn in "KFECB"),
        (DELETE_REPLACED, "A"),
        (CREATE_REPLACEMENT, "A"),
    ]


def explicit_pair(*, delete_before_replace: bool) -> list[Resource]:
    return [
        Resource("resA", "pkgA:index:typ", delete_before_replace=delete_before_replace),
        Resource(
            "resB",
            "pkgA:index:typ",
            dependencies=("resA",),
            property_dependencies={"A": ("resA",)},
        ),
    ]


def changes_res_a(resource: Resource, _) -> set[str]:
    return {"A"} if resource.urn == "resA" else set()


def test_test_explicit_delete_before_replace():
    """TestExplicitDeleteBeforeReplace: resB's "A" depends on resA. Create-before-delete replaces
    resA alone and deletes the old one last; delete-before-replace deletes resB, then resA, then
    creates resA, then resB (its OpReplace and OpSame steps left out)."""
    ops = [
        (s.op, s.urn)
        for s in deployment(
            explicit_pair(delete_before_replace=False),
            ["resA", "resB"],
            changes_res_a,
            replaces_on_a,
        )
    ]
    assert ops == [(CREATE_REPLACEMENT, "resA"), (DELETE_REPLACED, "resA")]
    ops = [
        (s.op, s.urn)
        for s in deployment(
            explicit_pair(delete_before_replace=True),
            ["resA", "resB"],
            changes_res_a,
            replaces_on_a,
        )
    ]
    assert ops == [
        (DELETE_REPLACED, "resB"),
        (DELETE_REPLACED, "resA"),
        (CREATE_REPLACEMENT, "resA"),
        (CREATE_REPLACEMENT, "resB"),
    ]


def test_test_dependency_change_dbr():
    """TestDependencyChangeDBR: resB, registered first and no longer on resA, is not deleted when
    resA is replaced delete-first."""
    steps = deployment(
        explicit_pair(delete_before_replace=True), ["resB", "resA"], changes_res_a, replaces_on_a
    )
    assert [(s.op, s.urn) for s in steps] == [
        (DELETE_REPLACED, "resA"),
        (CREATE_REPLACEMENT, "resA"),
    ]


def test_a_depends_on_alone_never_takes_a_dependent_along():
    snapshot = [
        Resource("root", "t", delete_before_replace=True),
        Resource("after", "t", dependencies=("root",)),
    ]
    assert dependent_replacements(snapshot, "root", replaces_on_a) == []


# --- this stack: a joining node's instance replaced


@pytest.fixture(scope="module")
def ha():
    return deploy(serverCount=3, protect=False, agentCount=2, agentPublicIps=True)


@pytest.fixture(scope="module")
def private_agents():
    return deploy(agentCount=2)


def assert_the_old_node_leaves_before_its_successor_joins(declared, node: str):
    snapshot, steps = replace_instance(declared, node)

    def step(op: str, suffix: str) -> Step:
        urn = declared.named(f"{node}-{suffix}").urn
        (found,) = [s for s in steps if s.op == op and s.urn == urn]
        return found

    def before(first: Step, then: Step) -> bool:
        return happens_before(snapshot, steps, first, then)

    drain = step(DELETE_REPLACED, "join")
    stop = step(DELETE_REPLACED, "k3s-stop")
    node_deleted = step(DELETE_REPLACED, "node")
    new_install = step(CREATE_REPLACEMENT, "install")
    # Pods evicted while the old kubelet runs; k3s stopped on the old host; then its Node goes,
    # and only then does the new host install k3s under the same name.
    assert before(drain, stop)
    assert before(stop, node_deleted)
    assert before(node_deleted, new_install)
    # When k3s stops, SSH still reaches the old host: its firewall, its static IP (if any) and
    # the instance itself go later.
    reachable = ["firewall", "instance"]
    if any(r.name == f"{node}-ip-attachment" for r in declared.resources):
        reachable.append("ip-attachment")
    for suffix in reachable:
        assert before(stop, step(DELETE_REPLACED, suffix)), suffix
    # The node comes back as a whole: its new join waits for Ready after the new install.
    assert before(new_install, step(CREATE_REPLACEMENT, "join"))
    # Nothing of another node is deleted, and no Kubernetes object is: besides the node's own
    # resources and its alarms, at most the first server's reads, which only read files again.
    touched = {s.urn for s in steps if s.op == DELETE_REPLACED}
    own = {
        r.urn
        for r in declared.resources
        if r.name.startswith(f"{node}-") or (r.type == ALARM and r.name.endswith(label(node)))
    }
    assert {r.name for r in declared.resources if r.urn in touched - own} <= (
        FIRST_SERVER_READS | EXPIRY_READS
    )
    assert not [
        r for r in declared.resources if r.urn in touched and r.type.startswith("kubernetes:")
    ]


@pytest.mark.parametrize(
    "node",
    ["lightsail-k3s-dev-server-3", "lightsail-k3s-dev-server-2", "lightsail-k3s-dev-agent-1"],
)
def test_a_replaced_node_leaves_before_its_successor_joins(ha, node):
    assert_the_old_node_leaves_before_its_successor_joins(ha, node)


def test_a_replaced_agent_without_a_public_ip_leaves_before_its_successor_joins(private_agents):
    assert_the_old_node_leaves_before_its_successor_joins(
        private_agents, "lightsail-k3s-dev-agent-2"
    )


def test_a_peer_servers_replacement_touches_no_other_nodes_resources(ha):
    """The servers' certificates name each static IP by its address (the StaticIp's, which no
    instance replaces), not by its attachment's: the first server's config, and the reads that
    hold its digest, stay known, so nothing outside the replaced server is deleted. Through the
    attachment, its address unknown while it moves, the engine would delete and re-create the
    first server's token and kubeconfig reads and every node's certificate-expiry read."""
    node = "lightsail-k3s-dev-server-2"
    _, steps = replace_instance(ha, node)
    names = {r.urn: r.name for r in ha.resources}
    others = {
        names[s.urn]
        for s in steps
        if s.op == DELETE_REPLACED
        and not names[s.urn].startswith(f"{node}-")
        and not names[s.urn].endswith(label(node))
    }
    assert others == set()
    first_install = ha.named("lightsail-k3s-dev-install")
    assert ha.named(f"{node}-ip").urn in first_install.property_dependencies["stdin"]
    assert ha.named(f"{node}-ip-attachment").urn not in first_install.property_dependencies["stdin"]
