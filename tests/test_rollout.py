"""Fast create, careful change: how many remote commands run one after another (tools/command_chain.py)
when a cluster is created, upgraded, reconfigured or grows by one agent (components/rollout.py)."""

import itertools
from typing import Any

import pytest

from components import rollout
from tests.helpers import COMMAND, PROJECT_DIR, Declared, deploy
from tools.command_chain import chain_of, longest_chain, runs
from tools.mockengine import Registration

FIRST = "lightsail-k3s-dev"
PEERS = tuple(f"{FIRST}-server-{number}" for number in (2, 3))
AGENTS = tuple(f"{FIRST}-agent-{number}" for number in range(1, 11))
LARGE: dict[str, Any] = {"serverCount": 3, "agentCount": 10, "agentBundleId": "micro_3_0"}
UPGRADE = "v1.36.2+k3s1"


def outputs_of(deployment: Declared) -> dict:
    """A deployment's outputs as the next one reads them through its StackReference."""
    return {key: output.value for key, output in deployment.outputs.items()}


@pytest.fixture(scope="module")
def created() -> Declared:
    return deploy(**LARGE)


@pytest.fixture(scope="module")
def upgraded(created) -> Declared:
    return deploy(previous_outputs=outputs_of(created), **LARGE, k3sVersion=UPGRADE)


def installs_in_order(chain: list[str]) -> list[str]:
    return [name.removesuffix("-install") for name in chain if name.endswith("-install")]


def test_a_new_cluster_joins_servers_one_at_a_time_then_every_agent_at_once(created):
    """Before, every node waited for the one before: 28 commands in a row for 3 servers and 10 agents
    (the issue counted 26, leaving out the first server's token read and the last node's read)."""
    chain = chain_of(created.resources)
    agent = chain[-1].removesuffix("-read-certificate-expiry")
    assert agent in AGENTS
    assert chain == [
        f"{FIRST}-wait-for-boot",
        # On embedded etcd the first server's install follows the snapshot before an upgrade
        # (components/k3s.py), which on a new node finds nothing installed and ends at once.
        f"{FIRST}-snapshot-before-upgrade",
        f"{FIRST}-install",
        # The further servers join with the server token, read after the first server's install.
        f"{FIRST}-read-node-token",
        f"{PEERS[0]}-install",
        f"{PEERS[0]}-join",
        f"{PEERS[1]}-install",
        f"{PEERS[1]}-join",
        # Any one agent: they all wait for the last server, none for another.
        f"{agent}-install",
        f"{agent}-join",
        f"{agent}-read-certificate-expiry",
    ]
    for agent in AGENTS:
        install = created.named(f"{agent}-install")
        assert created.depends_on(install, created.named(f"{PEERS[1]}-join"))
        assert created.depends_on(install, created.named(f"{agent}-wait-for-boot"))
        for other in AGENTS:
            assert not created.depends_on(install, created.named(f"{other}-join")), (agent, other)


def test_the_default_stack_is_three_commands_long():
    """The boot wait, the install, then any of the reads that follow it."""
    chain = chain_of(deploy().resources)
    assert chain[:2] == [f"{FIRST}-wait-for-boot", f"{FIRST}-install"]
    assert len(chain) == 3 and chain[2].startswith(f"{FIRST}-read-")


def test_an_upgrade_still_goes_one_node_at_a_time_servers_first(created, upgraded):
    chain = chain_of(upgraded.resources, created.resources)
    # Every node's install and Ready wait, in order: 2 per node, the first server's token read,
    # the last agent's read; the hosts do not change, so their boot waits do not run.
    assert installs_in_order(chain) == [FIRST, *PEERS, *AGENTS]
    for node in (*PEERS, *AGENTS):
        assert chain.index(f"{node}-join") == chain.index(f"{node}-install") + 1
    assert longest_chain(upgraded.resources, created.resources) == 1 + 2 * 13 + 1
    for before, after in itertools.pairwise((*PEERS, *AGENTS)):
        assert upgraded.depends_on(
            upgraded.named(f"{after}-install"), upgraded.named(f"{before}-join")
        ), (before, after)


def test_one_agent_added_to_a_running_cluster_runs_its_own_steps_only(created):
    grown = deploy(previous_outputs=outputs_of(created), **{**LARGE, "agentCount": 11})
    added = f"{FIRST}-agent-11"
    assert chain_of(grown.resources, created.resources) == [
        f"{added}-wait-for-boot",
        f"{added}-install",
        f"{added}-join",
        f"{added}-read-certificate-expiry",
    ]
    # Nothing else runs: no other command changed.
    assert [
        r.name
        for r in grown.resources
        if runs(r, next((p for p in created.resources if p.urn == r.urn), None))
    ] == [
        f"{added}-{suffix}"
        for suffix in ("wait-for-boot", "install", "join", "read-certificate-expiry")
    ]
    install = grown.named(f"{added}-install")
    for agent in AGENTS:
        assert not grown.depends_on(install, grown.named(f"{agent}-join"))


