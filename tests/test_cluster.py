"""The stack's one Cluster component: the whole topology under it, every resource of a stack deployed before kept."""

import json
from pathlib import Path

import pytest

from components.cluster import CLUSTER_TYPE
from tests.helpers import Declared, deploy, write_executable

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "urns_before_cluster.json"
BEFORE = json.loads(FIXTURE.read_text())["configs"]
BIG = "three-servers-two-agents-backups-domain"
# What is billed or holds the cluster's data and name: each must be the Cluster's.
CLOUD_TYPES = (
    "aws:lightsail/",
    "aws-native:lightsail:",
)


@pytest.fixture(scope="module")
def deployments(tmp_path_factory) -> dict[str, Declared]:
    # With a DNS zone the program only checks that the AWS CLI is installed.
    bin_dir = tmp_path_factory.mktemp("bin")
    write_executable(bin_dir / "aws", "#!/bin/sh\nexit 0\n")
    return {
        label: deploy(environ={"PATH": str(bin_dir)}, **config["set"])
        for label, config in BEFORE.items()
    }


@pytest.mark.parametrize("label", sorted(BEFORE))
def test_a_stack_deployed_before_the_cluster_component_keeps_every_resource_at_its_urn(
    deployments, label
):
    """As `make plan BASE=41d4b38` shows for these configs: nothing created but the component
    itself (no cloud resource), nothing deleted. The engine's alias rules: tools/urns.py."""
    deployment = deployments[label]
    before = BEFORE[label]["urns"]
    continuing = deployment.continuing(before)
    assert sorted(continuing.values()) == sorted(before)
    new = [(r.type, r.name) for r in deployment.resources if r.urn not in continuing]
    # Since then, on embedded etcd, the first server's snapshot before an upgrade: a command that
    # runs on the node (no cloud resource) and, with the release unchanged, takes nothing.
    added_since = (
        [("command:remote:Command", "lightsail-k3s-dev-snapshot-before-upgrade")]
        if any(r.name == "lightsail-k3s-dev-snapshot-before-upgrade" for r in deployment.resources)
        else []
    )
    assert added_since or label != BIG, "three servers run on etcd: the snapshot step belongs there"
    # And what came after the fixture: the app namespace's egress policy, and the credentials of the
    # dev stack's consumer (components/consumers.py), new objects, not moved ones.
    scoped = deployment.one("lightsail-k3s:index:ScopedKubeconfigs")
    later = {
        (r.type, r.name)
        for r in deployment.resources
        if r is scoped or scoped in deployment.ancestors(r)
    } | {("kubernetes:networking.k8s.io/v1:NetworkPolicy", "lightsail-k3s-dev-egress-policy")}
    assert [resource for resource in new if resource not in later] == [
        (CLUSTER_TYPE, "lightsail-k3s-dev"),
        *added_since,
    ]
    assert not [t for t, _ in later if t.startswith(CLOUD_TYPES)]


def test_every_instance_bucket_alarm_and_dns_resource_is_a_descendant_of_the_cluster(deployments):
    deployment = deployments[BIG]
    cluster = deployment.one(CLUSTER_TYPE)
    cloud = [r for r in deployment.resources if r.type.startswith(CLOUD_TYPES)]
    kinds = {r.type.split(":")[-1] for r in cloud}
    assert {"Instance", "Bucket", "Alarm", "Domain", "DomainEntry", "ContactMethod"} <= kinds
    assert len(deployment.of_type("aws:lightsail/instance:Instance")) == 5
    outside = [r.name for r in cloud if cluster not in deployment.ancestors(r)]
    assert outside == []
    # So is Traefik's ACME configuration; the apps are their own component, at the stack's root.
    traefik = deployment.one("lightsail-k3s:index:TraefikAcme")
    assert traefik.parent == cluster.urn
    assert deployment.one("lightsail-k3s:index:Apps").parent.endswith(
        "pulumi:pulumi:Stack::lightsail-k3s-dev"
    )


def test_the_clusters_children_are_named_after_it(deployments):
    deployment = deployments[BIG]
    cluster = deployment.one(CLUSTER_TYPE)
    children = [r for r in deployment.resources if r.parent == cluster.urn]
    assert {r.name for r in children} == {
        "lightsail-k3s-dev",
        "lightsail-k3s-dev-server-2",
        "lightsail-k3s-dev-server-3",
        "lightsail-k3s-dev-agent-1",
        "lightsail-k3s-dev-agent-2",
    }
    assert {r.type.split(":")[-1] for r in children} == {
        "LightsailHost",
        "BackupBucket",
        "K3sServer",
        "K3sPeerServer",
        "K3sAgent",
        "LightsailAlarms",
        "DnsZone",
        "TraefikAcme",
    }
