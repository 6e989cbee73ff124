"""Lightsail alarms on each instance: burst credits running low, status checks failing.

pulumi-aws has no Lightsail alarm; pulumi-aws-native does (`lightsail.Alarm`,
`lightsail.ContactMethod`, on AWS Cloud Control). Lightsail instance metrics
come in 5-minute periods (Lightsail PutAlarm API, metricName and evaluationPeriods).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws_native as aws_native

from .errors import ConfigError

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class AlarmSettings:
    # Alarm when the burst capacity left falls below this share (BurstCapacityPercentage, 0-100).
    burst_percent: int
    # Where Lightsail mails the alarms; None: they show in the Lightsail console only.
    email: str | None


def parse_alarm_settings(burst_percent_raw: str, email_raw: str) -> AlarmSettings:
    # Pulumi.yaml types burstAlarmPercent as an integer, so the CLI refuses anything else before the program runs.
    burst_percent = int(burst_percent_raw)
    if not 1 <= burst_percent <= 99:
        raise ConfigError(
            "burstAlarmPercent",
            f"{burst_percent} would never or always alarm; it is a percentage of burst capacity",
            "pulumi config set --type int burstAlarmPercent 30 (a whole number from 1 to 99)",
        )
    email = email_raw.strip() or None
    if email is not None and not EMAIL.fullmatch(email):
        raise ConfigError(
            "alarmEmail",
            f"{email!r} is not an email address",
            "pulumi config set alarmEmail ops@example.com, or remove it to see alarms in the Lightsail console only",
        )
    return AlarmSettings(burst_percent, email)


@dataclass(frozen=True)
class LightsailAlarmsArgs:
    region: str
    # A short label (used in resource names) for each Lightsail instance name to watch.
    instances: Mapping[str, pulumi.Input[str]]
    settings: AlarmSettings


class LightsailAlarms(pulumi.ComponentResource):
    """Two alarms per instance, and the region's email contact method when an address is configured."""

    def __init__(
        self, name: str, args: LightsailAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("lightsail-k3s:index:LightsailAlarms", name, None, opts)
        # aws-native requires a region (its schema's config lists `region` as required);
        # this provider takes the stack's aws:region, so no aws-native:region needs setting.
        provider = aws_native.Provider(
            f"{name}-aws-native", region=args.region, opts=pulumi.ResourceOptions(parent=self)
        )
        on_provider = pulumi.ResourceOptions(parent=self, provider=provider)

        contact_protocols = None
        alarm_opts = on_provider
        if args.settings.email is not None:
            # A region holds one email contact method; Lightsail mails a verification
            # link to the address and sends nothing until it is confirmed.
            contact = aws_native.lightsail.ContactMethod(
                f"{name}-alarm-email",
                protocol=aws_native.lightsail.ContactMethodProtocol.EMAIL,
                contact_endpoint=args.settings.email,
                opts=on_provider,
            )
            contact_protocols = ["Email"]
            alarm_opts = pulumi.ResourceOptions.merge(
                on_provider, pulumi.ResourceOptions(depends_on=[contact])
            )

        for label, instance_name in args.instances.items():
            # Out of credits, Lightsail holds the instance to its baseline: warn while some are left.
            aws_native.lightsail.Alarm(
                f"{name}-burst-capacity-{label}",
                monitored_resource_name=instance_name,
                metric_name="BurstCapacityPercentage",
                comparison_operator="LessThanThreshold",
                threshold=args.settings.burst_percent,
                evaluation_periods=1,
                contact_protocols=contact_protocols,
                opts=alarm_opts,
            )
            # Two failed 5-minute checks in a row: the instance or its host is broken, not rebooting.
            aws_native.lightsail.Alarm(
                f"{name}-status-check-{label}",
                monitored_resource_name=instance_name,
                metric_name="StatusCheckFailed",
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                contact_protocols=contact_protocols,
                opts=alarm_opts,
            )
        self.register_outputs({})
