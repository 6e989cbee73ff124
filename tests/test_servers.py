"""Three servers on embedded etcd, with agents: joins, shared settings, order, outputs, refusals."""

import itertools
import json
import re

import pytest

from components.catalog import BUNDLES
from tests.helpers import (
    ADMIN_CIDR,
    COMMAND,
    INSTANCE,
    PROJECT_DIR,
    deploy,
    deployed_servers,
    k3s_config,
)
from tools.mockengine import (
    MOCK_AGENT_SECRET,
    MOCK_AGENT_TOKEN,
    MOCK_NODE_TOKEN,
    MOCK_STATIC_IP,
    private_ip_for,
    static_ip_for,
)

FIRST = "lightsail-k3s-dev"
PEERS = ("lightsail-k3s-dev-server-2", "lightsail-k3s-dev-server-3")
AGENTS = ("lightsail-k3s-dev-agent-1", "lightsail-k3s-dev-agent-2")
SECRETS = (MOCK_AGENT_SECRET, MOCK_AGENT_TOKEN, MOCK_NODE_TOKEN)


@pytest.fixture(scope="module")
def ha():
    return deploy(serverCount=3, agentCount=2, agentBundleId="micro_3_0", protect=True)


# The shell assignments that open a node program (components/remote_scripts.py, node_program),
# and a script's uses of a library variable, however it loads the library.
SHELL_ASSIGNMENT = re.compile(r"^[A-Z][A-Z0-9_]*=")
LIBRARY_VARIABLE_USE = re.compile(r"\$\{?(\w+_LIB_B64)\b")


def test_every_node_program_carries_exactly_the_libraries_its_script_uses(ha):
    """A library the script does not use is dead weight in its stdin, and a change to it would
    still update the command on that node (pulumi-command applies a new stdin as an update)."""
    mismatched, carrying = {}, []
    for registration in ha.of_type(COMMAND):
        lines = (registration.inputs.get("stdin") or "").splitlines()
        prelude = list(itertools.takewhile(SHELL_ASSIGNMENT.match, lines))
        script = "\n".join(lines[len(prelude) :])
        carried = sorted(line.split("=", 1)[0] for line in prelude if "_LIB_B64=" in line)
        used = sorted(set(LIBRARY_VARIABLE_USE.findall(script)))
        carrying += [registration.name] if carried else []
        if carried != used:
            mismatched[registration.name] = {"carried": carried, "used": used}
    assert f"{AGENTS[0]}-install" in carrying and f"{PEERS[0]}-install" in carrying
    assert mismatched == {}


def test_three_servers_and_two_agents_are_five_instances(ha):
    assert sorted(r.name for r in ha.of_type(INSTANCE)) == sorted(
        f"{name}-instance" for name in (FIRST, *PEERS, *AGENTS)
    )


def test_every_join_references_the_first_servers_private_ip(ha):
    private_url = f"https://{private_ip_for(f'{FIRST}-instance')}:6443"
    joiners = [ha.named(f"{name}-install") for name in (*PEERS, *AGENTS)]
    assert [k3s_config(install)["server"] for install in joiners] == [private_url] * 4
    assert [k3s_config(ha.named(f"{name}-install"))["token"] for name in PEERS] == [
        MOCK_NODE_TOKEN
    ] * 2
    assert [k3s_config(ha.named(f"{name}-install"))["token"] for name in AGENTS] == [
        MOCK_AGENT_TOKEN
    ] * 2
    assert "server" not in k3s_config(ha.named(f"{FIRST}-install"))


def test_no_token_in_any_commands_plain_inputs(ha):
    commands = ha.of_type(COMMAND)
    # Boot waits; the first server's snapshot before an upgrade, its install and four reads; each
    # peer's and agent's install, node, k3s-stop, join and expiry read.
    assert len(commands) == 5 + 6 + 2 * 5 + 2 * 5
    for resource in commands:
        plain = json.dumps(
            {
                key: value
                for key, value in resource.inputs.items()
                if key not in resource.secret_inputs
            }
        )
        for secret in SECRETS:
            assert secret not in plain, (resource.name, secret[:6])
    for name in PEERS:
        install = ha.named(f"{name}-install")
        assert "stdin" in install.secret_inputs
        assert install.inputs["logging"] == "none"
        assert {"stdout", "stderr"} <= set(install.additional_secret_outputs)


