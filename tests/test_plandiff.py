"""`make plan BASE=<ref>`: the diff between two plan.json documents, and the base planned from git."""

import json
import os
import re
import subprocess
import sys

import pytest

from components.apps import APPS_TYPE, PREVIOUS_APPS_TYPE
from tests.helpers import ADMIN_CIDR, DEMO_APP, FIREWALL, INSTANCE, PROJECT_DIR, deploy
from tools import mockengine, plan, plandiff

EXTRA_APP = {"name": "api", "image": "ghcr.io/acme/api:1.0.0", "port": 8080, "path": "/api"}


def document(declared) -> dict:
    return plan.plan_document(mockengine.project_name(), declared.deployment)


@pytest.fixture(scope="module")
def base():
    return document(deploy())


@pytest.fixture(scope="module")
def bigger_bundle():
    return document(deploy(bundleId="medium_3_0"))


@pytest.fixture(scope="module")
def more_apps_new_cidrs_and_tags():
    return document(
        deploy(apps=[DEMO_APP, EXTRA_APP], adminCidrs=["1.2.3.0/24"], tags={"team": "platform"})
    )


def actions(result: plandiff.PlanDiff) -> dict[tuple[str, str], str]:
    return {(change.type, change.name): change.action for change in result.changes}


def test_a_bundle_change_replaces_the_instance_in_red_with_the_cost_difference(base, bigger_bundle):
    result = plandiff.diff(base, bigger_bundle)
    assert actions(result)[(INSTANCE, "lightsail-k3s-dev-instance")] == "replace"
    (instance,) = [c for c in result.changes if c.type == INSTANCE]
    assert (
        instance.loses_the_instance and 'bundleId: "small_3_0" → "medium_3_0"' in instance.reasons
    )
    text = plandiff.render(result, "dev", "main", color=True)
    red_lines = [line for line in text.splitlines() if plandiff.RED in line]
    assert (
        len(red_lines) == 1
        and "REPLACES THE INSTANCE" in red_lines[0]
        and "lightsail-k3s-dev-instance" in red_lines[0]
    )
    assert "monthly cost: USD 12 → USD 24 (+12 a month" in text


def test_a_replaced_instance_takes_its_attachment_firewall_commands_and_cluster_objects_along(
    base, bigger_bundle
):
    result = actions(plandiff.diff(base, bigger_bundle))
    assert result[(FIREWALL, "lightsail-k3s-dev-firewall")] == "replace"
    assert (
        result[
            (
                "aws:lightsail/staticIpAttachment:StaticIpAttachment",
                "lightsail-k3s-dev-ip-attachment",
            )
        ]
        == "replace"
    )
    assert result[("command:remote:Command", "lightsail-k3s-dev-install")] == "replace"
    assert result[("pulumi:providers:kubernetes", "lightsail-k3s-dev-kubernetes")] == "replace"
    assert (
        result[("kubernetes:apps/v1:Deployment", "lightsail-k3s-dev-whoami-deployment")]
        == "replace"
    )
    # The static IP and the key pair stay: nothing about them changes.
    assert ("aws:lightsail/staticIp:StaticIp", "lightsail-k3s-dev-ip") not in result
    assert ("aws:lightsail/keyPair:KeyPair", "lightsail-k3s-dev-key") not in result


def test_new_apps_are_created_and_in_place_changes_are_updates_not_red(
    base, more_apps_new_cidrs_and_tags
):
    result = plandiff.diff(base, more_apps_new_cidrs_and_tags)
    found = actions(result)
    assert found[("kubernetes:apps/v1:Deployment", "lightsail-k3s-dev-api-deployment")] == "create"
    assert found[("kubernetes:core/v1:Service", "lightsail-k3s-dev-api-service")] == "create"
    assert found[(INSTANCE, "lightsail-k3s-dev-instance")] == "update"  # tags change in place
    # Lightsail replaces the whole rule set: new admin CIDRs replace the firewall, not the instance.
    assert found[(FIREWALL, "lightsail-k3s-dev-firewall")] == "replace"
    assert not any(change.loses_the_instance for change in result.changes)
    assert plandiff.RED not in plandiff.render(result, "dev", "main", color=True)
    assert result.base_cost == result.head_cost == 12


def test_removed_apps_are_deleted(base, more_apps_new_cidrs_and_tags):
    found = actions(plandiff.diff(more_apps_new_cidrs_and_tags, base))
    assert found[("kubernetes:apps/v1:Deployment", "lightsail-k3s-dev-api-deployment")] == "delete"
    assert found[("kubernetes:core/v1:Service", "lightsail-k3s-dev-api-service")] == "delete"


