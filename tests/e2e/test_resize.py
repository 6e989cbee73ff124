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
