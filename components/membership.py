"""A node's membership, kept on the first server: Ready after the join; on removal drained, its
k3s stopped on the node itself, then its Node deleted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import pulumi
import pulumi_command as command

from .k3s import INSTALL_COMMAND, INSTALL_TIMEOUT, program_digest
from .remote_scripts import node_program, remote_script

# How long a node may take to register (or, after an upgrade, to report the new release) and
# become Ready: node-membership.sh waits up to 600 s for each. And how long its pods (and, for a
# server of two, its etcd member) may take to leave when it is removed: up to 300 s each; deleting
# its Node, up to 300 s, after a server of three's etcd member has left (up to 300 s). stop-k3s.sh's
# two steps take up to 60 s each. A minute more than the scripts' own bounds, for SSH, cordon and
# delete, so their clearer errors come first.
READY_TIMEOUT = "21m"
DRAIN_TIMEOUT = "11m"
NODE_DELETE_TIMEOUT = "11m"
STOP_TIMEOUT = "3m"
READY_COMMAND = "sudo bash -s -- ready"


def membership_program(node_name: str, k3s_version: str, install_digest: str) -> str:
    """What the join command feeds to `bash -s -- ready|drain` on the first server.

    The release the node must report (EXPECTED_VERSION) and the digest of its install's stdin
    (INSTALL_DIGEST) are here so that whatever re-runs the install also changes this stdin,
    and so re-runs the Ready wait.
    """
    return node_program(
        remote_script("node-membership.sh"),
        {"NODE_NAME": node_name, "EXPECTED_VERSION": k3s_version, "INSTALL_DIGEST": install_digest},
    )


def node_deletion_program(node_name: str) -> str:
    """What the node's `-node` command feeds to `bash -s -- delete` on the first server: the node's
    name only, so an upgrade does not touch this command."""
    return node_program(remote_script("node-membership.sh"), {"NODE_NAME": node_name})


def k3s_stop_program(node_name: str, k3s_unit: str) -> str:
    """What the node's `-k3s-stop` command feeds to `bash -s` on the node itself."""
    return node_program(
        remote_script("stop-k3s.sh"), {"NODE_NAME": node_name, "K3S_UNIT": k3s_unit}
    )


def join_node(
    name: str,
    connection: command.remote.ConnectionArgs,
    server_connection: command.remote.ConnectionArgs,
    node_name: str,
    k3s_version: str,
    k3s_unit: str,
    instance_identity: pulumi.Input[str],
    install_stdin: pulumi.Output[str],
    after: Sequence[pulumi.Input[pulumi.Resource | None]],
    parent: pulumi.Resource,
) -> tuple[command.remote.Command, command.remote.Command]:
    """Installs k3s on a node that joins the first server (an agent or a further server), then
    keeps its membership there; returns the install and the join command, which waits for the
    node's Ready.

    Four commands, in a chain: the install (on the node), `-node` (on the first server; its delete
    has a server of three's etcd member removed, then deletes the Node), `-k3s-stop` (on the node;
    its delete stops k3s there for good) and `-join` (on the first server; create and update wait
    for Ready, delete drains). Pulumi deletes dependents first, so removing the node runs: drain,
    stop k3s on the node, remove a server's etcd member, delete the Node. The member goes after the
    stop: removed while its k3s ran, the server would restart, rejoin from its old host and make
    its new host's join fail (node-membership.sh, drain).
    None of their creates runs anything but the join's: pulumi-command runs no command it was not
    given (provider/pkg/provider/remote/commandController.go, Create and Update), and each delete
    runs with the connection and stdin of the state it deletes (Delete reads req.State).

    A replacement of the node's instance is delete-first (its host's delete_before_replace), and
    the engine then deletes, before the instance, every dependent that the instance's new ARN
    would replace (pulumi/pulumi pkg/resource/deploy/step_generator.go,
    calculateDependentReplacements): these four hold it in `triggers`, which pulumi-command
    replaces on (provider/pkg/provider/common/inputs.go, replaceOnChanges). So the old node is
    drained, its k3s stopped while its host still answers on its firewall and static IP, and its
    Node deleted, all before the new instance exists; tools/replacement.py models this and
    tests/test_replacement.py checks it on this stack.

    The install's stdin holds a token, so it is secret in state; stdout and stderr stay secret
    and unlogged too, so nothing the install prints can carry it out.

    An upgrade or a config change alters the install's stdin, and with it the join's (the
    release and the install's digest): pulumi-command applies a changed stdin as an update that
    runs `update` (commandController.go, Update), so the node is waited for again before the
    next node's install that depends on the join (the next server's, or the next agent's whose k3s
    restarts too: components/rollout.py). Only `triggers` replace a command, and a
    replacement would drain: they hold the instance alone.
    """
    install_stdin = pulumi.Output.secret(install_stdin)
    install = command.remote.Command(
        f"{name}-install",
        connection=connection,
        create=INSTALL_COMMAND,
        update=INSTALL_COMMAND,
        stdin=install_stdin,
        logging=command.remote.Logging.NONE,
        triggers=[instance_identity],
        opts=pulumi.ResourceOptions(
            parent=parent,
            # An entry that resolves to None adds no dependency: the SDK skips it (pulumi
            # sdk/python/lib/pulumi/runtime/_depends_on.py, _resolve_depends_on), though the
            # option's annotation does not say so (components/rollout.py, chained).
            depends_on=cast(list[pulumi.Input[pulumi.Resource]], list(after)),
            additional_secret_outputs=["stdout", "stderr"],
            custom_timeouts=pulumi.CustomTimeouts(create=INSTALL_TIMEOUT, update=INSTALL_TIMEOUT),
        ),
    )
    node_deletion = command.remote.Command(
        f"{name}-node",
        connection=server_connection,
        delete="sudo bash -s -- delete",
        stdin=node_deletion_program(node_name),
        triggers=[instance_identity],
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[install],
            custom_timeouts=pulumi.CustomTimeouts(delete=NODE_DELETE_TIMEOUT),
        ),
    )
    k3s_stop = command.remote.Command(
        f"{name}-k3s-stop",
        connection=connection,
        delete="sudo bash -s",
        stdin=k3s_stop_program(node_name, k3s_unit),
        triggers=[instance_identity],
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[node_deletion],
            custom_timeouts=pulumi.CustomTimeouts(delete=STOP_TIMEOUT),
        ),
    )
    join = command.remote.Command(
        f"{name}-join",
        connection=server_connection,
        create=READY_COMMAND,
        update=READY_COMMAND,
        delete="sudo bash -s -- drain",
        stdin=program_digest(install_stdin).apply(
            lambda digest: membership_program(node_name, k3s_version, digest)
        ),
        triggers=[instance_identity],
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[k3s_stop],
            delete_before_replace=True,
            custom_timeouts=pulumi.CustomTimeouts(
                create=READY_TIMEOUT, update=READY_TIMEOUT, delete=DRAIN_TIMEOUT
            ),
        ),
    )
    return install, join
