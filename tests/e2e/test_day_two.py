"""Day two on real AWS: etcd snapshots in the bucket, a restore, and a certificate rotation.

Same prerequisites as test_cluster.py (Pulumi CLI, AWS credentials; run by `make e2e`), and ssh.
Creates a billed instance and bucket for a few minutes, then deletes the snapshots (a non-empty
Lightsail bucket cannot be deleted) and destroys the stack.
"""

import datetime
import os
import subprocess
import tempfile
from pathlib import Path

import yaml
from pulumi import automation as auto

from tests.e2e.aws import (
    fetch,
    requires_aws,
    throwaway_backend,
    throwaway_cluster,
    tls_context_from,
)
from tests.helpers import PROJECT_DIR

pytestmark = requires_aws("ssh")


def api_ready(outputs) -> bool:
    kubeconfig = yaml.safe_load(outputs["kubeconfig"].value)
    with tempfile.TemporaryDirectory() as cert_dir:
        return fetch(
            outputs["kubeApiUrl"].value + "/readyz", tls_context_from(kubeconfig, Path(cert_dir))
        ) == (200, "ok")


def on_node(outputs, key_file: Path, script: str) -> str:
    target = f"{outputs['sshUser'].value}@{outputs['publicIp'].value}"
    options = [
        "-i",
        str(key_file),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ]
    result = subprocess.run(
        ["ssh", *options, target, "sudo bash -s"],
        input=script,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_snapshots_reach_the_bucket_restore_and_certificates_rotate(tmp_path):
    key_file = tmp_path / "id"
    with (
        throwaway_backend() as backend,
        throwaway_cluster("e2e-day-two", backend, backups="true", apps="[]") as stack,
    ):
        outputs = None
        try:
            outputs = stack.up(on_output=print).outputs
            assert outputs["backupBucket"].value
            key_file.write_text(outputs["sshPrivateKey"].value)
            key_file.chmod(0o600)

            expires_at = datetime.datetime.fromisoformat(outputs["kubeconfigExpiresAt"].value)
            assert (
                datetime.timedelta(days=360)
                < expires_at - datetime.datetime.now(datetime.UTC)
                <= datetime.timedelta(days=366)
            )

            # An on-demand snapshot goes to the bucket configured in config.yaml.
            on_node(outputs, key_file, "k3s etcd-snapshot save --name it\n")
            restore_env = {**os.environ, **backend}
            listing = subprocess.run(
                [str(PROJECT_DIR / "bin" / "restore.sh"), stack.name],
                capture_output=True,
                text=True,
                env=restore_env,
                timeout=300,
            )
            assert listing.returncode == 0, listing.stderr
            assert "  it-" in listing.stdout

            restored = subprocess.run(
                [str(PROJECT_DIR / "bin" / "restore.sh"), stack.name, "latest"],
                capture_output=True,
                text=True,
                env=restore_env,
                timeout=900,
            )
            assert restored.returncode == 0, restored.stderr
            assert "is Ready" in restored.stdout
            assert api_ready(outputs)

            stack.set_config("certRotation", auto.ConfigValue("1"))
            rotated = stack.up(on_output=print).outputs
            # certRotation is among the kubeconfig read's triggers, and pulumi-command replaces a
            # command whose triggers change (provider/pkg/provider/common/inputs.go,
            # replaceOnChanges), so the read runs again after k3s wrote k3s.yaml anew on its start
            # with the rotated client certificate, issued now for another year.
            assert rotated["kubeconfig"].value != outputs["kubeconfig"].value
            assert datetime.datetime.fromisoformat(
                rotated["kubeconfigExpiresAt"].value
            ) > datetime.datetime.fromisoformat(outputs["kubeconfigExpiresAt"].value)
            assert api_ready(rotated)
        finally:
            if outputs is not None and key_file.exists():
                # The bucket must be empty before destroy can delete it.
                on_node(
                    outputs,
                    key_file,
                    "k3s etcd-snapshot ls | awk '$2 ~ /^s3:/ { print $1 }' | sort -u | xargs -r k3s etcd-snapshot delete\n",
                )
