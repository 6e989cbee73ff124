"""A node's membership, kept on the first server: Ready after the join, drained before removal."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_command as command

from .k3s import INSTALL_COMMAND, INSTALL_TIMEOUT, program_digest
from .remote_scripts import node_program, remote_script

# How long a node may take to register (or, after an upgrade, to report the new release) and
# become Ready: node-membership.sh waits up to 600 s for each. And how long its pods (and, for a
# server, its etcd member) may take to leave when it is removed: up to 300 s each. A minute more
# than the script's own bounds, for SSH, cordon and delete, so its clearer error comes first.
READY_TIMEOUT = "21m"
DRAIN_TIMEOUT = "11m"
READY_COMMAND = "sudo bash -s -- ready"


def membership_program(node_name: str, k3s_version: str, install_digest: str) -> str:
    """What the membership command feeds to `bash -s -- ready|drain` on the first server.

    The release the node must report (EXPECTED_VERSION) and the digest of its install's stdin
    (INSTALL_DIGEST) are here so that whatever re-runs the install also changes this stdin,
    and so re-runs the Ready wait.
    """
    return node_program(
        remote_script("node-membership.sh"),
        {"NODE_NAME": node_name, "EXPECTED_VERSION": k3s_version, "INSTALL_DIGEST": install_digest},
    )


def node_membership(
    name: str,
    server_connection: command.remote.ConnectionArgs,
    node_name: str,
    k3s_version: str,
    instance_identity: pulumi.Input[str],
    install: command.remote.Command,
    install_stdin: pulumi.Output[str],
    parent: pulumi.Resource,
) -> command.remote.Command:
    """The join command, run on a server that stays.

    Its delete step drains the node before the node's instance is deleted: Pulumi deletes
    dependents first, and this depends on the install, which depends on the instance. On a
    replacement the old node goes before the new one waits for Ready, so the re-used node
    name (and its node password) is free again.

    An upgrade or a config change alters the install's stdin, and with it this one (the
    release and the install's digest): pulumi-command applies a changed stdin as an update
    that runs `update` (provider/pkg/provider/remote/commandController.go, Update), so the
    node is waited for again before the next node's install, which depends on this command.
    Only `triggers` replace the command (provider/pkg/provider/common/inputs.go, Triggers is
    `replaceOnChanges`), and a replacement would run `drain`: they hold the instance alone.
    """
    return command.remote.Command(
        name,
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
            depends_on=[install],
            delete_before_replace=True,
            custom_timeouts=pulumi.CustomTimeouts(
                create=READY_TIMEOUT, update=READY_TIMEOUT, delete=DRAIN_TIMEOUT
            ),
        ),
    )


def join_node(
    name: str,
    connection: command.remote.ConnectionArgs,
    server_connection: command.remote.ConnectionArgs,
    node_name: str,
    k3s_version: str,
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
            depends_on=list(after),
            additional_secret_outputs=["stdout", "stderr"],
            custom_timeouts=pulumi.CustomTimeouts(create=INSTALL_TIMEOUT, update=INSTALL_TIMEOUT),
        ),
    )
    return node_membership(
        f"{name}-join",
        server_connection,
        node_name,
        k3s_version,
        instance_identity,
        install,
        install_stdin,
        parent=parent,
    )
