"""Which node waits for which: nodes join in parallel on a new cluster, and only the nodes whose k3s
restarts go one at a time.

Servers always go one at a time, the first, then each further one after the one before is Ready: a
joining server is added to etcd as a learner, and etcd admits one learner at a time, so k3s makes a
second joining server retry until the first is promoted ("Waiting for other members to finish
joining etcd cluster", k3s pkg/etcd/etcd.go, Start, retrying on rpctypes.ErrTooManyLearners);
joined at once, the second server's Ready wait would hold the first's catch-up too. Removing them
runs the same chain backwards, so etcd keeps its quorum. A further server that runs already also
waits with its host (its instance, and so its disk's attachment and mount) for the server before
it (after_previous_server): a new bundle or a data disk changes one server at a time.

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
from collections.abc import Awaitable, Mapping
from typing import Any

import pulumi

from .errors import ConfigError
from .settings import DATA_DISK_DEFAULT_GB

# The output that keeps each node's digest for the next deployment to compare with.
DIGESTS_OUTPUT = "nodeRestartDigests"
# The field of a server's `nodes` entry saying that its data disk's script makes a new host of it
# rejoin etcd, its old host leaving first with its k3s stopped (data-disk.sh, leave_etcd; a
# further server's member goes after its stop, node-membership.sh), read back by change_refusal: a
# stack whose disks an earlier script mounted unmounts with that script, and one that left etcd
# while its k3s ran could begin a second cluster (hence the field's name, new with that fix).
ETCD_REJOINS_FIELD = "etcdLeavesStopped"

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


def deployed_digest(install: Any, cert_rotation: int) -> pulumi.Output[str]:
    """The restart digest of what the install command has in its state: its `stdin` output. In a run
    that does not touch the install (an `up --target` of the firewall, as bin/deploy-access.sh
    runs, even after a failed `up`), the engine returns the resource's old state for it (pulumi/
    pulumi pull request #3251: an untargeted registration is a `same` of the old state), so the
    kept digest stays the one of the install that last ran, never one of an install still to run."""
    return restart_digest(install.stdin.apply(lambda text: text or ""), cert_rotation)


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


def runs_already(deployed: DeployedNodes, node_name: str) -> bool:
    """Whether the previous deployment ran this node (all count as running when it cannot tell)."""
    return deployed is None or node_name in deployed


def after_previous_server(
    deployed: pulumi.Input[DeployedNodes],
    node_name: str,
    previous_done: Awaitable[pulumi.Resource],
) -> pulumi.Output[pulumi.Resource | None]:
    """What a further server's instance waits for: the server before it, done (Ready, and rotated
    after a raised certRotation), when this server runs already; None for a server new to the
    cluster, whose host may then boot beside the others (its install still waits for the server
    before it), so a new cluster's first `up` is no slower.

    A running server's host changes only one at a time: its instance replaced (a new bundle:
    drained, its etcd member removed, its disk moved and rejoined), its data disk turned on (the
    first mount stops k3s to copy the data, components/remote/data-disk.sh): each of those, in the
    instance's chain or after its registration, now starts once the server before is back, so etcd
    keeps two of its three members. On a run that changes nothing, the wait costs nothing: every
    step is a `same`.

    The wait is a `dependsOn`, never a property dependency: the engine takes into a delete-first
    replacement's chain only the dependents with a property dependency on what it replaces
    (pulumi/pulumi pkg/resource/deploy/step_generator.go, calculateDependentReplacements), so the
    server before, replaced, does not pull this server's resources into its own deletes
    (tools/replacement.py; tests/test_data_disk.py checks it). `previous_done` is declared after
    this host (a server's install reads every server's static IP), so it comes as an awaitable
    (pulumi.Output.from_input takes one)."""
    return pulumi.Output.all(deployed, pulumi.Output.from_input(previous_done)).apply(
        lambda values: values[1] if runs_already(values[0], node_name) else None
    )


def moved_servers_refusal(
    servers: list[dict[str, Any]],
    deployed: list[str],
    deployed_disk_gb: int,
    data_disk_gb: int,
    key: str,
    value: str,
) -> tuple[str, str, str] | None:
    """change_refusal's for a change (`key`, deployed as `deployed`, to `value`) that replaces every
    server's instance of a cluster of several: refused without data disks kept as they are, and for disks an earlier
    version of this program mounted (no ETCD_REJOINS_FIELD)."""
    if not deployed_disk_gb or deployed_disk_gb != data_disk_gb:
        return (
            key,
            f"{value} would replace all {len(servers)} servers of this running cluster (deployed "
            f"with {key} {', '.join(deployed)}) without data disks to keep its data: the first "
            "server's new instance would begin a new, empty cluster",
            f"first `make up` with dataDiskGb {data_disk_gb or DATA_DISK_DEFAULT_GB} alone (the servers move their "
            f"data onto disks one at a time), then with {key} {value} (docs/lifecycle.md, Growing "
            "a node)",
        )
    if not all(node.get(ETCD_REJOINS_FIELD) for node in servers):
        return (
            key,
            f"{value} would replace all {len(servers)} servers of this running cluster, whose data "
            "disks were mounted by a version of this program whose unmount does not take the first "
            "server out of etcd with its k3s stopped: its new host would find its member at the old "
            "address and stop with the cluster half moved, or its old host begin a second cluster",
            f"first `make up` with no other change (each server's mount runs again with the "
            f"current script), then with {key} {value}",
        )
    return None


def change_refusal(
    deployed_version: Any,
    nodes: Any,
    deployed_backups: bool,
    *,
    k3s_version: str,
    bundle_id: str,
    blueprint_id: str,
    data_disk_gb: int,
    backups: bool,
    embedded_etcd: bool,
) -> tuple[str, str, str] | None:
    """(key, problem, fix) for a change this run may not make to the running cluster its previous
    deployment describes (its k3sVersion, `nodes` and whether it had a backup bucket), or None.

    - A new bundleId or blueprintId (each replaces the instance: ForceNew in pulumi-aws'
      lightsail.Instance) for a cluster of several servers, unless every server is on its data disk and
      the deployment's disk scripts make a moved server rejoin etcd (`nodes`: ETCD_REJOINS_FIELD):
      the servers then go one at a time (after_previous_server), the first one's old host
      leaving etcd and its new one rejoining through another server (components/remote/
      data-disk.sh, leave_etcd; install-k3s-server.sh). Without disks, the first server's new
      instance would begin a new, empty cluster. With disks mounted by an earlier script, the
      old host's unmount (which runs the script in its state) would not leave etcd, and the new
      host's mount would refuse to start it on the old address, the cluster half moved.
    - A new dataDiskGb for a cluster of several servers that has its disks: a new size replaces
      every server's disk (size_in_gb is ForceNew, hashicorp/terraform-provider-aws
      internal/service/lightsail/disk.go), 0 deletes them, and either takes the data. Turning
      the disks on is allowed: each server's first mount waits for the server before it
      (after_previous_server), so one k3s at a time stops while its data moves.
    - On embedded etcd, an upgrade in the run that moves the first server (a new instance, or its
      data onto a disk): the snapshot before the upgrade (snapshot-before-upgrade.sh) runs after the
      mount, against a k3s the move stopped or a new host without k3s, so it fails or takes none.
    - An upgrade in the run that turns backups on: the snapshot must reach a bucket that the
      node's config names only after this run's install.

    A stack deployed before `nodes` carried blueprintId is compared on its bundle alone, once:
    this run records its blueprint for the next.
    """
    if not deployed_version or not isinstance(nodes, list):
        return None
    servers = [node for node in nodes if isinstance(node, dict) and node.get("role") == "server"]
    if not servers:
        return None
    # The changes that replace every server's instance: (key, its new value, its deployed values).
    instance_changes = [
        (key, wanted, deployed)
        for key, wanted in (("bundleId", bundle_id), ("blueprintId", blueprint_id))
        if (deployed := sorted({str(node[key]) for node in servers if key in node}))
        and deployed != [wanted]
    ]
    # A server deployed before nodes carried dataDiskGb had no data disk.
    deployed_disk_gb = int(servers[0].get("dataDiskGb") or 0)
    disk_changes = deployed_disk_gb != data_disk_gb
    several = len(servers) > 1
    if several and instance_changes:
        key, value, deployed = instance_changes[0]
        refusal = moved_servers_refusal(
            servers, deployed, deployed_disk_gb, data_disk_gb, key, value
        )
        if refusal is not None:
            return refusal
    # Turning the disks on moves each server's data onto its new disk, one server at a time
    # (after_previous_server). Any other change replaces or deletes the disks that hold the data.
    if several and disk_changes and deployed_disk_gb:
        return (
            "dataDiskGb",
            f"{data_disk_gb} GB would replace or remove the data disks of all {len(servers)} servers "
            f"of this running cluster (deployed with {deployed_disk_gb} GB): Lightsail cannot resize "
            "a disk, and a new one holds none of the cluster's data",
            f"keep dataDiskGb {deployed_disk_gb} on this stack (docs/lifecycle.md, Growing a node)",
        )
    upgrade = deployed_version != k3s_version
    if upgrade and embedded_etcd and (instance_changes or disk_changes):
        change = (
            " ".join(instance_changes[0][:2]) if instance_changes else f"dataDiskGb {data_disk_gb}"
        )
        return (
            "k3sVersion",
            f"{k3s_version} and {change} in one run: the etcd snapshot before the upgrade would run "
            "on a first server whose k3s the move stopped, or on a new host without k3s",
            f"one change at a time: first `make up` with k3sVersion {deployed_version} and {change}, "
            f"then with k3sVersion {k3s_version}",
        )
    if upgrade and backups and not deployed_backups:
        return (
            "k3sVersion",
            f"{k3s_version} in the run that turns backups on: the etcd snapshot before the upgrade "
            "must reach the bucket, which the servers' config names only after this run's install",
            f"one change at a time: first `make up` with backups on and k3sVersion {deployed_version}, "
            f"then with k3sVersion {k3s_version}",
        )
    return None


def change_checked(
    previous: pulumi.StackReference,
    *,
    k3s_version: str,
    bundle_id: str,
    blueprint_id: str,
    data_disk_gb: int,
    backups: bool,
    embedded_etcd: bool,
) -> pulumi.Output[list[pulumi.Resource]]:
    """As k3s.upgrade_checked: nothing to wait for, or change_refusal's ConfigError, raised before
    anything is declared (every resource of the stack depends on it)."""

    def check(values: list[Any]) -> list[pulumi.Resource]:
        deployed_version, nodes, bucket = values
        refusal = change_refusal(
            deployed_version,
            nodes,
            bucket is not None,
            k3s_version=k3s_version,
            bundle_id=bundle_id,
            blueprint_id=blueprint_id,
            data_disk_gb=data_disk_gb,
            backups=backups,
            embedded_etcd=embedded_etcd,
        )
        if refusal is not None:
            raise ConfigError(*refusal)
        return []

    return pulumi.Output.all(
        previous.get_output("k3sVersion"),
        previous.get_output("nodes"),
        previous.get_output("backupBucket"),
    ).apply(check)
