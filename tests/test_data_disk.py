"""A server's data disk (dataDiskGb): the disk, its attachment and its mount on every server; a
bundle change that replaces the instance and keeps the disk, in the engine's order
(tools/replacement.py); protection on the disk and the static IP; its price; its setting."""

import pytest

from components import settings
from tests.helpers import (
    COMMAND,
    EXPIRY_READS,
    FIRST_SERVER_READS,
    INSTANCE,
    STATIC_IP,
    deploy,
    deployed_servers,
    label,
    redeploy,
    rejected,
    replace_instance,
    replace_instances,
    stack_snapshot,
)
from tools import plandiff
from tools.replacement import (
    CREATE,
    CREATE_REPLACEMENT,
    DELETE_REPLACED,
    UPDATE,
    Step,
    happens_before,
)

DISK = plandiff.DISK
DISK_ATTACHMENT = plandiff.DISK_ATTACHMENT
FIRST = "lightsail-k3s-dev"
SERVERS = (FIRST, f"{FIRST}-server-2", f"{FIRST}-server-3")


@pytest.fixture(scope="module")
def ha_on_disks():
    return deploy(serverCount=3, agentCount=1, dataDiskGb="40")


@pytest.fixture(scope="module")
def protected_on_disk():
    return deploy(dataDiskGb="40", protect=True)


def test_every_server_has_its_disk_attached_and_mounted_before_its_install(ha_on_disks):
    declared = ha_on_disks
    for server in SERVERS:
        disk = declared.named(f"{server}-data")
        attachment = declared.named(f"{server}-data-attachment")
        mount = declared.named(f"{server}-data-mount")
        instance = declared.named(f"{server}-instance")
        assert disk.type == DISK and disk.inputs["sizeInGb"] == 40
        assert disk.inputs["availabilityZone"] == instance.inputs["availabilityZone"]
        assert attachment.type == DISK_ATTACHMENT
        assert attachment.property_dependencies["diskName"] == [disk.urn]
        assert attachment.property_dependencies["instanceName"] == [instance.urn]
        # A disk attaches to one instance at a time: the old attachment goes first.
        assert attachment.delete_before_replace
        assert mount.type == COMMAND
        assert mount.inputs["create"] == "sudo bash -s -- mount"
        assert mount.inputs["delete"] == "sudo bash -s -- unmount"
        assert declared.depends_on(mount, attachment)
        install = declared.named(f"{server}-install")
        assert declared.depends_on(install, mount), server
        assert "\nK3S_DATA_ON_DISK=true\n" in str(install.inputs["stdin"]), server
    # Agents hold no cluster state: no disk.
    assert not [r for r in declared.of_type(DISK) if "agent" in r.name]


def test_without_a_data_disk_nothing_changes():
    declared = deploy()
    assert not declared.of_type(DISK) and not declared.of_type(DISK_ATTACHMENT)
    install = declared.named(f"{FIRST}-install")
    assert "\nK3S_DATA_ON_DISK=" not in str(install.inputs["stdin"])
    provider = declared.named(f"{FIRST}-kubernetes")
    assert provider.ignore_changes == [] and provider.replace_with == []


def test_protect_guards_the_disk_and_the_static_ip_and_leaves_the_instance_replaceable(
    protected_on_disk,
):
    declared = protected_on_disk
    assert declared.named(f"{FIRST}-data").protect
    assert declared.one(STATIC_IP).protect
    assert not declared.named(f"{FIRST}-instance").protect


def test_without_a_data_disk_protect_still_guards_the_instance():
    assert deploy(protect=True).named(f"{FIRST}-instance").protect


def provider_of_the_cluster(declared):
    return declared.named(f"{FIRST}-kubernetes")


def test_the_cluster_identifier_follows_the_disk_not_the_instance(ha_on_disks):
    provider = provider_of_the_cluster(ha_on_disks)
    disk = ha_on_disks.named(f"{FIRST}-data")
    assert provider.property_dependencies["clusterIdentifier"] == [disk.urn]
    assert provider.inputs["clusterIdentifier"] == f"{FIRST}@{disk.urn}"
    # Replaced with the disk only; an identifier from before the disk stays.
    assert provider.replace_with == [disk.urn]
    assert provider.ignore_changes == ["clusterIdentifier"]


def test_the_first_preview_knows_the_cluster_identifier():
    declared = deploy(first_preview=True, dataDiskGb="40")
    identifier = provider_of_the_cluster(declared).inputs["clusterIdentifier"]
    assert identifier == f"{FIRST}@{declared.named(f'{FIRST}-data').urn}"


def steps_of(declared, node):
    snapshot, steps = replace_instance(declared, node)

    def step(op: str, suffix: str) -> Step:
        urn = declared.named(f"{node}-{suffix}").urn
        (found,) = [s for s in steps if s.op == op and s.urn == urn]
        return found

    def before(first: Step, then: Step) -> bool:
        return happens_before(snapshot, steps, first, then)

    return steps, step, before


