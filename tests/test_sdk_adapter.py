"""Canary for tools/pulumi_sdk.py: the SDK internals the mock engine relies on are still there and still behave.

When a Pulumi upgrade breaks one of these, this file fails first and names it; fix tools/pulumi_sdk.py
(and settings.configured_keys for the config map), not the tests that use the engine.
"""

import contextvars
import inspect
import logging
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config
import pytest
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2

from components import settings
from tools import pulumi_sdk


def test_the_internal_entry_points_keep_their_shape():
    assert {"monitor", "logger", "preview", "project", "stack"} <= set(
        inspect.signature(pulumi.runtime.set_mocks).parameters
    )
    assert "keep_unknowns" in inspect.signature(rpc.deserialize_properties).parameters
    assert callable(rpc.is_rpc_secret)
    assert list(inspect.signature(pulumi_sdk.set_root_resource).parameters) == ["root"]
    assert list(inspect.signature(pulumi_sdk.run_in_stack).parameters) == ["func"]
    for method in ("RegisterResource", "RegisterResourceOutputs", "ReadResource"):
        assert list(inspect.signature(getattr(pulumi_mocks.MockMonitor, method)).parameters) == [
            "self",
            "request",
        ]


def test_the_source_position_walk_is_skipped_during_a_run_and_restored_after(dev):
    """run_program replaces the SDK's stack walk (a sixth of a run) with the empty trace the SDK
    itself sends when it finds no user frame; outside a run the SDK's own is back."""
    from pulumi.runtime import resource as runtime_resource
    from pulumi.runtime.proto import source_pb2

    assert list(inspect.signature(runtime_resource._get_stack_trace).parameters) == []
    assert isinstance(runtime_resource._get_stack_trace(), source_pb2.StackTrace)
    assert runtime_resource._get_stack_trace is not source_pb2.StackTrace
    # The run still registered everything (the dev fixture ran with the walk skipped).
    assert dev.resources


def test_the_request_fields_the_adapter_reads_exist():
    fields = {field.name for field in resource_pb2.RegisterResourceRequest.DESCRIPTOR.fields}
    read = {
        "type", "name", "parent", "custom", "remote", "provider", "object", "dependencies", "propertyDependencies",
        "protect", "deleteBeforeReplace", "additionalSecretOutputs", "ignoreChanges", "replaceOnChanges",
        "retainOnDelete", "deletedWith", "customTimeouts", "aliases", "version",
    }  # fmt: skip
    assert read - fields == set()
    assert {"urn", "outputs"} <= {
        field.name for field in resource_pb2.RegisterResourceOutputsRequest.DESCRIPTOR.fields
    }


def test_the_program_sees_the_whole_config_map_where_settings_looks_for_it(monkeypatch):
    """pulumi-language-python-exec passes PULUMI_CONFIG to set_all_config; settings.configured_keys reads both."""
    assert isinstance(runtime_config.CONFIG, contextvars.ContextVar)
    context = contextvars.copy_context()

    def inside() -> set[str]:
        pulumi.runtime.set_all_config({"p:a": "1"}, [])
        monkeypatch.setenv("PULUMI_CONFIG", '{"p:b": "2"}')
        return settings.configured_keys()

    assert context.run(inside) == {"p:a", "p:b"}


class Echo(pulumi_sdk.Mocks):
    def new_resource(self, args: pulumi_sdk.MockResourceArgs):
        return f"{args.name}-id", {**args.inputs, "computed": f"{args.name}-computed"}

    def call(self, args: pulumi_sdk.MockCallArgs):
        return {}, None


