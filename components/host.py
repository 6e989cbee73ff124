"""One Lightsail host: key pair, instance, optional static IP, firewall, and a wait for first boot.

The building block of every cluster node, server or agent. It knows nothing about
k3s: the caller says which ports to open to whom and whether the host keeps a
static IP.
"""

from __future__ import annotations

import base64
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pulumi_tls as tls

from .remote_scripts import node_program, remote_script
from .settings import SERVER_COUNTS

# The component's type token. Before hosts existed the single node was a
# `LightsailNode`; the alias below keeps every resource of a stack created then
# at its URN (see LightsailHost).
HOST_TYPE = "lightsail-k3s:index:LightsailHost"
PREVIOUS_HOST_TYPE = "lightsail-k3s:index:LightsailNode"

SSH_PORT = 22
# k3s' API server and supervisor (docs.k3s.io/installation/requirements): where a server joins,
# and where the data disk's script asks another server's API (data-disk.sh, leave_etcd).
KUBE_API_PORT = 6443

# The path the data disk is attached at (pulumi-aws lightsail.Disk_attachment, disk_path; the
# Lightsail API's AttachDisk names it so). Nitro instances show it as an NVMe device instead, so
# the mount finds the disk by its size (components/remote/data-disk.sh).
DATA_DISK_PATH = "/dev/xvdf"
# data-disk.sh waits up to 300 s for the attached disk; a copy of an existing server's data onto
# it takes longer, so the mount is bounded by Pulumi at this.
DATA_DISK_MOUNT_TIMEOUT = "30m"
# data-disk.sh's own bounds, handed to it (data_disk_program): stopping k3s (k3s-killall.sh), the
# first server's wait for its etcd member's removal, one look at an API server, and the pause
# between looks.
DATA_DISK_STOP_SECONDS = 120
DATA_DISK_LEAVE_SECONDS = 300
DATA_DISK_REQUEST_SECONDS = 30
DATA_DISK_POLL_SECONDS = 5
# The other servers the first one asks, at most (data-disk.sh, leave_etcd).
_MOST_PEERS = max(SERVER_COUNTS) - 1
# What Pulumi gives the unmount: the longest the script can take, so Pulumi never cuts it off half
# way (its own errors say what it waited for), plus a minute for SSH. The longest run: the leave's
# looks at the API (the servers listed or the removal checked, the removal asked for, the look after
# the deadline, each through every other server in turn, and one look at its own API), k3s stopped
# twice (in the leave, then before the unmount, at once when stopped already), the leave's wait and
# one pause more.
_DATA_DISK_UNMOUNT_SECONDS = (
    (1 + 4 * _MOST_PEERS) * DATA_DISK_REQUEST_SECONDS
    + 2 * DATA_DISK_STOP_SECONDS
    + DATA_DISK_LEAVE_SECONDS
    + DATA_DISK_POLL_SECONDS
)
DATA_DISK_UNMOUNT_TIMEOUT = f"{math.ceil((_DATA_DISK_UNMOUNT_SECONDS + 60) / 60)}m"

# pulumi-command retries a refused dial 10 times by default; a fresh instance's
# sshd can take longer, so the boot wait retries without limit and is bounded by
# its own timeout instead (pulumi-command ConnectionArgs.dial_error_limit).
BOOT_TIMEOUT = "15m"


@dataclass(frozen=True)
class PortRule:
    """One rule of the host's public firewall: a port range open to these sources."""

    protocol: str
    from_port: int
    to_port: int
    cidrs: tuple[str, ...] = ()
    ipv6_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class SharedKeyPair:
    """A key pair another host created, so every node of a cluster takes the same SSH key."""

    name: pulumi.Input[str]
    # The generated key's private half; None when the user's own key sits in an ssh-agent.
    private_key: pulumi.Input[str] | None


