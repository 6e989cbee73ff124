"""Every use of the Pulumi Python SDK's internals that the mock engine needs, in one place.

`pulumi.runtime.set_mocks` and `Mocks` are the SDK's testing API. The rest is not public:
`pulumi.runtime.settings.set_root_resource`, `pulumi.runtime.stack.run_in_stack`,
`pulumi.runtime.resource._get_stack_trace` (replaced while a program runs: see run_program),
`pulumi.runtime.rpc.deserialize_properties` / `is_rpc_secret`, `MockMonitor.RegisterResource` /
`RegisterResourceOutputs` / `ReadResource` and the fields of the engine's RegisterResourceRequest
(pulumi/pulumi proto/pulumi/resource.proto). tests/test_sdk_adapter.py is their canary: it
fails, naming what changed, when a Pulumi upgrade moves any of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import rpc
from pulumi.runtime.proto import source_pb2
from pulumi.runtime.settings import set_root_resource
from pulumi.runtime.stack import run_in_stack

Mocks = pulumi_mocks.Mocks
MockResourceArgs = pulumi_mocks.MockResourceArgs
MockCallArgs = pulumi_mocks.MockCallArgs

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Secret:
    """A value the SDK sent as secret."""

    value: Any


def _plain(value: Any) -> Any:
    """RPC values to Python: secret wrappers become Secret, whole doubles become ints."""
    if rpc.is_rpc_secret(value):
        return Secret(_plain(value["value"]))
    if isinstance(value, dict):
        return {key: _plain(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_plain(member) for member in value]
    if isinstance(value, float) and value.is_integer():
        # The RPC layer carries every number as a double; JSON (and the CLI) show whole numbers as integers.
        return int(value)
    return value


def deserialize(properties: Any) -> dict[str, Any]:
    return _plain(rpc.deserialize_properties(properties, keep_unknowns=True))


@dataclass(frozen=True)
class ResourceRequest:
    """What a RegisterResource request asks of the engine, in plain Python."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    remote: bool
    provider: str
    inputs: dict[str, Any]  # secret values as Secret
    dependencies: tuple[str, ...]
    property_dependencies: dict[str, tuple[str, ...]]
    protect: bool
    delete_before_replace: bool
    # Whether the program set delete_before_replace at all: unset, the provider's diff decides the
    # replacement order (pulumi/pulumi pkg/resource/deploy/source_eval.go reads the option only
    # when deleteBeforeReplaceDefined, or when it is true).
    delete_before_replace_defined: bool
    additional_secret_outputs: tuple[str, ...]
    ignore_changes: tuple[str, ...]
    replace_on_changes: tuple[str, ...]
    retain_on_delete: bool
    deleted_with: str
    replace_with: tuple[str, ...]
    custom_timeouts: dict[str, str]
    # Each alias as sent to the engine: {"urn": …} or the fields its spec sets (name, type, parentUrn, …).
    aliases: tuple[dict[str, Any], ...]
    version: str


def _alias(alias: Any) -> dict[str, Any]:
    if alias.urn:
        return {"urn": alias.urn}
    return {field.json_name: value for field, value in alias.spec.ListFields() if value}


