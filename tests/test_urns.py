"""The engine's matching of resources to a previous deployment (tools/urns.py), rule by rule.

The renames the stack made (tests/test_host.py, tests/test_apps.py) keep the components' names;
these cases cover the rules they do not reach, with the examples of pulumi/pulumi
pkg/resource/deploy/step_generator.go (inheritedChildAlias).
"""

from tools.urns import Identity, match_previous

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