@dataclass(frozen=True)
class HostArgs:
    availability_zone: str
    blueprint_id: str
    bundle_id: str
    # The public firewall, complete: Lightsail replaces the instance's whole rule set with it.
    firewall_rules: Sequence[PortRule]
    # A static IP survives instance replacement and stop/start; without one the host
    # has Lightsail's dynamic public IP, which changes when the instance stops.
    static_ip: bool
    ssh_agent_socket: str | None
    auto_snapshot_time: str | None
    protect: bool
    tags: Mapping[str, str]
    # Either take another host's key pair, or create one: import `ssh_public_key`,
    # or generate an ED25519 key when that is None too.
    shared_key_pair: SharedKeyPair | None = None
    ssh_public_key: str | None = None
    # The public host key of an instance created before the stack pinned host keys; None:
    # generate a host key and install it at first boot.
    existing_host_key: str | None = None
    # Replace the instance delete-first. For a node that joins a cluster: the engine then deletes,
    # before the old instance, whatever its new ARN or name would replace (its firewall, static IP
    # attachment, boot wait, and the node's install and membership commands, whose deletes drain
    # the node, stop its k3s and delete its Node) while the old host still answers on its own
    # firewall and IP (pulumi/pulumi pkg/resource/deploy/step_generator.go, the
    # deleteBeforeReplace branch of continueStepsFromDiff and calculateDependentReplacements;
    # modelled in tools/replacement.py). Created first instead, the new host would install k3s
    # under the node's name while the old one still ran it.
    delete_before_replace: bool = False
    # GB of a Lightsail block storage disk that holds /var/lib/rancher/k3s (a server's datastore,
    # certificates, tokens and local-path volumes), attached and mounted before anything installs;
    # 0: none, the data stays on the instance's own disk and goes with it.
    data_disk_gb: int = 0
    # A further server: its drain removes its etcd member before its instance goes, so the data a
    # new host finds on the disk joins etcd anew (components/remote/data-disk.sh, ETCD_REJOINS).
    data_disk_etcd_rejoins: bool = False
    # The first server of a cluster with no further servers: its etcd member, if any, is the only
    # one, so a new host's install may reset the member's address (data-disk.sh).
    data_disk_etcd_single_member: bool = False
    # The instance's region, to require IMDSv2 on it there (metadata_options_command); None leaves
    # the metadata options as Lightsail sets them.
    metadata_options_region: str | None = None
    # What the instance waits for before it is created, replaced or changed (a further server's:
    # the server before it, components/rollout.py, after_previous_server); None, or an Output
    # that resolves to None, waits for nothing (pulumi sdk/python/lib/pulumi/runtime/
    # _depends_on.py skips None).
    instance_after: pulumi.Input[pulumi.Resource | None] = None


def metadata_options_command(region: str, instance_name: str) -> str:
    """The AWS CLI call that requires IMDSv2 on the instance, with a PUT response hop limit of 1.

    Lightsail's UpdateInstanceMetadataOptions (AWS Lightsail API reference; botocore's lightsail
    service-2.json: httpTokens optional|required, httpEndpoint, httpPutResponseHopLimit); without it
    httpTokens is `optional`, so IMDSv1 answers anyone on the instance. With tokens required, every
    read needs a token from a PUT whose response leaves with an IP TTL of the hop limit: 1 reaches the
    node's own processes, and dies at the node's forwarding of it to a pod, one hop further. Neither
    provider exposes it: pulumi-aws' lightsail.Instance (the Terraform provider's
    aws_lightsail_instance) has no metadata options, nor has pulumi-aws-native's (CloudFormation's
    AWS::Lightsail::Instance). cloud-init, which reads the metadata at every boot, uses IMDSv2 since
    19.4 (canonical/cloud-init cloudinit/sources/DataSourceEc2.py, _maybe_fetch_api_token), older
    than every blueprint the stack offers.
    """
    return (
        f"aws lightsail update-instance-metadata-options --region {shlex.quote(region)} "
        f"--instance-name {shlex.quote(instance_name)} --http-tokens required "
        "--http-put-response-hop-limit 1 --http-endpoint enabled --output json"
    )


def data_disk_program(
    node_name: str,
    disk_size_gb: int,
    instance_id: str,
    private_ip: str,
    etcd_rejoins: bool,
    etcd_single_member: bool = False,
) -> str:
    """What the data disk's command feeds to `bash -s -- mount|unmount` on the host."""
    return node_program(
        remote_script("data-disk.sh"),
        {
            "NODE_NAME": node_name,
            "DISK_SIZE_GB": str(disk_size_gb),
            "INSTANCE_ID": instance_id,
            "PRIVATE_IP": private_ip,
            "ETCD_REJOINS": "true" if etcd_rejoins else "false",
            "ETCD_SINGLE_MEMBER": "true" if etcd_single_member else "false",
            "KUBE_API_PORT": str(KUBE_API_PORT),
            "STOP_TIMEOUT_SECONDS": str(DATA_DISK_STOP_SECONDS),
            "LEAVE_TIMEOUT_SECONDS": str(DATA_DISK_LEAVE_SECONDS),
            "REQUEST_TIMEOUT_SECONDS": str(DATA_DISK_REQUEST_SECONDS),
            "POLL_INTERVAL_SECONDS": str(DATA_DISK_POLL_SECONDS),
        },
    )