def test_the_first_server_starts_etcd_and_the_others_join_it(ha):
    assert k3s_config(ha.named(f"{FIRST}-install"))["cluster-init"] is True
    for name in PEERS:
        config = k3s_config(ha.named(f"{name}-install"))
        assert "cluster-init" not in config
        assert config["node-name"] == name


def test_settings_that_must_match_are_the_same_on_every_server(ha):
    configs = [k3s_config(ha.named(f"{name}-install")) for name in (FIRST, *PEERS)]
    own_keys = {"node-name", "cluster-init", "server", "token"}
    shared = [
        {key: value for key, value in config.items() if key not in own_keys} for config in configs
    ]
    assert shared[0] == shared[1] == shared[2]
    assert shared[0]["tls-san"] == [
        MOCK_STATIC_IP,
        *(static_ip_for(f"{name}-ip-attachment") for name in PEERS),
    ]
    assert shared[0]["agent-token"] == MOCK_AGENT_SECRET
    assert shared[0]["secrets-encryption"] is True


def test_servers_upgrade_one_at_a_time_then_the_agents(ha):
    def install(name):
        return ha.named(f"{name}-install")

    def joined(name):
        return ha.named(f"{name}-join")

    assert ha.depends_on(install(PEERS[0]), install(FIRST))
    assert ha.depends_on(install(PEERS[1]), joined(PEERS[0]))
    # On a new cluster every agent after the last server, none after another (an upgrade's
    # order: test_a_new_k3s_version_updates_every_node_in_place).
    for agent in AGENTS:
        assert ha.depends_on(install(agent), joined(PEERS[1]))
    assert not ha.depends_on(install(AGENTS[1]), joined(AGENTS[0]))
    # and not the other way round
    assert not ha.depends_on(install(PEERS[0]), joined(PEERS[1]))
    assert not ha.depends_on(install(FIRST), install(PEERS[0]))


def test_a_removed_server_is_drained_and_leaves_etcd_through_the_first_server(ha):
    for name in PEERS:
        join = ha.named(f"{name}-join")
        assert join.inputs["connection"]["host"] == MOCK_STATIC_IP
        assert join.inputs["delete"] == "sudo bash -s -- drain"
        assert join.inputs["stdin"].startswith(f"NODE_NAME={name}\n")
        assert "etcd.k3s.cattle.io/remove=true" in join.inputs["stdin"]
        assert ha.depends_on(join, ha.named(f"{name}-install"))
        # Then k3s stops on the server itself, then its Node is deleted on the first server.
        stop = ha.named(f"{name}-k3s-stop")
        assert stop.urn in join.dependencies
        assert stop.inputs["stdin"].startswith(f"NODE_NAME={name}\nK3S_UNIT=k3s\n")
        assert (
            stop.inputs["connection"]["host"]
            == ha.named(f"{name}-ip-attachment").state["ipAddress"]
        )
        assert ha.named(f"{name}-node").urn in stop.dependencies
        assert ha.named(f"{name}-instance").delete_before_replace


def test_further_servers_are_hosts_like_the_first(ha):
    first_rules = ha.named(f"{FIRST}-firewall").inputs["portInfos"]
    for name in PEERS:
        assert ha.named(f"{name}-instance").protect
        assert ha.named(f"{name}-ip").protect
        assert ha.named(f"{name}-firewall").inputs["portInfos"] == first_rules
        assert ha.named(f"{name}-instance").inputs["bundleId"] == "small_3_0"
    assert {p["fromPort"] for p in first_rules if p["cidrs"] == [ADMIN_CIDR]} == {22, 6443}


