"""deployCidrs: the deploying machine's address beside adminCidrs on SSH and the Kubernetes API, for
one run; and the closing update (bin/deploy-access.sh close), which touches the firewalls alone."""

import pytest
import yaml

from tests.helpers import (
    ADMIN_CIDR,
    FIREWALL,
    PROJECT_DIR,
    closing_target,
    deploy,
    mistyped,
    rejected,
    run_stack,
)
from tools import urns

DEPLOYING = "5.6.7.8/32"
SSH, KUBE_API = 22, 6443


@pytest.fixture(scope="module")
def every_kind_of_node():
    """Three servers and two agents with public addresses (80/443 open on every node), opened to DEPLOYING."""
    return deploy(serverCount=3, agentCount=2, agentPublicIps=True, deployCidrs=[DEPLOYING])


def ports_open_to(firewall, cidr: str) -> set[int]:
    return {rule["fromPort"] for rule in firewall.inputs["portInfos"] if cidr in rule["cidrs"]}


def test_deploy_cidrs_reach_ssh_on_every_node_and_the_api_on_every_server(every_kind_of_node):
    firewalls = {f.name: f for f in every_kind_of_node.of_type(FIREWALL)}
    assert len(firewalls) == 5
    for name, firewall in firewalls.items():
        expected = {SSH} if "-agent-" in name else {SSH, KUBE_API}
        assert ports_open_to(firewall, DEPLOYING) == expected, name
        # Beside adminCidrs, never instead of them.
        assert ports_open_to(firewall, ADMIN_CIDR) == expected, name


def test_without_deploy_cidrs_ssh_and_the_api_are_the_admins_alone():
    firewall = deploy().one(FIREWALL)
    for rule in firewall.inputs["portInfos"]:
        if rule["fromPort"] in (SSH, KUBE_API):
            assert rule["cidrs"] == [ADMIN_CIDR]


def test_an_address_in_both_lists_is_listed_once():
    firewall = deploy(deployCidrs=[ADMIN_CIDR, DEPLOYING]).one(FIREWALL)
    ssh = next(rule for rule in firewall.inputs["portInfos"] if rule["fromPort"] == SSH)
    assert ssh["cidrs"] == [ADMIN_CIDR, DEPLOYING]


@pytest.mark.parametrize(
    ("cidrs", "fragments"),
    [
        (["0.0.0.0/0"], ["whole internet"]),
        (["1.0.0.0/8", "2.0.0.0/8"], ["large share of the internet", "16,777,216"]),
        (["10.1.2.3/32"], ["not a public address range", "10.0.0.0/8"]),
        (["5.6.7.8/24"], ["did you mean 5.6.7.0/24"]),
        (["2001:db8::/64"], ["not an IPv4 CIDR"]),
    ],
)
def test_deploy_cidrs_are_refused_like_admin_cidrs(cidrs, fragments):
    message = rejected("deployCidrs", *fragments, deployCidrs=cidrs)
    assert "pulumi config rm deployCidrs" in message


def test_deploy_cidrs_set_as_a_plain_string_is_refused_by_the_cli():
    mistyped("deployCidrs", "array<string>", deployCidrs=DEPLOYING)


def test_the_program_reads_deploy_cidrs_apart_from_admin_cidrs():
    # A too-wide admin list stays refused under its own key, whatever deployCidrs holds.
    rejected("adminCidrs", "whole internet", adminCidrs=["0.0.0.0/0"], deployCidrs=[DEPLOYING])


@pytest.fixture
def stack_file_holding_deploy_cidrs():
    """A stack file (named for this test alone) into which deployCidrs were set and committed."""
    path = PROJECT_DIR / "Pulumi.committed-deploy-cidrs.yaml"
    config = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())
    config["config"]["lightsail-k3s:adminCidrs"] = [ADMIN_CIDR]
    config["config"]["lightsail-k3s:deployCidrs"] = [DEPLOYING]
    path.write_text(yaml.safe_dump(config))
    yield "committed-deploy-cidrs"
    path.unlink()


