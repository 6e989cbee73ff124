"""Each fact has one home; wherever else it is written (MANUAL, Pulumi.yaml descriptions, hints), it agrees.

The homes: the pinned k3s version and every default in Pulumi.yaml; the tested minors in
components/settings.py; bundles, prices, regions and the k3s minimums in components/catalog.py.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from components import catalog
from components.apps import DEFAULT_LIMITS, DEFAULT_REQUESTS
from components.settings import TESTED_K3S_MINORS
from tests.helpers import PROJECT_DIR, manual_section, manual_text

PROJECT = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
DECLARED = PROJECT["config"]
PINNED_K3S_VERSION = DECLARED["k3sVersion"]["default"]
# The manual: README.md and the pages of docs/.
MANUAL = manual_text()
K3S_RELEASE = re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+")

# Releases other than the pinned one that the docs name on purpose: the upgrade walk-through (docs/upgrades.md)
# shows a step from an older release to the pinned one.
OTHER_RELEASES_NAMED_ON_PURPOSE = {("docs/upgrades.md", "v1.35.9+k3s1")}


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout
    return [path for path in listed.splitlines() if (PROJECT_DIR / path).is_file()]


def tracked_texts(exclude_tests: bool) -> dict[str, str]:
    texts = {}
    for path in tracked_files():
        if exclude_tests and path.startswith("tests/"):
            continue
        try:
            texts[path] = (PROJECT_DIR / path).read_text()
        except UnicodeDecodeError:
            continue
    return texts


def test_no_tracked_file_cites_the_teams_notes_instead_of_a_primary_source():
    # Spelt in pieces so that this file does not match itself.
    notes = "facts".upper() + ".md"
    assert [
        path for path, text in tracked_texts(exclude_tests=False).items() if notes in text
    ] == []


def test_no_text_says_lightsail_stops_an_instance_out_of_burst_credits():
    """Out of credits Lightsail holds the instance to its baseline (AWS Lightsail, "Baseline CPU performance")."""
    wrong = re.compile(r"stops (?:an|the) instance", re.IGNORECASE)
    assert [
        path for path, text in tracked_texts(exclude_tests=False).items() if wrong.search(text)
    ] == []


def test_every_k3s_release_named_outside_the_tests_is_the_pinned_default():
    assert K3S_RELEASE.fullmatch(PINNED_K3S_VERSION)
    named = {
        (path, release)
        for path, text in tracked_texts(exclude_tests=True).items()
        for release in K3S_RELEASE.findall(text)
    }
    others = {(path, release) for path, release in named if release != PINNED_K3S_VERSION}
    assert others == OTHER_RELEASES_NAMED_ON_PURPOSE
    # The pinned release is written in the places a reader looks for it.
    for path in (
        "README.md",
        "components/settings.py",
        "examples/k3s-only/Pulumi.yaml",
        "Pulumi.prod.yaml",
    ):
        assert (path, PINNED_K3S_VERSION) in named, path


def test_the_pinned_release_is_the_newest_tested_minor():
    assert int(PINNED_K3S_VERSION.split(".")[1]) == TESTED_K3S_MINORS[-1]


def minor_ranges(text: str) -> list[tuple[int, int]]:
    found = re.findall(r"v1\.([0-9]+)(?: to |–|-)v1\.([0-9]+)", text)
    found += re.findall(r"v1\.([0-9]+), v1\.[0-9]+ and v1\.([0-9]+)", text)
    return [(int(first), int(last)) for first, last in found]


def test_the_tested_minors_written_in_readme_and_pulumi_yaml_are_the_codes():
    tested = (TESTED_K3S_MINORS[0], TESTED_K3S_MINORS[-1])
    descriptions = " ".join(str(entry.get("description", "")) for entry in DECLARED.values())
    for where, text in (("the manual", MANUAL), ("Pulumi.yaml", descriptions)):
        ranges = minor_ranges(text)
        assert ranges, where
        assert set(ranges) == {tested}, where


CONFIGURATION = manual_section("configuration.md", "Each key's rules")


def readme_config_table() -> dict[str, tuple[str, str, str]]:
    rows = re.findall(
        r"^\| `([\w:]+)` \| ([^|]+) \| ([^|]+) \| ([^\n]+) \|$", CONFIGURATION, re.MULTILINE
    )
    return {key: (kind.strip(), default.strip(), meaning) for key, kind, default, meaning in rows}


def test_the_readme_config_table_lists_every_declared_key():
    assert set(readme_config_table()) == set(DECLARED) | {"aws:region"}


# An empty default that means something other than "none"; the MANUAL says what.
EMPTY_DEFAULT_MEANS = {
    "availabilityZone": "`<region>a`",
    "agentBundleId": "`bundleId`",
    # [] only lets the CLI run; the program refuses it.
    "adminCidrs": "none, required",
}


def rendered(default) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, (list, dict)):
        return json.dumps(default)
    return str(default)


@pytest.mark.parametrize("key", sorted(DECLARED))
def test_the_readme_gives_each_keys_pulumi_yaml_default(key):
    cell = readme_config_table()[key][1]
    default = DECLARED[key]["default"]
    if key in EMPTY_DEFAULT_MEANS:
        assert default in ("", []), key
        assert cell.startswith(EMPTY_DEFAULT_MEANS[key]), cell
    elif default == "":
        assert cell.startswith(("none", '`""`')), cell
    else:
        assert cell.startswith(f"`{rendered(default)}`"), cell


def listed_ids(cell: str) -> list[str]:
    return re.findall(r"`(\w+_[0-9]_[0-9])`", cell)


def test_the_readme_bundle_lists_are_the_catalogs():
    rows = {key: meaning for key, (_, _, meaning) in readme_config_table().items()}
    assert listed_ids(rows["bundleId"]) == catalog.server_capable_bundle_ids()
    # The agents' list is abbreviated with "…": its ends and what it shows must be the catalog's.
    agent_ids = catalog.agent_capable_bundle_ids()
    shown = listed_ids(rows["agentBundleId"])
    assert "…" in rows["agentBundleId"]
    assert shown[0] == agent_ids[0] and shown[-1] == agent_ids[-1]
    assert shown[:-1] == agent_ids[: len(shown) - 1]


def test_the_readme_regions_are_the_catalogs():
    meaning = readme_config_table()["aws:region"][2]
    assert re.findall(r"`([a-z]+-[a-z]+-[0-9])`", meaning) == list(catalog.LIGHTSAIL_ZONES)


def test_the_k3s_minimums_written_in_readme_and_pulumi_yaml_are_the_catalogs():
    server = f"{catalog.K3S_SERVER_MIN_VCPUS} vCPU / {catalog.K3S_SERVER_MIN_RAM_GB} GB"
    agent = f"{catalog.K3S_AGENT_MIN_VCPUS} vCPU / {int(catalog.K3S_AGENT_MIN_RAM_GB * 1024)} MB"
    for text in (MANUAL, DECLARED["bundleId"]["description"]):
        assert f"server minimum ({server})" in text or f"server minimum of {server}" in text
    for text in (MANUAL, DECLARED["agentBundleId"]["description"]):
        assert f"down to {agent}" in text or f"agent minimum ({agent})" in text
    written = re.findall(r"([0-9]+) vCPU / ([0-9]+) (GB|MB)", MANUAL + json.dumps(DECLARED))
    assert {(int(cpus), int(size), unit) for cpus, size, unit in written} == {
        (catalog.K3S_SERVER_MIN_VCPUS, catalog.K3S_SERVER_MIN_RAM_GB, "GB"),
        (catalog.K3S_AGENT_MIN_VCPUS, int(catalog.K3S_AGENT_MIN_RAM_GB * 1024), "MB"),
    }


def test_the_readme_bundle_figures_are_the_catalogs():
    bundles = catalog.BUNDLES
    prices = re.findall(r"`(\w+_3_0)` \(USD ([0-9]+)/month\)", MANUAL)
    specs = re.findall(
        r"`(\w+_3_0)`: ([0-9]+) vCPU, ([0-9]+) GB, ([0-9]+) GB SSD, ([0-9]+) TB transfer\)\s+costs\s+"
        r"\*\*USD ([0-9]+) a month\*\*",
        MANUAL,
    )
    # "20% of each vCPU on `small_3_0`, so 400m sustained" or "20% of 2 vCPUs on `small_3_0`: 400m".
    baselines = re.findall(
        r"([0-9]+)% of (?:each vCPU|[0-9]+ vCPUs) on\s+`(\w+_3_0)`(?:, so |: )([0-9]+)m",
        MANUAL.replace("\n", " "),
    )
    # The MANUAL may drop its sentence of one bundle's specs; where written, it must agree.
    assert prices and baselines
    for bundle_id, usd in prices:
        assert bundles[bundle_id].monthly_usd == int(usd), bundle_id
    for bundle_id, vcpus, ram, disk, transfer, usd in specs:
        bundle = bundles[bundle_id]
        assert (
            bundle.vcpus,
            bundle.ram_gb,
            bundle.disk_gb,
            bundle.transfer_tb,
            bundle.monthly_usd,
        ) == (
            int(vcpus),
            int(ram),
            int(disk),
            int(transfer),
            int(usd),
        ), bundle_id
    for percent, bundle_id, millicores in baselines:
        bundle = bundles[bundle_id]
        assert (bundle.baseline_cpu_percent, bundle.baseline_millicores) == (
            int(percent),
            int(millicores),
        )
    sums = re.findall(
        r"a `(\w+_3_0)` server with two `(\w+_3_0)` agents is ([0-9]+) \+ 2 × ([0-9]+) =\s+USD ([0-9]+)",
        MANUAL,
    )
    assert sums
    for server, agent, server_usd, agent_usd, total in sums:
        assert (bundles[server].monthly_usd, bundles[agent].monthly_usd) == (
            int(server_usd),
            int(agent_usd),
        )
        assert int(server_usd) + 2 * int(agent_usd) == int(total)


def test_the_readme_gives_the_apps_default_resources():
    row = next(line for line in MANUAL.splitlines() if line.startswith("| `resources` | |"))
    default = row.split("|")[3].strip()
    assert default == (
        f"requests `cpu: {DEFAULT_REQUESTS['cpu']}, memory: {DEFAULT_REQUESTS['memory']}`; "
        f"limits `cpu: {DEFAULT_LIMITS['cpu']}, memory: {DEFAULT_LIMITS['memory']}`"
    )


@pytest.mark.parametrize("key", sorted(key for key, entry in DECLARED.items() if "type" in entry))
def test_the_readme_gives_each_keys_pulumi_yaml_type(key):
    assert readme_config_table()[key][0].startswith(DECLARED[key]["type"]), key


def test_the_default_bundle_is_the_cheapest_that_meets_the_server_minimum():
    """Pulumi.yaml's description of bundleId says so."""
    assert "The default is the cheapest bundle that does." in DECLARED["bundleId"]["description"]
    cheapest = min(
        catalog.server_capable_bundle_ids(),
        key=lambda bundle_id: catalog.BUNDLES[bundle_id].monthly_usd,
    )
    assert DECLARED["bundleId"]["default"] == cheapest
