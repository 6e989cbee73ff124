"""Let's Encrypt and an HTTP to HTTPS redirect for the Traefik that k3s ships, configured the k3s way.

k3s installs Traefik from its own Helm chart and merges a HelmChartConfig named like
the chart into the chart's values (docs.k3s.io/helm, "Customizing Packaged
Components with HelmChartConfig"); editing k3s' packaged manifest would be undone on
the next start. No second ingress controller, no second chart.

The values follow the chart that the pinned k3s ships: k3s v1.36.1+k3s1 bundles Traefik
v3.6.13 (its release notes, "Embedded Component Versions"), packaged as
traefik-39.0.701+up39.0.7 (k3s-io/k3s-charts charts/traefik/39.0.701+up39.0.7, the
k3s build of upstream traefik-helm-chart v39.0.7; k3s PR #13805 moved to the 39.0
line). Chart v39.0.0 moved entry point options under `http` ("fix(ports)!:
entrypoints http options", traefik-helm-chart 266ff0e): the redirect is
`ports.web.http.redirections.entryPoint`. The v34-v38 spelling
`ports.web.redirections` is not a key of v39's values.schema.json, where every port
has additionalProperties: false, so Helm would refuse the whole values. Chart 40,
which k3s v1.36.3 and later ship, keeps the v39 keys used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

# One resolver per CA: Traefik keeps each resolver's account and certificates under its
# name in acme.json, so leaving staging starts afresh with production certificates
# instead of serving the staging ones until they near expiry.
PRODUCTION_RESOLVER = "letsencrypt"
STAGING_RESOLVER = "letsencrypt-staging"
# Let's Encrypt's ACME directories (letsencrypt.org/docs/staging-environment/).
LETS_ENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

# The chart mounts its PersistentVolumeClaim at persistence.path. k3s' default
# StorageClass local-path creates each volume directory with mode 0777
# (k3s-io/k3s manifests/local-storage.yaml, setup script), so Traefik, which the
# chart runs as uid 65532, can write acme.json there. The chart marks the claim
# helm.sh/resource-policy: keep (templates/pvc.yaml), so a chart reinstall keeps it.
ACME_VOLUME_PATH = "/data"
ACME_STORAGE = f"{ACME_VOLUME_PATH}/acme.json"
ACME_VOLUME_SIZE = "128Mi"
STORAGE_CLASS = "local-path"

HTTP_ENTRY_POINT = "web"
HTTPS_ENTRY_POINT = "websecure"


@dataclass(frozen=True)
class TraefikAcmeArgs:
    acme_email: str
    acme_staging: bool
    provider: k8s.Provider


def cert_resolver(acme_staging: bool) -> str:
    return STAGING_RESOLVER if acme_staging else PRODUCTION_RESOLVER


def traefik_values(acme_email: str, acme_staging: bool) -> dict[str, Any]:
    """Chart values merged over k3s' own: the resolver, its storage and the redirect."""
    return {
        "ports": {
            HTTP_ENTRY_POINT: {
                "http": {
                    "redirections": {
                        "entryPoint": {
                            "to": HTTPS_ENTRY_POINT,
                            "scheme": "https",
                            "permanent": True,
                        }
                    }
                }
            }
        },
        "persistence": {
            "enabled": True,
            "storageClass": STORAGE_CLASS,
            "size": ACME_VOLUME_SIZE,
            "path": ACME_VOLUME_PATH,
        },
        "certificatesResolvers": {
            cert_resolver(acme_staging): {
                "acme": {
                    "email": acme_email,
                    "storage": ACME_STORAGE,
                    "caServer": LETS_ENCRYPT_STAGING if acme_staging else LETS_ENCRYPT_PRODUCTION,
                    # HTTP-01 on port 80 still works behind the redirect: Traefik routes
                    # /.well-known/acme-challenge/ with priority MaxInt, above the
                    # redirect's router (traefik/traefik pkg/provider/traefik/internal.go).
                    "httpChallenge": {"entryPoint": HTTP_ENTRY_POINT},
                }
            }
        },
    }


class TraefikAcme(pulumi.ComponentResource):
    """The HelmChartConfig kube-system/traefik that adds Let's Encrypt and the redirect to k3s' Traefik."""

    def __init__(
        self, name: str, args: TraefikAcmeArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("lightsail-k3s:index:TraefikAcme", name, None, opts)
        self.config = k8s.apiextensions.CustomResource(
            f"{name}-traefik-config",
            api_version="helm.cattle.io/v1",
            kind="HelmChartConfig",
            # The name and namespace of k3s' own HelmChart for Traefik: that is what it merges.
            metadata=k8s.meta.v1.ObjectMetaArgs(name="traefik", namespace="kube-system"),
            spec={
                "valuesContent": yaml.safe_dump(
                    traefik_values(args.acme_email, args.acme_staging), sort_keys=False
                )
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
        )
        self.register_outputs({})
