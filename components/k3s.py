"""The k3s server: installed over SSH, its kubeconfig and node token read back as secrets."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from . import certificates, rollout
from .errors import ConfigError
from .host import KUBE_API_PORT, SSH_PORT, PortRule
from .node_updates import SECURITY_UPDATES_CONF_NAME, security_updates_conf
from .registries import Registry
from .remote_scripts import node_program, remote_script

if TYPE_CHECKING:
    from .settings import ClusterSpec

# k3s ports (docs.k3s.io/installation/requirements#inbound-rules-for-k3s-nodes): the API
# server listens on KUBE_API_PORT (6443, kept in host.py, whose data disk script asks the other
# servers there); 10250 (kubelet) and 8472/udp (flannel VXLAN) must never be public.
# The bundled Traefik ingress, through ServiceLB on every node.
HTTP_PORT = 80
HTTPS_PORT = 443

# k3s paths (docs.k3s.io/cli/server and docs.k3s.io/cluster-access).
KUBECONFIG_PATH = "/etc/rancher/k3s/k3s.yaml"
NODE_TOKEN_PATH = "/var/lib/rancher/k3s/server/node-token"
# The agent token in secure format (K10<CA hash>::node:<secret>), so an agent checks the
# server's CA before it sends its credentials (docs.k3s.io/cli/token).
AGENT_TOKEN_PATH = "/var/lib/rancher/k3s/server/agent-token"

INSTALL_TIMEOUT = "20m"
# snapshot-before-upgrade.sh bounds its snapshot at 600 s and each listing at 120 s; a minute
# more for SSH, so its own error comes first.
SNAPSHOT_TIMEOUT = "15m"
INSTALL_COMMAND = "sudo bash -s"

# k3s CIS hardening items that need no extra packages (docs.k3s.io/security/hardening-guide).
# protect-kernel-defaults makes the kubelet exit unless the kernel has these values,
# so every node's install, server or agent, sets them, persistently, before k3s starts
# ("Set kernel parameters"; apply_kubelet_sysctls in components/remote/k3s-upgrade-path.sh).
KUBELET_SYSCTLS = {
    "vm.panic_on_oom": "0",
    "vm.overcommit_memory": "1",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
}
K3S_SERVER_DIR = "/var/lib/rancher/k3s/server"
AUDIT_POLICY_PATH = f"{K3S_SERVER_DIR}/audit.yaml"
AUDIT_LOG_PATH = f"{K3S_SERVER_DIR}/logs/audit.log"
# The guide's starter policy: who did what to which object, never request or response bodies
# (so no Secret values); RequestReceived is dropped because ResponseComplete repeats it.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}

K3S_RELEASE = re.compile(r"^v([0-9]+)\.([0-9]+)\.([0-9]+)\+k3s([0-9]+)$")
VERSION_SKEW_POLICY = "kubernetes.io/releases/version-skew-policy"


@dataclass(frozen=True)
class K3sServerArgs:
    host: pulumi.Input[str]
    ssh_user: pulumi.Input[str]
    # Exactly one of these: the generated key, or an ssh-agent holding the user's key.
    ssh_private_key: pulumi.Input[str] | None
    ssh_agent_socket: str | None
    # Changes when the instance is replaced; the static IP (the SSH host) does not.
    instance_identity: pulumi.Input[str]
    k3s_version: str
    node_name: str
    cluster_name: str
    # The host's first boot is done and SSH works.
    host_booted: Sequence[pulumi.Resource]
    # Whether the provider may drop objects of an unreachable cluster from state.
    delete_unreachable: bool
    # The host's SSH public key, pinned by every connection (components/host.py).
    ssh_host_key: pulumi.Input[str]
    # kubelet flags for reservations and eviction (components/capacity.py), as k3s `kubelet-arg` entries.
    kubelet_args: Sequence[str] = ()
    # k3s config keys for etcd snapshots to S3 (components/backups.py); secret. None: no backups.
    etcd_snapshots: pulumi.Input[Mapping[str, Any]] | None = None
    # certRotation: each new value rotates the certificates once.
    cert_rotation: int = 0
    # Start embedded etcd (k3s `cluster-init`): for snapshots, and for servers to join.
    cluster_init: bool = False
    # The API certificate's names, the same on every server: each server's static IP.
    # Empty means this server's own address alone.
    tls_sans: Sequence[pulumi.Input[str]] = ()
    # A DNS name for the API (the stack's domain): listed in tls-san and used in the API URL.
    api_domain: str | None = None
    # The private registries' credentials, written to the node's registries.yaml (secret stdin);
    # an Output where they arrive as one (the package's Cluster, components/cluster.py).
    registries: pulumi.Input[Sequence[Registry]] = ()
    # The server's data disk (components/host.py), when /var/lib/rancher/k3s lives on one: the
    # cluster is then the disk's, whatever instance mounts it.
    data_disk: pulumi.Resource | None = None


def admin_sources(admin_cidrs: Sequence[str], deploy_cidrs: Sequence[str]) -> tuple[str, ...]:
    """Who may reach SSH and the Kubernetes API: the admins, and the machine deploying this run."""
    return tuple(dict.fromkeys([*admin_cidrs, *deploy_cidrs]))


def server_firewall_rules(
    admin_cidrs: Sequence[str], deploy_cidrs: Sequence[str] = ()
) -> list[PortRule]:
    """SSH and the Kubernetes API for admins (and this run's deploying machine) only; HTTP(S) for everyone; nothing else."""
    admin_only = [
        PortRule("tcp", port, port, cidrs=admin_sources(admin_cidrs, deploy_cidrs))
        for port in (SSH_PORT, KUBE_API_PORT)
    ]
    public = [
        PortRule("tcp", port, port, cidrs=("0.0.0.0/0",), ipv6_cidrs=("::/0",))
        for port in (HTTP_PORT, HTTPS_PORT)
    ]
    return admin_only + public


def agent_firewall_rules(
    admin_cidrs: Sequence[str], public_ingress: bool, deploy_cidrs: Sequence[str] = ()
) -> list[PortRule]:
    """SSH for admins (and this run's deploying machine); HTTP(S) for everyone only when the agent has a public address to serve.

    Nothing for node-to-node traffic (6443, 10250, flannel's 8472/udp): Lightsail's firewall
    filters only traffic to public IPs, and nodes talk over their private IPs, which it
    does not filter (docs.aws.amazon.com/lightsail/latest/userguide/
    understanding-firewall-and-port-mappings-in-amazon-lightsail.html).
    """
    admin_only = [
        PortRule("tcp", SSH_PORT, SSH_PORT, cidrs=admin_sources(admin_cidrs, deploy_cidrs))
    ]
    if not public_ingress:
        return admin_only
    public = [
        PortRule("tcp", port, port, cidrs=("0.0.0.0/0",), ipv6_cidrs=("::/0",))
        for port in (HTTP_PORT, HTTPS_PORT)
    ]
    return admin_only + public


def kubernetes_minor(k3s_version: str) -> str:
    """v1.36.1+k3s1 -> v1.36: a k3s release ships the Kubernetes release of the same number."""
    major, minor = k3s_version.removeprefix("v").split(".")[:2]
    return f"v{major}.{minor}"


def upgrade_refusal(installed: str, target: str) -> tuple[str, str] | None:
    """Why moving k3s from `installed` to `target` breaks Kubernetes' version-skew policy, with the fix; or None.

    The control plane upgrades one minor at a time and never downgrades
    (kubernetes.io/releases/version-skew-policy, "Supported component upgrade order");
    k3s follows that policy. check_upgrade_path in components/remote/k3s-upgrade-path.sh,
    which every node's install loads, applies the same rule on the node; the tests run both
    against one table.
    """
    installed_match, target_match = K3S_RELEASE.fullmatch(installed), K3S_RELEASE.fullmatch(target)
    if installed_match is None or target_match is None:
        return None
    old = tuple(int(part) for part in installed_match.groups())
    new = tuple(int(part) for part in target_match.groups())
    if new < old:
        return (
            f"k3s {target} is older than the installed {installed}, and Kubernetes does not support downgrades "
            f"({VERSION_SKEW_POLICY})",
            f"keep k3sVersion at {installed} or newer; to go back, restore a snapshot taken before the upgrade",
        )
    next_minor = f"v{old[0]}.{old[1] + 1}"
    if new[:2] > (old[0], old[1] + 1):
        return (
            f"k3s {target} is more than one minor ahead of the installed {installed}; Kubernetes upgrades "
            f"one minor at a time ({VERSION_SKEW_POLICY})",
            f"upgrade to the newest {next_minor}.x+k3sN release first (github.com/k3s-io/k3s/releases), "
            f"run pulumi up, and go on one minor at a time to {target}",
        )
    return None


def previous_deployment() -> pulumi.StackReference:
    """A reference to this stack's previous deployment, whose outputs (`k3sVersion`, `nodes`,
    `nodeRestartDigests`) the program compares with what it declares now.

    A StackReference to the running stack reads its last checkpoint: during an update the
    root stack resource still carries the previous outputs until the program registers its
    new ones (pulumi/pulumi pkg/resource/deploy/builtins.go readStackReference; step.go,
    SameStep.Apply retains old outputs). It is read when the program registers it, in a preview
    as in an update. A stack that has never been deployed has no outputs, so get_output gives
    None (pkg/backend/diy/state.go getSnapshotStackOutputs). The self-hosted backend's
    organization is the literal `organization` (pkg/backend/diy/backend.go), which
    pulumi.get_organization() returns.
    """
    stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    return pulumi.StackReference(
        f"{pulumi.get_project()}-{pulumi.get_stack()}-previous-deployment", stack_name=stack
    )


def upgrade_checked(
    deployed: pulumi.Input[str | None], target: str
) -> pulumi.Output[list[pulumi.Resource]]:
    """Nothing more to wait for once going from the deployed release to `target` keeps the
    version-skew policy; otherwise it fails with the ConfigError for k3sVersion.

    Given as `depends_on` to every resource a program declares, it gates them all: the SDK
    awaits a resource's depends_on first, before its inputs, its parent's URN or the
    RegisterResource call, and when that raises it sends nothing and fails the resource's
    URN and outputs with the error (pulumi 3.272.0, sdk/python/lib/pulumi/runtime/resource.py:
    prepare_resource awaits _resolve_depends_on_urns from runtime/_depends_on.py;
    register_resource's do_register calls resolve_outputs_due_to_exception). So children of a
    gated component, which await its URN as their parent, are never sent either. The gate
    carries the dependency on what `deployed` was read from (the StackReference).
    """

    def check(deployed_version: str | None) -> list[pulumi.Resource]:
        refusal = upgrade_refusal(deployed_version, target) if deployed_version else None
        if refusal is not None:
            problem, fix = refusal
            raise ConfigError("k3sVersion", problem, fix)
        return []

    return pulumi.Output.from_input(deployed).apply(check)


def deployment_gate(previous: pulumi.StackReference, spec: ClusterSpec) -> pulumi.ResourceOptions:
    """The options that gate a stack's components on the deployment before (`previous`): the
    version-skew check against its k3sVersion (upgrade_checked) and the changes to the running
    cluster that must not share a run (rollout.change_checked). Each is a depends_on that fails
    with its ConfigError, so a refusal stops the program before anything is sent to the engine: a
    preview reports it and an `up` changes nothing. Given to a component, it gates everything in
    it, which awaits its parent (see upgrade_checked)."""
    return pulumi.ResourceOptions(
        depends_on=pulumi.Output.all(
            upgrade_checked(previous.get_output("k3sVersion"), spec.k3s_version),
            rollout.change_checked(
                previous,
                k3s_version=spec.k3s_version,
                bundle_id=spec.bundle.bundle_id,
                blueprint_id=spec.blueprint_id,
                data_disk_gb=spec.data_disk_gb,
                backups=spec.backups is not None,
                embedded_etcd=spec.embedded_etcd,
            ),
        ).apply(lambda gates: [resource for gate in gates for resource in gate])
    )


def rewrite_kubeconfig(kubeconfig_yaml: str, server_ip: str, cluster_name: str) -> str:
    """Points k3s' kubeconfig at the static IP and renames `default` so it merges cleanly."""
    config = yaml.safe_load(kubeconfig_yaml)
    if (
        not isinstance(config, dict)
        or not config.get("clusters")
        or not config.get("users")
        or not config.get("contexts")
    ):
        raise ValueError(
            f"{KUBECONFIG_PATH} on the node is not a kubeconfig with a cluster, user and context"
        )
    for entry in config["clusters"]:
        entry["name"] = cluster_name
        entry["cluster"]["server"] = f"https://{server_ip}:{KUBE_API_PORT}"
    for entry in config["users"]:
        entry["name"] = cluster_name
    for entry in config["contexts"]:
        entry["name"] = cluster_name
        entry["context"]["cluster"] = cluster_name
        entry["context"]["user"] = cluster_name
    config["current-context"] = cluster_name
    return yaml.safe_dump(config, sort_keys=False)


# Keys of a server's config that belong to that server alone; the rest every server shares.
NODE_SPECIFIC_KEYS = ("node-name", "cluster-init")

CONFIG_HEADER = "# Written by lightsail-k3s on every pulumi up; edits here are overwritten.\n"


def kubelet_config(kubelet_args: Sequence[str]) -> dict[str, Any]:
    """The config keys for the kubelet, which every node runs, servers and agents alike.

    k3s takes both keys on `k3s server` and `k3s agent` (docs.k3s.io/cli/agent: servers run
    an agent too). `kubelet_args` are the node's reservations and eviction thresholds
    (components/capacity.py, from its own bundle).
    """
    return {
        # CIS hardening: the kubelet refuses to run on kernel settings other than its defaults;
        # each node's install writes and applies KUBELET_SYSCTLS before k3s starts.
        "protect-kernel-defaults": True,
        # Idle `kubectl exec`/`port-forward` streams close after 5 minutes (the guide's kubelet-arg);
        # then what the kubelet keeps for k3s and the OS, and when it evicts pods instead of
        # letting the node run out of memory (docs.k3s.io/cli/agent, --kubelet-arg).
        "kubelet-arg": ["streaming-connection-idle-timeout=5m", *kubelet_args],
    }


def server_config(
    node_name: str,
    tls_sans: Sequence[str],
    kubelet_args: Sequence[str] = (),
    cluster_init: bool = False,
    etcd_snapshots: Mapping[str, Any] | None = None,
    agent_token: str | None = None,
) -> dict[str, Any]:
    """k3s' /etc/rancher/k3s/config.yaml for the server, as data.

    Keys mirror the `k3s server` flags (docs.k3s.io/installation/configuration#configuration-file).
    """
    kubelet = kubelet_config(kubelet_args)
    config: dict[str, Any] = {
        "node-name": node_name,
        "write-kubeconfig-mode": "0600",
        # Kubernetes Secrets (the apps' secretEnv values) are encrypted in the datastore.
        "secrets-encryption": True,
        # The static IP is NAT'd to the instance, so k3s cannot discover it; with
        # tls-san-security on by default the API refuses names missing here
        # (docs.k3s.io/cli/server, --tls-san and --tls-san-security).
        "tls-san": list(tls_sans),
        # The kubelet's keys keep the places they had before agents shared them, around the
        # audit log's: a server's config.yaml, and so its k3s, stays as it was.
        "protect-kernel-defaults": kubelet.pop("protect-kernel-defaults"),
        # CIS hardening: the API server keeps an audit log, rotated at 100 MB, 10 files, 30 days.
        "kube-apiserver-arg": [
            f"audit-log-path={AUDIT_LOG_PATH}",
            f"audit-policy-file={AUDIT_POLICY_PATH}",
            "audit-log-maxage=30",
            "audit-log-maxbackup=10",
            "audit-log-maxsize=100",
        ],
        **kubelet,
    }
    if cluster_init:
        # Embedded etcd instead of SQLite. A server already on SQLite converts when it
        # restarts with this; once etcd data exists, k3s ignores the flag
        # (docs.k3s.io/datastore/ha-embedded, "Existing single-node clusters").
        config["cluster-init"] = True
    config.update(etcd_snapshots or {})
    if agent_token is not None:
        # The secret that joins agents only; agents take the secure form read back
        # from the server, which also pins the cluster CA (docs.k3s.io/cli/token).
        config["agent-token"] = agent_token
    return config


def registries_file(registries: Sequence[Registry]) -> str:
    """k3s' /etc/rancher/k3s/registries.yaml for these registries; empty when there are none.

    `mirrors.<host>.endpoint` lists where containerd pulls the host's images first, before the
    host itself; `configs.<host>.auth` holds the credentials containerd presents to that host
    (docs.k3s.io/installation/private-registry, "Registries Configuration File"). Credentials go
    by the host contacted: k3s gives each mirror endpoint the config of the endpoint's own host,
    and the host's default endpoint the host's (k3s pkg/agent/containerd/config.go,
    getHostConfigs and configForHost), so a registry's password never reaches its mirror.
    """
    if not registries:
        return ""
    document: dict[str, Any] = {}
    mirrors = {
        registry.host: {"endpoint": [registry.mirror]} for registry in registries if registry.mirror
    }
    if mirrors:
        document["mirrors"] = mirrors
    document["configs"] = {
        registry.host: {"auth": {"username": registry.username, "password": registry.password}}
        for registry in registries
    }
    return CONFIG_HEADER + yaml.safe_dump(document, sort_keys=False)


def install_program(
    script: str,
    k3s_version: str,
    node_name: str,
    config: Mapping[str, Any],
    registries: Sequence[Registry],
    data_on_disk: bool = False,
) -> str:
    """What the install command feeds to `bash -s`: its settings as shell assignments, then the script.

    Settings travel on stdin, not on the command line, so secrets added to the
    config never show in a process list or in the command's plain inputs. So do the private
    registries' credentials (K3S_REGISTRIES_B64, empty without registries), which every node
    writes, servers and agents alike: each pulls images (k3s-registries.sh).
    Every node install loads the version-skew rule from UPGRADE_PATH_LIB_B64, and a server's its
    Ready wait from WAIT_LIB_B64, so each has one home; agents and servers share this program,
    and each gets the libraries its own script loads (remote_scripts.node_program).
    """
    rendered = CONFIG_HEADER + yaml.safe_dump(dict(config), sort_keys=False)
    sysctl_conf = "".join(f"{key}={value}\n" for key, value in KUBELET_SYSCTLS.items())
    audit_policy = CONFIG_HEADER + yaml.safe_dump(AUDIT_POLICY, sort_keys=False)
    assignments = {
        "K3S_VERSION": k3s_version,
        "NODE_NAME": node_name,
        "K3S_CONFIG_B64": base64.b64encode(rendered.encode()).decode(),
        "KUBELET_SYSCTL_CONF_B64": base64.b64encode(sysctl_conf.encode()).decode(),
        "AUDIT_POLICY_B64": base64.b64encode(audit_policy.encode()).decode(),
        "K3S_REGISTRIES_B64": base64.b64encode(registries_file(registries).encode()).decode(),
        # unattended-upgrades' settings, security pocket only (components/node_updates.py).
        "SECURITY_UPDATES_CONF_B64": base64.b64encode(security_updates_conf().encode()).decode(),
        "SECURITY_UPDATES_CONF_NAME": SECURITY_UPDATES_CONF_NAME,
    }
    if data_on_disk:
        # The install refuses to run unless the data disk is mounted (data-disk.sh); a server
        # without one keeps its stdin, so turning the disk on re-runs the install, which starts
        # the k3s the disk's first mount stopped to copy its data.
        assignments["K3S_DATA_ON_DISK"] = "true"
        # Where a first server that left etcd rejoins another server (install-k3s-server.sh).
        assignments["KUBE_API_PORT"] = str(KUBE_API_PORT)
    return node_program(script, assignments)


def snapshot_before_upgrade_program(k3s_version: str, to_bucket: bool) -> str:
    """What the first server's snapshot command feeds to `bash -s`: the release about to be
    installed and whether the snapshot must reach the bucket, then snapshot-before-upgrade.sh."""
    return node_program(
        remote_script("snapshot-before-upgrade.sh"),
        {"K3S_VERSION": k3s_version, "SNAPSHOT_TO_BUCKET": "true" if to_bucket else "false"},
    )


def program_digest(program: pulumi.Output[str]) -> pulumi.Output[str]:
    """The SHA-256 of a node program: small enough for a trigger or a setting, and it changes
    whenever the program does. It stays secret whenever the program is (a token in its config)."""
    return program.apply(lambda text: hashlib.sha256(text.encode()).hexdigest())


class K3sServer(pulumi.ComponentResource):
    """A single k3s server on the node, with a Kubernetes provider for its API."""

    kubeconfig: pulumi.Output[str]
    node_token: pulumi.Output[str]
    agent_token: pulumi.Output[str]
    # This server's config without what is its own: for the servers that join it.
    shared_config: pulumi.Output[dict[str, Any]]
    # The SHA-256 of what restarts this server's k3s, of the install as it stands in state
    # (rollout.deployed_digest): what the outputs keep for the next run; secret.
    kept_digest: pulumi.Output[str]
    # Done when k3s runs this release with this config and, after a raised certRotation, is Ready
    # with rotated certificates: what the next node waits for.
    done: pulumi.Resource
    # The earliest expiry of this server's certificates (ISO 8601), read on the node.
    certificates_expire_at: pulumi.Output[str]
    api_url: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: K3sServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("lightsail-k3s:index:K3sServer", name, None, opts)

        def connection() -> command.remote.ConnectionArgs:
            return command.remote.ConnectionArgs(
                host=args.host,
                user=args.ssh_user,
                private_key=args.ssh_private_key,
                agent_socket_path=None
                if args.ssh_private_key is not None
                else args.ssh_agent_socket,
                host_key=args.ssh_host_key,
            )

        # The secret that joins agents only (k3s `agent-token`): an agent's token cannot add a
        # server. It reaches the other servers in shared_config. Set on a running server, it
        # takes effect on the restart that follows (docs.k3s.io/cli/token).
        generated = random.RandomPassword(
            f"{name}-agent-secret",
            length=48,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        agent_secret = pulumi.Output.secret(generated.result)
        # The agent secret makes stdin secret: in state, and in every digest taken of it.
        # With backups the config holds the bucket's access key: the Output stays secret.
        config = pulumi.Output.all(
            pulumi.Output.all(*(args.tls_sans or [args.host])), args.etcd_snapshots, agent_secret
        ).apply(
            lambda values: server_config(
                args.node_name,
                [*values[0], *([args.api_domain] if args.api_domain else [])],
                args.kubelet_args,
                cluster_init=args.cluster_init,
                etcd_snapshots=values[1],
                agent_token=values[2],
            )
        )
        # Rendered once, here, and given to every other server: what k3s requires to
        # match across servers (docs.k3s.io/datastore/ha-embedded) cannot drift apart.
        self.shared_config = config.apply(
            lambda rendered: {
                key: value for key, value in rendered.items() if key not in NODE_SPECIFIC_KEYS
            }
        )
        # The program checks the version-skew rule before declaring anything (upgrade_checked,
        # given as depends_on); the install script checks it again on the node.
        # Secret in its own right: the registries' passwords travel in it too.
        install_stdin = pulumi.Output.secret(
            pulumi.Output.all(config, args.registries).apply(
                lambda values: install_program(
                    remote_script("install-k3s-server.sh"),
                    args.k3s_version,
                    args.node_name,
                    values[0],
                    values[1],
                    data_on_disk=args.data_disk is not None,
                )
            )
        )
        # On embedded etcd, an etcd snapshot before the release changes: its stdin holds the
        # release alone, so pulumi-command runs it (as an update, commandController.go, Update)
        # when k3sVersion changes and at no other time; on the node it snapshots only when the
        # installed release differs, and prints the snapshot's name. The install waits for it, and
        # every other node's install waits for this one's, so it holds the cluster before any
        # node upgraded. A SQLite server has no etcd to snapshot.
        before_install: list[pulumi.Resource] = list(args.host_booted)
        if args.cluster_init:
            before_install.append(
                command.remote.Command(
                    f"{name}-snapshot-before-upgrade",
                    connection=connection(),
                    create=INSTALL_COMMAND,
                    update=INSTALL_COMMAND,
                    stdin=snapshot_before_upgrade_program(
                        args.k3s_version, to_bucket=args.etcd_snapshots is not None
                    ),
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=list(args.host_booted),
                        custom_timeouts=pulumi.CustomTimeouts(
                            create=SNAPSHOT_TIMEOUT, update=SNAPSHOT_TIMEOUT
                        ),
                    ),
                )
            )
        # A version or config change alters stdin, which pulumi-command applies as an
        # update running `update` with the new stdin (provider/pkg/provider/remote/
        # commandController.go, Update): the same idempotent install, an in-place
        # upgrade. Replacing the instance changes its identity, a trigger, and re-runs create.
        install = command.remote.Command(
            f"{name}-install",
            connection=connection(),
            create=INSTALL_COMMAND,
            update=INSTALL_COMMAND,
            stdin=install_stdin,
            triggers=[args.instance_identity],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=before_install,
                custom_timeouts=pulumi.CustomTimeouts(
                    create=INSTALL_TIMEOUT, update=INSTALL_TIMEOUT
                ),
            ),
        )
        # Re-read the kubeconfig, the tokens and the certificates' expiry whenever the install runs
        # again, and after a rotation.
        install_digest = program_digest(install_stdin)
        self.kept_digest = rollout.deployed_digest(install, args.cert_rotation)
        read_triggers = [args.instance_identity, install_digest, args.cert_rotation]
        # Raising certRotation rotates the certificates (this server is the first to), then the
        # reads below run again.
        node_certificates = certificates.node_certificates(
            name,
            connection(),
            args.node_name,
            certificates.SERVER_SERVICE,
            args.cert_rotation,
            read_triggers,
            after=install,
            parent=self,
        )
        self.done = node_certificates.done
        self.certificates_expire_at = node_certificates.expire_at

        def read_secret_file(resource_name: str, path: str) -> pulumi.Output[str]:
            # pulumi-command prints stdout and keeps it in plain state unless told
            # otherwise (pulumi-command#401, pulumi#15912).
            read = command.remote.Command(
                resource_name,
                connection=connection(),
                create=f"sudo cat {path}",
                logging=command.remote.Logging.NONE,
                triggers=read_triggers,
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[self.done], additional_secret_outputs=["stdout"]
                ),
            )
            return read.stdout

        raw_kubeconfig = read_secret_file(f"{name}-read-kubeconfig", KUBECONFIG_PATH)
        raw_token = read_secret_file(f"{name}-read-node-token", NODE_TOKEN_PATH)
        raw_agent_token = read_secret_file(f"{name}-read-agent-token", AGENT_TOKEN_PATH)

        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(raw_kubeconfig, args.host).apply(
                lambda values: rewrite_kubeconfig(values[0], values[1], args.cluster_name)
            )
        )
        self.node_token = pulumi.Output.secret(raw_token.apply(str.strip))
        self.agent_token = pulumi.Output.secret(raw_agent_token.apply(str.strip))
        self.api_url = pulumi.Output.from_input(args.host).apply(
            lambda host: f"https://{args.api_domain or host}:{KUBE_API_PORT}"
        )

        # The cluster identifier changes only with the instance: a re-read
        # kubeconfig (unknown during preview) updates the provider instead of
        # replacing it and every resource on it, while a new instance, which is
        # a new, empty cluster, does replace them.
        #
        # deleteUnreachable is left unset unless the stack opts in: when set, even
        # to false, it overrides PULUMI_K8S_DELETE_UNREACHABLE, which the provider
        # reads only when the option is absent (pulumi-kubernetes
        # provider/pkg/provider/provider.go, Configure: "If the provider flag is set,
        # use that value ... This will override the ENV var"). The SDK also copies
        # the variable into the option when it is set while the program runs
        # (sdk/python/pulumi_kubernetes/provider.py). So a refresh during a brief
        # outage fails instead of dropping objects from state, and destroying a
        # dead node works with PULUMI_K8S_DELETE_UNREACHABLE=true pulumi destroy.
        #
        # With a data disk the cluster is the disk's: a new instance that mounts it runs the same
        # cluster (its datastore, certificates and tokens), so the identifier does not follow the
        # instance. The provider is replaced with the disk instead (replace_with: pulumi/pulumi
        # pkg/resource/deploy/step_generator.go, diff, "marked for replacement because … (in its
        # ReplaceWith list) is being replaced"). The identifier a stack had before its disk stays
        # (ignore_changes, applied before DiffConfig: step_generator.go, processIgnoreChanges):
        # the disk's first mount copies that cluster's data over, so it is still that cluster,
        # and a changed identifier would replace the provider and every object on it
        # (DiffConfig: diff.Updated(clusterIdentifier)).
        if args.data_disk is None:
            cluster_identity: pulumi.Input[str] = args.instance_identity
            identity_options = pulumi.ResourceOptions()
        else:
            cluster_identity = args.data_disk.urn
            identity_options = pulumi.ResourceOptions(
                ignore_changes=["clusterIdentifier"], replace_with=[args.data_disk]
            )
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            cluster_identifier=pulumi.Output.concat(args.cluster_name, "@", cluster_identity),
            delete_unreachable=True if args.delete_unreachable else None,
            opts=pulumi.ResourceOptions.merge(
                pulumi.ResourceOptions(parent=self, depends_on=[install]), identity_options
            ),
        )
        self.register_outputs(
            {
                "apiUrl": self.api_url,
                "kubeconfig": self.kubeconfig,
                "nodeToken": self.node_token,
                "agentToken": self.agent_token,
            }
        )