def _resource_request(request: Any, urn: str) -> ResourceRequest:
    timeouts = request.customTimeouts
    return ResourceRequest(
        urn=urn,
        type=request.type,
        name=request.name,
        parent=request.parent,
        custom=request.custom,
        remote=request.remote,
        provider=request.provider,
        inputs=deserialize(request.object),
        dependencies=tuple(request.dependencies),
        property_dependencies={
            key: tuple(deps.urns) for key, deps in request.propertyDependencies.items()
        },
        protect=bool(request.protect),
        delete_before_replace=request.deleteBeforeReplace,
        delete_before_replace_defined=request.deleteBeforeReplaceDefined,
        additional_secret_outputs=tuple(request.additionalSecretOutputs),
        ignore_changes=tuple(request.ignoreChanges),
        replace_on_changes=tuple(request.replaceOnChanges),
        retain_on_delete=bool(request.retainOnDelete),
        deleted_with=request.deletedWith,
        replace_with=tuple(request.replace_with),
        custom_timeouts={
            name: value
            for name, value in (
                ("create", timeouts.create),
                ("update", timeouts.update),
                ("delete", timeouts.delete),
            )
            if value
        },
        aliases=tuple(_alias(alias) for alias in request.aliases),
        version=request.version,
    )


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, reporting each registration (with the state the mocks answered),
    the stack's outputs and, when asked, each read of an existing resource (type, name)."""

    def __init__(
        self,
        mocks: Mocks,
        on_resource: Callable[[ResourceRequest, dict[str, Any]], None],
        on_stack_outputs: Callable[[dict[str, Any]], None],
        on_read: Callable[[str, str], None] | None = None,
    ):
        super().__init__(mocks)
        self.on_resource = on_resource
        self.on_stack_outputs = on_stack_outputs
        self.on_read = on_read

    def RegisterResource(self, request):  # noqa: N802 - the SDK's name
        response = super().RegisterResource(request)
        if request.type != STACK_TYPE:
            registered = self.resources.get(response.urn)
            self.on_resource(
                _resource_request(request, response.urn),
                dict(registered.state) if registered else {},
            )
        return response

    def ReadResource(self, request):  # noqa: N802 - the SDK's name
        response = super().ReadResource(request)
        if self.on_read is not None:
            self.on_read(request.type, request.name)
        return response

    def RegisterResourceOutputs(self, request):  # noqa: N802 - the SDK's name
        if request.urn.split("::")[2] == STACK_TYPE:
            self.on_stack_outputs(deserialize(request.outputs))
        return super().RegisterResourceOutputs(request)


def run_program(
    program: Callable[[], Any],
    monitor: RecordingMonitor,
    *,
    project: str,
    stack: str,
    preview: bool,
    config: Mapping[str, str],
    secret_keys: list[str],
    logger: logging.Logger,
) -> None:
    """Runs `program` as the CLI's language host would, against `monitor`; raises what the program raises.

    What the program logs (pulumi.log) goes to `logger`.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Each registration walks the Python stack for the source position it sends the engine
    # (sdk/python/lib/pulumi/runtime/resource.py, _get_stack_trace): a sixth of a run's time, for
    # a field the recording monitor never reads. The empty trace is what the SDK itself sends
    # when it finds no user frame.
    collect_stack_trace = pulumi_resource._get_stack_trace
    pulumi_resource._get_stack_trace = source_pb2.StackTrace
    try:
        # The self-managed backend's organization is the literal "organization" (pulumi/pulumi pkg/backend/diy/backend.go).
        pulumi.runtime.set_mocks(
            monitor.mocks,
            project=project,
            stack=stack,
            preview=preview,
            monitor=monitor,
            logger=logger,
            organization="organization",
        )
        # set_mocks registers a finished root stack of its own; the program gets a fresh one,
        # as under the CLI, so its exports arrive through the stack's output registration.
        # ROOT is a ContextVar that holds None before any stack exists; the annotation says Resource.
        set_root_resource(None)  # pyright: ignore[reportArgumentType]
        pulumi.runtime.set_all_config(dict(config), secret_keys)
        try:
            loop.run_until_complete(run_in_stack(program))
        except BaseException as failure:
            # Every Output that depended on the failed one holds the same exception; asyncio
            # would report each as "never retrieved" when collected. The raise reports it once.
            reported = failure
            loop.set_exception_handler(
                lambda _, context: (
                    None
                    if context.get("exception") is reported
                    else loop.default_exception_handler(context)
                )
            )
            raise
    finally:
        pulumi_resource._get_stack_trace = collect_stack_trace
        # A program that fails inside an apply leaves tasks of this loop behind, some in the
        # SDK's module-level settings, which the next run would wait on after this loop closed.
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        # `lock` and `outputs` are context properties the SDK fills in at run time, unknown to the checker.
        with pulumi.runtime.settings.SETTINGS.lock:  # pyright: ignore[reportAttributeAccessIssue]
            pulumi.runtime.settings.SETTINGS.outputs.clear()  # pyright: ignore[reportAttributeAccessIssue]
        loop.close()
        asyncio.set_event_loop(None)
