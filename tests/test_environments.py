"""The prod stack file: what production wants, evaluated from the file as `pulumi up --stack prod` would."""

import ipaddress

import pytest
import yaml

from tests.helpers import FIREWALL, INSTANCE, PROJECT_DIR, STATIC_IP, Declared, rejected, run_stack

# RFC 5737 documentation ranges: placeholders that reach nobody.
DOCUMENTATION_NETWORKS = [
    ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]
# What the operator puts in place of the placeholder.
OFFICE_CIDR = "1.2.3.0/24"


@pytest.fixture(scope="module")
def prod() -> Declared:
    return run_stack("prod", overrides={"adminCidrs": [OFFICE_CIDR]})


def test_prod_is_refused_until_the_placeholder_admin_cidrs_are_replaced():
    rejected(
        "adminCidrs", "'198.51.100.0/24' is not a public address range", run=run_stack, stack="prod"
    )


def test_prod_protects_the_data_disk_and_the_static_ip_and_may_replace_the_instance(prod):
    assert prod.one("aws:lightsail/disk:Disk").protect
    assert prod.one(STATIC_IP).protect
    # Its data lives on the disk (dataDiskGb auto: on for prod): a bigger bundle replaces it.
    assert not prod.one(INSTANCE).protect


def test_prod_takes_daily_automatic_snapshots(prod):
    assert prod.one(INSTANCE).inputs["addOn"] == {
        "type": "AutoSnapshot",
        "snapshotTime": "18:00",
        "status": "Enabled",
    }


def test_prod_has_its_own_admin_cidrs_and_marks_the_placeholder():
    stack_file = (PROJECT_DIR / "Pulumi.prod.yaml").read_text()
    cidrs = yaml.safe_load(stack_file)["config"]["lightsail-k3s:adminCidrs"]
    assert all(
        any(ipaddress.IPv4Network(c).subnet_of(n) for n in DOCUMENTATION_NETWORKS) for c in cidrs
    )
    assert "REPLACE" in stack_file


def test_prod_firewall_uses_the_prod_admin_cidrs(prod):
    rules = {p["fromPort"]: p for p in prod.one(FIREWALL).inputs["portInfos"]}
    assert rules[22]["cidrs"] == rules[6443]["cidrs"] == [OFFICE_CIDR]


def test_prod_bundle_fits_its_apps_with_two_replicas(prod):
    # The settings refuse apps that do not fit the bundle, so evaluating at all proves the fit.
    assert prod.one(INSTANCE).inputs["bundleId"] == "medium_3_0"
    deployments = prod.of_type("kubernetes:apps/v1:Deployment")
    assert [d.inputs["spec"]["replicas"] for d in deployments] == [2]
    # medium_3_0 at USD 24, its 40 GB data disk at USD 0.10/GB-month, the USD 1 backup bucket, and
    # daily snapshots estimated at its 80 GB disk x USD 0.05/GB-month.
    assert prod.outputs["monthlyCostUsd"].value == 24 + 4 + 1 + 4


def test_prod_stack_file_holds_no_encrypted_values():
    # `secure:` values can only be decrypted by the CLI with the stack's secrets provider.
    assert "secure:" not in (PROJECT_DIR / "Pulumi.prod.yaml").read_text()