def assert_only_the_nodes_own_resources_are_replaced(declared, node, steps):
    replaced = {s.urn for s in steps if s.op == DELETE_REPLACED}
    names = {r.urn: r.name for r in declared.resources}
    assert declared.named(f"{node}-data").urn not in replaced, "the data disk is replaced"
    assert not [
        urn for urn in replaced if names[urn].startswith("kubernetes") or "kubernetes:" in urn
    ]
    others = {
        names[urn]
        for urn in replaced
        if not names[urn].startswith(f"{node}-") and not names[urn].endswith(label(node))
    }
    assert others <= FIRST_SERVER_READS | EXPIRY_READS, others


def test_a_bundle_change_replaces_the_first_servers_instance_and_keeps_its_disk(ha_on_disks):
    """The order the engine runs: the new instance is created first; the mount command's delete
    (k3s stopped, the data directory unmounted on the old host, over the static IP that still
    reaches it) comes before the static IP moves and before the disk is detached; the disk is
    attached to the new instance and mounted before k3s is installed there; the old instance goes
    last."""
    steps, step, before = steps_of(ha_on_disks, FIRST)
    new_instance = step(CREATE_REPLACEMENT, "instance")
    unmount = step(DELETE_REPLACED, "data-mount")
    detach = step(DELETE_REPLACED, "data-attachment")
    attach = step(CREATE_REPLACEMENT, "data-attachment")
    mount = step(CREATE_REPLACEMENT, "data-mount")
    new_install = step(CREATE_REPLACEMENT, "install")
    old_instance = step(DELETE_REPLACED, "instance")
    assert before(new_instance, unmount)
    assert before(unmount, step(DELETE_REPLACED, "ip-attachment"))
    assert before(unmount, detach)
    assert before(detach, attach)
    assert before(step(CREATE_REPLACEMENT, "ip-attachment"), attach)
    assert before(attach, mount)
    assert before(mount, new_install)
    assert old_instance.chain == "" and steps[-1] == old_instance
    assert_only_the_nodes_own_resources_are_replaced(ha_on_disks, FIRST, steps)
    # No Kubernetes object, and not the provider, is replaced: the cluster is the disk's.
    provider = provider_of_the_cluster(ha_on_disks).urn
    assert provider not in {s.urn for s in steps}


@pytest.mark.parametrize("node", SERVERS[1:])
def test_a_further_server_leaves_then_comes_back_with_its_disk(ha_on_disks, node):
    steps, step, before = steps_of(ha_on_disks, node)
    drain = step(DELETE_REPLACED, "join")
    unmount = step(DELETE_REPLACED, "data-mount")
    detach = step(DELETE_REPLACED, "data-attachment")
    old_instance = step(DELETE_REPLACED, "instance")
    new_instance = step(CREATE_REPLACEMENT, "instance")
    mount = step(CREATE_REPLACEMENT, "data-mount")
    new_install = step(CREATE_REPLACEMENT, "install")
    assert before(drain, unmount)
    assert before(step(DELETE_REPLACED, "k3s-stop"), unmount)
    assert before(unmount, detach)
    assert before(unmount, step(DELETE_REPLACED, "ip-attachment"))
    assert before(detach, old_instance)
    assert before(old_instance, new_instance)
    assert before(step(CREATE_REPLACEMENT, "data-attachment"), mount)
    assert before(mount, new_install)
    assert before(new_install, step(CREATE_REPLACEMENT, "join"))
    assert_only_the_nodes_own_resources_are_replaced(ha_on_disks, node, steps)


def test_further_servers_join_anew_and_the_first_leaves_on_its_unmount(ha_on_disks):
    """The drain removes a further server's etcd member: its data's member is set aside on a new
    host (data-disk.sh, ETCD_REJOINS); the first server of several is neither a further server
    nor the one member, so its unmount takes its member out of etcd (leave_etcd)."""
    first = ha_on_disks.named(f"{FIRST}-data-mount").inputs["stdin"]
    assert "ETCD_REJOINS=false" in first
    assert "ETCD_SINGLE_MEMBER=false" in first
    assert "KUBE_API_PORT=6443" in first
    for server in SERVERS[1:]:
        assert "ETCD_REJOINS=true" in ha_on_disks.named(f"{server}-data-mount").inputs["stdin"]


def test_the_disk_is_a_line_of_the_cost_breakdown(ha_on_disks):
    lines = {line["item"]: line for line in ha_on_disks.outputs["costBreakdown"].value}
    for role in ("server", "server-2", "server-3"):
        assert lines[f"data disk {role}"]["monthlyUsd"] == 4.0
    without = {line["item"] for line in deploy().outputs["costBreakdown"].value}
    assert not [item for item in without if item.startswith("data disk")]


