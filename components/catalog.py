"""Lightsail Linux bundles: price, size and CPU baseline.

Source: AWS Lightsail pricing page (us-east-1 list prices) and
docs.aws.amazon.com/lightsail/latest/userguide/baseline-cpu-performance.html,
checked on 2026-11-26. Re-check prices with
`aws lightsail get-bundles` before quoting them as current.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bundle:
    bundle_id: str
    monthly_usd: float
    vcpus: int
    ram_gb: float
    disk_gb: int
    transfer_tb: int
    baseline_cpu_percent: int

    @property
    def baseline_millicores(self) -> int:
        """Sustained CPU the instance can use without spending burst credits."""
        return self.vcpus * 1000 * self.baseline_cpu_percent // 100


BUNDLES: dict[str, Bundle] = {
    b.bundle_id: b
    for b in (
        Bundle("nano_3_0", 5, 2, 0.5, 20, 1, 5),
        Bundle("micro_3_0", 7, 2, 1, 40, 2, 10),
        Bundle("small_3_0", 12, 2, 2, 60, 3, 20),
        Bundle("medium_3_0", 24, 2, 4, 80, 4, 20),
        Bundle("large_3_0", 44, 2, 8, 160, 5, 30),
        Bundle("xlarge_3_0", 84, 4, 16, 320, 6, 40),
        Bundle("2xlarge_3_0", 164, 8, 32, 640, 7, 40),
        Bundle("4xlarge_3_0", 384, 16, 64, 1280, 8, 40),
    )
}

# k3s server minimum (docs.k3s.io/installation/requirements#hardware): 2 cores, 2 GB RAM.
K3S_SERVER_MIN_VCPUS = 2
K3S_SERVER_MIN_RAM_GB = 2


# k3s agent minimum (docs.k3s.io/installation/requirements#hardware): 1 core, 512 MB RAM.
K3S_AGENT_MIN_VCPUS = 1
K3S_AGENT_MIN_RAM_GB = 0.5


def agent_capable_bundle_ids() -> list[str]:
    return [
        b.bundle_id
        for b in BUNDLES.values()
        if b.vcpus >= K3S_AGENT_MIN_VCPUS and b.ram_gb >= K3S_AGENT_MIN_RAM_GB
    ]


def server_capable_bundle_ids() -> list[str]:
    return [
        b.bundle_id
        for b in BUNDLES.values()
        if b.vcpus >= K3S_SERVER_MIN_VCPUS and b.ram_gb >= K3S_SERVER_MIN_RAM_GB
    ]


# Where Lightsail runs, and its instance zones in each region.
# Regions: the `RegionName` enum of the Lightsail API (docs.aws.amazon.com/lightsail/2016-11-28/
# api-reference/API_Region.html), less us-west-1, which that enum lists but Lightsail's own region
# list does not offer. Newer revisions of the enum also list ap-southeast-5; it is left out until its
# zones are known.
# Zones: Lightsail offers a subset of each region's EC2 zones (e.g. no ap-northeast-2b). The sets below
# are the "Availability Zones" list of the Terraform AWS provider's aws_lightsail_instance docs
# (hashicorp/terraform-provider-aws, website/docs/r/lightsail_instance.html.markdown, before it was
# replaced by a pointer to `aws lightsail get-regions --include-availability-zones`). That list has no
# eu-north-1 and no ap-southeast-3: for those two, a-c is our assumption, not confirmed. Nothing here
# was checked against a live account; the source of truth is
# `aws lightsail get-regions --include-availability-zones` (zones follow `<region><letter>`, case-sensitive).
LIGHTSAIL_ZONES: dict[str, tuple[str, ...]] = {
    region: tuple(region + letter for letter in letters)
    for region, letters in (
        ("us-east-1", "abcdef"),
        ("us-east-2", "abc"),
        ("us-west-2", "abc"),
        ("ca-central-1", "ab"),
        ("eu-west-1", "abc"),
        ("eu-west-2", "abc"),
        ("eu-west-3", "abc"),
        ("eu-central-1", "abc"),
        ("eu-north-1", "abc"),
        ("ap-south-1", "ab"),
        ("ap-southeast-1", "abc"),
        ("ap-southeast-2", "abc"),
        ("ap-southeast-3", "abc"),
        ("ap-northeast-1", "acd"),
        ("ap-northeast-2", "ac"),
    )
}
