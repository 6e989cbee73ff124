"""Hosts the multi-language components (pulumi/pulumi sdk/python/lib/pulumi/provider/experimental/host.py)."""

import tomllib
from pathlib import Path

from pulumi.provider.experimental import component_provider_host

from components.apps import Apps
from components.cluster import Cluster

# The package name is the first part of each component's type token (components.cluster.CLUSTER_TYPE).
PACKAGE_NAME = "lightsail-k3s"
# The package's version is the components package's: pyproject.toml at the repository root, which
# the plugin installs (provider/requirements.txt) and so always has beside it.
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
VERSION = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
COMPONENTS = [Cluster, Apps]

if __name__ == "__main__":
    component_provider_host(components=COMPONENTS, name=PACKAGE_NAME, version=VERSION)
