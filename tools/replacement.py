"""In which order the Pulumi engine runs the steps of a replacement, as a model of its step generator.

The rules are the engine's (pulumi/pulumi pkg/resource/deploy/step_generator.go, and
pkg/resource/graph/dependency_graph.go for DependingOn):

- A resource is registered when what it depends on has been: the SDK sends RegisterResource once
  its inputs' resources have resolved, and the engine answers only after the resource's steps ran.
  The steps the step generator returns for one registration run one after the other, as a chain
  (deployment_executor.go, handleSingleEvent: ExecuteSerial).
- continueStepsFromDiff: a resource its provider's Diff replaces is replaced create-before-delete by
  default: a create-replacement step now, and the old resource is deleted after the program has
  finished (GenerateDeletes, ScheduleDeletes: dependents first). With deleteBeforeReplace its
  chain is: delete each resource calculateDependentReplacements returns, last first; delete it;
  create it.
- calculateDependentReplacements: walks the old snapshot's dependents of the resource in snapshot
  order (DependingOn: dependencies, property dependencies, deletedWith, replaceWith and provider
  references; resources already registered in this deployment are skipped and not walked through)
  and takes each custom resource whose provider is taken, or that is deleted with one taken, or one
  of whose inputs has a property dependency on one taken and whose provider's Diff, with those
  inputs unknown, replaces it. Only property dependencies count: a `dependsOn` alone never does.
- generateSteps: a resource deleted that way is created again when the program registers it
  (`recreating`), whatever its own diff says; one the old snapshot lacks is created (OpCreate).

What a provider's Diff replaces with some inputs unknown is given as a function; for this stack it
is tools/plandiff.py's REPLACE_ON (the providers' replace-forcing inputs, cited there): an unknown
value there is a change, and the Kubernetes provider with an unchanged clusterIdentifier replaces
nothing (pulumi-kubernetes provider/pkg/provider/provider.go, DiffConfig).
tests/test_replacement.py checks the model on the engine's own lifecycle tests
(pkg/engine/lifecycletest/delete_before_replace_test.go) and this stack's replacements on it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

# The step operations, named as the engine's (pkg/resource/deploy/step.go, OpCreateReplacement…).
CREATE = "create"
CREATE_REPLACEMENT = "create-replacement"
DELETE_REPLACED = "delete-replaced"
UPDATE = "update"


@dataclass(frozen=True)
class Resource:
    """One resource of the snapshot (and of the program, which registers the same URNs)."""

    urn: str
    type: str
    custom: bool = True
    dependencies: tuple[str, ...] = ()
    # Each input's property dependencies: the resources its value came from.
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    provider: str = ""  # the provider's URN
    deleted_with: str = ""
    delete_before_replace: bool = False
    # replaceWith: replaced whenever one of these is replaced in the same deployment
    # (step_generator.go, diff: "marked for replacement because … (in its ReplaceWith list)").
    replace_with: tuple[str, ...] = ()

    @property
    def inputs(self) -> set[str]:
        return set(self.property_dependencies)

    def references(self) -> set[str]:
        return {
            *self.dependencies,
            *(urn for urns in self.property_dependencies.values() for urn in urns),
            *([self.provider] if self.provider else []),
            *([self.deleted_with] if self.deleted_with else []),
            *self.replace_with,
        }


# Whether the resource's provider replaces it when these of its inputs are unknown (or changed).
Replaces = Callable[[Resource, Collection[str]], bool]


@dataclass(frozen=True)
class Step:
    op: str
    urn: str
    # The registration whose chain runs this step; "" for the deletes after the program.
    chain: str


def dependents(
    snapshot: Sequence[Resource], root: str, ignore: Collection[str] = ()
) -> list[Resource]:
    """DependingOn: every resource after `root` in the snapshot that reaches it through a reference."""
    found = {root}
    result = []
    start = [r.urn for r in snapshot].index(root)
    for candidate in snapshot[start + 1 :]:
        if candidate.urn not in ignore and candidate.references() & found:
            result.append(candidate)
            found.add(candidate.urn)
    return result


def dependent_replacements(
    snapshot: Sequence[Resource], root: str, replaces: Replaces, registered: Collection[str] = ()
) -> list[Resource]:
    """calculateDependentReplacements: what must go before `root` does, in dependency order."""
    replace_set = {root}
    taken = []
    for resource in dependents(snapshot, root, ignore=registered):
        if not resource.custom:
            continue
        unknown = {
            key
            for key, urns in resource.property_dependencies.items()
            if replace_set.intersection(urns)
        }
        if (
            resource.provider in replace_set
            or resource.deleted_with in replace_set
            or (unknown and replaces(resource, unknown))
        ):
            taken.append(resource)
            replace_set.add(resource.urn)
    return taken


def deployment(
    snapshot: Sequence[Resource],
    program: Sequence[str],
    changed: Callable[[Resource, Collection[str]], set[str]],
    replaces: Replaces,
) -> list[Step]:
    """The steps of one `pulumi up`, chain after chain in the order the program registers.

    `program`: the URNs the program registers, in an order where each follows what it depends on
    (the snapshot's resources of the same URN; a URN the snapshot lacks is a resource created).
    `changed(resource, replaced)`: the inputs whose values change at its registration, given the
    URNs created anew so far. The order between steps that the engine really guarantees is
    `happens_before`.
    """
    by_urn = {r.urn: r for r in snapshot}
    steps: list[Step] = []
    deleted: set[str] = set()  # sg.deletes: gone before their registration
    created_anew: set[str] = set()
    pending_deletes: list[str] = []  # create-before-delete: the old one goes after the program
    registered: list[str] = []
    for urn in program:
        if urn not in by_urn:
            steps.append(Step(CREATE, urn, urn))
            created_anew.add(urn)
            registered.append(urn)
            continue
        resource = by_urn[urn]
        if urn in deleted:
            steps.append(Step(CREATE_REPLACEMENT, urn, urn))
            created_anew.add(urn)
        else:
            keys = changed(resource, created_anew)
            if set(resource.replace_with) & created_anew or (keys and replaces(resource, keys)):
                created_anew.add(urn)
                if resource.delete_before_replace:
                    for dependent in reversed(
                        dependent_replacements(
                            snapshot, urn, replaces, registered=[*registered, *deleted]
                        )
                    ):
                        if dependent.urn not in deleted:
                            steps.append(Step(DELETE_REPLACED, dependent.urn, urn))
                            deleted.add(dependent.urn)
                    steps.append(Step(DELETE_REPLACED, urn, urn))
                    steps.append(Step(CREATE_REPLACEMENT, urn, urn))
                else:
                    steps.append(Step(CREATE_REPLACEMENT, urn, urn))
                    pending_deletes.append(urn)
            elif keys:
                steps.append(Step(UPDATE, urn, urn))
        registered.append(urn)
    # ScheduleDeletes: dependents before what they depend on, i.e. reverse snapshot order.
    order = [r.urn for r in snapshot]
    for urn in sorted(pending_deletes, key=order.index, reverse=True):
        steps.append(Step(DELETE_REPLACED, urn, ""))
    return steps


def happens_before(
    snapshot: Sequence[Resource], steps: Sequence[Step], first: Step, then: Step
) -> bool:
    """Whether the engine runs `first` before `then` however it interleaves independent chains:
    in one chain, in order; a chain after every chain of what its resource depends on; the
    deletes after the program, after every chain. `snapshot`: the resources as the program
    registers them (their dependencies now), which for a program that changes no dependency is
    the old snapshot."""
    if first.chain == then.chain:
        return steps.index(first) < steps.index(then)
    if then.chain == "":
        return True
    if first.chain == "":
        return False
    by_urn = {r.urn: r for r in snapshot}
    seen: set[str] = set()
    frontier = [then.chain]
    while frontier:
        for reference in by_urn[frontier.pop()].references():
            if reference == first.chain:
                return True
            if reference not in seen and reference in by_urn:
                seen.add(reference)
                frontier.append(reference)
    return False
