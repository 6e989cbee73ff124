"""k3s' certificates on every node: when each expires, a warning before the first does, rotation on demand.

k3s issues client and server certificates for 365 days and renews those near expiry only
when it starts (120 days ahead since the May 2025 releases, 90 before); `k3s certificate
rotate`, with k3s stopped, issues new ones at once (docs.k3s.io/cli/certificate). Every node
holds its own: a server its server, etcd and kubelet certificates, an agent its kubelet's and
kube-proxy's (k3s pkg/util/services/services.go), so rotation runs on every node, servers
first, then agents (k3s discussion #10024; a k3s maintainer in rancher/rke2#2623: "rotate all
the server certs first, then restart the agents"), and the expiry is read on each.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_command as command
import yaml
from cryptography import x509

from .remote_scripts import node_program, remote_script

# Far enough ahead to plan a rotation, near enough not to nag.
EXPIRY_WARNING = datetime.timedelta(days=30)

# The units k3s' install.sh writes: a server runs k3s, an agent k3s-agent.
SERVER_SERVICE = "k3s"
AGENT_SERVICE = "k3s-agent"

ROTATE_COMMAND = "sudo bash -s -- rotate"
READY_COMMAND = "sudo bash -s -- ready"
# rotate-k3s-certificates.sh waits up to 300 s for the restarted k3s's new kubelet certificate and,
# on a server, up to 300 s more for Ready; `ready` (an agent's, on a server) waits up to 300 s.
# A minute more than the script's own bounds, for SSH, stop and rotate, so its error comes first.
ROTATE_TIMEOUT = "11m"
READY_TIMEOUT = "6m"

# k3s' own list of the node's certificates: the files of every service on a server, of the
# agent's on an agent (k3s pkg/cli/cert/cert.go, check; JSON since the January 2025 releases,
# with ExpiryTime and Status since May 2025: docs.k3s.io/cli/certificate, "Checking expiration
# dates"; every tested minor is newer).
CHECK_COMMAND = "sudo /usr/local/bin/k3s certificate check --output json"
# For a certificate not valid yet, k3s lists its notBefore as ExpiryTime (cert.go, collectCertInfo).
NOT_YET_VALID = "NOT YET VALID"


def client_certificate_expiry(kubeconfig_yaml: str) -> datetime.datetime:
    """notAfter of the first user's client certificate (the leaf, first in the PEM bundle)."""
    config = yaml.safe_load(kubeconfig_yaml)
    try:
        pem = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
    except (KeyError, IndexError, TypeError):
        raise ValueError("the kubeconfig has no client-certificate-data for its user") from None
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def earliest_certificate_expiry(check_json: str, node_name: str) -> datetime.datetime:
    """The earliest ExpiryTime `k3s certificate check --output json` lists on node `node_name`.

    Its output is {"Certificates": [{"Filename", "Subject", "Issuer", "Usages", "ExpiryTime"
    (RFC 3339), "ResidualTime", "Status"}, …]}, every certificate of every file, the CAs too
    (k3s pkg/cli/cert/cert.go, Certificate and JSONFormatter).
    """
    fix = f"run `sudo k3s certificate check --output table` on node {node_name}"
    try:
        listed = json.loads(check_json)["Certificates"]
        expiries = [
            datetime.datetime.fromisoformat(certificate["ExpiryTime"])
            for certificate in listed
            if certificate["Status"] != NOT_YET_VALID
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"node {node_name}: `k3s certificate check --output json` printed no certificate list "
            f"({type(error).__name__}: {error}); {fix}"
        ) from None
    if not expiries:
        raise ValueError(f"node {node_name}: `k3s certificate check` listed no certificates; {fix}")
    return min(expiries)


def expiry_warning(
    expires_at: datetime.datetime,
    now: datetime.datetime,
    cluster_name: str,
    what: str,
    next_rotation: int,
) -> str | None:
    """The warning for `what` (whose certificate expires first), or None while it has 30 days left."""
    remaining = expires_at - now
    if remaining >= EXPIRY_WARNING:
        return None
    when = (
        f"expired on {expires_at:%Y-%m-%d}"
        if remaining <= datetime.timedelta(0)
        else (f"expires on {expires_at:%Y-%m-%d}, in {remaining.days} days")
    )
    return (
        f"{cluster_name}: {what} {when}. Rotate k3s' certificates on every node: raise "
        f"certRotation by one (pulumi config set certRotation {next_rotation}) and run pulumi up."
    )


