"""The scripts the components run on their hosts, shipped inside this package (components/remote/)."""

from importlib import resources


def remote_script(name: str) -> str:
    """Loaded as package data, so the components work when installed elsewhere."""
    return resources.files(__name__.rpartition(".")[0]).joinpath("remote", name).read_text()