class Box(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("test:index:Box", name, None, opts)
        self.thing = pulumi.CustomResource(
            "test:index:Thing",
            f"{name}-thing",
            {"size": 3, "token": pulumi.Output.secret("s3cret"), "computed": None},
            pulumi.ResourceOptions(
                parent=self,
                protect=True,
                delete_before_replace=True,
                additional_secret_outputs=["computed"],
                custom_timeouts=pulumi.CustomTimeouts(create="5m"),
                ignore_changes=["size"],
                replace_on_changes=["token"],
                retain_on_delete=True,
                aliases=[pulumi.Alias(type_="test:index:OldThing")],
            ),
        )
        self.register_outputs({})


def test_a_small_program_is_recorded_with_every_option_and_output():
    resources: list[tuple[pulumi_sdk.ResourceRequest, dict[str, Any]]] = []
    outputs: dict[str, Any] = {}

    def program() -> None:
        box = Box("box")
        pulumi.export("computed", box.thing.computed)  # type: ignore[attr-defined]
        pulumi.export("token", pulumi.Output.secret("t0ken"))
        pulumi.export("config", pulumi.Config("p").require("a"))

    monitor = pulumi_sdk.RecordingMonitor(
        Echo(), lambda r, s: resources.append((r, s)), outputs.update
    )
    pulumi_sdk.run_program(
        program,
        monitor,
        project="p",
        stack="s",
        preview=False,
        config={"p:a": "from-config"},
        secret_keys=[],
        logger=logging.getLogger(__name__),
    )

    (box, _), (thing, state) = resources
    assert (box.type, box.name, box.custom) == ("test:index:Box", "box", False)
    # The mock monitor puts the root stack's type into top-level URNs; the real engine does not.
    assert box.urn == "urn:pulumi:s::p::pulumi:pulumi:Stack$test:index:Box::box"
    assert thing.urn == "urn:pulumi:s::p::test:index:Box$test:index:Thing::box-thing"
    assert thing.parent == box.urn and thing.custom
    assert thing.inputs == {"size": 3, "token": pulumi_sdk.Secret("s3cret")}
    assert (thing.protect, thing.delete_before_replace, thing.retain_on_delete) == (
        True,
        True,
        True,
    )
    # Set on the thing, unset on the box: the engine tells them apart by deleteBeforeReplaceDefined.
    assert (thing.delete_before_replace_defined, box.delete_before_replace_defined) == (True, False)
    assert thing.additional_secret_outputs == ("computed",)
    assert thing.custom_timeouts == {"create": "5m"}
    assert (thing.ignore_changes, thing.replace_on_changes) == (("size",), ("token",))
    assert thing.aliases == ({"type": "test:index:OldThing"},)
    assert state["computed"] == "box-thing-computed"
    assert outputs == {
        "computed": "box-thing-computed",
        "token": pulumi_sdk.Secret("t0ken"),
        "config": "from-config",
    }


class Refused(Exception):
    pass


def run_gated_box(check_passes: bool, registered: list[str]) -> None:
    """Runs a component that waits on a gate which passes or raises; `registered` gets what reaches the monitor."""

    def gate(_: str) -> list[pulumi.Resource]:
        if not check_passes:
            raise Refused("refused")
        return []

    def program() -> None:
        Box("box", pulumi.ResourceOptions(depends_on=pulumi.Output.from_input("v").apply(gate)))

    pulumi_sdk.run_program(
        program,
        pulumi_sdk.RecordingMonitor(Echo(), lambda r, _: registered.append(r.name), lambda _: None),
        project="p",
        stack="s",
        preview=True,
        config={},
        secret_keys=[],
        logger=logging.getLogger(__name__),
    )


def test_a_failing_depends_on_output_keeps_a_component_and_its_children_from_the_engine():
    """What __main__.py's upgrade gate relies on: the SDK awaits depends_on before it sends a
    registration, and children await their parent's URN (runtime/resource.py, prepare_resource)."""
    passed: list[str] = []
    run_gated_box(check_passes=True, registered=passed)
    assert passed == ["box", "box-thing"]
    refused: list[str] = []
    with pytest.raises(Refused):
        run_gated_box(check_passes=False, registered=refused)
    assert refused == []
