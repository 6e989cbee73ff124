import pytest

from tests.helpers import ADMIN_CIDR, Declared, deploy

__all__ = ["ADMIN_CIDR", "deploy"]


@pytest.fixture(scope="module")
def dev() -> Declared:
    return deploy()
