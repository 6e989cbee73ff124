"""A node's membership, kept on the first server: Ready after the join, drained before removal."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command

from .k3s import INSTALL_COMMAND, INSTALL_TIMEOUT
from .remote_scripts import node_program, remote_script

# How long a new node may take to register and become Ready, and how long its pods
# (and, for a server, its etcd member) may take to leave when it is removed.
READY_TIMEOUT = "15m"
DRAIN_TIMEOUT = "10m"


def membership_program(node_name: str) -> str:
    """What the membership command feeds to `bash -s -- ready|drain` on the first server."""
    return node_program(remote_script("node-membership.sh"), {"NODE_NAME": node_name})


def node_membership(
    name: str,
    server_connection: command.remote.ConnectionArgs,
    node_name: str,
    instance_identity: pulumi.Input[str],
    installed: pulumi.Resource,
    parent: pulumi.Resource,
) -> command.remote.Command:
    """The join command, run on a server that stays.

    Its delete step drains the node before the node's instance is deleted: Pulumi deletes
    dependents first, and this depends on the install, which depends on the instance. On a
    replacement the old node goes before the new one waits for Ready, so the re-used node
    name (and its node password) is free again.
    """
    return command.remote.Command(
        name,
        connection=server_connection,
        create="sudo bash -s -- ready",
        delete="sudo bash -s -- drain",
        stdin=membership_program(node_name),
        triggers=[instance_identity],
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=[installed],
            delete_before_replace=True,
            custom_timeouts=pulumi.CustomTimeouts(create=READY_TIMEOUT, delete=DRAIN_TIMEOUT),
        ),
    )


def join_node(
    name: str,
    connection: command.remote.ConnectionArgs,
    server_connection: command.remote.ConnectionArgs,
    node_name: str,
    instance_identity: pulumi.Input[str],
    install_stdin: pulumi.Output[str],
    after: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
) -> command.remote.Command:
    """Installs k3s on a node that joins the first server (an agent or a further server), then
    keeps its membership there (node_membership); returns the membership command.

    The install's stdin holds a token, so it is secret in state; stdout and stderr stay secret
    and unlogged too, so nothing the install prints can carry it out.
    """
    install = command.remote.Command(
        f"{name}-install",
        connection=connection,
        create=INSTALL_COMMAND,
        update=INSTALL_COMMAND,
        stdin=pulumi.Output.secret(install_stdin),
        logging=command.remote.Logging.NONE,
        triggers=[instance_identity],
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(after),
            additional_secret_outputs=["stdout", "stderr"],
            custom_timeouts=pulumi.CustomTimeouts(create=INSTALL_TIMEOUT, update=INSTALL_TIMEOUT),
        ),
    )
    return node_membership(
        f"{name}-join", server_connection, node_name, instance_identity, install, parent=parent
    )
