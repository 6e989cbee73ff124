"""The host building block: what a stack created before hosts existed keeps, and what the caller decides."""

from components.apps import APPS_TYPE, PREVIOUS_APPS_TYPE
from components.host import HOST_TYPE, PREVIOUS_HOST_TYPE

PREFIX = "urn:pulumi:dev::lightsail-k3s::"

# Every resource of a dev stack deployed when the node was a `LightsailNode` (commit 4995ed3),
# as the engine names them. Each must map to a resource today, or Pulumi deletes it and
# creates a new one: a new instance, an empty cluster.
PREVIOUS_URNS = [
    PREFIX + "lightsail-k3s:index:LightsailNode::lightsail-k3s-dev",
    PREFIX
    + "lightsail-k3s:index:LightsailNode$tls:index/privateKey:PrivateKey::lightsail-k3s-dev-ssh",
    PREFIX
    + "lightsail-k3s:index:LightsailNode$aws:lightsail/keyPair:KeyPair::lightsail-k3s-dev-key",
    PREFIX
    + "lightsail-k3s:index:LightsailNode$aws:lightsail/instance:Instance::lightsail-k3s-dev-instance",
    PREFIX
    + "lightsail-k3s:index:LightsailNode$aws:lightsail/staticIp:StaticIp::lightsail-k3s-dev-ip",
    PREFIX
    + "lightsail-k3s:index:LightsailNode$aws:lightsail/staticIpAttachment:StaticIpAttachment"
    + "::lightsail-k3s-dev-ip-attachment",
    PREFIX
    + "lightsail-k3s:index:LightsailNode$aws:lightsail/instancePublicPorts:InstancePublicPorts"
    + "::lightsail-k3s-dev-firewall",
    PREFIX + "lightsail-k3s:index:K3sServer::lightsail-k3s-dev",
    PREFIX + "lightsail-k3s:index:K3sServer$command:remote:Command::lightsail-k3s-dev-install",
    PREFIX
    + "lightsail-k3s:index:K3sServer$command:remote:Command::lightsail-k3s-dev-read-kubeconfig",
    PREFIX
    + "lightsail-k3s:index:K3sServer$command:remote:Command::lightsail-k3s-dev-read-node-token",
    PREFIX
    + "lightsail-k3s:index:K3sServer$pulumi:providers:kubernetes::lightsail-k3s-dev-kubernetes",
]
# The boot wait moved from the k3s component into the host. It holds no cloud state and
# has no delete step: the first `up` after the move runs it once more (cloud-init is long
# done, so it returns at once) and drops the old record.
MOVED_WITHOUT_ALIAS = (
    PREFIX + "lightsail-k3s:index:K3sServer$command:remote:Command::lightsail-k3s-dev-wait-for-boot"
)


def test_a_stack_from_before_hosts_keeps_its_instance_static_ip_and_key(dev):
    kept = set(dev.continuing([*PREVIOUS_URNS, MOVED_WITHOUT_ALIAS]).values())
    assert [urn for urn in PREVIOUS_URNS if urn not in kept] == []
    assert MOVED_WITHOUT_ALIAS not in kept


def test_renamed_and_moved_components_alone_carry_aliases_to_their_previous_types_and_parent(dev):
    # Their children inherit them. pulumi-kubernetes gives its own resources aliases to the API
    # versions of their kinds. The Cluster's children were the stack's own before it existed
    # (components/cluster.py); the host may be older still, from when it was a LightsailNode. The
    # consumers' kubeconfigs were the stack's own before they were the Apps' (components/apps.py).
    aliased = {
        r.type: r.aliases
        for r in dev.resources
        if r.aliases and not r.type.startswith("kubernetes:")
    }
    moved = {"noParent": True}
    assert aliased == {
        HOST_TYPE: [moved, {"type": PREVIOUS_HOST_TYPE, **moved}, {"type": PREVIOUS_HOST_TYPE}],
        "lightsail-k3s:index:K3sServer": [moved],
        "lightsail-k3s:index:LightsailAlarms": [moved],
        APPS_TYPE: [{"type": PREVIOUS_APPS_TYPE}],
        "lightsail-k3s:index:ScopedKubeconfigs": [moved],
    }
    assert dev.named("lightsail-k3s-dev-instance").parent.endswith(
        "lightsail-k3s:index:Cluster$lightsail-k3s:index:LightsailHost::lightsail-k3s-dev"
    )
