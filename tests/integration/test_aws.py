"""The real thing: `pulumi up` on AWS, then the cluster and the app answer, then destroy.

Runs only with the Pulumi CLI, AWS credentials and LIGHTSAIL_K3S_INTEGRATION=1
(it creates a billed Lightsail instance for a few minutes). State goes to a
throw-away local backend. Region: AWS_REGION, else ap-northeast-2.
"""

import base64
import json
import os
import shutil
import ssl
import tempfile
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def missing_prerequisite() -> str | None:
    if os.environ.get("LIGHTSAIL_K3S_INTEGRATION") != "1":
        return "set LIGHTSAIL_K3S_INTEGRATION=1 to create (and destroy) a billed Lightsail instance"
    if shutil.which("pulumi") is None:
        return "the Pulumi CLI is not installed (curl -fsSL https://get.pulumi.com | sh)"
    home = Path.home()
    if not (
        os.environ.get("AWS_ACCESS_KEY_ID")
        or os.environ.get("AWS_PROFILE")
        or (home / ".aws" / "credentials").exists()
        or (home / ".aws" / "config").exists()
    ):
        return "no AWS credentials (aws configure, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    return None


pytestmark = pytest.mark.skipif(missing_prerequisite() is not None, reason=missing_prerequisite() or "")


def fetch(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30, context=context) as response:
        return response.status, response.read().decode()


def tls_context_from(kubeconfig: dict, directory: Path) -> ssl.SSLContext:
    cluster = kubeconfig["clusters"][0]["cluster"]
    user = kubeconfig["users"][0]["user"]
    files = {}
    for name, data in (
        ("ca.crt", cluster["certificate-authority-data"]),
        ("client.crt", user["client-certificate-data"]),
        ("client.key", user["client-key-data"]),
    ):
        files[name] = directory / name
        files[name].write_bytes(base64.b64decode(data))
        files[name].chmod(0o600)
    context = ssl.create_default_context(cafile=str(files["ca.crt"]))
    context.load_cert_chain(str(files["client.crt"]), str(files["client.key"]))
    return context


def test_up_serves_the_app_and_the_api_then_destroys():
    from pulumi import automation as auto

    region = os.environ.get("AWS_REGION", "ap-northeast-2")
    stack_name = f"it-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as state_dir:
        workspace_env = {"PULUMI_BACKEND_URL": f"file://{state_dir}", "PULUMI_CONFIG_PASSPHRASE": "integration"}
        stack = auto.create_stack(stack_name, work_dir=str(ROOT), opts=auto.LocalWorkspaceOptions(env_vars=workspace_env))
        try:
            _, my_ip = fetch("https://checkip.amazonaws.com")
            stack.set_config("aws:region", auto.ConfigValue(region))
            stack.set_config("adminCidrs[0]", auto.ConfigValue(f"{my_ip.strip()}/32"), path=True)
            stack.set_all_config(
                {
                    "apps": auto.ConfigValue(
                        json.dumps([{"name": "whoami", "image": "traefik/whoami:v1.11.0", "port": 80, "healthPath": "/health"}])
                    )
                }
            )
            outputs = stack.up(on_output=print).outputs

            status, body = fetch(outputs["appUrl"].value)
            assert status == 200 and "Hostname:" in body

            kubeconfig = yaml.safe_load(outputs["kubeconfig"].value)
            assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{outputs['publicIp'].value}:6443"
            with tempfile.TemporaryDirectory() as cert_dir:
                status, body = fetch(outputs["kubeApiUrl"].value + "/readyz", tls_context_from(kubeconfig, Path(cert_dir)))
            assert (status, body) == (200, "ok")
            assert outputs["nodeToken"].value.startswith("K10")

            # A second run changes nothing: the install is not re-run blindly.
            preview = stack.preview()
            assert set(preview.change_summary) <= {"same"}, preview.change_summary
        finally:
            stack.destroy(on_output=print)
            stack.workspace.remove_stack(stack_name)
            (ROOT / f"Pulumi.{stack_name}.yaml").unlink(missing_ok=True)
