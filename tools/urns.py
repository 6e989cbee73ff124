"""Which resource of a previous deployment each resource of this one continues, as the engine decides.

The rules are the Pulumi engine's (pulumi/pulumi pkg/resource/deploy/step_generator.go):
getOldResource looks up a resource's own URN first, then the URNs of generateAliases in order, and
takes the first one the previous deployment holds. generateAliases gives each alias spec as
collapseAliasToUrn completes it (what the spec leaves out comes from the resource itself) and, when
the parent itself was found under an alias, each URN inheritedChildAlias derives from the parent's
old URN: the parent's old type before the child's type, and the parent's old name in place of the
prefix the child's name shares with the parent's. So renaming a component's type with an alias keeps
its children too. Engines without alias specs get the same URNs from the SDK (pulumi/pulumi
sdk/python/lib/pulumi/runtime/resource.py, all_aliases and inherited_child_alias).

`make plan BASE=` (tools/plandiff.py) and the tests that keep old stacks' resources use these rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Identity:
    """What the engine matches a resource by: its URN and its parent's, type, name and aliases."""

    urn: str
    type: str
    name: str
    parent: str
    # Each alias as sent to the engine: {"urn": …} or the fields its spec sets (name, type, parentUrn, …).
    aliases: Sequence[Mapping[str, Any]]


def engine_urn(urn: str) -> str:
    """The URN as the engine writes it: the mock monitor puts the root stack's type into top-level URNs."""
    return urn.replace(f"::{ROOT_STACK_TYPE}$", "::")


