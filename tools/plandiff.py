"""`make plan BASE=<git ref>`: what changes between the plan at BASE and the plan of the working tree.

Both sides are `make plan`'s plan.json (tools/plan.py): the working tree's is the one `make plan`
just wrote; BASE's comes from a temporary `git worktree` of that ref, planned with the same stack
and the same SET/SECRET overrides. Resources are matched as the engine matches them, by URN or
alias, a parent's alias included (tools/urns.py), and each is reported as created, updated,
replaced or deleted, with the inputs that changed and the monthly cost difference (the
`monthlyCostUsd` output).

Replacement follows the providers: a change to a property the provider cannot update in place
replaces the resource (the table below), a replaced resource comes back with a new name and ARN,
so whatever consumes those in a replace-forcing property is replaced too, and every Kubernetes
object is re-created when its provider is replaced (a new cluster). A change that replaces or
deletes the Lightsail instance is marked in red: its disk, and with it the cluster's data, is lost;
unless the node keeps its data on a data disk, which that change keeps: then only a change that
replaces or deletes the data disk itself is marked.

What it cannot see: values that only exist after a deploy (the mock engine's stand-ins are the same
on both sides), and changes inside secret values (plan.json masks them; both sides read "[secret]").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools import urns

PROJECT_DIR = Path(__file__).resolve().parent.parent
INSTANCE = "aws:lightsail/instance:Instance"
KUBERNETES_PROVIDER = "pulumi:providers:kubernetes"
# A server's data disk (components/host.py): with one, the cluster's data is there, not on the instance.
DISK = "aws:lightsail/disk:Disk"
DISK_ATTACHMENT = "aws:lightsail/disk_attachment:Disk_attachment"

# Inputs a provider cannot change in place (ForceNew in the Terraform provider that pulumi-aws bridges:
# hashicorp/terraform-provider-aws internal/service/lightsail/instance.go, instance_public_ports.go,
# static_ip.go, static_ip_attachment.go, key_pair.go; pulumi-tls and pulumi-command likewise; the
# Kubernetes provider replaces itself, and everything on it, when clusterIdentifier changes).
REPLACE_ON = {
    INSTANCE: {"name", "availabilityZone", "blueprintId", "bundleId", "keyPairName", "userData"},
    "aws:lightsail/instancePublicPorts:InstancePublicPorts": {"instanceName", "portInfos"},
    "aws:lightsail/staticIp:StaticIp": {"name"},
    "aws:lightsail/staticIpAttachment:StaticIpAttachment": {"staticIpName", "instanceName"},
    "aws:lightsail/keyPair:KeyPair": {"name", "namePrefix", "pgpKey", "publicKey"},
    # disk.go and disk_attachment.go: a disk cannot be resized or moved, an attachment not changed.
    DISK: {"name", "availabilityZone", "sizeInGb"},
    DISK_ATTACHMENT: {"diskName", "instanceName", "diskPath"},
    "aws:lightsail/bucket:Bucket": {"name", "forceDelete"},
    "aws:lightsail/bucketAccessKey:BucketAccessKey": {"bucketName"},
    "tls:index/privateKey:PrivateKey": {"algorithm", "ecdsaCurve", "rsaBits"},
    "command:remote:Command": {"triggers"},
    # The CloudFormation schema's createOnlyProperties of AWS::Lightsail::Alarm, which
    # pulumi-aws-native replaces on.
    "aws-native:lightsail:Alarm": {"alarmName", "monitoredResourceName", "metricName"},
    KUBERNETES_PROVIDER: {"clusterIdentifier"},
}

MASK = "[secret]"
RED = "\033[31m"
RESET = "\033[0m"


def stand_in_identities(resource: dict[str, Any]) -> set[str]:
    """The name and id the mock engine gives a resource (tools/mockengine.py, LightsailMocks):
    a replaced resource gets new ones from AWS, so inputs holding these change too."""
    name = resource["name"]
    return {f"{name}-a1b2c3d", hashlib.md5(name.encode()).hexdigest()}


def _mentions(value: Any, tokens: set[str]) -> bool:
    text = json.dumps(value)
    return any(token in text for token in tokens)


@dataclass
class Change:
    action: str  # create, update, replace, delete
    type: str
    name: str
    reasons: list[str] = field(default_factory=list)

    # The instance's node keeps its data on a data disk that this plan keeps.
    data_kept: bool = False

    @property
    def loses_the_instance(self) -> bool:
        return self.type == INSTANCE and self.action in ("replace", "delete") and not self.data_kept

    @property
    def loses_the_data_disk(self) -> bool:
        return self.type == DISK and self.action in ("replace", "delete")

    @property
    def loses_data(self) -> bool:
        return self.loses_the_instance or self.loses_the_data_disk


@dataclass
class PlanDiff:
    changes: list[Change]
    base_cost: Any
    head_cost: Any

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 60 else text[:59] + "…"


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


def diff(base: dict[str, Any], head: dict[str, Any]) -> PlanDiff:
    # Matched by the URNs the engine gives, not the mock engine's (tools/urns.py, engine_urns).
    base_urns = urns.engine_urns(base["resources"])
    base_by_urn = {base_urns[resource["urn"]]: resource for resource in base["resources"]}
    head_resources = [resource for resource in head["resources"]]
    continuing = urns.match_previous_as_engine(
        [{**r, "aliases": r["options"].get("aliases", [])} for r in head_resources], base_by_urn
    )
    # head urn -> base resource
    matched = {urn: base_by_urn[previous] for urn, previous in continuing.items()}

    changes: dict[str, Change] = {}
    for resource in head_resources:
        old = matched.get(resource["urn"])
        if old is None:
            changes[resource["urn"]] = Change("create", resource["type"], resource["name"])
            continue
        # The engine diffs without the inputs a resource's ignoreChanges names (e.g. the instance's user_data).
        ignored = set(resource["options"].get("ignoreChanges", []))
        keys = [
            key for key in _changed_keys(old["inputs"], resource["inputs"]) if key not in ignored
        ]
        # A component is diffed by its inputs alone (pulumi/pulumi pkg/resource/deploy/step_generator.go,
        # diff: no provider). A custom resource's new type is for its provider to judge, which this
        # cannot ask: shown as replaced, the cautious guess.
        if old["type"] != resource["type"] and resource["custom"]:
            changes[resource["urn"]] = Change(
                "replace", resource["type"], resource["name"], [f"type was {old['type']}"]
            )
            continue
        forcing = REPLACE_ON.get(resource["type"], set()) | set(
            resource["options"].get("replaceOnChanges", [])
        )
        if resource["type"].startswith("kubernetes:") and resource["type"] != KUBERNETES_PROVIDER:
            old_meta, new_meta = (
                old["inputs"].get("metadata") or {},
                resource["inputs"].get("metadata") or {},
            )
            if any(old_meta.get(key) != new_meta.get(key) for key in ("name", "namespace")):
                keys = sorted(set(keys) | {"metadata"})
                forcing = forcing | {"metadata"}
        reasons = [
            f"{key}: {_show(old['inputs'].get(key))} → {_show(resource['inputs'].get(key))}"
            for key in keys
        ]
        if set(keys) & forcing:
            changes[resource["urn"]] = Change(
                "replace", resource["type"], resource["name"], reasons
            )
        elif keys:
            changes[resource["urn"]] = Change("update", resource["type"], resource["name"], reasons)

    # What consumes a replaced resource's new name or ARN in a replace-forcing input is replaced too,
    # and every object on a replaced Kubernetes provider; repeat until nothing more follows.
    by_urn = {resource["urn"]: resource for resource in head_resources}
    while True:
        replaced = {urn for urn, change in changes.items() if change.action == "replace"}
        followed = False
        for resource in head_resources:
            urn = resource["urn"]
            if urn in replaced or urn not in matched:
                continue
            if resource.get("provider") in replaced:
                reason = f"its provider {by_urn[resource['provider']]['name']} is replaced"
                changes[urn] = Change("replace", resource["type"], resource["name"], [reason])
                followed = True
                continue
            forcing = REPLACE_ON.get(resource["type"], set()) | set(
                resource["options"].get("replaceOnChanges", [])
            )
            for dependency in set(resource["options"].get("dependsOn", [])) & replaced:
                tokens = stand_in_identities(by_urn[dependency])
                present = [key for key in forcing if key in resource["inputs"]]
                keys = sorted(key for key in present if _mentions(resource["inputs"][key], tokens))
                # A masked input cannot be inspected: assume it follows what it waits on.
                masked = sorted(key for key in present if resource["inputs"][key] == MASK)
                if keys or masked:
                    what = (
                        f"{', '.join(keys)}: "
                        if keys
                        else f"{', '.join(masked)} (secret, so assumed to follow): "
                    )
                    reason = f"{what}{by_urn[dependency]['name']} is replaced"
                    previous = changes.get(urn)
                    changes[urn] = Change(
                        "replace",
                        resource["type"],
                        resource["name"],
                        [*(previous.reasons if previous else []), reason],
                    )
                    followed = True
                    break
        if not followed:
            break

    # Apart from the head's changes: a resource moved without an alias has the same mock URN on
    # both sides (the mock engine's URNs leave out all but the parent's last type).
    continued = set(matched[urn]["urn"] for urn in matched)
    deleted = {
        resource["urn"]: Change("delete", resource["type"], resource["name"])
        for resource in base["resources"]
        if resource["urn"] not in continued
    }

    # An instance whose host (its parent) has a data disk that stays keeps the cluster's data.
    kept_disk_parents = {
        r.get("parent")
        for r in head_resources
        if r["type"] == DISK
        and r["urn"] in matched
        and not changes.get(r["urn"], Change("", "", "")).loses_the_data_disk
    }
    for resource in head_resources:
        change = changes.get(resource["urn"])
        if (
            change is not None
            and change.type == INSTANCE
            and resource.get("parent") in kept_disk_parents
        ):
            change.data_kept = True
            if change.action == "replace":
                change.reasons.append("the node's data disk stays and moves to the new instance")

    # The engine refuses to delete a protected resource, replacement included
    # (pulumi/pulumi pkg/engine/lifecycletest/protect_test.go).
    protected = {
        r["urn"] for r in [*base["resources"], *head_resources] if r["options"].get("protect")
    }
    for urn, change in [*changes.items(), *deleted.items()]:
        old_urn = matched[urn]["urn"] if urn in matched else urn
        if change.action in ("replace", "delete") and (urn in protected or old_urn in protected):
            change.reasons.append("protected: pulumi up stops here until protect is false")

    order = {"replace": 0, "delete": 1, "update": 2, "create": 3}
    ordered = sorted(
        [*changes.values(), *deleted.values()],
        key=lambda c: (not c.loses_data, order[c.action], c.type, c.name),
    )
    return PlanDiff(
        ordered, base["outputs"].get("monthlyCostUsd"), head["outputs"].get("monthlyCostUsd")
    )


SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-"}


def render(result: PlanDiff, stack: str, base_ref: str, color: bool) -> str:
    lines = [f"plan diff of stack {stack}: {base_ref} → working tree"]
    if not result.changes:
        lines.append("  no changes")
    for change in result.changes:
        detail = f"  ({'; '.join(change.reasons)})" if change.reasons else ""
        line = (
            f"{SYMBOLS[change.action]:<2} {change.action:<8} {change.type}  {change.name}{detail}"
        )
        if change.loses_data:
            # A leading "-" also reads red in a ```diff block, where the plan is posted for pull requests.
            what = (
                "THE INSTANCE: its disk and the cluster's data are lost"
                if change.loses_the_instance
                else "THE DATA DISK: the cluster's data on it is lost"
            )
            line = f"- {change.action.upper()}S {what}: {line}"
            line = f"{RED}{line}{RESET}" if color else line
        lines.append(line)
    lines.append(
        f"{result.count('create')} to create, {result.count('update')} to update, "
        f"{result.count('replace')} to replace, {result.count('delete')} to delete"
    )
    lines.append(f"monthly cost: {_cost_line(result.base_cost, result.head_cost)}")
    return "\n".join(lines)


def _cost_line(base: Any, head: Any) -> str:
    if not isinstance(base, (int, float)) or not isinstance(head, (int, float)):
        return f"USD {base} → USD {head} (no difference computed)"
    delta = head - base
    sign = "+" if delta > 0 else ""
    return f"USD {base:g} → USD {head:g} ({sign}{delta:g} a month; list prices, see docs/cost.md)"


class BaseRefError(Exception):
    pass


def plan_at(ref: str, stack: str, directory: Path) -> dict[str, Any] | None:
    """plan.json of `stack` at git `ref`, or None when that ref has no Pulumi.<stack>.yaml."""
    tree = directory / "tree"
    added = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "worktree", "add", "--quiet", "--detach", str(tree), ref],
        capture_output=True,
        text=True,
    )
    if added.returncode != 0:
        raise BaseRefError(f"BASE={ref}: git cannot check it out: {added.stderr.strip()}")
    try:
        if not (tree / f"Pulumi.{stack}.yaml").exists():
            return None
        out = directory / "out"
        planned = subprocess.run(
            [sys.executable, "-m", "tools.plan", "--stack", stack, "--out", str(out)],
            cwd=tree,
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )
        plan_file = out / stack / "plan.json"
        if planned.returncode != 0 or not plan_file.exists():
            raise BaseRefError(
                f"BASE={ref}: its plan of {stack} failed (a ref from before plan.json, or config it refuses):\n"
                + (planned.stderr.strip() or planned.stdout.strip()[-2000:])
            )
        return json.loads(plan_file.read_text())
    finally:
        subprocess.run(
            ["git", "-C", str(PROJECT_DIR), "worktree", "remove", "--force", str(tree)],
            capture_output=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--base", required=True, metavar="GIT_REF")
    parser.add_argument(
        "--head",
        type=Path,
        help="the working tree's plan.json (default: build/plan/<stack>/plan.json)",
    )
    args = parser.parse_args(argv)
    head_file = args.head or PROJECT_DIR / "build" / "plan" / args.stack / "plan.json"
    if not head_file.exists():
        print(f"error: no {head_file}; run make plan STACK={args.stack} first", file=sys.stderr)
        return 1
    head = json.loads(head_file.read_text())
    directory = Path(tempfile.mkdtemp(prefix="plandiff-"))
    try:
        base = plan_at(args.base, args.stack, directory)
    except BaseRefError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if base is None:
        print(f"(BASE={args.base} has no Pulumi.{args.stack}.yaml: everything is new)")
        base = {"resources": [], "outputs": {"monthlyCostUsd": 0}}
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    print(render(diff(base, head), args.stack, args.base, color))
    return 0


if __name__ == "__main__":
    sys.exit(main())
