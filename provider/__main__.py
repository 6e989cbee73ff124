"""Hosts the multi-language components (pulumi/pulumi sdk/python/lib/pulumi/provider/experimental/host.py)."""

from pulumi.provider.experimental import component_provider_host

from components.cluster import Cluster

# The package name is the first part of each component's type token (components.cluster.CLUSTER_TYPE).
PACKAGE_NAME = "lightsail-k3s"

if __name__ == "__main__":
    component_provider_host(components=[Cluster], name=PACKAGE_NAME)
