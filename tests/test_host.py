"""The host building block: what a stack created before hosts existed keeps, and what the caller decides."""

from components.host import PREVIOUS_HOST_TYPE
from tests.helpers import Declared
from tools.mockengine import Registration

STACK_TYPE = "pulumi:pulumi:Stack"
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


def engine_urn(urn: str) -> str:
    # The mock monitor puts the root stack's type into top-level URNs; the engine does not.
    return urn.replace(f"::{STACK_TYPE}$", "::")


def qualified_type(urn: str) -> str:
    return urn.split("::")[2]


def matched_urns(deployment: Declared, registration: Registration) -> set[str]:
    """The URNs the engine looks up for `registration`: its own, its aliases, and those its parent's aliases imply.

    The engine's rules (pulumi/pulumi pkg/resource/deploy/step_generator.go, generateAliases,
    collapseAliasToUrn and inheritedChildAlias): an alias spec fills what it leaves out from the
    resource itself; a child of an aliased parent is also looked up under the parent's old
    qualified type, with the parent's old name in place of the prefix it shares with the parent.
    """
    parents = {r.urn: r for r in deployment.resources}
    parent = parents.get(registration.parent)
    parent_type = "" if parent is None else qualified_type(engine_urn(parent.urn)) + "$"
    urns = {engine_urn(registration.urn)}
    for alias in registration.aliases:
        assert "parentUrn" not in alias and "urn" not in alias, "rule not modelled here"
        urns.add(
            PREFIX
            + parent_type
            + alias.get("type", registration.type)
            + "::"
            + alias.get("name", registration.name)
        )
    if parent is not None:
        for parent_alias in matched_urns(deployment, parent) - {engine_urn(parent.urn)}:
            name = registration.name
            if name.startswith(parent.name):
                name = parent_alias.rsplit("::", 1)[1] + name[len(parent.name) :]
            urns.add(PREFIX + qualified_type(parent_alias) + "$" + registration.type + "::" + name)
    return urns


def test_a_stack_from_before_hosts_keeps_its_instance_static_ip_and_key(dev):
    matched = set().union(*(matched_urns(dev, r) for r in dev.resources))
    assert [urn for urn in PREVIOUS_URNS if urn not in matched] == []
    assert MOVED_WITHOUT_ALIAS not in matched


def test_the_host_alone_carries_the_alias_to_the_previous_type(dev):
    # pulumi-kubernetes gives its own resources aliases to the API versions of their kinds.
    aliased = {
        r.name: r.aliases
        for r in dev.resources
        if r.aliases and not r.type.startswith("kubernetes:")
    }
    assert aliased == {"lightsail-k3s-dev": [{"type": PREVIOUS_HOST_TYPE}]}
    assert dev.named("lightsail-k3s-dev-instance").parent.endswith(
        "lightsail-k3s:index:LightsailHost::lightsail-k3s-dev"
    )