def test_outputs_list_all_five_nodes_and_cost_sums_them(ha):
    nodes = ha.outputs["nodes"].value
    assert [(node["name"], node["role"], node["bundleId"]) for node in nodes] == [
        (FIRST, "server", "small_3_0"),
        (PEERS[0], "server", "small_3_0"),
        (PEERS[1], "server", "small_3_0"),
        (AGENTS[0], "agent", "micro_3_0"),
        (AGENTS[1], "agent", "micro_3_0"),
    ]
    assert [node["privateIp"] for node in nodes] == [
        private_ip_for(f"{name}-instance") for name in (FIRST, *PEERS, *AGENTS)
    ]
    assert [node.get("publicIp") for node in nodes] == [
        MOCK_STATIC_IP,
        *(static_ip_for(f"{name}-ip-attachment") for name in PEERS),
        None,
        None,
    ]
    assert (
        ha.outputs["monthlyCostUsd"].value
        == 3 * BUNDLES["small_3_0"].monthly_usd + 2 * BUNDLES["micro_3_0"].monthly_usd
    )
    assert ha.outputs["kubeApiUrl"].value == f"https://{MOCK_STATIC_IP}:6443"


def test_one_server_does_not_start_etcd_without_backups(dev):
    assert "cluster-init" not in k3s_config(dev.named(f"{FIRST}-install"))
    assert not [r for r in dev.resources if r.name.startswith(f"{FIRST}-server-")]


def test_the_documented_topology_costs_come_from_the_catalog():
    text = (PROJECT_DIR / "docs" / "scaling.md").read_text()
    table = text.split(
        "| serverCount × bundleId | agentCount × agentBundleId | USD/month |\n|---|---|---|\n", 1
    )[1]
    rows = [line.strip("|").split("|") for line in table.split("\n\n", 1)[0].splitlines()]
    assert len(rows) >= 5

    def price(cell: str) -> float:
        if cell.strip() == "0":
            return 0
        count, bundle_id = cell.strip().split(" × ")
        return int(count) * BUNDLES[bundle_id].monthly_usd

    for servers, agents, usd in rows:
        assert price(servers) + price(agents) == float(usd), (servers, agents, usd)


def test_a_new_k3s_version_updates_every_node_in_place(ha):
    upgraded = deploy(
        serverCount=3,
        agentCount=2,
        agentBundleId="micro_3_0",
        protect=True,
        k3sVersion="v1.36.2+k3s1",
        previous_outputs={key: output.value for key, output in ha.outputs.items()},
    )
    for name in (FIRST, *PEERS, *AGENTS):
        before, after = ha.named(f"{name}-install"), upgraded.named(f"{name}-install")
        assert "K3S_VERSION=v1.36.1+k3s1\n" in before.inputs["stdin"]
        assert "K3S_VERSION=v1.36.2+k3s1\n" in after.inputs["stdin"]
        # Same triggers: an update running the idempotent install, not a replacement.
        assert after.inputs["triggers"] == before.inputs["triggers"]
    for name in (*PEERS, *AGENTS):
        # The membership command's stdin changes too, and nothing that replaces it: an update
        # running `ready` again (components/membership.py cites pulumi-command), never `drain`.
        before, after = ha.named(f"{name}-join"), upgraded.named(f"{name}-join")
        assert "EXPECTED_VERSION=v1.36.1+k3s1\n" in before.inputs["stdin"]
        assert "EXPECTED_VERSION=v1.36.2+k3s1\n" in after.inputs["stdin"]
        assert after.inputs["update"] == after.inputs["create"] == "sudo bash -s -- ready"
        assert after.inputs["delete"] == "sudo bash -s -- drain"
        assert after.inputs["triggers"] == before.inputs["triggers"]
        assert upgraded.depends_on(after, upgraded.named(f"{name}-install"))
        # What stops k3s and deletes the Node when the node goes does not change at all.
        for suffix in ("k3s-stop", "node"):
            assert upgraded.named(f"{name}-{suffix}").inputs == ha.named(f"{name}-{suffix}").inputs
    # Each node's install waits for the node before it to be Ready again: each one's k3s restarts.
    for previous, following in itertools.pairwise((*PEERS, *AGENTS)):
        assert upgraded.depends_on(
            upgraded.named(f"{following}-install"), upgraded.named(f"{previous}-join")
        )