def test_data_disks_default_on_for_prod_stacks_only():
    assert settings.parse_data_disk_gb(lambda key: "auto", "prod") == settings.DATA_DISK_DEFAULT_GB
    assert settings.parse_data_disk_gb(lambda key: "auto", "prod-eu") == 40
    assert settings.parse_data_disk_gb(lambda key: "auto", "dev") == 0
    assert settings.parse_data_disk_gb(lambda key: "0", "prod") == 0
    assert deploy("prod").of_type(DISK)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("8", "below the floor of 20 GB"), ("big", "is not auto or a whole number")],
)
def test_a_bad_size_is_refused_naming_the_key(value, fragment):
    rejected("dataDiskGb", fragment, "pulumi config set dataDiskGb 40", dataDiskGb=value)


# --- make plan BASE=: a bundle change on a data disk keeps the data; replacing the disk does not


def plan_resource(type_: str, name: str, inputs: dict, parent: str = "host", **options) -> dict:
    return {
        "urn": f"urn:pulumi:dev::lightsail-k3s::{type_}::{name}",
        "type": type_,
        "name": name,
        "parent": parent,
        "custom": True,
        "inputs": inputs,
        "options": options,
    }


def plan(bundle: str, disk_size: int | None) -> dict:
    resources = [plan_resource(INSTANCE, "node-instance", {"bundleId": bundle})]
    if disk_size is not None:
        resources.append(plan_resource(DISK, "node-data", {"sizeInGb": disk_size}, protect=True))
    return {"resources": resources, "outputs": {"monthlyCostUsd": 0}}


def rendered(base: dict, head: dict) -> str:
    return plandiff.render(plandiff.diff(base, head), "dev", "main", color=False)


def test_make_plan_shows_a_bundle_change_on_a_data_disk_as_a_replacement_that_keeps_the_data():
    text = rendered(plan("small_3_0", 40), plan("medium_3_0", 40))
    assert "REPLACES THE INSTANCE" not in text
    assert "the node's data disk stays and moves to the new instance" in text


def test_make_plan_keeps_its_warning_for_a_bundle_change_without_a_data_disk():
    assert "- REPLACES THE INSTANCE" in rendered(plan("small_3_0", None), plan("medium_3_0", None))


@pytest.mark.parametrize(("head_size", "action"), [(80, "REPLACES"), (None, "DELETES")])
def test_make_plan_warns_in_red_of_a_change_that_loses_the_data_disk(head_size, action):
    text = rendered(plan("small_3_0", 40), plan("medium_3_0", head_size))
    assert f"- {action} THE DATA DISK" in text
    # No disk keeps the data for the instance either.
    assert "- REPLACES THE INSTANCE" in text


# --- turning the disk on for a running cluster of three servers: one server at a time


@pytest.fixture(scope="module")
def ha_without_disks():
    return deploy(serverCount=3, agentCount=1)


@pytest.fixture(scope="module")
def ha_turning_disks_on():
    return deploy(
        previous_outputs=deployed_servers("small_3_0"), serverCount=3, agentCount=1, dataDiskGb="40"
    )


def ready_of(server: str) -> str:
    """What says a server is back and Ready: the first server's install waits for its own Ready
    (install-k3s-server.sh), a further server's join waits for it on the first server."""
    return f"{server}-install" if server == FIRST else f"{server}-join"


def test_turning_disks_on_for_three_running_servers_mounts_one_server_at_a_time(
    ha_without_disks, ha_turning_disks_on
):
    """Each first mount stops its server's k3s while the data moves (data-disk.sh): server N's
    mount starts only once server N-1 ran its install again from its disk and is Ready, so two
    of the three etcd members always run."""
    before, after = ha_without_disks, ha_turning_disks_on
    graph, steps = redeploy(before, after)
    by_urn = {(s.op, s.urn): s for s in steps}

    def step(op: str, name: str) -> Step:
        return by_urn[(op, after.named(name).urn)]

    mounts = [step(CREATE, f"{server}-data-mount") for server in SERVERS]
    for server in SERVERS:
        assert step(UPDATE, f"{server}-install"), server
    for server, following in zip(SERVERS, SERVERS[1:], strict=False):
        ready = step(UPDATE, ready_of(server))
        mount = step(CREATE, f"{following}-data-mount")
        assert happens_before(graph, steps, step(CREATE, f"{server}-data-mount"), mount)
        assert happens_before(graph, steps, ready, mount), (server, following)
    # Nothing of the cluster is replaced: the instances, the disks' hosts, stay.
    assert not [
        s
        for s in steps
        if s.op == DELETE_REPLACED
        and s.urn in {after.named(f"{server}-instance").urn for server in SERVERS}
    ]
    assert len(mounts) == 3


