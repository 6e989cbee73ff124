"""The end-to-end suite's checks held against what the real engine reports. Nothing here can run
tests/e2e, so the summaries and outputs it asserts on are reproduced on the mock engine by the
engine's own rules, and the suite's helpers are shown to accept them."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e import aws
from tests.e2e.aws import DEMO_APP, REGION, SECRET_OUTPUTS, unexpected_changes
from tests.helpers import STACK_REFERENCE, Declared, deploy
from tools.pulumi_sdk import Secret

# test_cluster.py's throwaway stack (tests/e2e/aws.py, throwaway_cluster), each value as
# `pulumi config set` stores it: a string.
E2E_CLUSTER = {"config": {"aws:region": REGION}, "protect": "false", "apps": json.dumps([DEMO_APP])}


@dataclass
class Run:
    """One run of the program: what it declared and read, and what its version gate's
    StackReference read (the stack's outputs as the run before left them)."""

    declared: Declared
    reads: list[tuple[str, str]]
    reference_read: dict[str, Any]


def run_after(previous: Run | None, **changes: Any) -> Run:
    """The e2e stack's program run after `previous` (None: on a new stack, whose outputs are none).

    A preview runs it so too: an unchanged resource's step keeps the checkpoint's outputs
    (pulumi/pulumi pkg/resource/deploy/step.go, SameStep), which the mocks answer alike."""
    reference_read = (
        {}
        if previous is None
        else {name: output.value for name, output in previous.declared.outputs.items()}
    )
    reads: list[tuple[str, str]] = []
    declared = deploy(previous_outputs=reference_read, reads=reads, **{**E2E_CLUSTER, **changes})
    return Run(declared, reads, reference_read)


def preview_summary(checkpoint: Run, preview: Run) -> dict[str, int]:
    """The change summary the engine reports for `preview` against what `checkpoint` stored, counted
    as pulumi/pulumi pkg/engine/update.go counts it (previewActions.OnResourceStepPost): the root
    stack and each registered resource once, `same` when its inputs are the checkpoint's (`update`
    otherwise, standing in for the provider's diff), `create` or `delete` for one only in the
    preview or only in the checkpoint; the version gate's read only when what it read differs from
    what the checkpoint holds for it (shouldRecordReadStep), as `read`. Default providers are
    internal steps, never counted (isInternalStep), and the mock engine registers none."""
    # The one read is the gate's StackReference, to this stack.
    assert [type_ for type_, _ in preview.reads] == [STACK_REFERENCE]
    assert preview.declared.stack_references == [
        f"organization/lightsail-k3s/{preview.declared.deployment.stack}"
    ]
    previous_inputs = {r.urn: r.inputs for r in checkpoint.declared.resources}
    summary: Counter[str] = Counter(same=1)
    for resource in preview.declared.resources:
        if resource.urn not in previous_inputs:
            summary["create"] += 1
        elif previous_inputs[resource.urn] == resource.inputs:
            summary["same"] += 1
        else:
            summary["update"] += 1
    summary["delete"] += len(set(previous_inputs) - {r.urn for r in preview.declared.resources})
    if preview.reference_read != checkpoint.reference_read:
        summary["read"] += 1
    return {op: count for op, count in summary.items() if count}


@pytest.fixture(scope="module")
def first_up() -> Run:
    return run_after(None)


@pytest.fixture(scope="module")
def second_run(first_up) -> Run:
    return run_after(first_up)


def test_the_preview_after_the_first_up_shows_the_self_read_and_the_e2e_check_accepts_it(
    first_up, second_run
):
    """test_cluster.py's second run: every resource the same, plus the gate's read, which read
    none of the stack's outputs during the first `up` and reads them all now."""
    summary = preview_summary(first_up, second_run)
    assert summary == {"same": len(first_up.declared.resources) + 1, "read": 1}
    assert unexpected_changes(summary) == {}


def test_after_an_up_that_changed_no_output_a_preview_shows_no_read(second_run):
    """The read counts only when the stack's outputs moved since the last `up` read them."""
    preview = run_after(second_run)
    assert preview_summary(second_run, preview) == {"same": len(preview.declared.resources) + 1}


def test_a_changed_setting_is_refused_by_the_e2e_check(first_up):
    changed = run_after(first_up, bundleId="medium_3_0")
    summary = preview_summary(first_up, changed)
    assert summary.get("update", 0) > 0
    assert set(unexpected_changes(summary)) == {"update"}


@pytest.mark.parametrize(
    "summary, unexpected",
    [
        ({"same": 30, "read": 1}, {}),
        ({"same": 31}, {}),
        ({"same": 30, "update": 1}, {"update": 1}),
        ({"same": 29, "read": 1, "create": 1, "delete": 1}, {"create": 1, "delete": 1}),
        ({"same": 30, "replace": 1}, {"replace": 1}),
        # The program reads one resource, its version gate; a second read is something new.
        ({"same": 30, "read": 2}, {"read": 2}),
    ],
)
def test_the_e2e_check_accepts_only_sames_and_the_self_read(summary, unexpected):
    assert unexpected_changes(summary) == unexpected


def test_the_outputs_the_e2e_suite_expects_secret_are_secret_as_a_whole(first_up):
    """Only a value secret as a whole prints as "[secret]", which is what the Automation API
    reports as secret (see SECRET_OUTPUTS)."""
    outputs = first_up.declared.outputs
    assert {name for name in SECRET_OUTPUTS if isinstance(outputs[name].sent, Secret)} == set(
        SECRET_OUTPUTS
    )


def test_the_resize_tests_phase_durations_come_from_the_engines_step_events():
    from pulumi import automation as auto

    from tests.e2e.aws import phase_durations

    node = "lightsail-k3s-e2e"

    def event(kind: str, timestamp: int, name: str) -> auto.EngineEvent:
        metadata = {
            "op": "create",
            "urn": f"urn:pulumi:s::p::t::{name}",
            "type": "t",
            "provider": "",
        }
        return auto.EngineEvent.from_json(
            {"sequence": timestamp, "timestamp": timestamp, kind: {"metadata": metadata}}
        )

    events = [
        event("resourcePreEvent", 0, f"{node}-instance"),
        event("resOutputsEvent", 40, f"{node}-instance"),
        event("resourcePreEvent", 40, f"{node}-wait-for-boot"),
        event("resOutputsEvent", 100, f"{node}-wait-for-boot"),
        event("resourcePreEvent", 100, f"{node}-data-attachment"),
        event("resOutputsEvent", 130, f"{node}-data-attachment"),
        event("resourcePreEvent", 130, f"{node}-data-mount"),
        event("resOutputsEvent", 145, f"{node}-data-mount"),
        event("resourcePreEvent", 145, f"{node}-install"),
        event("resOutputsEvent", 265, f"{node}-install"),
        # Another node's steps are not this node's.
        event("resourcePreEvent", 0, f"{node}-server-2-instance"),
        event("resOutputsEvent", 999, f"{node}-server-2-instance"),
    ]
    assert phase_durations(events, node) == {
        "instance": 40,
        "boot": 60,
        "disk": 45,
        "install to Ready": 120,
    }


class StackThatTakes:
    """Stands in for an Automation API stack whose `up` takes `seconds` on a clock the test moves."""

    def __init__(self, clock: list[float], seconds: float, fails: bool = False):
        self.clock, self.seconds, self.fails = clock, seconds, fails

    def up(self, on_output):
        self.clock[0] += self.seconds
        on_output("Resources: 5 created")
        if self.fails:
            raise RuntimeError("up failed")
        return "result"


def test_each_up_of_the_e2e_suite_is_timed_by_phase_failed_ones_too(monkeypatch, capsys):
    clock = [100.0]
    monkeypatch.setattr(aws.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(aws, "PHASES", [])
    assert aws.timed_up(StackThatTakes(clock, 412), "create: 1 server") == "result"
    with pytest.raises(RuntimeError):
        aws.timed_up(StackThatTakes(clock, 30, fails=True), "create: 3 servers, 2 agents")
    assert aws.PHASES == [("create: 1 server", 412), ("create: 3 servers, 2 agents", 30)]
    assert "phase create: 1 server: 412 s" in capsys.readouterr().out
    assert aws.phase_report(aws.PHASES) == [
        "    412 s  create: 1 server",
        "     30 s  create: 3 servers, 2 agents",
    ]
