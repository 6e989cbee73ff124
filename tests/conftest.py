import pytest

from tests.helpers import ADMIN_CIDR, Declared, deploy

__all__ = ["ADMIN_CIDR", "deploy"]


@pytest.fixture(scope="module")
def dev() -> Declared:
    return deploy()


# The slowest tests first: with `--dist worksteal` one worker takes the type check (about a third
# of the suite's time on two cores) while the other starts on the rest, and neither waits at the end.
SLOWEST_FIRST = ("tests/test_lint.py::test_type_check_is_clean",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid not in SLOWEST_FIRST)
