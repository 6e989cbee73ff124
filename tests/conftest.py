import pytest

from tests.helpers import ADMIN_CIDR, deploy
from tools import mockengine

__all__ = ["ADMIN_CIDR", "deploy"]


@pytest.fixture(scope="module")
def dev() -> mockengine.Deployment:
    return deploy()