def test_a_new_clusters_servers_attach_their_disks_side_by_side(ha_on_disks):
    """A server new to the cluster waits for no other host: its disk is attached and mounted while
    the server before it installs (its own install still waits for that one)."""
    graph = stack_snapshot(ha_on_disks)
    mount = ha_on_disks.named(f"{SERVERS[1]}-data-mount").urn
    ready = ha_on_disks.named(ready_of(FIRST)).urn
    assert not happens_before(graph, [], Step(CREATE, ready, ready), Step(CREATE, mount, mount))
    assert ready not in ha_on_disks.named(f"{SERVERS[1]}-instance").dependencies


def test_the_first_preview_of_three_servers_on_disks_waits_for_no_other_host():
    declared = deploy(first_preview=True, serverCount=3, dataDiskGb="40")
    for server, following in zip(SERVERS, SERVERS[1:], strict=False):
        dependencies = declared.named(f"{following}-instance").dependencies
        assert declared.named(ready_of(server)).urn not in dependencies, following


def test_a_running_server_waits_for_the_one_before_it_also_in_a_preview():
    declared = deploy(
        preview=True, previous_outputs=deployed_servers("small_3_0"), serverCount=3, dataDiskGb="40"
    )
    for server, following in zip(SERVERS, SERVERS[1:], strict=False):
        dependencies = declared.named(f"{following}-instance").dependencies
        assert declared.named(ready_of(server)).urn in dependencies, following


# --- a bundle change of a running cluster of three servers on disks: one server at a time


@pytest.fixture(scope="module")
def ha_running_on_disks():
    """Three servers on disks as the next `up` declares them: every server runs already."""
    return deploy(
        previous_outputs=deployed_servers("small_3_0", data_disk_gb=40),
        serverCount=3,
        agentCount=1,
        dataDiskGb="40",
    )


def test_a_bundle_change_replaces_the_servers_one_at_a_time(ha_running_on_disks):
    """Server N's instance waits for server N-1's new host to be Ready, so its drain (its etcd
    member removed, its k3s stopped) starts only then: two of the three members run throughout.
    The wait is a dependsOn, which calculateDependentReplacements does not follow
    (pulumi/pulumi pkg/resource/deploy/step_generator.go: only property dependencies, providers
    and deletedWith take a dependent along), so no resource of server N is deleted in server
    N-1's chain."""
    declared = ha_running_on_disks
    graph, steps = replace_instances(declared, SERVERS)
    names = {r.urn: r.name for r in declared.resources}
    by_key = {(s.op, names[s.urn]): s for s in steps}

    def step(op: str, name: str) -> Step:
        return by_key[(op, name)]

    for server, following in zip(SERVERS, SERVERS[1:], strict=False):
        back = step(CREATE_REPLACEMENT, ready_of(server))
        for suffix in ("join", "k3s-stop", "data-mount", "instance"):
            leaves = step(DELETE_REPLACED, f"{following}-{suffix}")
            assert happens_before(graph, steps, back, leaves), (server, following, suffix)
        instance = declared.named(f"{server}-instance").urn
        in_its_chain = {names[s.urn] for s in steps if s.chain == instance}
        assert not [name for name in in_its_chain if name.startswith(f"{following}-")], server
    # The first server's old host leaves etcd in its unmount (data-disk.sh, leave_etcd) while the
    # other two run: before server 2's drain, and before its own disk or static IP moves.
    first_leaves = step(DELETE_REPLACED, f"{FIRST}-data-mount")
    assert happens_before(graph, steps, first_leaves, step(DELETE_REPLACED, f"{SERVERS[1]}-join"))
    for suffix in ("data-attachment", "ip-attachment"):
        assert happens_before(
            graph, steps, first_leaves, step(DELETE_REPLACED, f"{FIRST}-{suffix}")
        )
    # The further servers leave delete-first, each in its own instance's chain.
    for server in SERVERS[1:]:
        assert (
            step(DELETE_REPLACED, f"{server}-join").chain
            == declared.named(f"{server}-instance").urn
        )


def test_without_the_wait_the_further_servers_would_leave_side_by_side(ha_on_disks):
    """The same change on servers the program does not know to run (a new cluster's graph): their
    chains do not order each other, which is why a running server waits (the test above)."""
    graph, steps = replace_instances(ha_on_disks, SERVERS)
    names = {r.urn: r.name for r in ha_on_disks.resources}
    back = next(
        s for s in steps if s.op == CREATE_REPLACEMENT and names[s.urn] == ready_of(SERVERS[1])
    )
    leaves = next(
        s for s in steps if s.op == DELETE_REPLACED and names[s.urn] == f"{SERVERS[2]}-join"
    )
    assert not happens_before(graph, steps, back, leaves)