def test_objects_renamed_with_an_alias_are_matched_to_their_old_names_not_recreated(base):
    renamed = {
        "lightsail-k3s-dev-whoami-deployment": "whoami-deployment",
        "lightsail-k3s-dev-whoami-service": "whoami-service",
    }
    before_the_rename = json.loads(json.dumps(base))
    for resource in before_the_rename["resources"]:
        if resource["name"] in renamed:
            resource["urn"] = (
                resource["urn"].removesuffix(resource["name"]) + renamed[resource["name"]]
            )
            resource["name"] = renamed[resource["name"]]
            resource["options"]["aliases"] = []
    assert plandiff.diff(before_the_rename, base).changes == []


def test_a_plan_from_when_apps_was_app_stack_has_no_changes(base):
    # Today's plan as it was before the type rename: the component's old type in every URN of it
    # and its children, and no alias yet. Its objects are kept, through the alias their parent carries.
    before_the_rename = json.loads(
        re.sub(re.escape(APPS_TYPE) + r'(?=["$:])', PREVIOUS_APPS_TYPE, json.dumps(base))
    )
    renamed = [r for r in before_the_rename["resources"] if PREVIOUS_APPS_TYPE in r["urn"]]
    # The namespace, its budget and policies, whoami's objects and the consumers' component.
    assert len(renamed) == 10
    for resource in renamed:
        resource["options"]["aliases"] = [
            a for a in resource["options"]["aliases"] if a != {"type": PREVIOUS_APPS_TYPE}
        ]
    assert plandiff.diff(before_the_rename, base).changes == []

    without_the_alias = json.loads(json.dumps(base))
    for resource in without_the_alias["resources"]:
        if resource["type"] == APPS_TYPE:
            resource["options"]["aliases"] = []
    recreated = plandiff.diff(before_the_rename, without_the_alias)
    # Those ten and, a level further down, the consumer's namespace, account, token and binding:
    # the engine's URNs hold every parent's type (tools/urns.py, engine_urns).
    assert (recreated.count("delete"), recreated.count("create"), len(recreated.changes)) == (
        14,
        14,
        28,
    )


def test_the_same_plan_has_no_changes(base):
    result = plandiff.diff(base, base)
    assert result.changes == []
    assert "no changes" in plandiff.render(result, "dev", "main", color=False)


def test_a_stack_new_at_base_is_all_created(base):
    result = plandiff.diff({"resources": [], "outputs": {"monthlyCostUsd": 0}}, base)
    assert {change.action for change in result.changes} == {"create"}
    assert "USD 0 → USD 12 (+12 a month" in plandiff.render(result, "dev", "main", color=False)


def run_plandiff(*args: str, **environ: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.plandiff", *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, **environ},
    )


def test_plans_the_base_from_git_and_compares(tmp_path, bigger_bundle):
    """The base is planned in a temporary worktree of HEAD with the same overrides (PLAN_SET, as make passes them)."""
    head_file = tmp_path / "plan.json"
    head_file.write_text(json.dumps(bigger_bundle))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = run_plandiff(
        "--stack",
        "dev",
        "--base",
        "HEAD",
        "--head",
        str(head_file),
        PLAN_SET=f'adminCidrs=["{ADMIN_CIDR}"]',
        TMPDIR=str(scratch),
    )
    assert result.returncode == 0, result.stderr
    assert "plan diff of stack dev: HEAD → working tree" in result.stdout
    assert (
        "- REPLACES THE INSTANCE" in result.stdout and plandiff.RED not in result.stdout
    )  # no terminal: no color
    assert "monthly cost: USD 12 → USD 24" in result.stdout
    # Its temporary worktree is gone (other checkouts of this repository may be planning at the same time).
    worktrees = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "worktree", "list"], capture_output=True, text=True
    ).stdout
    assert str(scratch) not in worktrees and list(scratch.iterdir()) == []


def test_names_a_base_git_cannot_check_out(tmp_path, base):
    head_file = tmp_path / "plan.json"
    head_file.write_text(json.dumps(base))
    result = run_plandiff("--stack", "dev", "--base", "no-such-ref", "--head", str(head_file))
    assert result.returncode == 1
    assert "BASE=no-such-ref: git cannot check it out" in result.stderr


def test_a_protected_instance_says_up_will_stop(base):
    protected = json.loads(json.dumps(base))
    changed = json.loads(json.dumps(base))
    for plan_document in (protected, changed):
        for resource in plan_document["resources"]:
            if resource["type"] == INSTANCE:
                resource["options"]["protect"] = True
                if plan_document is changed:
                    resource["inputs"]["blueprintId"] = "debian_12"
    (instance,) = [c for c in plandiff.diff(protected, changed).changes if c.type == INSTANCE]
    assert instance.action == "replace"
    assert "protected: pulumi up stops here until protect is false" in instance.reasons
