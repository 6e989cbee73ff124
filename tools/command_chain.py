"""How long one `pulumi up` waits at least: the longest chain of remote commands that run, one after
another, in the graph the program declared.

Every remote command is an SSH session with a bounded wait of minutes (an install, a Ready wait, a
read), so a deployment's time is about the number of them in its longest chain. The engine starts a
resource once what it waits for is done: its `dependencies` (its dependsOn and the resources its
inputs came from; the SDK sends a component dependency as the custom resources under it, pulumi
sdk/python/lib/pulumi/runtime/rpc.py, _add_dependency) and its parent, whose own registration
waits for the parent's dependsOn first (sdk/python/lib/pulumi/runtime/resource.py,
prepare_resource). Independent chains run at once (pulumi/pulumi pkg/resource/deploy/
deployment_executor.go: the step executor runs the chains of registrations in parallel; see
tools/replacement.py for the model of one chain).

A remote command counts when it runs something in this deployment: pulumi-command runs `create` on
a create or a replacement, and on an update `update`, or `create` where `update` is unset
(provider/pkg/provider/remote/commandController.go, Create and Update); a command that only has a
`delete` runs nothing until it goes. Against a previous deployment's registrations, a command whose
inputs did not change has no step at all, and one whose `triggers` changed is replaced
(provider/pkg/provider/common/inputs.go, replaceOnChanges).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from tools.mockengine import Registration

REMOTE_COMMAND = "command:remote:Command"


def runs(registration: Registration, previous: Registration | None) -> bool:
    """Whether this deployment runs a remote command for `registration` (see the module's doc)."""
    if registration.type != REMOTE_COMMAND:
        return False
    inputs = registration.inputs
    if previous is None:
        return "create" in inputs
    if previous.inputs == inputs:
        return False
    if previous.inputs.get("triggers") != inputs.get("triggers"):
        return "create" in inputs
    return "update" in inputs or "create" in inputs


def waits_for(registration: Registration, by_urn: dict[str, Registration]) -> list[str]:
    """The resources whose completion `registration` waits for: its dependencies and its parent."""
    return [
        urn
        for urn in (*registration.dependencies, registration.parent)
        if urn in by_urn and urn != registration.urn
    ]


def chain_of(
    resources: Sequence[Registration], previous: Sequence[Registration] | None = None
) -> list[str]:
    """The names of the remote commands that run in the longest chain, first to last.

    `previous`: the registrations of the deployment before (none: every resource is created).
    """
    by_urn = {r.urn: r for r in resources}
    before = {r.urn: r for r in previous or ()}

    @functools.cache
    def longest(urn: str) -> tuple[str, ...]:
        registration = by_urn[urn]
        upstream = max(
            (longest(dependency) for dependency in waits_for(registration, by_urn)),
            key=len,
            default=(),
        )
        counted = runs(registration, before.get(urn))
        return (*upstream, registration.name) if counted else upstream

    return list(max((longest(urn) for urn in by_urn), key=len, default=()))


def longest_chain(
    resources: Sequence[Registration], previous: Sequence[Registration] | None = None
) -> int:
    """How many remote commands run one after another at least (chain_of's length)."""
    return len(chain_of(resources, previous))
