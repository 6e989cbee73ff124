"""Each config rule rejects a bad value before any resource is declared, naming the key and the fix."""

import base64
import shutil

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from components.catalog import LIGHTSAIL_ZONES
from components.settings import ConfigError, parse_settings, parse_ssh_public_key
from tests.helpers import ADMIN_CIDR, FIREWALL, PROJECT_DIR, deploy, mistyped, rejected
from tools import mockengine

GOOD_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmcH1X2tFfSZVmWmXbb1TMzDJV0ZfHjVQW4XWm4K6jD me@laptop"
)


def test_region_is_required():
    rejected("aws:region", "pulumi config set aws:region", config={"aws:region": None})


def test_region_must_be_a_region_name():
    rejected("aws:region", "'Seoul'", config={"aws:region": "Seoul"})


@pytest.mark.parametrize("region", ["us-west-1", "sa-east-1", "me-south-1"])
def test_region_must_be_one_where_lightsail_runs(region):
    rejected(
        "aws:region",
        repr(region),
        "not a region where Lightsail runs",
        "eu-north-1",
        config={"aws:region": region},
    )


def test_availability_zone_must_belong_to_the_region():
    rejected(
        "lightsail-k3s:availabilityZone",
        "'us-east-1a'",
        "ap-northeast-2a",
        availabilityZone="us-east-1a",
    )


def test_availability_zone_must_be_a_lightsail_zone_of_the_region():
    # ap-northeast-2b is an EC2 zone of Seoul, but Lightsail does not offer it.
    rejected(
        "lightsail-k3s:availabilityZone",
        "'ap-northeast-2b'",
        "ap-northeast-2a, ap-northeast-2c",
        availabilityZone="ap-northeast-2b",
    )


def test_every_lightsail_region_deploys_in_each_of_its_zones():
    assert len(LIGHTSAIL_ZONES) == 15
    for region, zones in LIGHTSAIL_ZONES.items():
        assert zones[0] == f"{region}a"
        for zone in zones:
            assert zone.startswith(region) and len(zone) == len(region) + 1
    instance = deploy(
        config={"aws:region": "ap-northeast-1"}, availabilityZone="ap-northeast-1d"
    ).one("aws:lightsail/instance:Instance")
    assert instance.inputs["availabilityZone"] == "ap-northeast-1d"


def test_availability_zone_defaults_to_the_regions_a_zone():
    instance = deploy(config={"aws:region": "eu-west-2"}).one("aws:lightsail/instance:Instance")
    assert instance.inputs["availabilityZone"] == "eu-west-2a"


def test_bundle_must_be_in_the_catalog_and_the_error_lists_valid_ids():
    rejected("lightsail-k3s:bundleId", "'t3.micro'", "small_3_0, medium_3_0", bundleId="t3.micro")


def test_bundle_must_meet_the_k3s_server_minimum():
    rejected(
        "lightsail-k3s:bundleId",
        "'micro_3_0'",
        "2 vCPU / 2 GB",
        "use one of: small_3_0",
        bundleId="micro_3_0",
    )


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


@pytest.mark.parametrize(
    "version", ["1.36.1+k3s1", "v1.36.1", "v1.36.1-k3s1", "v1.36.1+k3s1; rm -rf /"]
)
def test_k3s_version_must_be_an_exact_release(version):
    rejected("lightsail-k3s:k3sVersion", "vX.Y.Z+k3sN", k3sVersion=version)


def test_k3s_version_digits_are_ascii():
    # Python's \\d also matches e.g. Arabic-Indic digits.
    rejected("lightsail-k3s:k3sVersion", "vX.Y.Z+k3sN", k3sVersion="v1.3\u0666.1+k3s1")


@pytest.mark.parametrize("version", ["v1.33.5+k3s1", "v1.37.0+k3s1", "v2.36.1+k3s1"])
def test_k3s_version_must_be_a_tested_minor(version):
    rejected(
        "lightsail-k3s:k3sVersion",
        repr(version),
        "tested with (v1.34 to v1.36)",
        "pulumi config set --type bool allowUntestedK3sVersion true",
        k3sVersion=version,
    )


