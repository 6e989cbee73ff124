"""A node's membership, kept on the first server: Ready after the join, drained before removal."""

from __future__ import annotations

import shlex

import pulumi
import pulumi_command as command

from .remote_scripts import remote_script

# How long a new node may take to register and become Ready, and how long its pods
# (and, for a server, its etcd member) may take to leave when it is removed.
READY_TIMEOUT = "15m"
DRAIN_TIMEOUT = "10m"


def membership_program(node_name: str) -> str:
    """What the membership command feeds to `bash -s -- ready|drain` on the first server."""
    return f"NODE_NAME={shlex.quote(node_name)}\n" + remote_script("node-membership.sh")


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
