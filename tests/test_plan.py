"""`make plan`: the same mock engine, printing resources and outputs with secrets masked."""

import subprocess
import sys
from pathlib import Path

from tests.helpers import ADMIN_CIDR, deploy
from tests.test_apps import SHOP_SECRETS
from tools import plan

ROOT = Path(__file__).resolve().parent.parent


def test_plan_lists_resources_with_key_inputs_and_masks_secrets():
    deployment = deploy(
        apps=[{"name": "api", "image": "ghcr.io/acme/api:1.0.0", "port": 80, "secretEnv": ["DATABASE_URL"]}],
        secrets={"appSecrets": {"api": {"DATABASE_URL": SHOP_SECRETS["orders-api"]["DATABASE_URL"]}}},
    )
    text = plan.render(deployment)
    assert "aws:lightsail/instance:Instance  lightsail-k3s-dev-instance" in text
    assert "      bundleId: small_3_0" in text
    assert "  kubeconfig: [secret]" in text
    assert "  nodeToken: [secret]" in text
    assert "  sshPrivateKey: [secret]" in text
    assert "      stringData: [secret]" in text
    assert "  monthlyCostUsd: 12" in text
    for leaked in ("BEGIN OPENSSH PRIVATE KEY", "K10abab", "client-key-data", "hunter2"):
        assert leaked not in text


def run_plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.plan", *args], cwd=ROOT, capture_output=True, text=True)


def test_plan_command_prints_the_dev_stack():
    result = run_plan("--stack", "dev", "--set", f'adminCidrs=["{ADMIN_CIDR}"]')
    assert result.returncode == 0, result.stderr
    assert "kubernetes:networking.k8s.io/v1:Ingress  lightsail-k3s-dev-ingress-default-host" in result.stdout
    assert "  kubeconfig: [secret]" in result.stdout


def test_plan_fails_on_bad_config_as_up_would():
    result = run_plan("--stack", "dev", "--set", f'adminCidrs=["{ADMIN_CIDR}"]', "--set", "bundleId=micro_3_0")
    assert result.returncode == 1
    assert "config 'lightsail-k3s:bundleId': 'micro_3_0'" in result.stderr
    assert result.stdout == ""


def test_plan_names_an_unknown_stack():
    result = run_plan("--stack", "no-such-stack")
    assert result.returncode == 1
    assert "no stack file Pulumi.no-such-stack.yaml" in result.stderr