def test_an_unchanged_run_runs_no_command(created):
    again = deploy(previous_outputs=outputs_of(created), **LARGE)
    assert longest_chain(again.resources, created.resources) == 0


def test_a_kubelet_change_on_the_agents_restarts_them_one_at_a_time(created):
    """Another agent bundle changes each agent's reservations (kubelet-arg): each agent restarts."""
    resized = deploy(
        previous_outputs=outputs_of(created), **{**LARGE, "agentBundleId": "small_3_0"}
    )
    chain = chain_of(resized.resources, created.resources)
    assert installs_in_order(chain) == list(AGENTS)
    assert not any(name.startswith((f"{FIRST}-install", *PEERS)) for name in chain)


def test_a_change_to_the_servers_alone_leaves_the_agents_be(created):
    """Backups add etcd-s3 keys to the servers' config: the servers restart one at a time, and no
    agent's install changes, so none runs and none waits for another."""
    backed_up = deploy(previous_outputs=outputs_of(created), **LARGE, backups="true")
    chain = chain_of(backed_up.resources, created.resources)
    assert installs_in_order(chain) == [FIRST, *PEERS]
    for agent in AGENTS[1:]:
        assert not backed_up.depends_on(
            backed_up.named(f"{agent}-install"), backed_up.named(f"{AGENTS[0]}-join")
        )


def test_a_certificate_rotation_restarts_every_agent_one_at_a_time(created):
    rotated = deploy(previous_outputs=outputs_of(created), **LARGE, certRotation=1)
    for before, after in itertools.pairwise(AGENTS):
        assert rotated.depends_on(
            rotated.named(f"{after}-rotate-certificates"),
            rotated.named(f"{before}-ready-after-rotation"),
        ), (before, after)


def test_a_stack_deployed_before_the_digests_were_kept_goes_one_at_a_time(created):
    """Its nodes are in `nodes` but have no digest: each counts as restarting."""
    previous = outputs_of(created)
    del previous[rollout.DIGESTS_OUTPUT]
    again = deploy(previous_outputs=previous, **LARGE)
    for before, after in itertools.pairwise(AGENTS):
        assert again.depends_on(again.named(f"{after}-install"), again.named(f"{before}-join"))


def test_a_stack_whose_previous_outputs_name_no_nodes_goes_one_at_a_time():
    """A release but no `nodes`: the previous deployment cannot tell which nodes run, so every
    agent waits for the one before, as every node did before this change (28 in a row), and each
    further server's host for the server before it (components/rollout.py, after_previous_server),
    which puts the last one's boot wait in the chain too."""
    again = deploy(previous_outputs={"k3sVersion": "v1.36.1+k3s1"}, **LARGE)
    chain = chain_of(again.resources)
    assert installs_in_order(chain) == [FIRST, *PEERS, *AGENTS]
    assert f"{PEERS[-1]}-wait-for-boot" in chain
    assert len(chain) == 30


def test_the_first_preview_keeps_each_agent_after_its_host_and_the_servers():
    """In a first preview every digest is unknown, so no agent waits for another; what every agent
    always waits for is listed beside the unknown entry and stays."""
    preview = deploy(first_preview=True, **LARGE)
    for agent in AGENTS:
        install = preview.named(f"{agent}-install")
        assert preview.depends_on(install, preview.named(f"{agent}-wait-for-boot"))
        assert preview.depends_on(install, preview.named(f"{PEERS[1]}-join"))
        assert not preview.depends_on(install, preview.named(f"{AGENTS[0]}-join")) or (
            agent == AGENTS[0]
        )


def test_a_preview_of_an_upgrade_shows_the_agents_one_at_a_time(created):
    """The previous deployment's outputs are read in a preview too (a StackReference is read when
    it is registered), and the mock's preview knows what the commands printed before."""
    preview = deploy(
        previous_outputs=outputs_of(created), preview=True, **LARGE, k3sVersion=UPGRADE
    )
    for before, after in itertools.pairwise(AGENTS):
        assert preview.depends_on(
            preview.named(f"{after}-install"), preview.named(f"{before}-join")
        )


def test_the_digests_output_names_every_node_and_changes_with_its_install(created, upgraded):
    digests = created.outputs[rollout.DIGESTS_OUTPUT]
    assert digests.secret
    assert sorted(digests.value) == sorted((FIRST, *PEERS, *AGENTS))
    assert upgraded.outputs[rollout.DIGESTS_OUTPUT].value.keys() == digests.value.keys()
    for node, digest in digests.value.items():
        assert upgraded.outputs[rollout.DIGESTS_OUTPUT].value[node] != digest, node