def test_a_stack_file_holding_deploy_cidrs_is_warned_about(stack_file_holding_deploy_cidrs):
    deployment = run_stack(stack_file_holding_deploy_cidrs)
    (warning,) = [w for w in deployment.warnings if "deployCidrs" in w]
    assert "Pulumi.committed-deploy-cidrs.yaml holds deployCidrs ['5.6.7.8/32']" in warning
    assert "pulumi config rm deployCidrs" in warning
    # Still applied: the warning says what is open, the firewall does what the config says.
    assert ports_open_to(deployment.of_type(FIREWALL)[0], DEPLOYING) == {SSH, KUBE_API}


def test_deploy_cidrs_for_the_run_alone_are_not_warned_about():
    """The way make up and the deploy workflow pass them: in a copy of the stack file, not in it."""
    assert not [w for w in deploy(deployCidrs=[DEPLOYING]).warnings if "deployCidrs" in w]


def test_no_shipped_stack_file_holds_deploy_cidrs():
    for path in PROJECT_DIR.glob("Pulumi.*.yaml"):
        assert "deployCidrs" not in path.read_text(), path.name


# pulumi/pulumi pkg/resource/deploy/deployment_test.go, TestGlobUrn (which asserts only the matches;
# the non-matches hold under its regular expressions too).
GLOB_CASES = [
    (
        "**",
        [
            "urn:pulumi:stack::test::typ$aws:resource::aname",
            "urn:pulumi:stack::test::typ$azure:resource::bar",
        ],
        [],
    ),
    (
        "urn:pulumi:stack::test::typ*:resource::bar",
        [
            "urn:pulumi:stack::test::typ$aws:resource::bar",
            "urn:pulumi:stack::test::typ$azure:resource::bar",
        ],
        [
            "urn:pulumi:stack::test::ty:resource::bar",
            "urn:pulumi:stack::test::type:resource::foobar",
        ],
    ),
    (
        "**:aname",
        ["urn:pulumi:stack::test::typ$aws:resource::aname"],
        ["urn:pulumi:stack::test::typ$aws:resource::somename"],
    ),
    (
        "*:*:stack::test::typ$aws:resource::*",
        [
            "urn:pulumi:stack::test::typ$aws:resource::aname",
            "urn:pulumi:stack::test::typ$aws:resource::bar",
        ],
        ["urn:pulumi:stack::test::typ$azure:resource::aname"],
    ),
    (
        "stack::test::typ$aws:resource::none",
        ["stack::test::typ$aws:resource::none"],
        ["stack::test::typ$aws:resource::nonee"],
    ),
]


@pytest.mark.parametrize(("target", "matched", "unmatched"), GLOB_CASES)
def test_targets_match_urns_as_the_engine_does(target, matched, unmatched):
    assert all(urns.targeted(target, urn) for urn in matched)
    assert not any(urns.targeted(target, urn) for urn in unmatched)


def updated_by_closing(deployment, *, target_dependents: bool) -> set[str]:
    """The resources a `pulumi up --target <closing target>` updates (providers aside, which the
    engine always targets): the matches, and with --target-dependents everything that depends on
    them (pulumi/pulumi pkg/resource/deploy/step_generator.go, isTargetedForUpdate)."""
    matched = [
        r for r in deployment.resources if urns.targeted(closing_target(), urns.engine_urn(r.urn))
    ]
    if target_dependents:
        matched += [
            r
            for r in deployment.resources
            if any(deployment.depends_on(r, target) for target in matched)
        ]
    return {r.urn for r in matched if not r.type.startswith("pulumi:providers:")}


def test_the_closing_update_targets_every_firewall_and_nothing_else(every_kind_of_node):
    firewalls = {f.urn for f in every_kind_of_node.of_type(FIREWALL)}
    assert updated_by_closing(every_kind_of_node, target_dependents=False) == firewalls


def test_with_target_dependents_the_closing_update_would_run_the_installs(every_kind_of_node):
    """Why bin/deploy-access.sh never passes --target-dependents: every node's commands wait for its firewall."""
    updated = updated_by_closing(every_kind_of_node, target_dependents=True)
    assert any(urn.endswith("::lightsail-k3s-dev-install") for urn in updated)
