"""The domain's Lightsail DNS zone, with the apex and every subdomain pointing at the static IP."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_command as command

# Lightsail's domain API answers only in us-east-1, whatever region the instance is in:
# "Domain and distribution APIs are only available in the N. Virginia (us-east-1)
# Amazon Web Services Region" (AWS Lightsail API reference, CreateDomain errors,
# InvalidInputException; aws-cli awscli/examples/lightsail/get-domain.rst). Its zones are global.
DNS_API_REGION = "us-east-1"

# DomainEntry names are relative to the zone: "" is the apex, "*" every name under it
# that has no record of its own (terraform-provider-aws
# internal/service/lightsail/domain_entry.go, expandDomainEntryName).
APEX = ""
WILDCARD = "*"


@dataclass(frozen=True)
class DnsZoneArgs:
    domain: str
    static_ip: pulumi.Input[str]
    protect: bool


def name_servers_command(domain: str) -> str:
    """The AWS CLI call that lists the zone's name servers: its NS records, which Lightsail assigns per zone.

    GetDomain returns them among the zone's entries (aws-cli awscli/examples/lightsail/get-domain.rst);
    pulumi-aws exposes only the zone's ARN and name.
    """
    query = "domain.domainEntries[?type=='NS'].target"
    return (
        f"aws lightsail get-domain --region {DNS_API_REGION} --domain-name {shlex.quote(domain)} "
        f"--query {shlex.quote(query)} --output json"
    )


def parse_name_servers(stdout: str) -> list[str]:
    return sorted(json.loads(stdout))


class DnsZone(pulumi.ComponentResource):
    """A Lightsail DNS zone for the domain: A records for the apex and the wildcard, and its name servers."""

    name_servers: pulumi.Output[list[str]]

    def __init__(self, name: str, args: DnsZoneArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("lightsail-k3s:index:DnsZone", name, None, opts)
        # An explicit provider: the stack's default AWS provider is in aws:region.
        dns_api = aws.Provider(
            f"{name}-{DNS_API_REGION}",
            region=DNS_API_REGION,
            opts=pulumi.ResourceOptions(parent=self),
        )
        on_dns_api = pulumi.ResourceOptions(parent=self, provider=dns_api)

        zone = aws.lightsail.Domain(
            f"{name}-zone",
            domain_name=args.domain,
            # Deleting the zone takes the domain off the internet until it is delegated again.
            opts=pulumi.ResourceOptions.merge(
                on_dns_api, pulumi.ResourceOptions(protect=args.protect)
            ),
        )
        for label, record_name in (("apex", APEX), ("wildcard", WILDCARD)):
            aws.lightsail.DomainEntry(
                f"{name}-{label}",
                domain_name=zone.domain_name,
                name=record_name,
                type="A",
                target=args.static_ip,
                opts=on_dns_api,
            )

        # Runs on the machine running `pulumi up`, with the same AWS credentials as the
        # provider (environment or AWS_PROFILE); re-read only when the zone is replaced.
        read_name_servers = command.local.Command(
            f"{name}-name-servers",
            create=name_servers_command(args.domain),
            triggers=[zone.arn],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[zone]),
        )
        self.name_servers = read_name_servers.stdout.apply(parse_name_servers)
        self.register_outputs({"nameServers": self.name_servers})
