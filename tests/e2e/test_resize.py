"""A bigger bundle on real AWS: small_3_0 to medium_3_0 with the data on a data disk (dataDiskGb).

Same prerequisites as test_cluster.py (Pulumi CLI, AWS credentials; run by `make e2e`); two billed
instances and a 20 GB disk for about half an hour. What the mock engine cannot show: that the old
host stops k3s and unmounts before Lightsail detaches the disk, that the new host mounts the same
file system and k3s starts on it under the same node name, that an app's local-path volume keeps
what it wrote, and that the kubeconfig output still works. Each phase's duration (instance, boot,
disk, install, Ready) is printed, from the engine's own events, so the first run with credentials
gives real figures for docs/lifecycle.md.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml
from pulumi import automation as auto

from tests.e2e.aws import (
    fetch,
    kube_get,
    phase_durations,
    requires_aws,
    throwaway_backend,
    throwaway_cluster,
    tls_context_from,
    wait_for,
)
from tests.helpers import PROJECT_DIR

pytestmark = requires_aws()

MANIFESTS = (PROJECT_DIR / "tests" / "e2e" / "resize-manifests").relative_to(PROJECT_DIR)
MARKER = re.compile(r"marker=([0-9a-f]{32})")


def report(title: str, durations: Mapping[str, int]) -> None:
    print(f"{title}: " + ", ".join(f"{phase} {seconds}s" for phase, seconds in durations.items()))


def written_marker(outputs) -> str:
    """The value the writer's volume holds, from its log (plain text, not JSON)."""
    kubeconfig = yaml.safe_load(outputs["kubeconfig"].value)
    with tempfile.TemporaryDirectory() as cert_dir:
        _, log = fetch(
            outputs["kubeApiUrl"].value + "/api/v1/namespaces/default/pods/resize-writer/log",
            tls_context_from(kubeconfig, Path(cert_dir)),
        )
    found = MARKER.search(log)
    assert found, log
    return found.group(1)


def test_a_bigger_bundle_keeps_the_data_the_kubeconfig_and_the_node_name():
    with (
        throwaway_backend() as backend,
        throwaway_cluster(
            "e2e-resize",
            backend,
            bundleId="small_3_0",
            dataDiskGb="20",
            manifestsDir=str(MANIFESTS),
        ) as stack,
    ):
        name = f"lightsail-k3s-{stack.name}"
        events: list[auto.EngineEvent] = []
        outputs = stack.up(on_output=print, on_event=events.append).outputs
        report("first up", phase_durations(events, name))
        marker = wait_for("the writer's marker", lambda: written_marker(outputs))
        before = outputs
        instance = outputs["instanceName"].value

        stack.set_config("bundleId", auto.ConfigValue("medium_3_0"))
        events.clear()
        result = stack.up(on_output=print, on_event=events.append)
        report("resize", phase_durations(events, name))
        outputs = result.outputs

        # A new instance, the same cluster: no Kubernetes object was replaced.
        assert outputs["instanceName"].value != instance
        changes = result.summary.resource_changes or {}
        assert changes.get(auto.OpType.REPLACE, 0) >= 1
        kinds = [
            e.resource_pre_event.metadata.type
            for e in events
            if e.resource_pre_event is not None
            and e.resource_pre_event.metadata.op in ("replace", "create-replacement")
        ]
        assert not [kind for kind in kinds if kind.startswith("kubernetes:")], kinds
        # The kubeconfig from before the resize still works: the same static IP and certificates.
        nodes = kube_get(dict(before), "/api/v1/nodes")["items"]
        assert [node["metadata"]["name"] for node in nodes] == [name]
        # The volume kept what the app wrote before.
        assert wait_for("the writer after the resize", lambda: written_marker(outputs)) == marker


def step_events(events: list[auto.EngineEvent]) -> list[tuple[str, str, str]]:
    """(started or done, op, resource name) of each step, in the engine's order."""
    found = []
    for event in events:
        if event.resource_pre_event is not None:
            metadata = event.resource_pre_event.metadata
            found.append(("started", str(metadata.op), metadata.urn.rsplit("::", 1)[-1]))
        elif event.res_outputs_event is not None:
            metadata = event.res_outputs_event.metadata
            found.append(("done", str(metadata.op), metadata.urn.rsplit("::", 1)[-1]))
    return found


def etcd_members(outputs) -> dict[str, str]:
    """Each server's etcd member name, as k3s annotates its Node."""
    nodes = kube_get(dict(outputs), "/api/v1/nodes")["items"]
    return {
        node["metadata"]["name"]: node["metadata"]["annotations"].get(
            "etcd.k3s.cattle.io/node-name", ""
        )
        for node in nodes
    }


def test_three_servers_take_a_bigger_bundle_one_at_a_time_and_keep_the_cluster():
    """Three servers on data disks, small_3_0 to medium_3_0 in one `up`: each server leaves etcd and
    rejoins as a new member on its new host, the next one only after it is Ready; the app's volume,
    the kubeconfig and the node names stay. Three billed instances and disks, about an hour."""
    with (
        throwaway_backend() as backend,
        throwaway_cluster(
            "e2e-resize3",
            backend,
            serverCount="3",
            bundleId="small_3_0",
            dataDiskGb="20",
            manifestsDir=str(MANIFESTS),
        ) as stack,
    ):
        name = f"lightsail-k3s-{stack.name}"
        servers = [name, f"{name}-server-2", f"{name}-server-3"]
        outputs = stack.up(on_output=print).outputs
        marker = wait_for("the writer's marker", lambda: written_marker(outputs))
        before = outputs
        members = etcd_members(outputs)

        stack.set_config("bundleId", auto.ConfigValue("medium_3_0"))
        events: list[auto.EngineEvent] = []
        result = stack.up(on_output=print, on_event=events.append)
        for server in servers:
            report(f"resize of {server}", phase_durations(events, server))
        outputs = result.outputs
        steps = step_events(events)

        def at(kind: str, op: str, resource: str) -> int:
            return next(
                i for i, s in enumerate(steps) if s[0] == kind and op in s[1] and s[2] == resource
            )

        # Server N leaves (its drain starts) only after server N-1's new host is Ready.
        assert at("done", "create", f"{name}-install") < at(
            "started", "delete", f"{servers[1]}-join"
        )
        assert at("done", "create", f"{servers[1]}-join") < at(
            "started", "delete", f"{servers[2]}-join"
        )
        # The same three nodes, each a new etcd member, and the kubeconfig from before still works.
        after = etcd_members(before)
        assert sorted(after) == sorted(servers)
        assert all(after[server] and after[server] != members[server] for server in servers), after
        assert wait_for("the writer after the resize", lambda: written_marker(outputs)) == marker