def engine_urns(resources: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each resource's URN as the mock engine writes it → the URN the engine generates for it.

    The engine puts the parent's whole qualified type before a child's type (pulumi/pulumi
    pkg/resource/deploy/deployment.go, generateURN: "use the full qualified type"), so a resource
    two components deep is `Outer$Inner$Type`; the SDK's mock monitor, which the mock engine
    builds on, writes the parent's last type alone (pulumi/pulumi sdk/python/lib/pulumi/runtime/
    mocks.py, make_urn). Moving a component under another parent moves its children's URNs too,
    which only these URNs show. `resources`: plan.json's, each with urn, type, name and parent. A
    resource whose parent is neither among them nor the root stack keeps its URN as written.
    """
    by_urn = {resource["urn"]: resource for resource in resources}
    derived: dict[str, str] = {}

    def derive(urn: str) -> str:
        if urn not in by_urn:
            return engine_urn(urn)
        if urn not in derived:
            resource = by_urn[urn]
            parent = resource.get("parent") or ""
            if parent in by_urn:
                parent_type = qualified_type(derive(parent))
            elif (
                not parent or parent.count("::") == 3 and qualified_type(parent) == ROOT_STACK_TYPE
            ):
                parent_type = ""
            else:
                derived[urn] = engine_urn(urn)
                return derived[urn]
            stack, project = urn.split("::")[0].removeprefix("urn:pulumi:"), urn.split("::")[1]
            derived[urn] = _new_urn(stack, project, parent_type, resource["type"], resource["name"])
        return derived[urn]

    return {urn: derive(urn) for urn in by_urn}


def targeted(target: str, urn: str) -> bool:
    """Whether `pulumi up --target <target>` names `urn`, as the engine decides (pulumi/pulumi
    pkg/resource/deploy/deployment.go, UrnTargets.Contains and getMatcher): a target with a `*` is a
    glob, `**` matching anything and `*` anything but a colon; any other target is one exact URN."""
    if "*" not in target:
        return target == urn
    pattern = ".*".join(
        "[^:]*".join(re.escape(part) for part in segment.split("*"))
        for segment in target.split("**")
    )
    return re.fullmatch(pattern, urn) is not None


def qualified_type(urn: str) -> str:
    return urn.split("::")[2]


def urn_name(urn: str) -> str:
    return urn.split("::", 3)[3]


def _create_urn(name: str, type_: str, parent: str, project: str, stack: str) -> str:
    # resource.CreateURN (pulumi/pulumi sdk/go/common/resource/alias.go): under a parent, the
    # parent's URN up to its name, then `$` and the type.
    if parent:
        return parent[: parent.rindex("::")] + "$" + type_ + "::" + name
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def _new_urn(stack: str, project: str, parent_type: str, type_: str, name: str) -> str:
    # urn.New (pulumi/pulumi sdk/go/common/resource/urn/urn.go): the root stack is no parent type.
    if parent_type and parent_type != ROOT_STACK_TYPE:
        type_ = parent_type + "$" + type_
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def candidate_urns(
    resource: Identity, parent_old_urn: str | None, old_urns: Mapping[str, str]
) -> list[str]:
    """The URNs the engine looks a resource up by, in order (getOldResource, generateAliases).

    parent_old_urn: the URN the resource's parent was found under (sg.aliases);
    old_urns: the same for every resource found so far, for aliases that name another parent.
    """
    urn = engine_urn(resource.urn)
    stack, project = urn.split("::")[0].removeprefix("urn:pulumi:"), urn.split("::")[1]
    parent = engine_urn(resource.parent) if resource.parent else ""

    def collapse(alias: Mapping[str, Any]) -> str:  # collapseAliasToUrn
        if "urn" in alias:
            return alias["urn"]
        alias_parent = parent
        if alias.get("parentUrn"):
            alias_parent = engine_urn(alias["parentUrn"])
            alias_parent = old_urns.get(alias_parent, alias_parent)
        if alias.get("noParent") or (
            alias_parent and qualified_type(alias_parent) == ROOT_STACK_TYPE
        ):
            alias_parent = ""
        return _create_urn(
            alias.get("name", resource.name),
            alias.get("type", resource.type),
            alias_parent,
            alias.get("project", project),
            alias.get("stack", stack),
        )

    def inherited(type_: str, name: str) -> str:  # inheritedChildAlias
        assert parent_old_urn is not None
        parent_name = urn_name(parent)
        if name.startswith(parent_name):
            name = urn_name(parent_old_urn) + name[len(parent_name) :]
        return _new_urn(stack, project, qualified_type(parent_old_urn), type_, name)

    aliased = [collapse(alias) for alias in resource.aliases]
    candidates = [urn, *aliased]
    if parent_old_urn is not None:
        candidates.append(inherited(resource.type, resource.name))
        for alias_urn in aliased:
            candidates.append(
                inherited(qualified_type(alias_urn).split("$")[-1], urn_name(alias_urn))
            )
    return list(dict.fromkeys(candidates))


def match_previous(resources: Iterable[Identity], previous_urns: Iterable[str]) -> dict[str, str]:
    """Each resource's URN → the URN of the previous deployment's resource it continues, if any.

    The engine's lookup in order of registration, parents first: one previous resource is continued
    by one resource at most. Returned URNs are the engine's (engine_urn); keys are as given.
    """
    by_urn = {engine_urn(r.urn): r for r in resources}
    remaining = {engine_urn(urn) for urn in previous_urns}
    found: dict[str, str] = {}  # engine URN -> previous URN
    visited: set[str] = set()

    def visit(urn: str) -> None:
        if urn in visited or urn not in by_urn:
            return
        visited.add(urn)
        resource = by_urn[urn]
        parent = engine_urn(resource.parent) if resource.parent else ""
        visit(parent)
        # The engine passes on only a parent found under an alias; one found under its own URN
        # would pass on the child's own URNs, which come first anyway.
        for candidate in candidate_urns(resource, found.get(parent), found):
            if candidate in remaining:
                remaining.discard(candidate)
                found[urn] = candidate
                return

    for urn in by_urn:
        visit(urn)
    return {by_urn[urn].urn: previous for urn, previous in found.items()}


def match_previous_as_engine(
    resources: Sequence[Mapping[str, Any]], previous_urns: Iterable[str]
) -> dict[str, str]:
    """match_previous for resources as the mock engine writes them (plan.json's: urn, type, name,
    parent, aliases), each looked up by the URN the engine gives it (engine_urns); `previous_urns`
    are the engine's. Keys are the resources' URNs as given."""
    engine = engine_urns(resources)

    def as_engine(urn: str) -> str:
        return engine.get(urn) or engine_urn(urn)

    found = match_previous(
        (
            Identity(
                engine[r["urn"]],
                r["type"],
                r["name"],
                as_engine(r["parent"]) if r.get("parent") else "",
                [
                    {**alias, "parentUrn": as_engine(alias["parentUrn"])}
                    if alias.get("parentUrn")
                    else alias
                    for alias in r.get("aliases", ())
                ],
            )
            for r in resources
        ),
        previous_urns,
    )
    given = {engine[r["urn"]]: r["urn"] for r in resources}
    return {given[urn]: previous for urn, previous in found.items()}
