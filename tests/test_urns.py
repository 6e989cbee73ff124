"""The engine's matching of resources to a previous deployment (tools/urns.py), rule by rule.

The renames the stack made (tests/test_host.py, tests/test_apps.py) keep the components' names;
these cases cover the rules they do not reach, with the examples of pulumi/pulumi
pkg/resource/deploy/step_generator.go (inheritedChildAlias). Then the stack's own move of its charts
and consumers' kubeconfigs under Apps, against the URNs of a stack deployed before it.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from components.apps import APPS_TYPE
from components.charts import CHARTS_TYPE
from components.consumers import SCOPED_KUBECONFIGS_TYPE
from tests.helpers import Declared, deploy, write_executable
from tools.urns import Identity, engine_urns, match_previous, match_previous_as_engine

STACK = "urn:pulumi:dev::proj::pulumi:pulumi:Stack::proj-dev"
PREFIX = "urn:pulumi:dev::proj::"
VPC = PREFIX + "awsx:ec2:Vpc::newapp"
FUNCTION = PREFIX + "awsx:ec2:Vpc$aws:s3/bucket:Bucket::newapp-function"


def vpc(aliases):
    return Identity(VPC, "awsx:ec2:Vpc", "newapp", STACK, aliases)


def function(aliases=()):
    return Identity(FUNCTION, "aws:s3/bucket:Bucket", "newapp-function", VPC, aliases)


def test_a_child_named_after_its_renamed_parent_is_found_under_the_parents_old_name():
    old_vpc = PREFIX + "awsx:ec2:Vpc::app"
    old_function = PREFIX + "awsx:ec2:Vpc$aws:s3/bucket:Bucket::app-function"
    assert match_previous([vpc([{"name": "app"}]), function()], [old_vpc, old_function]) == {
        VPC: old_vpc,
        FUNCTION: old_function,
    }


def test_a_childs_own_alias_combines_with_its_parents():
    old_vpc = PREFIX + "awsx:ec2:OldVpc::newapp"
    old_function = PREFIX + "awsx:ec2:OldVpc$aws:s3/bucket:Bucket::function"
    resources = [vpc([{"type": "awsx:ec2:OldVpc"}]), function([{"name": "function"}])]
    assert match_previous(resources, [old_vpc, old_function])[FUNCTION] == old_function


def test_children_inherit_the_urn_their_parent_was_found_under_not_each_alias_of_it():
    # sg.aliases holds the one URN an alias found the parent under (getOldResource); the SDK's
    # all_aliases, for engines without alias specs, multiplies every alias instead.
    old_function = PREFIX + "awsx:ec2:OldVpc$aws:s3/bucket:Bucket::newapp-function"
    found = match_previous([vpc([{"type": "awsx:ec2:OldVpc"}]), function()], [VPC, old_function])
    assert found == {VPC: VPC}


def test_an_alias_to_no_parent_or_another_parent():
    moved_out = PREFIX + "aws:s3/bucket:Bucket::newapp-function"
    assert match_previous([vpc([]), function([{"noParent": True}])], [moved_out]) == {
        FUNCTION: moved_out
    }
    # The other parent was renamed too: the alias names it, the engine takes its old URN.
    other = Identity(
        PREFIX + "awsx:ec2:Other::other",
        "awsx:ec2:Other",
        "other",
        STACK,
        [{"type": "awsx:ec2:Older"}],
    )
    old_other = PREFIX + "awsx:ec2:Older::other"
    moved_in = PREFIX + "awsx:ec2:Older$aws:s3/bucket:Bucket::newapp-function"
    resources = [other, vpc([]), function([{"parentUrn": other.urn}])]
    assert match_previous(resources, [old_other, moved_in]) == {
        other.urn: old_other,
        FUNCTION: moved_in,
    }


def test_the_engine_puts_every_parents_type_in_a_childs_urn_the_mock_engine_only_the_last():
    # generateURN uses the parent's whole qualified type (pulumi/pulumi pkg/resource/deploy/
    # deployment.go); the SDK's mock monitor its last type (sdk/python/lib/pulumi/runtime/mocks.py).
    outer = PREFIX + "pulumi:pulumi:Stack$my:index:Outer::app"
    inner = PREFIX + "my:index:Outer$my:index:Inner::app-inner"
    bucket = PREFIX + "my:index:Inner$aws:s3/bucket:Bucket::app-inner-bucket"
    plan: list[dict[str, Any]] = [
        {"urn": outer, "type": "my:index:Outer", "name": "app", "parent": STACK},
        {"urn": inner, "type": "my:index:Inner", "name": "app-inner", "parent": outer},
        {
            "urn": bucket,
            "type": "aws:s3/bucket:Bucket",
            "name": "app-inner-bucket",
            "parent": inner,
        },
    ]
    assert engine_urns(plan) == {
        outer: PREFIX + "my:index:Outer::app",
        inner: PREFIX + "my:index:Outer$my:index:Inner::app-inner",
        bucket: PREFIX + "my:index:Outer$my:index:Inner$aws:s3/bucket:Bucket::app-inner-bucket",
    }
    # Inner was at the root before: its bucket's URN moved with it, and only Inner's alias finds it.
    before = [
        PREFIX + "my:index:Inner::app-inner",
        PREFIX + "my:index:Inner$aws:s3/bucket:Bucket::app-inner-bucket",
    ]
    assert match_previous_as_engine(plan, before) == {}
    plan[1]["aliases"] = [{"noParent": True}]
    assert match_previous_as_engine(plan, before) == dict(zip([inner, bucket], before, strict=True))


FIXTURE = Path(__file__).resolve().parent / "fixtures" / "urns_before_apps_children.json"
BEFORE_APPS_CHILDREN = json.loads(FIXTURE.read_text())["configs"]


@pytest.fixture(scope="module")
def deployments(tmp_path_factory) -> dict[str, Declared]:
    # With a DNS zone the program only checks that the AWS CLI is installed.
    bin_dir = tmp_path_factory.mktemp("bin")
    write_executable(bin_dir / "aws", "#!/bin/sh\nexit 0\n")
    return {
        label: deploy(
            environ={"PATH": str(bin_dir)}, secrets=config.get("secrets"), **config["set"]
        )
        for label, config in BEFORE_APPS_CHILDREN.items()
    }


@pytest.mark.parametrize("label", sorted(BEFORE_APPS_CHILDREN))
def test_a_stack_from_before_the_apps_held_the_charts_and_consumers_keeps_every_urn(
    deployments, label
):
    """As `make plan BASE=206d079` shows: the charts (kured's and a chart with secret values) and a
    consumer's kubeconfig moved under Apps, every resource continues one of then, nothing is new."""
    deployment = deployments[label]
    before = BEFORE_APPS_CHILDREN[label]["urns"]
    continuing = deployment.continuing(before)
    assert sorted(continuing.values()) == sorted(before)
    assert [(r.type, r.name) for r in deployment.resources if r.urn not in continuing] == []
    engine = deployment.engine_urns()
    moved = [r for r in deployment.resources if r.type in (CHARTS_TYPE, SCOPED_KUBECONFIGS_TYPE)]
    assert len(moved) == (2 if deployment.of_type(CHARTS_TYPE) else 1)
    for component in moved:
        assert component.parent == deployment.one(APPS_TYPE).urn
        # Found through its alias; its children, whose URNs hold the new parent's type, through it.
        assert continuing[component.urn] != engine[component.urn]
