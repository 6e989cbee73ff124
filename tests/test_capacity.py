"""The node's budget, Lightsail alarms, kubelet reservations and cost, on the mock engine."""

import pytest

from components.capacity import NodeCapacity, cpu_millicores, memory_mib, parse_resources
from components.catalog import BUNDLES, agent_capable_bundle_ids, server_capable_bundle_ids
from components.errors import ConfigError
from tests.helpers import DEPLOYMENT, PROJECT_DIR, command, deploy, k3s_config, mistyped, rejected
from tools import plan

QUOTA = "kubernetes:core/v1:ResourceQuota"
ALARM = "aws-native:lightsail:Alarm"
CONTACT = "aws-native:lightsail:ContactMethod"


def app(name="web", **fields):
    return {
        "name": name,
        "image": "ghcr.io/acme/web:1.0.0",
        "port": 8080,
        "path": f"/{name}",
        **fields,
    }


def default_apps(count):
    return [app(f"app{i}") for i in range(count)]


@pytest.fixture(scope="module")
def three_small_apps():
    return deploy(apps=[app("shop", replicas=2), app("api"), app("admin")])


def test_three_default_apps_one_with_two_replicas_fit_the_default_bundle(three_small_apps):
    assert three_small_apps.outputs["bundleId"].value == "small_3_0"
    assert len(three_small_apps.of_type(DEPLOYMENT)) == 3
    assert three_small_apps.warnings == []


def test_thirty_default_apps_fit_xlarge_within_its_baseline():
    deployment = deploy(bundleId="xlarge_3_0", apps=default_apps(30), cpuBudget="enforce")
    assert len(deployment.of_type(DEPLOYMENT)) == 30
    assert deployment.warnings == []


def test_thirty_default_apps_are_refused_on_small_naming_the_cheapest_bundle_that_fits():
    message = rejected("apps", "memory limits", "small_3_0", apps=default_apps(30))
    # 31 pods x 128Mi fit large_3_0's memory, but 30 x 25m + k3s exceed its 600m baseline.
    assert "the cheapest bundle that fits is xlarge_3_0" in message
    assert "large_3_0 (USD 44/month) also runs them, but above its CPU baseline" in message


