import gc

import pytest

from tests.helpers import ADMIN_CIDR, Declared, deploy

__all__ = ["ADMIN_CIDR", "deploy"]

# A mock-engine run allocates hundreds of thousands of short-lived objects (outputs, futures,
# asyncio handles), and at Python's default threshold (700 allocations) the cyclic collector ran
# thousands of times per run, each pass also walking what the test workers keep (the SDKs, the
# cached runs). Collecting every 10,000 allocations instead cut tests/test_rollout.py and
# tests/test_servers.py from 21 s to 15 s of CPU, for 28 MB more memory (measured on this
# project's 2-core machine). Reference counting still frees everything else at once.
gc.set_threshold(10_000, 10, 10)


@pytest.fixture(scope="module")
def dev() -> Declared:
    return deploy()


# The slowest tests first: with `--dist worksteal` one worker takes the type check (about a quarter
# of the suite's time on two cores) while the other starts on the rest, and neither waits at the end.
SLOWEST_FIRST = ("tests/test_lint.py::test_type_check_is_clean",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.nodeid not in SLOWEST_FIRST)