def test_untested_k3s_minor_is_allowed_when_asked_for():
    deployment = deploy(k3sVersion="v1.37.0+k3s1", allowUntestedK3sVersion=True)
    assert deployment.outputs["k3sVersion"].value == "v1.37.0+k3s1"


def test_missing_admin_cidrs_error_gives_the_exact_command():
    rejected(
        "lightsail-k3s:adminCidrs", "pulumi config set --path 'adminCidrs[0]'", adminCidrs=None
    )


def test_empty_admin_cidrs_is_missing():
    rejected("lightsail-k3s:adminCidrs", "pulumi config set --path 'adminCidrs[0]'", adminCidrs=[])


def test_admin_cidrs_as_one_comma_separated_string_is_a_list():
    """What `pulumi new` writes from the template's answer (Pulumi.yaml template:): a string."""
    as_string = deploy(adminCidrs="1.2.3.4/32, 5.6.7.8")
    as_list = deploy(adminCidrs=["1.2.3.4/32", "5.6.7.8"])
    assert as_string.one(FIREWALL).inputs == as_list.one(FIREWALL).inputs
    rejected("adminCidrs", "'home' is not an IPv4 CIDR", adminCidrs="1.2.3.4/32,home")


@pytest.mark.parametrize(
    ("cidr", "fragment"),
    [
        ("198.51.100.7/24", "did you mean 198.51.100.0/24"),
        ("2001:db8::/64", "not an IPv4 CIDR"),
        ("home", "not an IPv4 CIDR"),
    ],
)
def test_admin_cidrs_must_be_ipv4_networks(cidr, fragment):
    rejected("lightsail-k3s:adminCidrs", repr(cidr), fragment, adminCidrs=[cidr])


def test_admin_cidrs_may_not_open_to_the_internet():
    rejected("lightsail-k3s:adminCidrs", "whole internet", adminCidrs=["0.0.0.0/0"])


@pytest.mark.parametrize(
    "cidrs",
    [
        ["0.0.0.0/1", "128.0.0.0/1"],
        ["1.0.0.0/8", "2.0.0.0/8"],
        ["4.0.0.0/7"],
        ["1.2.3.4/32", "32.0.0.0/3"],
    ],
)
def test_admin_cidrs_may_not_cover_more_than_a_slash_8(cidrs):
    rejected(
        "lightsail-k3s:adminCidrs", "large share of the internet", "16,777,216", adminCidrs=cidrs
    )


def test_admin_cidrs_up_to_a_slash_8_are_accepted():
    firewall = deploy(adminCidrs=["11.0.0.0/9", "11.128.0.0/9"]).one(
        "aws:lightsail/instancePublicPorts:InstancePublicPorts"
    )
    assert {
        tuple(rule["cidrs"]) for rule in firewall.inputs["portInfos"] if rule["fromPort"] == 22
    } == {("11.0.0.0/9", "11.128.0.0/9")}


@pytest.mark.parametrize(
    ("cidr", "reserved"),
    [
        ("10.1.2.3/32", "10.0.0.0/8"),
        ("192.168.1.0/24", "192.168.0.0/16"),
        ("100.64.0.1", "100.64.0.0/10"),
        ("127.0.0.1", "127.0.0.0/8"),
        ("203.0.113.7/32", "203.0.113.0/24"),
        ("224.0.0.1/32", "224.0.0.0/4"),
        ("172.0.0.0/8", "172.16.0.0/12"),
    ],
)
def test_admin_cidrs_must_be_public(cidr, reserved):
    rejected(
        "lightsail-k3s:adminCidrs",
        repr(cidr),
        "not a public address range",
        reserved,
        adminCidrs=[cidr],
    )


def test_admin_cidr_without_prefix_is_one_address():
    firewall = deploy(adminCidrs=["1.2.3.4"]).one(
        "aws:lightsail/instancePublicPorts:InstancePublicPorts"
    )
    ssh = next(rule for rule in firewall.inputs["portInfos"] if rule["fromPort"] == 22)
    assert ssh["cidrs"] == ["1.2.3.4/32"]


