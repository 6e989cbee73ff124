"""The Lightsail node: SSH key, instance, static IP and firewall."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

# k3s ports (k3s networking docs, via FACTS.md): the API server listens on 6443;
# 10250 (kubelet) and 8472/udp (flannel VXLAN) must never be public.
SSH_PORT = 22
KUBE_API_PORT = 6443
HTTP_PORT = 80
HTTPS_PORT = 443


@dataclass(frozen=True)
class NodeArgs:
    availability_zone: str
    blueprint_id: str
    bundle_id: str
    admin_cidrs: Sequence[str]
    ssh_public_key: str | None
    auto_snapshot_time: str | None
    protect: bool
    tags: Mapping[str, str]


def firewall_rules(admin_cidrs: Sequence[str]) -> list[aws.lightsail.InstancePublicPortsPortInfoArgs]:
    """SSH and the Kubernetes API for admins only; HTTP(S) for everyone; nothing else."""
    admin_only = [
        aws.lightsail.InstancePublicPortsPortInfoArgs(protocol="tcp", from_port=port, to_port=port, cidrs=list(admin_cidrs))
        for port in (SSH_PORT, KUBE_API_PORT)
    ]
    public = [
        aws.lightsail.InstancePublicPortsPortInfoArgs(
            protocol="tcp", from_port=port, to_port=port, cidrs=["0.0.0.0/0"], ipv6_cidrs=["::/0"]
        )
        for port in (HTTP_PORT, HTTPS_PORT)
    ]
    return admin_only + public


class LightsailNode(pulumi.ComponentResource):
    """One Lightsail instance reachable at a static IP, firewalled for a k3s server."""

    public_ip: pulumi.Output[str]
    private_ip: pulumi.Output[str]
    instance_name: pulumi.Output[str]
    instance_arn: pulumi.Output[str]
    ssh_user: pulumi.Output[str]
    ssh_private_key: pulumi.Output[str] | None
    # What SSH needs before it can work: the static IP attached and port 22 open to admins.
    reachable: list[pulumi.Resource]

    def __init__(self, name: str, args: NodeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("lightsail-k3s:index:LightsailNode", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        if args.ssh_public_key is None:
            generated = tls.PrivateKey(f"{name}-ssh", algorithm="ED25519", opts=child)
            public_key: pulumi.Input[str] = generated.public_key_openssh
            # tls marks the private key secret; the explicit wrap keeps it so if that ever changes.
            self.ssh_private_key = pulumi.Output.secret(generated.private_key_openssh)
        else:
            public_key = args.ssh_public_key
            self.ssh_private_key = None

        # Importing our own public key keeps Lightsail from generating one and
        # leaving its private half unencrypted in state (FACTS.md, KeyPair).
        key_pair = aws.lightsail.KeyPair(f"{name}-key", public_key=public_key, tags=tags, opts=child)

        add_on = (
            aws.lightsail.InstanceAddOnArgs(type="AutoSnapshot", snapshot_time=args.auto_snapshot_time, status="Enabled")
            if args.auto_snapshot_time
            else None
        )
        # No user_data: in Lightsail it forces replacement, as do key_pair_name,
        # bundle_id and blueprint_id (FACTS.md). k3s is installed over SSH instead.
        instance = aws.lightsail.Instance(
            f"{name}-instance",
            availability_zone=args.availability_zone,
            blueprint_id=args.blueprint_id,
            bundle_id=args.bundle_id,
            key_pair_name=key_pair.name,
            add_on=add_on,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        static_ip = aws.lightsail.StaticIp(f"{name}-ip", opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        # A static IP attaches to one instance at a time: when the instance is
        # replaced, detach from the old one before attaching to the new one.
        attachment = aws.lightsail.StaticIpAttachment(
            f"{name}-ip-attachment",
            static_ip_name=static_ip.name,
            instance_name=instance.name,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        # The API replaces the whole rule set and deleting closes every listed port,
        # so a create-before-delete replacement would close what the new set just
        # opened: delete first (FACTS.md, InstancePublicPorts).
        firewall = aws.lightsail.InstancePublicPorts(
            f"{name}-firewall",
            instance_name=instance.name,
            port_infos=firewall_rules(args.admin_cidrs),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

        self.public_ip = attachment.ip_address
        self.private_ip = instance.private_ip_address
        self.instance_name = instance.name
        self.instance_arn = instance.arn
        self.ssh_user = instance.username
        self.reachable = [attachment, firewall]
        self.register_outputs(
            {
                "publicIp": self.public_ip,
                "privateIp": self.private_ip,
                "instanceName": self.instance_name,
                "sshUser": self.ssh_user,
            }
        )