def test_a_config_change_reruns_each_changed_nodes_ready_wait_in_place(ha):
    """Backups add etcd-s3 keys to every server's config: same release, new install stdin."""
    backed_up = deploy(
        serverCount=3, agentCount=2, agentBundleId="micro_3_0", protect=True, backups="true"
    )
    for name in PEERS:
        before, after = ha.named(f"{name}-join"), backed_up.named(f"{name}-join")
        assert "EXPECTED_VERSION=v1.36.1+k3s1\n" in after.inputs["stdin"]
        assert after.inputs["stdin"] != before.inputs["stdin"]
        assert after.inputs["triggers"] == before.inputs["triggers"]
        assert after.inputs["update"] == "sudo bash -s -- ready"


# Each replaces every server's instance (ForceNew on lightsail.Instance): (key, new, deployed).
INSTANCE_CHANGES = pytest.mark.parametrize(
    ("key", "value", "deployed"),
    [("bundleId", "medium_3_0", "small_3_0"), ("blueprintId", "debian_12", "ubuntu_24_04")],
    ids=["bundle", "blueprint"],
)


@INSTANCE_CHANGES
@pytest.mark.parametrize("preview", [True, False])
def test_a_new_instance_for_three_running_servers_without_data_disks_is_refused_before_anything(
    preview, key, value, deployed
):
    """The first server's new instance, without a disk, would begin a new, empty cluster."""
    from tests.helpers import STACK_REFERENCE, rejected

    rejected(
        key,
        f"{value} would replace all 3 servers of this running cluster (deployed with {key} {deployed})",
        "would begin a new, empty cluster",
        "first `make up` with dataDiskGb 40 alone",
        f"then with {key} {value}",
        after_reading=[STACK_REFERENCE],
        previous_outputs=deployed_servers("small_3_0"),
        serverCount=3,
        **{key: value},
        preview=preview,
    )


@INSTANCE_CHANGES
def test_a_new_instance_and_the_disks_turned_on_in_one_run_are_refused(key, value, deployed):
    refused_change(
        key,
        deployed_servers("small_3_0"),
        "without data disks to keep its data",
        serverCount=3,
        dataDiskGb="40",
        **{key: value},
    )


@INSTANCE_CHANGES
def test_a_new_instance_for_disks_an_earlier_script_mounted_is_refused(key, value, deployed):
    """Their unmount runs the script in state, which does not take the first server out of etcd."""
    refused_change(
        key,
        deployed_servers("small_3_0", data_disk_gb=40, rejoins=False),
        "does not take the first server out of etcd",
        "first `make up` with no other change",
        serverCount=3,
        dataDiskGb="40",
        **{key: value},
    )


@INSTANCE_CHANGES
def test_a_new_instance_for_disks_whose_script_left_etcd_running_is_refused(key, value, deployed):
    """535069a's scripts recorded `etcdRejoinsOnMove`: their unmount, in state, has the first
    server's member removed while its k3s runs, which can begin a second cluster."""
    outputs = deployed_servers("small_3_0", data_disk_gb=40, rejoins=False)
    for node in outputs["nodes"]:
        node["etcdRejoinsOnMove"] = True
    refused_change(
        key,
        outputs,
        "out of etcd with its k3s stopped",
        "first `make up` with no other change",
        serverCount=3,
        dataDiskGb="40",
        **{key: value},
    )


@INSTANCE_CHANGES
@pytest.mark.parametrize("preview", [True, False])
def test_a_new_instance_for_three_running_servers_on_disks_is_a_normal_up(
    preview, key, value, deployed
):
    """One server at a time (tests/test_data_disk.py), the first one rejoining etcd."""
    declared = deploy(
        previous_outputs=deployed_servers("small_3_0", data_disk_gb=40),
        serverCount=3,
        dataDiskGb="40",
        preview=preview,
        **{key: value},
    )
    assert {r.inputs[key] for r in declared.of_type(INSTANCE)} == {value}
    nodes = declared.outputs["nodes"].value
    assert [node.get("etcdLeavesStopped") for node in nodes] == [True, True, True]
    # Without disks nothing says so.
    assert "etcdLeavesStopped" not in deploy(serverCount=3).outputs["nodes"].value[0]