@pytest.mark.parametrize(
    "key",
    [
        "ssh-ed25519",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "ssh-ed25519 not*base64",
        "ssh-rsa " + GOOD_KEY.split()[1],
    ],
)
def test_ssh_public_key_must_be_an_openssh_public_key(key):
    rejected("lightsail-k3s:sshPublicKey", "sshPublicKey", sshPublicKey=key)


def openssh(public_key) -> str:
    return public_key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def wire_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def with_blob(key_type: str, blob: bytes) -> str:
    return f"{key_type} {base64.b64encode(blob).decode()}"


@pytest.mark.parametrize(
    "public_key",
    [
        ed25519.Ed25519PrivateKey.generate().public_key(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        ec.generate_private_key(ec.SECP521R1()).public_key(),
    ],
    ids=["ed25519", "rsa", "ecdsa-p256", "ecdsa-p521"],
)
def test_ssh_public_keys_of_each_type_are_accepted_with_their_comment(public_key):
    line = openssh(public_key) + " me@laptop (work)"
    assert parse_ssh_public_key({"lightsail-k3s:sshPublicKey": line}.get) == line


def test_an_accepted_ssh_public_key_is_imported_as_written():
    line = (
        openssh(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
        + " me@laptop (work)"
    )
    deployment = deploy(sshPublicKey=line, environ={"SSH_AUTH_SOCK": "/tmp/agent.sock"})
    assert deployment.one("aws:lightsail/keyPair:KeyPair").inputs["publicKey"] == line


@pytest.mark.parametrize(
    "key",
    [
        # 31 of the 32 bytes of an ed25519 key.
        with_blob("ssh-ed25519", wire_string(b"ssh-ed25519") + wire_string(bytes(31))),
        # The right blob, but trailing bytes after it.
        with_blob("ssh-ed25519", wire_string(b"ssh-ed25519") + wire_string(bytes(32)) + b"\0"),
        # An RSA blob with e but no n.
        with_blob("ssh-rsa", wire_string(b"ssh-rsa") + wire_string(b"\x01\x00\x01")),
        # A P-256 blob labelled as P-384.
        "ecdsa-sha2-nistp384 "
        + openssh(ec.generate_private_key(ec.SECP256R1()).public_key()).split()[1],
        # An ed25519 blob cut short in its type string.
        with_blob("ssh-ed25519", wire_string(b"ssh-ed25519")[:8]),
    ],
    ids=["short-ed25519", "trailing-bytes", "rsa-without-n", "curve-mismatch", "truncated-type"],
)
def test_ssh_public_key_body_must_be_a_complete_key_of_the_claimed_type(key):
    rejected("lightsail-k3s:sshPublicKey", "is not a complete", key.split()[0], sshPublicKey=key)


def test_ssh_public_key_is_exactly_one_key():
    two = openssh(ed25519.Ed25519PrivateKey.generate().public_key()) + "\n" + GOOD_KEY
    rejected("lightsail-k3s:sshPublicKey", "exactly one public key", sshPublicKey=two)


def test_ssh_public_key_needs_an_agent_for_the_install():
    rejected(
        "lightsail-k3s:sshPublicKey", "ssh-agent", "ssh-add", sshPublicKey=GOOD_KEY, environ={}
    )


def test_ssh_public_key_preview_needs_no_agent():
    deployment = deploy(sshPublicKey=GOOD_KEY, environ={}, preview=True)
    assert deployment.one("aws:lightsail/keyPair:KeyPair").inputs["publicKey"] == GOOD_KEY


@pytest.mark.parametrize("time", ["18:30", "25:00", "6:00", "noon"])
def test_auto_snapshot_time_must_be_a_whole_utc_hour(time):
    rejected("lightsail-k3s:autoSnapshotTime", "HH:00", autoSnapshotTime=time)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("protect", "yes"),
        ("deleteUnreachable", "always"),
        ("allowUntestedK3sVersion", "yes"),
        ("agentPublicIps", "yes"),
    ],
)
def test_booleans_are_checked_by_the_cli_before_the_program_runs(key, value):
    mistyped(key, "boolean", **{key: value})


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


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ({f"t{i}": "x" for i in range(51)}, "at most 50"),
        ({"AWS:owner": "x"}, "'AWS:owner'"),
        ({"": "x"}, "tag name ''"),
        ({"k" * 129: "x"}, "1-128"),
        ({"team!": "x"}, "'team!'"),
        ({"team": "a<b"}, "'a<b'"),
        ({"team": "line\nbreak"}, "+ - = . _ : / @"),
    ],
    ids=[
        "51-tags",
        "aws-prefix-any-case",
        "empty-key",
        "long-key",
        "key-character",
        "value-character",
        "value-newline",
    ],
)
def test_tags_follow_lightsails_rules(tags, fragment):
    rejected("lightsail-k3s:tags", fragment, tags=tags)