def launch_script(host_private_key: str, host_public_key: str) -> str:
    """The instance's user_data: install-host-key.sh with the key pair assigned after its shebang."""
    shebang, body = remote_script("install-host-key.sh").split("\n", 1)
    assignments = {
        "HOST_KEY_B64": base64.b64encode(host_private_key.encode()).decode(),
        "HOST_PUBLIC_KEY": host_public_key.strip(),
    }
    return (
        shebang
        + "\n"
        + "".join(f"{name}={shlex.quote(value)}\n" for name, value in assignments.items())
        + body
    )


def port_infos(rules: Sequence[PortRule]) -> list[aws.lightsail.InstancePublicPortsPortInfoArgs]:
    return [
        aws.lightsail.InstancePublicPortsPortInfoArgs(
            protocol=rule.protocol,
            from_port=rule.from_port,
            to_port=rule.to_port,
            cidrs=list(rule.cidrs) or None,
            ipv6_cidrs=list(rule.ipv6_cidrs) or None,
        )
        for rule in rules
    ]


class LightsailHost(pulumi.ComponentResource):
    """A Lightsail instance, firewalled as the caller says, reachable over SSH once first boot is done."""

    public_ip: pulumi.Output[str]
    # The static IP's address, known once the address is allocated, before it is attached: what
    # the servers' certificates name (tls-san). The first server's install reads them all, so
    # through the attachment it would wait for every further server's instance.
    static_ip_address: pulumi.Output[str] | None
    private_ip: pulumi.Output[str]
    instance_name: pulumi.Output[str]
    instance_arn: pulumi.Output[str]
    ssh_user: pulumi.Output[str]
    ssh_private_key: pulumi.Output[str] | None
    # The host's SSH public key (OpenSSH format), which every connection pins.
    ssh_host_key: pulumi.Output[str]
    key_pair: SharedKeyPair
    # Done when SSH works and cloud-init has finished first boot: what installs wait for.
    booted: pulumi.Resource
    # Done when the data disk is mounted at /var/lib/rancher/k3s (without one: booted): what a
    # server's install waits for.
    data_ready: pulumi.Resource
    # The data disk, when the host has one: what the cluster's identity follows.
    data_disk: aws.lightsail.Disk | None

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None):
        # Children inherit the alias: the engine derives each child's old URN from its
        # parent's (pulumi/pulumi pkg/resource/deploy/step_generator.go, generateAliases
        # and inheritedChildAlias), so a stack's instance, static IP and key are kept.
        aliases = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=PREVIOUS_HOST_TYPE)])
        super().__init__(HOST_TYPE, name, None, pulumi.ResourceOptions.merge(opts, aliases))
        tags = dict(args.tags)

        self.key_pair = args.shared_key_pair or self._own_key_pair(name, args.ssh_public_key, tags)
        self.ssh_private_key = (
            None
            if self.key_pair.private_key is None
            else pulumi.Output.secret(self.key_pair.private_key)
        )

        add_on = (
            aws.lightsail.InstanceAddOnArgs(
                type="AutoSnapshot", snapshot_time=args.auto_snapshot_time, status="Enabled"
            )
            if args.auto_snapshot_time
            else None
        )
        # The SSH host key is generated here and installed by the launch script at first
        # boot, so even the first connection can check it: without `host_key` pulumi-command
        # accepts any key (pulumi-command provider/pkg/provider/remote/connection.go,
        # InsecureIgnoreHostKey), and a man in the middle could answer `cat k3s.yaml`.
        # user_data forces replacement in Lightsail (hashicorp/terraform-provider-aws
        # internal/service/lightsail/instance.go, ForceNew), so it is given at create only:
        # later changes to it (a new script version) are ignored, never a new instance.
        # An instance created before pinning keeps its own key, given as existing_host_key.
        user_data: pulumi.Input[str] | None = None
        if args.existing_host_key is None:
            host_key = tls.PrivateKey(
                f"{name}-host-key", algorithm="ED25519", opts=pulumi.ResourceOptions(parent=self)
            )
            self.ssh_host_key = host_key.public_key_openssh.apply(str.strip)
            user_data = pulumi.Output.secret(
                pulumi.Output.all(host_key.private_key_openssh, host_key.public_key_openssh).apply(
                    lambda keys: launch_script(keys[0], keys[1])
                )
            )
        else:
            self.ssh_host_key = pulumi.Output.from_input(args.existing_host_key)
        instance = aws.lightsail.Instance(
            f"{name}-instance",
            availability_zone=args.availability_zone,
            blueprint_id=args.blueprint_id,
            bundle_id=args.bundle_id,
            key_pair_name=self.key_pair.name,
            user_data=user_data,
            add_on=add_on,
            tags=tags,
            # The replacement order is always set (HostArgs.delete_before_replace: create-first
            # unless the caller asks otherwise), never left to the provider's diff (pulumi/pulumi
            # pkg/resource/deploy/step_generator.go, continueStepsFromDiff: a set option wins).
            # With a data disk the cluster's data is not on the instance: the disk and the static
            # IP are protected, and the instance may be replaced (a bigger bundle, another OS).
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect and not args.data_disk_gb,
                ignore_changes=["userData"],
                delete_before_replace=args.delete_before_replace,
                depends_on=None
                if args.instance_after is None
                else cast(list[pulumi.Input[pulumi.Resource]], [args.instance_after]),
            ),
        )
        # The API replaces the whole rule set and deleting closes every listed port,
        # so a create-before-delete replacement would close what the new set just
        # opened: delete first (AWS Lightsail API PutInstancePublicPorts).
        firewall = aws.lightsail.InstancePublicPorts(
            f"{name}-firewall",
            instance_name=instance.name,
            port_infos=port_infos(args.firewall_rules),
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        reachable: list[pulumi.Resource] = [firewall]
        ip_attachment: aws.lightsail.StaticIpAttachment | None = None
        self.static_ip_address = None
        if args.static_ip:
            static_ip = aws.lightsail.StaticIp(
                f"{name}-ip", opts=pulumi.ResourceOptions(parent=self, protect=args.protect)
            )
            # A static IP attaches to one instance at a time: when the instance is
            # replaced, detach from the old one before attaching to the new one.
            attachment = aws.lightsail.StaticIpAttachment(
                f"{name}-ip-attachment",
                static_ip_name=static_ip.name,
                instance_name=instance.name,
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
            )
            reachable.append(attachment)
            ip_attachment = attachment
            self.static_ip_address = static_ip.ip_address
            self.public_ip = attachment.ip_address
        else:
            self.public_ip = instance.public_ip_address

        self.private_ip = instance.private_ip_address
        self.instance_name = instance.name
        self.instance_arn = instance.arn
        self.ssh_user = instance.username

        self.booted = command.remote.Command(
            f"{name}-wait-for-boot",
            connection=self.ssh_connection(args.ssh_agent_socket, dial_error_limit=-1),
            create="bash -s",
            stdin=remote_script("wait-for-boot.sh"),
            # A new instance boots anew; the static IP (the SSH host) does not change with it.
            triggers=[instance.arn],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=reachable,
                custom_timeouts=pulumi.CustomTimeouts(create=BOOT_TIMEOUT),
            ),
        )
        self.data_disk = None
        self.data_ready = self.booted
        if args.data_disk_gb:
            if ip_attachment is None:
                raise ValueError(f"{name}: a data disk needs the host's static IP (static_ip)")
            self._data_disk(name, args, instance, ip_attachment, tags)
        region = args.metadata_options_region
        if region is not None:
            # Runs on the machine running `pulumi up`, with the provider's AWS credentials
            # (environment or AWS_PROFILE), once first boot is done; again for a new instance.
            command.local.Command(
                f"{name}-metadata-options",
                create=instance.name.apply(
                    lambda instance_name: metadata_options_command(region, instance_name)
                ),
                triggers=[instance.arn],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.booted]),
            )
        self.register_outputs(
            {
                "publicIp": self.public_ip,
                "privateIp": self.private_ip,
                "instanceName": self.instance_name,
                "sshUser": self.ssh_user,
            }
        )

    def _data_disk(
        self,
        name: str,
        args: HostArgs,
        instance: aws.lightsail.Instance,
        ip_attachment: aws.lightsail.StaticIpAttachment,
        tags: dict[str, str],
    ) -> None:
        """The disk, its attachment to this instance, and the command that mounts it (and, on the
        old host of a replacement, stops k3s and unmounts it before the detach).

        A replaced instance has a new name and ARN. The attachment holds the name in a
        replace-forcing input (instance_name is ForceNew: hashicorp/terraform-provider-aws
        internal/service/lightsail/disk_attachment.go) and is replaced delete-first, since a disk
        attaches to one instance at a time; the mount command holds the ARN, the attachment's id
        and the static IP attachment's id in `triggers`. So the engine deletes the mount command,
        which stops k3s and unmounts on the old host, before it detaches the disk, and before the
        static IP moves (pulumi/pulumi pkg/resource/deploy/step_generator.go,
        calculateDependentReplacements; tools/replacement.py; tests/test_data_disk.py): its
        delete runs over SSH to the static IP while that still reaches the old host. The disk
        itself depends on no instance, so nothing replaces it.
        """
        child = pulumi.ResourceOptions(parent=self)
        disk = aws.lightsail.Disk(
            f"{name}-data",
            availability_zone=args.availability_zone,
            size_in_gb=args.data_disk_gb,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        attachment = aws.lightsail.Disk_attachment(
            f"{name}-data-attachment",
            disk_name=disk.name,
            instance_name=instance.name,
            disk_path=DATA_DISK_PATH,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(delete_before_replace=True, depends_on=[self.booted]),
            ),
        )
        mount = command.remote.Command(
            f"{name}-data-mount",
            connection=self.ssh_connection(args.ssh_agent_socket),
            create="sudo bash -s -- mount",
            update="sudo bash -s -- mount",
            delete="sudo bash -s -- unmount",
            stdin=pulumi.Output.all(instance.arn, instance.private_ip_address).apply(
                lambda values: data_disk_program(
                    name,
                    args.data_disk_gb,
                    values[0],
                    values[1],
                    args.data_disk_etcd_rejoins,
                    args.data_disk_etcd_single_member,
                )
            ),
            triggers=[instance.arn, attachment.id, ip_attachment.id],
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    depends_on=[attachment],
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=DATA_DISK_MOUNT_TIMEOUT,
                        update=DATA_DISK_MOUNT_TIMEOUT,
                        delete=DATA_DISK_UNMOUNT_TIMEOUT,
                    ),
                ),
            ),
        )
        self.data_disk = disk
        self.data_ready = mount

    def _own_key_pair(
        self, name: str, ssh_public_key: str | None, tags: dict[str, str]
    ) -> SharedKeyPair:
        child = pulumi.ResourceOptions(parent=self)
        private_key: pulumi.Output[str] | None = None
        if ssh_public_key is None:
            generated = tls.PrivateKey(f"{name}-ssh", algorithm="ED25519", opts=child)
            public_key: pulumi.Input[str] = generated.public_key_openssh
            private_key = generated.private_key_openssh
        else:
            public_key = ssh_public_key
        # Importing our own public key keeps Lightsail from generating one and leaving
        # its private half unencrypted in state (pulumi-aws lightsail.KeyPair docs).
        key_pair = aws.lightsail.KeyPair(
            f"{name}-key", public_key=public_key, tags=tags, opts=child
        )
        return SharedKeyPair(name=key_pair.name, private_key=private_key)

    def ssh_connection(
        self, ssh_agent_socket: str | None, dial_error_limit: int | None = None
    ) -> command.remote.ConnectionArgs:
        """SSH to this host as the instance's user, with the generated key or the user's ssh-agent."""
        return command.remote.ConnectionArgs(
            host=self.public_ip,
            user=self.ssh_user,
            private_key=self.ssh_private_key,
            agent_socket_path=None if self.ssh_private_key is not None else ssh_agent_socket,
            # Until the launch script has installed the key, sshd shows another one; the
            # mismatch fails the dial, which pulumi-command retries up to dial_error_limit
            # (connection.go, dialWithRetry), as the boot wait does without limit.
            host_key=self.ssh_host_key,
            dial_error_limit=dial_error_limit,
        )
