"""Coordinated reboots on the mock engine: kured as a HelmChart only with a window, its window and lock
in its values, the per-stack default, and every refusal."""

import jsonschema
import pytest
import yaml

from components.capacity import NodeCapacity
from components.catalog import BUNDLES
from components.reboots import (
    KURED_CHART_VERSION,
    KURED_IMAGE,
    KURED_IMAGE_TAG,
    KURED_LOCK_ANNOTATION,
    REBOOT_WINDOW_BY_DEFAULT,
)
from tests.helpers import (
    HELM_CHART,
    HELM_CHART_CRDS,
    NAMESPACE,
    PROJECT_DIR,
    QUOTA,
    chart,
    deploy,
    kubernetes_schema_version,
    rejected,
    strict_crd_schema,
)

# kured's day names and time formats (kured 1.23.0 pkg/timewindow/days.go, dayStrings; timewindow.go,
# parseTime): what it accepts, so a window it would refuse at start never reaches it.
KURED_DAYS = {"su", "sun", "sunday", "mo", "mon", "monday", "tu", "tue", "tuesday", "we", "wed",
              "wednesday", "th", "thu", "thursday", "fr", "fri", "friday", "sa", "sat", "saturday"}  # fmt: skip


def kureds(deployment):
    return [r for r in deployment.of_type(HELM_CHART) if r.inputs["metadata"]["name"] == "kured"]


def kured(deployment):
    (found,) = kureds(deployment)
    return found


def configuration(deployment):
    return yaml.safe_load(kured(deployment).inputs["spec"]["valuesContent"])


@pytest.fixture(scope="module")
def prod():
    return deploy("prod")


def test_prod_stacks_reboot_in_the_default_window(prod):
    values = configuration(prod)
    days, hours = REBOOT_WINDOW_BY_DEFAULT.split(" ")
    start, end = hours.split("-")
    assert values["configuration"]["rebootDays"] == [days.lower()]
    assert (values["configuration"]["startTime"], values["configuration"]["endTime"]) == (
        start,
        end,
    )
    assert values["configuration"]["timeZone"] == "UTC"


def test_the_lock_lets_one_node_reboot_at_a_time(prod):
    configured = configuration(prod)["configuration"]
    assert configured["concurrency"] == 1
    assert configured["lockAnnotation"] == KURED_LOCK_ANNOTATION
    # No lock expiry (lockTtl): another node never starts while one has not come back.
    assert "lockTtl" not in configured


def test_the_chart_and_the_image_are_pinned(prod):
    spec = kured(prod).inputs["spec"]
    assert (spec["repo"], spec["chart"], spec["version"]) == (
        "https://kubereboot.github.io/charts",
        "kured",
        KURED_CHART_VERSION,
    )
    assert configuration(prod)["image"] == {"repository": KURED_IMAGE, "tag": KURED_IMAGE_TAG}
    assert spec["targetNamespace"] == "kured"


@pytest.mark.parametrize("crd", HELM_CHART_CRDS)
def test_kureds_helm_chart_is_valid_against_the_crd(prod, crd):
    schema, registry = strict_crd_schema(
        PROJECT_DIR / "tests" / "fixtures" / "crds" / crd,
        kubernetes_schema_version(prod.outputs["k3sVersion"].value),
    )
    jsonschema.Draft202012Validator(schema, registry=registry).validate(kured(prod).inputs)


def test_the_window_is_one_kured_reads(prod):
    configured = configuration(prod)["configuration"]
    assert set(configured["rebootDays"]) <= KURED_DAYS
    for time in (configured["startTime"], configured["endTime"]):
        # Quoted in the values, so a YAML 1.1 reader cannot take it for a number.
        assert f'"{time}"' in kured(prod).inputs["spec"]["valuesContent"]


def test_on_one_node_the_reboot_goes_ahead_when_the_drain_times_out(prod):
    configured = configuration(prod)["configuration"]
    assert configured["forceReboot"] is True
    assert configured["drainTimeout"] == "10m"


def test_with_other_nodes_a_blocked_drain_is_respected():
    deployment = deploy(rebootWindow="Sat,Sun 02:00-04:00", agentCount=1)
    configured = configuration(deployment)["configuration"]
    assert configured["forceReboot"] is False
    assert configured["rebootDays"] == ["sat", "sun"]
    assert (configured["startTime"], configured["endTime"]) == ("02:00", "04:00")


def test_kured_runs_in_a_privileged_namespace_of_its_own(prod):
    (namespace,) = [n for n in prod.of_type(NAMESPACE) if n.inputs["metadata"]["name"] == "kured"]
    labels = namespace.inputs["metadata"]["labels"]
    assert {
        labels[f"pod-security.kubernetes.io/{mode}"] for mode in ("enforce", "warn", "audit")
    } == {"privileged"}


def test_the_apps_budget_counts_kured(prod):
    full = NodeCapacity.of(BUNDLES["medium_3_0"]).budget
    quota = prod.one(QUOTA).inputs["spec"]["hard"]
    assert quota["requests.cpu"] == f"{full.requests_cpu_millicores - 10}m"
    assert quota["limits.memory"] == f"{full.memory_mib - 32}Mi"


def test_the_first_preview_declares_kured_too(prod):
    preview = deploy("prod", first_preview=True)
    assert kured(preview).inputs == kured(prod).inputs


@pytest.mark.parametrize("stack, window", [("dev", None), ("prod", ""), ("dev", "")])
def test_without_a_window_nothing_reboots_by_itself(stack, window):
    deployment = deploy(stack, **({} if window is None else {"rebootWindow": window}))
    assert kureds(deployment) == []
    assert not [n for n in deployment.of_type(NAMESPACE) if n.inputs["metadata"]["name"] == "kured"]


@pytest.mark.parametrize(
    "window, fragment",
    [
        ("Sun 3:00-05:00", "is not days then a UTC start-end"),
        ("Sunday 03:00-05:00", "is not days then a UTC start-end"),
        ("Sun 03:00-05:00 UTC", "is not days then a UTC start-end"),
        ("03:00-05:00", "is not days then a UTC start-end"),
        ("Sun  03:00-05:00", "is not days then a UTC start-end"),
        ("Sun 24:00-25:00", "is not days then a UTC start-end"),
        ("Sun, Mon 03:00-05:00", "is not days then a UTC start-end"),
        ("always", "is not days then a UTC start-end"),
        ("Xyz 03:00-05:00", "names 'Xyz', not a day"),
        ("Sun,sun 03:00-05:00", "names sun twice"),
        ("Sun 23:00-01:00", "may not cross midnight"),
        ("Sun 05:00-05:00", "ends at or before it starts"),
    ],
)
def test_a_bad_window_is_refused(window, fragment):
    rejected("rebootWindow", f"the window {window!r}", fragment, rebootWindow=window)


@pytest.mark.parametrize(
    "user_chart, fragment",
    [
        (
            chart(name="kured", namespace="reboots"),
            "already used by the kured chart the stack declares",
        ),
        (chart(namespace="kured"), "belongs to the kured chart the stack declares"),
    ],
)
def test_the_charts_leave_kured_its_name_and_namespace(user_chart, fragment):
    rejected(
        "charts",
        fragment,
        charts=[{**user_chart, "estimate": {"cpu": "10m"}}],
        rebootWindow="Sun 03:00-05:00",
    )