def test_a_cpu_limit_above_the_baseline_is_accepted_up_to_the_vcpus():
    deployment = deploy(apps=[app(resources={"limits": {"cpu": "1500m"}})])
    (web,) = deployment.of_type(DEPLOYMENT)
    assert (
        web.inputs["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
        == "1500m"
    )
    assert deployment.warnings == []
    rejected(
        "apps",
        "apps[0] (web): limits.cpu 3 is more than the node's 2 vCPUs",
        apps=[app(resources={"limits": {"cpu": "3"}})],
    )


# 100m of k3s plus 400m requested is above small_3_0's 400m baseline (20% of 2 vCPUs).
BUSY = [app(resources={"requests": {"cpu": "400m"}, "limits": {"cpu": "1"}})]


def test_sustained_cpu_above_the_baseline_warns_with_the_numbers_and_the_bundle():
    (warning,) = deploy(apps=BUSY).warnings
    for fragment in (
        "500m",
        "k3s 100m",
        "small_3_0 baseline of 400m",
        "holds the instance to 400m",
        "large_3_0",
    ):
        assert fragment in warning, warning
    assert "stop" not in warning


def test_make_plan_shows_the_warning():
    assert "\nwarning: apps: the apps' sustained CPU, 500m" in plan.render(
        deploy(apps=BUSY).deployment
    )


def test_sustained_cpu_above_the_baseline_fails_under_enforce():
    rejected("apps", "500m", "baseline of 400m", "large_3_0", apps=BUSY, cpuBudget="enforce")


def test_sustained_cpu_above_the_baseline_is_silent_under_off():
    assert deploy(apps=BUSY, cpuBudget="off").warnings == []


def test_the_quota_admits_every_pod_the_check_accepts_surge_included():
    node = NodeCapacity.of(BUNDLES["small_3_0"])
    # Memory limits summing exactly to the budget with one surge pod: the largest the check accepts.
    per_pod = node.budget.memory_mib // 4
    fitting = [app("a", replicas=3, resources={"limits": {"memory": f"{per_pod}Mi"}})]
    deployment = deploy(apps=fitting)
    hard = deployment.one(QUOTA).inputs["spec"]["hard"]
    assert hard == node.budget.quota()
    containers = [
        (
            d.inputs["spec"]["replicas"],
            d.inputs["spec"]["template"]["spec"]["containers"][0]["resources"],
        )
        for d in deployment.of_type(DEPLOYMENT)
    ]
    pods = [resources for replicas, resources in containers for _ in range(replicas)] + [
        containers[0][1]
    ]
    assert sum(cpu_millicores(p["requests"]["cpu"]) for p in pods) <= cpu_millicores(
        hard["requests.cpu"]
    )
    assert sum(memory_mib(p["requests"]["memory"]) for p in pods) <= memory_mib(
        hard["requests.memory"]
    )
    assert sum(memory_mib(p["limits"]["memory"]) for p in pods) <= memory_mib(hard["limits.memory"])
    # One Mi more per pod and the check refuses what the quota would refuse.
    rejected(
        "apps",
        "memory limits",
        apps=[app("a", replicas=3, resources={"limits": {"memory": f"{per_pod + 1}Mi"}})],
    )


def test_the_quota_admits_exactly_the_cpu_requests_the_check_accepts_surge_included():
    """The memory test's CPU twin: requests summing exactly to the budget with one surge pod pass."""
    node = NodeCapacity.of(BUNDLES["small_3_0"])
    per_pod = node.budget.requests_cpu_millicores // 4
    assert per_pod * 4 == node.budget.requests_cpu_millicores, "the boundary must be reachable"

    def three_replicas(millicores):
        cpu = f"{millicores}m"
        return [app("a", replicas=3, resources={"requests": {"cpu": cpu}, "limits": {"cpu": cpu}})]

    # cpuBudget off: far above the baseline, which is the other rule's business.
    deployment = deploy(apps=three_replicas(per_pod), cpuBudget="off")
    hard = deployment.one(QUOTA).inputs["spec"]["hard"]
    assert hard == node.budget.quota()
    (web,) = deployment.of_type(DEPLOYMENT)
    requested = cpu_millicores(
        web.inputs["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    )
    # Three replicas and the surge pod of a rolling update fill the quota to the millicore.
    assert requested * (web.inputs["spec"]["replicas"] + 1) == cpu_millicores(hard["requests.cpu"])
    # One millicore more per pod and the check refuses what the quota would refuse.
    rejected(
        "apps",
        f"the apps request {(per_pod + 1) * 4}m of CPU",
        f"can schedule {node.budget.requests_cpu_millicores}m for them",
        apps=three_replicas(per_pod + 1),
        cpuBudget="off",
    )


def test_sustained_cpu_counts_every_replica():
    """Three replicas of 100m sit exactly on small_3_0's 400m baseline with k3s' 100m; of 101m, above it."""
    baseline = BUNDLES["small_3_0"].baseline_millicores
    assert baseline == 100 + 3 * 100

    def three_replicas(cpu):
        return [app(replicas=3, resources={"requests": {"cpu": cpu}})]

    assert deploy(apps=three_replicas("100m"), cpuBudget="enforce").warnings == []
    warnings = deploy(apps=three_replicas("101m")).warnings
    assert len(warnings) == 1, "3 x 101m plus k3s' 100m is above the 400m baseline"
    warning = warnings[0]
    assert "the apps' sustained CPU, 403m" in warning, warning
    assert "times replicas, 303m" in warning, warning
    rejected(
        "apps", "403m", f"baseline of {baseline}m", apps=three_replicas("101m"), cpuBudget="enforce"
    )


@pytest.mark.parametrize(
    ("section", "field", "value", "floor"),
    [
        ("requests", "cpu", "0", "1m"),
        ("limits", "cpu", "5m", "10m"),
        ("limits", "memory", "8Mi", "16Mi"),
    ],
)
def test_zero_and_tiny_quantities_are_refused(section, field, value, floor):
    rejected(
        "apps",
        f"apps[0] (web): resources.{section}.{field} '{value}' is below the {floor} minimum",
        apps=[app(resources={section: {field: value}})],
    )


def test_bad_budget_and_alarm_settings():
    rejected("cpuBudget", "'strict' is not one of warn, enforce, off", cpuBudget="strict")
    mistyped("burstAlarmPercent", "integer", burstAlarmPercent="lots")
    rejected("burstAlarmPercent", "100 would never or always alarm", burstAlarmPercent=100)
    rejected("alarmEmail", "'ops-at-example' is not an email address", alarmEmail="ops-at-example")


def test_kubelet_reservations_in_the_rendered_k3s_config(three_small_apps):
    config = k3s_config(command(three_small_apps, "install"))
    assert config["kubelet-arg"][-3:] == [
        "system-reserved=cpu=100m,memory=256Mi",
        "kube-reserved=cpu=100m,memory=768Mi",
        "eviction-hard=memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,"
        "nodefs.inodesFree<5%,imagefs.inodesFree<5%",
    ]
    # The budget subtracts the same figures the kubelet keeps.
    assert NodeCapacity.of(BUNDLES["small_3_0"]).allocatable_mib == 2048 - 256 - 768 - 100


def test_larger_bundles_reserve_from_their_own_row():
    assert NodeCapacity.of(BUNDLES["xlarge_3_0"]).kubelet_args()[:2] == [
        "system-reserved=cpu=100m,memory=512Mi",
        "kube-reserved=cpu=100m,memory=1280Mi",
    ]


def test_two_alarms_per_instance_through_a_regional_aws_native_provider(three_small_apps):
    provider = three_small_apps.one("pulumi:providers:aws-native")
    assert provider.inputs["region"] == "ap-northeast-2"
    instance = three_small_apps.one("aws:lightsail/instance:Instance")
    alarms = {a.inputs["metricName"]: a for a in three_small_apps.of_type(ALARM)}
    assert set(alarms) == {"BurstCapacityPercentage", "StatusCheckFailed"}
    burst, status = alarms["BurstCapacityPercentage"].inputs, alarms["StatusCheckFailed"].inputs
    assert (burst["comparisonOperator"], burst["threshold"]) == ("LessThanThreshold", 30)
    assert (status["comparisonOperator"], status["threshold"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
    )
    for alarm in alarms.values():
        assert alarm.inputs["monitoredResourceName"] == instance.state["name"]
        assert alarm.provider.startswith(provider.urn + "::")
        assert "contactProtocols" not in alarm.inputs
    assert three_small_apps.of_type(CONTACT) == []


def test_alarm_email_subscribes_the_alarms_to_the_regions_email_contact_method():
    deployment = deploy(alarmEmail="ops@example.com", burstAlarmPercent=50)
    contact = deployment.one(CONTACT)
    assert contact.inputs == {"protocol": "Email", "contactEndpoint": "ops@example.com"}
    alarms = {a.inputs["metricName"]: a for a in deployment.of_type(ALARM)}
    assert alarms["BurstCapacityPercentage"].inputs["threshold"] == 50
    for alarm in alarms.values():
        assert alarm.inputs["contactProtocols"] == ["Email"]
        assert deployment.depends_on(alarm, contact)


def test_cost_breakdown_sums_to_the_monthly_cost(three_small_apps):
    outputs = three_small_apps.outputs
    assert [line["item"] for line in outputs["costBreakdown"].value] == [
        "instance server small_3_0",
        "static IP",
    ]
    assert outputs["monthlyCostUsd"].value == 12
    with_snapshots = deploy(autoSnapshotTime="18:00").outputs
    lines = with_snapshots["costBreakdown"].value
    assert lines[-1] == {
        "item": "automatic snapshots server (estimate)",
        "monthlyUsd": 3,
        "basis": "60 GB disk x USD 0.05/GB-month",
    }
    assert with_snapshots["monthlyCostUsd"].value == sum(line["monthlyUsd"] for line in lines) == 15
    with_backups = deploy(backups=True).outputs
    assert with_backups["costBreakdown"].value[-1]["item"] == "backup bucket small_1_0"
    assert with_backups["monthlyCostUsd"].value == 13


def reservations_row(bundle_id: str, node: NodeCapacity) -> str:
    """A reservations table row of docs/apps.md up to its last columns: RAM, system, kube, eviction."""
    system, kube, eviction = (arg.split("=", 1)[1] for arg in node.kubelet_args())
    return (
        f"| {node.bundle.ram_gb:g} GB (`{bundle_id}`) | {system.replace('cpu=', '').replace(',memory=', ', ')} "
        f"| {kube.replace('cpu=', '').replace(',memory=', ', ')} | {eviction.split(',')[0].split('<')[1]} "
    )


def test_the_documented_reservations_table_matches_the_code():
    page = (PROJECT_DIR / "docs" / "apps.md").read_text()
    for bundle_id in server_capable_bundle_ids():
        node = NodeCapacity.of(BUNDLES[bundle_id])
        row = reservations_row(bundle_id, node) + f"| {node.budget.requests_cpu_millicores}m"
        assert row in page, row
        assert f"{node.budget.memory_mib}Mi" in page.split(row, 1)[1].split("\n", 1)[0]


def test_the_documented_agent_reservations_table_matches_the_code():
    page = (PROJECT_DIR / "docs" / "apps.md").read_text()
    for bundle_id in agent_capable_bundle_ids():
        node = NodeCapacity.of_agent(BUNDLES[bundle_id])
        row = (
            reservations_row(bundle_id, node)
            + f"| {node.allocatable_millicores}m, {node.allocatable_mib}Mi |"
        )
        assert row in page, row


def test_every_agent_bundle_keeps_room_for_k3s_agent_and_some_for_pods():
    for bundle_id in agent_capable_bundle_ids():
        node = NodeCapacity.of_agent(BUNDLES[bundle_id])
        assert node.reservation.k3s_mib == 256  # k3s resource profiling, "K3s agent"
        assert node.allocatable_mib > 0, bundle_id


def test_agents_get_their_own_alarms_and_cost_lines():
    deployment = deploy(agentCount=1, agentBundleId="micro_3_0", autoSnapshotTime="18:00")
    instances = {
        i.name: i.state["name"] for i in deployment.of_type("aws:lightsail/instance:Instance")
    }
    watched = sorted(
        (a.inputs["monitoredResourceName"], a.inputs["metricName"])
        for a in deployment.of_type(ALARM)
    )
    assert watched == sorted(
        (name, metric)
        for name in instances.values()
        for metric in ("BurstCapacityPercentage", "StatusCheckFailed")
    )
    lines = {line["item"]: line["monthlyUsd"] for line in deployment.outputs["costBreakdown"].value}
    assert lines["instance agent-1 micro_3_0"] == 7
    assert lines["automatic snapshots agent-1 (estimate)"] == 2  # 40 GB x USD 0.05
    assert deployment.outputs["monthlyCostUsd"].value == sum(lines.values()) == 12 + 7 + 3 + 2


@pytest.mark.parametrize(
    ("requests", "limits", "accepted"),
    [
        ({"cpu": "250m", "memory": "128Mi"}, {"cpu": "250m", "memory": "128Mi"}, True),
        ({"cpu": "251m", "memory": "128Mi"}, {"cpu": "250m", "memory": "128Mi"}, False),
        ({"cpu": "100m", "memory": "129Mi"}, {"cpu": "250m", "memory": "128Mi"}, False),
    ],
)
def test_requests_may_equal_but_never_exceed_limits(requests, limits, accepted):
    raw = {"requests": requests, "limits": limits}
    if accepted:
        parse_resources(raw, "apps[0] (web)")
    else:
        with pytest.raises(ConfigError, match="exceed limits"):
            parse_resources(raw, "apps[0] (web)")
