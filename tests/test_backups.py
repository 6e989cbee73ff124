"""Backups on the mock engine: bucket, access key, embedded etcd and k3s' S3 settings, credentials kept secret."""

import base64
import binascii
import json
import re
import stat
import subprocess

import pytest

from components import k3s
from components.backups import BUCKET_BUNDLE_ID, SNAPSHOT_FOLDER, etcd_snapshot_settings
from components.settings import parse_backups
from tests.helpers import command, config_source, deploy, k3s_config, mistyped, rejected, tool
from tests.node_stand_in import Node
from tools.mockengine import MOCK_BUCKET_ACCESS_KEY_ID, MOCK_BUCKET_SECRET_ACCESS_KEY

BUCKET = "aws:lightsail/bucket:Bucket"
ACCESS_KEY = "aws:lightsail/bucketAccessKey:BucketAccessKey"
S3_KEYS = {
    "etcd-s3",
    "etcd-s3-endpoint",
    "etcd-s3-region",
    "etcd-s3-bucket",
    "etcd-s3-folder",
    "etcd-s3-access-key",
    "etcd-s3-secret-key",
    "etcd-snapshot-schedule-cron",
    "etcd-snapshot-retention",
}
CREDENTIALS = (MOCK_BUCKET_ACCESS_KEY_ID, MOCK_BUCKET_SECRET_ACCESS_KEY)


@pytest.fixture(scope="module")
def backed_up():
    return deploy(backups="true", etcdSnapshotSchedule="0 */6 * * *", etcdSnapshotRetention=14)


def test_a_bucket_on_the_smallest_plan_and_a_key_to_it(backed_up):
    bucket = backed_up.one(BUCKET)
    assert bucket.name == "lightsail-k3s-dev-backups"
    assert bucket.inputs["bundleId"] == BUCKET_BUNDLE_ID == "small_1_0"
    assert bucket.parent.split("::")[2].endswith("$lightsail-k3s:index:BackupBucket")
    key = backed_up.one(ACCESS_KEY)
    assert key.inputs["bucketName"] == bucket.state["name"]
    assert set(key.additional_secret_outputs) == {"accessKeyId", "secretAccessKey"}
    assert backed_up.outputs["backupBucket"].value == bucket.state["name"]


def test_k3s_runs_on_embedded_etcd_with_snapshots_to_the_bucket(backed_up):
    config = k3s_config(command(backed_up, "install"))
    assert config["cluster-init"] is True
    assert S3_KEYS <= set(config)
    assert config["etcd-s3"] is True
    assert config["etcd-s3-endpoint"] == "s3.ap-northeast-2.amazonaws.com"
    assert config["etcd-s3-region"] == "ap-northeast-2"
    assert config["etcd-s3-bucket"] == backed_up.one(BUCKET).state["name"]
    assert config["etcd-s3-folder"] == SNAPSHOT_FOLDER
    assert config["etcd-s3-access-key"] == MOCK_BUCKET_ACCESS_KEY_ID
    assert config["etcd-s3-secret-key"] == MOCK_BUCKET_SECRET_ACCESS_KEY
    assert config["etcd-snapshot-schedule-cron"] == "0 */6 * * *"
    assert config["etcd-snapshot-retention"] == 14
    # The settings the install had before stay.
    assert config["secrets-encryption"] is True
    assert config["node-name"] == "lightsail-k3s-dev"


def test_the_install_stdin_carrying_the_key_is_secret(backed_up):
    assert "stdin" in command(backed_up, "install").secret_inputs


def readable(value) -> str:
    """The value as JSON, plus whatever its base64 runs decode to (the k3s config travels base64-encoded)."""
    text = json.dumps(value)
    decoded = []
    for run in re.findall(r"[A-Za-z0-9+/]{40,}={0,2}", text):
        try:
            decoded.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode(errors="replace"))
        except binascii.Error:
            pass
    return "\n".join([text, *decoded])


def test_no_credential_in_any_plain_input_or_output(backed_up):
    for resource in backed_up.resources:
        for key, value in resource.inputs.items():
            if key in resource.secret_inputs:
                continue
            text = readable(value)
            for credential in CREDENTIALS:
                assert credential not in text, (
                    f"{resource.name}.{key} holds a bucket credential in plain"
                )
    for name, output in backed_up.outputs.items():
        if not output.secret:
            assert not any(credential in readable(output.value) for credential in CREDENTIALS), name


def test_without_backups_none_of_it(dev):
    assert not dev.of_type(BUCKET)
    assert not dev.of_type(ACCESS_KEY)
    assert "backupBucket" not in dev.outputs
    config = k3s_config(command(dev, "install"))
    assert "cluster-init" not in config
    assert not S3_KEYS & set(config)


@pytest.mark.parametrize(
    ("stack", "value", "enabled"),
    [
        ("prod", None, True),
        ("production-eu", "auto", True),
        ("dev", None, False),
        ("staging", "auto", False),
        ("prod", "false", False),
        ("dev", "true", True),
        ("dev", "TRUE", True),
    ],
)
def test_auto_means_on_for_prod_stacks_only(stack, value, enabled):
    settings = parse_backups(config_source({} if value is None else {"backups": value}), stack)
    assert (settings is not None) == enabled
    if settings:
        assert (settings.schedule_cron, settings.retention) == ("0 */12 * * *", 5)


def test_backups_must_be_auto_true_or_false():
    rejected("lightsail-k3s:backups", "'yes'", "pulumi config set backups true", backups="yes")


def test_snapshot_schedule_must_be_a_cron_spec():
    rejected(
        "lightsail-k3s:etcdSnapshotSchedule",
        "'daily'",
        "five-field cron",
        backups="true",
        etcdSnapshotSchedule="daily",
    )


def test_snapshot_retention_must_be_at_least_one():
    rejected(
        "lightsail-k3s:etcdSnapshotRetention",
        "below the minimum of 1",
        backups="true",
        etcdSnapshotRetention=0,
    )


def test_snapshot_retention_must_be_an_integer_which_the_cli_checks_before_the_program_runs():
    mistyped("etcdSnapshotRetention", "integer", backups="true", etcdSnapshotRetention="many")


def test_the_install_on_the_node_writes_the_key_root_only_and_never_prints_it(tmp_path):
    node = Node(tmp_path)
    settings = etcd_snapshot_settings(
        "lightsail-k3s-dev-backups-a1b2c3d",
        "eu-west-2",
        MOCK_BUCKET_ACCESS_KEY_ID,
        MOCK_BUCKET_SECRET_ACCESS_KEY,
        "0 3 * * *",
        7,
    )
    program = k3s.install_program(
        k3s.remote_script("install-k3s-server.sh"),
        "v1.36.1+k3s1",
        "lightsail-k3s-dev",
        k3s.server_config(
            "lightsail-k3s-dev", ["203.0.113.10"], cluster_init=True, etcd_snapshots=settings
        ),
        registries=(),
    )
    result = subprocess.run(
        [tool("bash"), "-s"],
        input=program,
        env=node.environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert node.config()["etcd-s3-secret-key"] == MOCK_BUCKET_SECRET_ACCESS_KEY
    assert node.config()["cluster-init"] is True
    assert stat.S_IMODE((node.config_dir / "config.yaml").stat().st_mode) == 0o600
    printed = readable(result.stdout + result.stderr + node.log.read_text())
    for credential in CREDENTIALS:
        assert credential not in printed
