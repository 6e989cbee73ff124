"""A k3s agent: joined to a server over its private IP with the agent token, drained before it goes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command

from . import certificates, rollout
from .k3s import KUBE_API_PORT, install_program, kubelet_config, program_digest
from .membership import join_node
from .registries import Registry
from .remote_scripts import remote_script


@dataclass(frozen=True)
class K3sAgentArgs:
    # SSH to the agent itself, and to a server, where its Kubernetes node is checked and drained.
    connection: command.remote.ConnectionArgs
    server_connection: command.remote.ConnectionArgs
    # Changes when the agent's instance is replaced: the install and the join run anew.
    instance_identity: pulumi.Input[str]
    k3s_version: str
    node_name: str
    # The server the agent registers with, at its private IP: node-to-node traffic stays
    # inside Lightsail's private network, which the public firewall does not filter.
    server_private_ip: pulumi.Input[str]
    # k3s' agent token (secure format, K10…): it joins agents only, never servers.
    agent_token: pulumi.Input[str]
    # kubelet flags for reservations and eviction from the agent's own bundle
    # (components/capacity.py, NodeCapacity.of_agent), as k3s `kubelet-arg` entries.
    kubelet_args: Sequence[str]
    # What must finish before this agent installs or upgrades: its host's first boot and the
    # servers (servers upgrade first).
    after: Sequence[pulumi.Resource]
    # The previous deployment's nodes and their restart digests (components/rollout.py); None: not
    # known, every agent counts as running.
    deployed: pulumi.Input[rollout.DeployedNodes] = None
    # The last agent before this one whose k3s restarts in this run: this agent waits for it when
    # its own k3s restarts too, so such agents go one at a time, each Ready before the next.
    last_restarted: pulumi.Input[pulumi.Resource | None] = None
    # certRotation: each new value rotates this agent's certificates once, after the servers and
    # the agents before it.
    cert_rotation: int = 0
    # The private registries' credentials, written to the node's registries.yaml (secret stdin);
    # an Output where they arrive as one (the package's Cluster, components/cluster.py).
    registries: pulumi.Input[Sequence[Registry]] = ()


def agent_config(
    node_name: str, server_private_ip: str, agent_token: str, kubelet_args: Sequence[str]
) -> dict[str, Any]:
    """k3s' /etc/rancher/k3s/config.yaml for an agent, as data (docs.k3s.io/cli/agent).

    Its kubelet is set up as a server's (kubelet_config), with the agent's own reservations.
    """
    return {
        "node-name": node_name,
        "server": server_url(server_private_ip),
        "token": agent_token,
        **kubelet_config(kubelet_args),
    }


def server_url(private_ip: str) -> str:
    return f"https://{private_ip}:{KUBE_API_PORT}"


class K3sAgent(pulumi.ComponentResource):
    """An agent node: k3s installed over SSH, its membership checked and, on removal, drained on a server."""

    joined: pulumi.Resource
    # The SHA-256 of what restarts this agent's k3s (rollout.restart_digest); secret.
    restart_digest: pulumi.Output[str]
    # The same, of the install as it stands in state (rollout.deployed_digest): what outputs keep.
    kept_digest: pulumi.Output[str]
    # Whether this run restarts this agent's running k3s (rollout.restarts).
    restarting: pulumi.Output[bool]
    # Joined and, after a raised certRotation, Ready with rotated certificates: what the next node waits for.
    done: pulumi.Resource
    # The earliest expiry of this agent's certificates (ISO 8601), read on the node.
    certificates_expire_at: pulumi.Output[str]

    def __init__(self, name: str, args: K3sAgentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("lightsail-k3s:index:K3sAgent", name, None, opts)

        install_stdin = pulumi.Output.all(
            args.server_private_ip, args.agent_token, args.registries
        ).apply(
            lambda values: install_program(
                remote_script("join-k3s-agent.sh"),
                args.k3s_version,
                args.node_name,
                agent_config(args.node_name, values[0], values[1], args.kubelet_args),
                values[2],
            )
        )
        self.restart_digest = rollout.restart_digest(install_stdin, args.cert_rotation)
        self.restarting = rollout.restarts_now(args.deployed, args.node_name, self.restart_digest)
        install, self.joined = join_node(
            name,
            args.connection,
            args.server_connection,
            args.node_name,
            args.k3s_version,
            # k3s' install.sh names an agent's unit k3s-agent: what stops when the node goes.
            certificates.AGENT_SERVICE,
            args.instance_identity,
            install_stdin,
            [*args.after, rollout.chained(self.restarting, args.last_restarted)],
            parent=self,
        )
        self.kept_digest = rollout.deployed_digest(install, args.cert_rotation)
        # An agent has no kubectl of its own: the server waits for its Ready after the rotation.
        node_certificates = certificates.node_certificates(
            name,
            args.connection,
            args.node_name,
            certificates.AGENT_SERVICE,
            args.cert_rotation,
            [args.instance_identity, program_digest(install_stdin), args.cert_rotation],
            after=self.joined,
            parent=self,
            ready_on=args.server_connection,
        )
        self.done = node_certificates.done
        self.certificates_expire_at = node_certificates.expire_at
        self.register_outputs({})
