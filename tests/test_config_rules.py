"""Each config rule rejects a bad value before any resource is declared, naming the key and the fix."""

import pytest

from components.settings import ConfigError
from tests.conftest import deploy
from tools import mockengine

GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmcH1X2tFfSZVmWmXbb1TMzDJV0ZfHjVQW4XWm4K6jD me@laptop"


def rejected(key: str, *expected_fragments: str, **overrides) -> ConfigError:
    recorded = []
    original_run = mockengine.RecordingMonitor.RegisterResource

    def recording(self, request):
        if request.type != mockengine.STACK_TYPE:
            recorded.append(request.type)
        return original_run(self, request)

    mockengine.RecordingMonitor.RegisterResource = recording
    try:
        with pytest.raises(ConfigError) as caught:
            deploy(**overrides)
    finally:
        mockengine.RecordingMonitor.RegisterResource = original_run
    message = str(caught.value)
    assert caught.value.key == key
    assert f"config '{key}'" in message
    for fragment in expected_fragments:
        assert fragment in message, message
    assert recorded == [], f"resources were declared before the config error: {recorded}"
    return caught.value


def test_region_is_required():
    rejected("aws:region", "pulumi config set aws:region", **{"aws:region": None})


def test_region_must_be_a_region_name():
    rejected("aws:region", "'Seoul'", **{"aws:region": "Seoul"})


def test_availability_zone_must_belong_to_the_region():
    rejected("lightsail-k3s:availabilityZone", "'us-east-1a'", "ap-northeast-2a", availabilityZone="us-east-1a")


def test_availability_zone_defaults_to_the_regions_a_zone():
    instance = deploy(**{"aws:region": "eu-west-2"}).one("aws:lightsail/instance:Instance")
    assert instance.inputs["availabilityZone"] == "eu-west-2a"


def test_bundle_must_be_in_the_catalog_and_the_error_lists_valid_ids():
    rejected("lightsail-k3s:bundleId", "'t3.micro'", "small_3_0, medium_3_0", bundleId="t3.micro")


def test_bundle_must_meet_the_k3s_server_minimum():
    rejected("lightsail-k3s:bundleId", "'micro_3_0'", "2 vCPU / 2 GB", "use one of: small_3_0", bundleId="micro_3_0")


def test_blueprint_must_be_supported():
    rejected(
        "lightsail-k3s:blueprintId",
        "'amazon_linux_2023'",
        "ubuntu_22_04, ubuntu_24_04, debian_12",
        blueprintId="amazon_linux_2023",
    )


@pytest.mark.parametrize("channel", ["latest", "stable", "v1.36"])
def test_k3s_channels_are_rejected_for_reproducibility(channel):
    rejected("lightsail-k3s:k3sVersion", "release channel", "v1.36.1+k3s1", k3sVersion=channel)


@pytest.mark.parametrize("version", ["1.36.1+k3s1", "v1.36.1", "v1.36.1-k3s1", "v1.36.1+k3s1; rm -rf /"])
def test_k3s_version_must_be_an_exact_release(version):
    rejected("lightsail-k3s:k3sVersion", "vX.Y.Z+k3sN", k3sVersion=version)


def test_missing_admin_cidrs_error_gives_the_exact_command():
    rejected("lightsail-k3s:adminCidrs", "pulumi config set --path 'adminCidrs[0]'", adminCidrs=None)


def test_empty_admin_cidrs_is_missing():
    rejected("lightsail-k3s:adminCidrs", "pulumi config set --path 'adminCidrs[0]'", adminCidrs=[])


def test_admin_cidrs_set_as_plain_string_explains_path_syntax():
    rejected("lightsail-k3s:adminCidrs", "--path", adminCidrs="198.51.100.7/32")


@pytest.mark.parametrize(
    ("cidr", "fragment"),
    [("198.51.100.7/24", "did you mean 198.51.100.0/24"), ("2001:db8::/64", "not an IPv4 CIDR"), ("home", "not an IPv4 CIDR")],
)
def test_admin_cidrs_must_be_ipv4_networks(cidr, fragment):
    rejected("lightsail-k3s:adminCidrs", repr(cidr), fragment, adminCidrs=[cidr])


def test_admin_cidrs_may_not_open_to_the_internet():
    rejected("lightsail-k3s:adminCidrs", "whole internet", adminCidrs=["0.0.0.0/0"])


@pytest.mark.parametrize(
    "key",
    ["ssh-ed25519", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "ssh-ed25519 not*base64", "ssh-rsa " + GOOD_KEY.split()[1]],
)
def test_ssh_public_key_must_be_an_openssh_public_key(key):
    rejected("lightsail-k3s:sshPublicKey", "sshPublicKey", sshPublicKey=key)


def test_ssh_public_key_needs_an_agent_for_the_install():
    rejected("lightsail-k3s:sshPublicKey", "ssh-agent", "ssh-add", sshPublicKey=GOOD_KEY, environ={})


def test_ssh_public_key_preview_needs_no_agent():
    deployment = deploy(sshPublicKey=GOOD_KEY, environ={}, preview=True)
    assert deployment.one("aws:lightsail/keyPair:KeyPair").inputs["publicKey"] == GOOD_KEY


@pytest.mark.parametrize("time", ["18:30", "25:00", "6:00", "noon"])
def test_auto_snapshot_time_must_be_a_whole_utc_hour(time):
    rejected("lightsail-k3s:autoSnapshotTime", "HH:00", autoSnapshotTime=time)


def test_protect_must_be_boolean():
    rejected("lightsail-k3s:protect", "'yes'", "--type bool", protect="yes")


def test_delete_unreachable_must_be_boolean():
    rejected("lightsail-k3s:deleteUnreachable", "'always'", "--type bool deleteUnreachable", deleteUnreachable="always")


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        (["a"], "not an object"),
        ({"aws:owner": "x"}, "'aws:owner'"),
        ({"team": {"a": 1}}, "values are strings"),
        ({"t": "x" * 257}, "256"),
    ],
)
def test_tags_must_be_an_object_of_short_strings(tags, fragment):
    rejected("lightsail-k3s:tags", fragment, tags=tags)


def test_structured_keys_set_as_plain_strings_do_not_echo_the_value():
    error = rejected("lightsail-k3s:appSecrets", "--path", appSecrets="hunter2-plain")
    assert "hunter2" not in str(error)