@pytest.mark.parametrize(
    ("deployed", "node", "digest", "expected"),
    [
        ({}, "a", "x", False),  # a new cluster
        ({"b": "y"}, "a", "x", False),  # a node added
        ({"a": "x"}, "a", "x", False),  # unchanged
        ({"a": "y"}, "a", "x", True),  # changed
        ({"a": None}, "a", "x", True),  # deployed before digests were kept
        (None, "a", "x", True),  # the previous deployment cannot tell
    ],
)
def test_which_nodes_restart(deployed, node, digest, expected):
    assert rollout.restarts(deployed, node, digest) is expected


def test_the_previous_deployment_read():
    assert rollout.deployed_nodes(None, None, None) == {}
    assert rollout.deployed_nodes("v1.36.1+k3s1", None, None) is None
    assert rollout.deployed_nodes("v1.36.1+k3s1", [{"name": "a"}], None) == {"a": None}
    assert rollout.deployed_nodes("v1.36.1+k3s1", [{"name": "a"}], {"a": "x"}) == {"a": "x"}


def command_registration(name: str, **inputs) -> Registration:
    return Registration(
        type=COMMAND,
        name=name,
        urn=f"urn:{name}",
        parent="",
        custom=True,
        provider="",
        inputs=inputs,
        secret_inputs=set(),
        dependencies=[],
        delete_before_replace=False,
        delete_before_replace_defined=False,
        additional_secret_outputs=[],
        protect=False,
        custom_timeouts={},
    )


def test_which_commands_run():
    """pulumi-command runs `create` on a create or a replacement, `update` (or `create` without
    one) on an update, and nothing for a command with a `delete` alone until it goes."""
    created = command_registration("c", create="x", triggers=[1])
    assert runs(created, None)
    assert not runs(command_registration("d", delete="x", triggers=[1]), None)
    assert not runs(created, created)
    assert runs(command_registration("c", create="x", stdin="new", triggers=[1]), created)
    assert runs(command_registration("c", create="x", triggers=[2]), created)
    only_delete = command_registration("d", delete="x", triggers=[1])
    assert not runs(command_registration("d", delete="x", stdin="new", triggers=[1]), only_delete)


def chain_table() -> list[list[str]]:
    """The rows of docs/scaling.md's table under "How long an `up` takes"."""
    page = (PROJECT_DIR / "docs" / "scaling.md").read_text()
    section = page.split("\n### How long an `up` takes\n", 1)[1].split("\n### ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]


def test_the_scaling_pages_chain_lengths_are_what_the_program_declares():
    rows = chain_table()
    assert len(rows) >= 4
    for servers, agents, new, upgrade, added in rows:
        config: dict[str, Any] = {"serverCount": int(servers), "agentCount": int(agents)}
        config["agentBundleId"] = "micro_3_0"
        fresh = deploy(**config)
        previous = outputs_of(fresh)
        after_upgrade = deploy(previous_outputs=previous, **config, k3sVersion=UPGRADE)
        grown = deploy(previous_outputs=previous, **{**config, "agentCount": int(agents) + 1})
        row = (servers, agents)
        assert longest_chain(fresh.resources) == int(new), row
        assert longest_chain(after_upgrade.resources, fresh.resources) == int(upgrade), row
        assert longest_chain(grown.resources, fresh.resources) == int(added), row


def test_a_run_that_leaves_the_installs_out_keeps_the_digests_of_the_installs_that_ran(created):
    """bin/deploy-access.sh closes the firewall with an `up --target`, also after a failed `up`:
    the engine answers the untargeted installs with their old state, so the digests the stack keeps
    are those of the installs that last ran, and the next `up` still restarts the agents whose new
    install never ran, one at a time (not all at once, as new digests would make it)."""
    old = {
        f"{node}-install": {"stdin": created.named(f"{node}-install").inputs["stdin"]}
        for node in (FIRST, *PEERS, *AGENTS)
    }
    targeted = deploy(
        previous_outputs=outputs_of(created),
        untargeted=old,
        **{**LARGE, "agentBundleId": "small_3_0"},
    )
    kept = targeted.outputs[rollout.DIGESTS_OUTPUT].value
    assert kept == created.outputs[rollout.DIGESTS_OUTPUT].value
    # Without the old state (a whole `up`), the kept digests are the new installs'.
    whole = deploy(previous_outputs=outputs_of(created), **{**LARGE, "agentBundleId": "small_3_0"})
    assert whole.outputs[rollout.DIGESTS_OUTPUT].value != kept
