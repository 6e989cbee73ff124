"""k3s' client certificates: when the kubeconfig's expires, a warning before it does, rotation on demand.

k3s issues client and server certificates for 365 days and renews those near expiry only
when it starts (120 days ahead since the May 2025 releases, 90 before); `k3s certificate
rotate`, with k3s stopped, issues new ones at once (docs.k3s.io/cli/certificate).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Sequence

import pulumi
import pulumi_command as command
import yaml
from cryptography import x509

from .remote_scripts import node_program

# Far enough ahead to plan a rotation, near enough not to nag.
EXPIRY_WARNING = datetime.timedelta(days=30)
ROTATE_TIMEOUT = "10m"


def client_certificate_expiry(kubeconfig_yaml: str) -> datetime.datetime:
    """notAfter of the first user's client certificate (the leaf, first in the PEM bundle)."""
    config = yaml.safe_load(kubeconfig_yaml)
    try:
        pem = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
    except (KeyError, IndexError, TypeError):
        raise ValueError("the kubeconfig has no client-certificate-data for its user") from None
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def expiry_warning(
    expires_at: datetime.datetime, now: datetime.datetime, cluster_name: str
) -> str | None:
    remaining = expires_at - now
    if remaining >= EXPIRY_WARNING:
        return None
    when = (
        f"expired on {expires_at:%Y-%m-%d}"
        if remaining <= datetime.timedelta(0)
        else (f"expires on {expires_at:%Y-%m-%d}, in {remaining.days} days")
    )
    return (
        f"{cluster_name}: the kubeconfig's client certificate {when}. Rotate k3s' certificates: "
        "raise certRotation by one (pulumi config set certRotation <n+1>) and run pulumi up."
    )


def watch_kubeconfig_expiry(
    kubeconfig: pulumi.Output[str], cluster_name: str
) -> pulumi.Output[str]:
    """The client certificate's expiry as ISO 8601; warns during `pulumi up` when it is under 30 days away."""

    def check(kubeconfig_yaml: str) -> str:
        expires_at = client_certificate_expiry(kubeconfig_yaml)
        warning = expiry_warning(expires_at, datetime.datetime.now(datetime.UTC), cluster_name)
        if warning:
            pulumi.log.warn(warning)
        return expires_at.isoformat()

    # A date is no secret, though it comes from one.
    return pulumi.Output.unsecret(kubeconfig.apply(check))


def rotation_program(script: str, node_name: str) -> str:
    return node_program(script, {"NODE_NAME": node_name})


def rotate_certificates(
    name: str,
    connection: command.remote.ConnectionArgs,
    generation: int,
    script: str,
    node_name: str,
    after: Sequence[pulumi.Resource],
    parent: pulumi.Resource,
) -> command.remote.Command:
    """Runs `k3s certificate rotate` once per value of `generation` (certRotation).

    The generation is the only trigger: raising it replaces this command, which runs
    `create` again. pulumi-command runs `create` on an update too when `update` is
    unset (provider/pkg/provider/remote/commandController.go, Update), so a changed
    script or SSH key would rotate again; the no-op `update` keeps them from doing so.
    """
    program = rotation_program(script, node_name)
    return command.remote.Command(
        name,
        connection=connection,
        create="sudo bash -s",
        update="true",
        stdin=program,
        triggers=[generation],
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(after),
            custom_timeouts=pulumi.CustomTimeouts(create=ROTATE_TIMEOUT),
        ),
    )