def test_tags_within_lightsails_rules_reach_the_instance():
    tags = {f"t{i}": "x" for i in range(48)} | {
        "Équipe / owner": "plateforme+ops@example.com",
        "empty": "",
    }
    instance = deploy(tags=tags).one("aws:lightsail/instance:Instance")
    assert instance.inputs["tags"] == tags


@pytest.fixture
def stack_named(request):
    """A stack file for a stack name the test picks, removed afterwards."""
    created = []

    def make(name: str) -> str:
        path = PROJECT_DIR / f"Pulumi.{name}.yaml"
        shutil.copyfile(PROJECT_DIR / "Pulumi.dev.yaml", path)
        created.append(path)
        return name

    yield make
    for path in created:
        path.unlink()


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("Staging", "pulumi stack rename staging"),
        ("team_a.web", "pulumi stack rename team-a-web"),
        ("x" * 50, "x" * 49),
    ],
)
def test_stack_name_must_make_a_valid_node_name(stack_named, name, suggestion):
    rejected("pulumi:stack", repr(name), "k3s node name", suggestion, stack=stack_named(name))


def test_longest_allowed_stack_name_makes_a_valid_node_name(stack_named):
    name = stack_named("s" * 49)
    node_name = f"lightsail-k3s-{name}"
    assert len(node_name) == 63
    install = deploy(stack=name).named(f"{node_name}-install")
    assert f"NODE_NAME={node_name}\n" in install.inputs["stdin"]


def test_structured_keys_set_as_plain_strings_do_not_echo_the_value():
    message = rejected("lightsail-k3s:appSecrets", "--path", appSecrets="hunter2-plain")
    assert "hunter2" not in message


def test_agent_count_must_not_be_negative():
    rejected(
        "lightsail-k3s:agentCount",
        "-1 is below the minimum of 0",
        "--type int agentCount 2",
        agentCount=-1,
    )


def test_agent_count_is_an_integer_by_the_clis_type_check_before_the_program_runs():
    mistyped("agentCount", "integer", agentCount="two")


def test_agent_bundle_must_be_in_the_catalog():
    rejected(
        "lightsail-k3s:agentBundleId",
        "'t3.nano'",
        "use one of: nano_3_0",
        agentCount=1,
        agentBundleId="t3.nano",
    )


def test_agents_may_be_smaller_than_the_server_minimum():
    deployment = deploy(agentCount=1, agentBundleId="nano_3_0")
    assert deployment.named("lightsail-k3s-dev-agent-1-instance").inputs["bundleId"] == "nano_3_0"


@pytest.mark.parametrize("count", [2, 4])
def test_server_counts_without_an_odd_quorum_are_refused(count):
    rejected(
        "lightsail-k3s:serverCount",
        f"{count} servers cannot keep an etcd quorum",
        "serverCount 3",
        serverCount=count,
    )


def test_zero_servers_are_refused():
    rejected("lightsail-k3s:serverCount", "0 is below the minimum of 1", serverCount=0)


def test_agent_names_must_stay_valid_node_names():
    config, _ = mockengine.stack_config(
        "dev", overrides={"adminCidrs": [ADMIN_CIDR], "agentCount": 10}
    )
    stack = "s" * 45  # lightsail-k3s-<45 characters> is a valid node name; with -agent-10 it is not
    with pytest.raises(ConfigError) as caught:
        parse_settings(config.get, lambda key: False, stack, {}, dry_run=True)
    assert caught.value.key == "lightsail-k3s:agentCount"
    assert "longer than the 63 characters" in str(caught.value)
