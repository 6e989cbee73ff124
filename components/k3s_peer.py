"""A further k3s server: joined to the first over its private IP, on the cluster's embedded etcd."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command

from . import certificates, rollout
from .k3s import install_program, program_digest
from .k3s_agent import server_url
from .membership import join_node
from .registries import Registry
from .remote_scripts import remote_script


@dataclass(frozen=True)
class K3sPeerServerArgs:
    # SSH to this server, and to the first server, where its node is checked and removed.
    connection: command.remote.ConnectionArgs
    server_connection: command.remote.ConnectionArgs
    instance_identity: pulumi.Input[str]
    k3s_version: str
    node_name: str
    first_server_private_ip: pulumi.Input[str]
    # The first server's token (secure format): servers join with the server token.
    server_token: pulumi.Input[str]
    # The first server's config without its own keys (K3sServer.shared_config): what k3s
    # requires to match on every server, tls-san included, rendered once.
    shared_config: pulumi.Input[Mapping[str, Any]]
    # Its host's first boot, and the server before it (servers install, upgrade and rotate their
    # certificates one at a time).
    after: Sequence[pulumi.Resource]
    # certRotation: each new value rotates this server's certificates once, after the servers before it.
    cert_rotation: int = 0
    # The private registries' credentials, written to the node's registries.yaml (secret stdin);
    # an Output where they arrive as one (the package's Cluster, components/cluster.py).
    registries: pulumi.Input[Sequence[Registry]] = ()
    # Its /var/lib/rancher/k3s is on a data disk, mounted before the install (components/host.py).
    data_on_disk: bool = False


def peer_config(
    node_name: str, shared: Mapping[str, Any], first_server_private_ip: str, server_token: str
) -> dict[str, Any]:
    """A joining server's config: its name, the settings every server shares, then where and how it joins.

    No `cluster-init`: the first server started etcd; this one joins it through `server`
    (docs.k3s.io/datastore/ha-embedded).
    """
    return {
        "node-name": node_name,
        **shared,
        "server": server_url(first_server_private_ip),
        "token": server_token,
    }


class K3sPeerServer(pulumi.ComponentResource):
    """A server that joins the first one's etcd; drained, stopped, and its etcd member removed, before it goes."""

    joined: pulumi.Resource
    # The SHA-256 of what restarts this server's k3s, of the install as it stands in state
    # (rollout.deployed_digest): what the outputs keep for the next run; secret.
    kept_digest: pulumi.Output[str]
    # Joined and, after a raised certRotation, Ready with rotated certificates: what the next node waits for.
    done: pulumi.Resource
    # The earliest expiry of this server's certificates (ISO 8601), read on the node.
    certificates_expire_at: pulumi.Output[str]

    def __init__(
        self, name: str, args: K3sPeerServerArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("lightsail-k3s:index:K3sPeerServer", name, None, opts)

        install_stdin = pulumi.Output.all(
            args.shared_config, args.first_server_private_ip, args.server_token, args.registries
        ).apply(
            lambda values: install_program(
                remote_script("install-k3s-server.sh"),
                args.k3s_version,
                args.node_name,
                peer_config(args.node_name, values[0], values[1], values[2]),
                values[3],
                data_on_disk=args.data_on_disk,
            )
        )
        install, self.joined = join_node(
            name,
            args.connection,
            args.server_connection,
            args.node_name,
            args.k3s_version,
            # A server's unit, as install-k3s-server.sh starts it: what stops when the node goes.
            certificates.SERVER_SERVICE,
            args.instance_identity,
            install_stdin,
            args.after,
            parent=self,
        )
        self.kept_digest = rollout.deployed_digest(install, args.cert_rotation)
        # A server has kubectl: its rotation waits for its own Ready.
        node_certificates = certificates.node_certificates(
            name,
            args.connection,
            args.node_name,
            certificates.SERVER_SERVICE,
            args.cert_rotation,
            [args.instance_identity, program_digest(install_stdin), args.cert_rotation],
            after=self.joined,
            parent=self,
        )
        self.done = node_certificates.done
        self.certificates_expire_at = node_certificates.expire_at
        self.register_outputs({})
