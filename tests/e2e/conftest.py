"""The end-to-end suite's report: how long each `pulumi up` took (tests/e2e/aws.py, timed_up)."""

import pytest

from tests.e2e.aws import PHASES, phase_report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PHASES:
        terminalreporter.section("pulumi up, by phase")
        for line in phase_report(PHASES):
            terminalreporter.write_line(line)