def kubeconfig_expiry(kubeconfig: pulumi.Output[str]) -> pulumi.Output[str]:
    """The kubeconfig's client certificate's expiry, ISO 8601."""
    # A date is no secret, though it comes from one.
    return pulumi.Output.unsecret(
        kubeconfig.apply(lambda text: client_certificate_expiry(text).isoformat())
    )


def watch_certificate_expiry(
    expiries: Mapping[str, pulumi.Output[str]], cluster_name: str, next_rotation: int
) -> pulumi.Output[str]:
    """The earliest of `expiries` (what each is → its ISO 8601 expiry); warns during `pulumi up`,
    naming it, when it is under 30 days away.

    Before the nodes are read (a first preview) the expiries are unknown and this runs not at all.
    """
    names = list(expiries)

    def check(values: list[Any]) -> str:
        dated = [
            (datetime.datetime.fromisoformat(value), name)
            for name, value in zip(names, values, strict=True)
        ]
        expires_at, what = min(dated, key=lambda pair: pair[0])
        warning = expiry_warning(
            expires_at, datetime.datetime.now(datetime.UTC), cluster_name, what, next_rotation
        )
        if warning:
            pulumi.log.warn(warning)
        return expires_at.isoformat()

    return pulumi.Output.all(*expiries.values()).apply(check)


def rotation_program(node_name: str, service: str) -> str:
    return node_program(
        remote_script("rotate-k3s-certificates.sh"),
        {"NODE_NAME": node_name, "K3S_SERVICE": service},
    )


def _once_per_generation(
    name: str,
    connection: command.remote.ConnectionArgs,
    create: str,
    program: str,
    generation: int,
    timeout: str,
    after: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
) -> command.remote.Command:
    """A command that runs once per value of `generation` (certRotation).

    The generation is the only trigger: raising it replaces this command, which runs
    `create` again. pulumi-command runs `create` on an update too when `update` is
    unset (provider/pkg/provider/remote/commandController.go, Update), so a changed
    script or SSH key would rotate again; the no-op `update` keeps them from doing so.
    """
    return command.remote.Command(
        name,
        connection=connection,
        create=create,
        update="true",
        stdin=program,
        triggers=[generation],
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(after),
            custom_timeouts=pulumi.CustomTimeouts(create=timeout),
        ),
    )


@dataclass(frozen=True)
class NodeCertificates:
    # The node's last step: its rotation (for an agent, its Ready wait on a server), or without
    # one `after`. What the next node waits for, so nodes rotate one at a time, each Ready first.
    done: pulumi.Resource
    # The earliest expiry of the node's certificates, ISO 8601, read after `done`.
    expire_at: pulumi.Output[str]


def node_certificates(
    name: str,
    connection: command.remote.ConnectionArgs,
    node_name: str,
    service: str,
    generation: int,
    read_triggers: Sequence[pulumi.Input[Any]],
    after: pulumi.Resource,
    parent: pulumi.Resource,
    ready_on: command.remote.ConnectionArgs | None = None,
) -> NodeCertificates:
    """Rotates the node's certificates once per certRotation above 0, after `after`, then reads
    their earliest expiry.

    `service` is the node's unit (SERVER_SERVICE or AGENT_SERVICE). `ready_on` is a server to wait
    on for the node's Ready after the rotation: an agent has no kubectl of its own; a server waits
    on itself. `read_triggers` re-run the read: they must change with the node's instance, its
    install and `generation`.
    """
    done = after
    if generation > 0:
        program = rotation_program(node_name, service)
        done = _once_per_generation(
            f"{name}-rotate-certificates",
            connection,
            ROTATE_COMMAND,
            program,
            generation,
            ROTATE_TIMEOUT,
            [after],
            parent,
        )
        if ready_on is not None:
            done = _once_per_generation(
                f"{name}-ready-after-rotation",
                ready_on,
                READY_COMMAND,
                program,
                generation,
                READY_TIMEOUT,
                [done],
                parent,
            )
    # The JSON names files, subjects and dates, nothing secret; it is long, so it stays out of
    # the log: the date it yields is in the outputs.
    read = command.remote.Command(
        f"{name}-read-certificate-expiry",
        connection=connection,
        create=CHECK_COMMAND,
        logging=command.remote.Logging.NONE,
        triggers=list(read_triggers),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[done]),
    )
    # A secret trigger (an install's digest) may make the outputs secret; a date is none.
    expire_at = pulumi.Output.unsecret(
        read.stdout.apply(lambda text: earliest_certificate_expiry(text, node_name).isoformat())
    )
    return NodeCertificates(done=done, expire_at=expire_at)