@INSTANCE_CHANGES
def test_the_same_instance_a_single_server_or_a_new_cluster_may_change_freely(key, value, deployed):
    assert deploy(serverCount=3).outputs["nodes"].value[0][key] == deployed
    deploy(previous_outputs=deployed_servers("small_3_0"), serverCount=3)
    one = deploy(previous_outputs=deployed_servers("small_3_0", count=1), **{key: value})
    assert one.named("lightsail-k3s-dev-instance").inputs[key] == value
    deploy(serverCount=3, **{key: value})


def test_a_stack_deployed_before_nodes_carried_the_blueprint_is_compared_on_its_bundle():
    """Nothing to compare the blueprint with: this run records it, and the next compares."""
    previous = deployed_servers("small_3_0", blueprint_id=None)
    deploy(previous_outputs=previous, serverCount=3, blueprintId="debian_12")
    refused_change(
        "bundleId",
        previous,
        "without data disks to keep its data",
        serverCount=3,
        bundleId="medium_3_0",
    )


UPGRADE = "v1.36.2+k3s1"


def refused_change(key: str, previous: dict, *fragments: str, **config) -> None:
    from tests.helpers import STACK_REFERENCE, rejected

    rejected(key, *fragments, after_reading=[STACK_REFERENCE], previous_outputs=previous, **config)


def test_turning_data_disks_on_for_a_running_cluster_of_three_servers_is_a_normal_up():
    """Each server's first mount waits for the server before it (tests/test_data_disk.py)."""
    declared = deploy(
        previous_outputs=deployed_servers("small_3_0"), serverCount=3, dataDiskGb="40"
    )
    assert len(declared.of_type("aws:lightsail/disk:Disk")) == 3


@pytest.mark.parametrize("size", ["80", "0"])
def test_a_new_size_or_no_disk_for_three_running_servers_on_disks_is_refused(size):
    """Lightsail cannot resize a disk: a new one for every server, holding none of the data."""
    refused_change(
        "dataDiskGb",
        deployed_servers("small_3_0", data_disk_gb=40),
        f"{size} GB would replace or remove the data disks of all 3 servers of this running "
        "cluster (deployed with 40 GB)",
        "keep dataDiskGb 40",
        serverCount=3,
        dataDiskGb=size,
    )


@pytest.mark.parametrize(
    "change",
    [{"bundleId": "medium_3_0"}, {"blueprintId": "debian_12"}, {"dataDiskGb": "40"}],
    ids=["bundle", "blueprint", "data disk"],
)
def test_an_upgrade_does_not_share_a_run_with_a_move_of_the_first_server_on_etcd(change):
    """The snapshot before the upgrade would run on a k3s the move stopped, or on a new host."""
    previous = {**deployed_servers("small_3_0", count=1), "backupBucket": "lightsail-k3s-dev-b"}
    refused_change(
        "k3sVersion",
        previous,
        "in one run: the etcd snapshot before the upgrade",
        "one change at a time: first `make up` with k3sVersion v1.36.1+k3s1",
        backups="true",
        k3sVersion=UPGRADE,
        **change,
    )
    # Each alone is fine, and on SQLite (no snapshot step) both at once too.
    deploy(previous_outputs=previous, backups="true", **change)
    deploy(previous_outputs=previous, backups="true", k3sVersion=UPGRADE)
    deploy(
        previous_outputs=deployed_servers("small_3_0", count=1),
        backups="false",
        k3sVersion=UPGRADE,
        **change,
    )


def test_an_upgrade_does_not_share_a_run_with_turning_backups_on():
    refused_change(
        "k3sVersion",
        deployed_servers("small_3_0"),
        "in the run that turns backups on",
        "first `make up` with backups on and k3sVersion v1.36.1+k3s1",
        serverCount=3,
        backups="true",
        k3sVersion=UPGRADE,
    )
    deploy(previous_outputs=deployed_servers("small_3_0"), serverCount=3, backups="true")


def test_the_nodes_output_says_each_servers_data_disk_for_the_next_run():
    nodes = deploy(serverCount=3, dataDiskGb="40").outputs["nodes"].value
    assert [node.get("dataDiskGb") for node in nodes if node["role"] == "server"] == [40, 40, 40]
