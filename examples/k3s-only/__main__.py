"""k3s-only: one k3s server on Lightsail from the lightsail-k3s components, no apps.

The components come from the package at the repository root (pip install <path or git URL of
lightsail-k3s>); run inside this repository, they are imported from it.
"""

import pulumi

from components.cluster import Cluster

config = pulumi.Config()
cluster = Cluster(
    pulumi.get_stack(),
    {
        "availability_zone": config.require("availabilityZone"),
        "bundle_id": config.require("bundleId"),
        "blueprint_id": config.require("blueprintId"),
        "k3s_version": config.require("k3sVersion"),
        "admin_cidrs": config.require_object("adminCidrs"),
        "protect": False,
    },
)

pulumi.export("kubeApiUrl", cluster.kube_api_url)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("publicIp", cluster.public_ip)
