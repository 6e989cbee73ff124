"""make health STACK=…: what on a stack's cluster needs a person, each finding with its fix.

Reads, each bounded, and each one that fails is reported as a check that could not be made, never
as "nothing to do":
- the stack's outputs (`pulumi stack output --json --show-secrets`) and its config (Pulumi.yaml and
  Pulumi.<stack>.yaml, as the CLI hands them to the program: tools/cliconfig.py);
- on every node over SSH (components/remote/node-health.sh): its certificates' earliest expiry,
  whether it waits for a reboot, and on the first server the etcd snapshots in the bucket;
- k3s' release channels (update.k3s.io, docs.k3s.io/upgrades/manual, "Release Channels"): a newer
  patch of the running minor, and the next minor's newest;
- Lightsail (the AWS CLI): each instance's lowest burst capacity over 7 days, and its alarms' states;
- the stack's drift: `pulumi preview --refresh --expect-no-changes`.

Exit status: 0 nothing to do, 1 findings, 2 a check could not be made (the report names it).
With --github-issue (the health workflow) it keeps one issue per stack with the report: opened or
updated while something needs a person, closed when all is well; then it exits 0 unless a check
could not be made.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from croniter import croniter

from components import certificates, errors, settings
from components.alarms import parse_alarm_settings
from components.k3s import K3S_RELEASE
from components.remote_scripts import node_program, remote_script
from tools import cliconfig

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Every k3s release channel, one per minor among them, each with its newest release (`latest`);
# a rancher/channelserver collection (pkg/server/store/channel/store.go, model/config.go).
K3S_CHANNELS_URL = "https://update.k3s.io/v1-release/channels"
# Lightsail keeps instance metrics for two weeks; a week shows the daily and weekly peaks.
BURST_WINDOW = datetime.timedelta(days=7)
BURST_PERIOD_SECONDS = 3600
# An etcd snapshot is late when the schedule's next time after the newest one is this far past:
# time for the snapshot and its upload.
SNAPSHOT_GRACE = datetime.timedelta(hours=1)
SSH_TIMEOUT_SECONDS = 180
PULUMI_OUTPUT_TIMEOUT_SECONDS = 120
PREVIEW_TIMEOUT_SECONDS = 1800
AWS_TIMEOUT_SECONDS = 120
GH_TIMEOUT_SECONDS = 60
HTTP_TIMEOUT_SECONDS = 30
# pulumi/pulumi: with --expect-no-changes a preview that proposes changes fails with this
# (pkg/cmd/pulumi/operations/preview.go, expectNop; sdk/go/common/... NoChangesExpectedError).
NO_CHANGES_EXPECTED = "no changes were expected"
ISSUE_TITLE = "Health of stack {stack}"


@dataclass(frozen=True)
class Finding:
    """Something that needs a person (or, among `failures`, a check that could not be made)."""

    check: str
    subject: str
    problem: str
    fix: str

    def text(self) -> str:
        return f"health: {self.subject}: {self.problem}\n  fix: {self.fix}"

    def markdown(self) -> str:
        return f"- **{self.check}**, {self.subject}: {self.problem}\n  fix: `{self.fix}`"


class CheckFailed(Exception):
    def __init__(self, check: str, subject: str, problem: str, fix: str):
        super().__init__(problem)
        self.finding = Finding(check, subject, problem, fix)


@dataclass
class Report:
    stack: str
    now: datetime.datetime
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    failures: list[Finding] = field(default_factory=list)

    @property
    def status(self) -> int:
        return 2 if self.failures else 1 if self.findings else 0

    def text(self) -> str:
        lines = [f"health of stack {self.stack} at {self.now:%Y-%m-%d %H:%M} UTC"]
        lines += [f"  {note}" for note in self.notes]
        if self.failures:
            lines.append(f"could not check ({len(self.failures)}):")
            lines += [failure.text() for failure in self.failures]
        if self.findings:
            lines.append(f"needs a person ({len(self.findings)}):")
            lines += [finding.text() for finding in self.findings]
        if not self.failures and not self.findings:
            lines.append("nothing to do")
        return "\n".join(lines)

    def markdown(self, run_url: str | None) -> str:
        lines = [f"Health of stack `{self.stack}` at {self.now:%Y-%m-%d %H:%M} UTC"]
        if run_url:
            lines[0] += f" ([run]({run_url}))"
        if self.failures:
            lines += ["", "### Could not check", *(f.markdown() for f in self.failures)]
        if self.findings:
            lines += ["", "### Needs a person", *(f.markdown() for f in self.findings)]
        lines += ["", "### Read", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines) + "\n"


def run(
    args: Sequence[str], timeout: float, what: tuple[str, str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `args`, bounded; a missing command or a timeout fails `what` (check, subject, fix)."""
    check, subject, fix = what
    try:
        return subprocess.run(
            list(args), input=stdin, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise CheckFailed(check, subject, f"`{args[0]}` is not installed", fix) from None
    except subprocess.TimeoutExpired:
        raise CheckFailed(
            check, subject, f"`{shlex.join(args[:3])} …` took over {timeout:.0f}s", fix
        ) from None


def last_lines(text: str, count: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-count:]) or "no output"


# --- what the stack says


def stack_outputs(stack: str) -> dict[str, Any]:
    fix = (
        f"check that this works: pulumi stack output --stack {stack} --json "
        "(pulumi login, PULUMI_CONFIG_PASSPHRASE)"
    )
    what = ("stack outputs", f"stack {stack}", fix)
    result = run(
        ["pulumi", "stack", "output", "--stack", stack, "--json", "--show-secrets"],
        PULUMI_OUTPUT_TIMEOUT_SECONDS,
        what,
    )
    if result.returncode != 0:
        raise CheckFailed(
            *what[:2], f"pulumi stack output failed: {last_lines(result.stderr)}", fix
        )
    try:
        outputs = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise CheckFailed(*what[:2], "pulumi stack output printed no JSON", fix) from None
    missing = [
        name
        for name in ("nodes", "publicIp", "sshUser", "k3sVersion", "region")
        if name not in outputs
    ]
    if missing:
        raise CheckFailed(
            *what[:2],
            f"the stack has no output {', '.join(missing)} (never deployed, or deployed before it existed)",
            f"make up STACK={stack}",
        )
    return outputs


@dataclass(frozen=True)
class StackSettings:
    cert_rotation: int
    snapshot_schedule: str | None
    burst_percent: int


def stack_settings(stack: str, config_file: Path | None) -> StackSettings:
    """The keys the report weighs against, from the stack's config as the program reads it."""
    project = cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml")
    path = config_file or PROJECT_DIR / f"Pulumi.{stack}.yaml"
    try:
        config = cliconfig.StackConfig.load(project, path)
        cliconfig.apply_project_config(stack, project, config)
        values = config.for_program()

        def source(key: str) -> str | None:
            return values.get(key)

        backups = settings.parse_backups(source, stack)
        return StackSettings(
            cert_rotation=settings.parse_cert_rotation(source),
            snapshot_schedule=backups.schedule_cron if backups else None,
            burst_percent=parse_alarm_settings(
                source(f"{errors.PROJECT}:burstAlarmPercent") or "",
                source(f"{errors.PROJECT}:alarmEmail") or "",
            ).burst_percent,
        )
    except (cliconfig.CliConfigError, errors.ConfigError, OSError) as error:
        raise CheckFailed(
            "stack config",
            f"stack {stack}",
            " ".join(str(error).split()),
            f"make plan STACK={stack}",
        ) from None


# --- the nodes, over SSH


@dataclass(frozen=True)
class NodeRead:
    certificates_expire_at: datetime.datetime
    reboot_packages: list[str] | None
    snapshots: list[tuple[str, datetime.datetime]] | None


class Nodes:
    """SSH to the stack's nodes as bin/restore.sh does: the first server's host key pinned from the
    sshHostKey output, the others' trusted on first sight in a known_hosts of this run's own; the
    generated key from sshPrivateKey, or the user's ssh-agent. A node without a public address
    (an agent) is reached through the first server, over the private network."""

    def __init__(self, outputs: Mapping[str, Any], work_dir: Path):
        self.user = outputs["sshUser"]
        self.first = outputs["publicIp"]
        known_hosts = work_dir / "known_hosts"
        if outputs.get("sshHostKey"):
            known_hosts.write_text(f"{self.first} {outputs['sshHostKey']}\n")
        self.options = [
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=15",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={known_hosts}",
        ]  # fmt: skip
        if outputs.get("sshPrivateKey"):
            key = work_dir / "id"
            key.touch(mode=0o600)
            key.write_text(outputs["sshPrivateKey"].strip() + "\n")
            self.options += ["-i", str(key)]

    def command(self, node: Mapping[str, Any]) -> list[str]:
        if node.get("publicIp"):
            return ["ssh", *self.options, f"{self.user}@{node['publicIp']}"]
        jump = shlex.join(["ssh", *self.options, "-W", "%h:%p", f"{self.user}@{self.first}"])
        return [
            "ssh",
            *self.options,
            "-o",
            f"ProxyCommand={jump}",
            f"{self.user}@{node['privateIp']}",
        ]

    def read(self, node: Mapping[str, Any], list_snapshots: bool) -> NodeRead:
        name = node["name"]
        subject = f"node {name}"
        target = node.get("publicIp") or f"{node['privateIp']} (through {self.first})"
        fix = f"check that this works: ssh {self.user}@{target} sudo true (adminCidrs, the firewall, the key)"
        program = node_program(
            remote_script("node-health.sh"),
            {"LIST_SNAPSHOTS": "true" if list_snapshots else "false"},
        )
        result = run(
            [*self.command(node), "sudo", "bash", "-s"],
            SSH_TIMEOUT_SECONDS,
            ("node", subject, fix),
            stdin=program,
        )
        if result.returncode != 0:
            raise CheckFailed(
                "node", subject, f"the read over SSH failed: {last_lines(result.stderr)}", fix
            )
        return parse_node_read(result.stdout, name, list_snapshots)


def parse_node_read(stdout: str, name: str, list_snapshots: bool) -> NodeRead:
    lines = [line.split(" ") for line in stdout.splitlines() if line.strip()]
    fields = {line[0]: line[1:] for line in lines if line[0] != "snapshot"}
    subject = f"node {name}"
    fix = f"run components/remote/node-health.sh on node {name} by hand (sudo bash -s < it)"
    try:
        check_json = base64.b64decode(fields["certificates"][0]).decode()
        expires_at = certificates.earliest_certificate_expiry(check_json, name)
        reboot = fields["reboot-required"]
        if list_snapshots and "snapshots" not in fields:
            raise KeyError("snapshots listed")
        snapshots = (
            [
                (line[1], datetime.datetime.fromisoformat(line[2]))
                for line in lines
                if line[0] == "snapshot"
            ]
            if list_snapshots
            else None
        )
    except (KeyError, IndexError) as error:
        raise CheckFailed("node", subject, f"its read printed no {error} line", fix) from None
    except ValueError as error:
        # earliest_certificate_expiry names the node and the check to make; a bad date does not.
        raise CheckFailed("node", subject, str(error).removeprefix(f"{subject}: "), fix) from None
    return NodeRead(
        certificates_expire_at=expires_at,
        reboot_packages=[p for p in reboot[1:] if p] if reboot[0] == "yes" else None,
        snapshots=snapshots,
    )


# --- the checks


def check_certificates(
    report: Report,
    stack: str,
    outputs: Mapping[str, Any],
    node_reads: Mapping[str, NodeRead],
    cert_rotation: int,
) -> None:
    fix = (
        f"pulumi config set --stack {stack} certRotation {cert_rotation + 1}, then make up STACK={stack} "
        "(docs/certificates.md)"
    )
    expiries = {f"node {name}": read.certificates_expire_at for name, read in node_reads.items()}
    kubeconfig = outputs.get("kubeconfigExpiresAt")
    if kubeconfig:
        expiries["the kubeconfig"] = datetime.datetime.fromisoformat(kubeconfig)
    else:
        report.failures.append(
            Finding(
                "certificates",
                "the kubeconfig",
                "the stack has no kubeconfigExpiresAt output",
                f"make up STACK={stack}",
            )
        )
    if not expiries:
        return
    what, earliest = min(expiries.items(), key=lambda item: item[1])
    report.notes.append(f"certificates: the earliest expiry is {what}'s, {earliest:%Y-%m-%d}")
    for what, expires_at in sorted(expiries.items(), key=lambda item: item[1]):
        remaining = expires_at - report.now
        if remaining < certificates.EXPIRY_WARNING:
            when = (
                f"expired on {expires_at:%Y-%m-%d}"
                if remaining <= datetime.timedelta(0)
                else f"expire on {expires_at:%Y-%m-%d}, in {remaining.days} days"
            )
            report.findings.append(Finding("certificates", what, f"its certificates {when}", fix))


def check_reboots(
    report: Report, outputs: Mapping[str, Any], node_reads: Mapping[str, NodeRead]
) -> None:
    waiting = {
        name: read.reboot_packages
        for name, read in node_reads.items()
        if read.reboot_packages is not None
    }
    report.notes.append(f"reboots: {', '.join(waiting) if waiting else 'no node'} waiting for one")
    user = outputs["sshUser"]
    for name, packages in waiting.items():
        node = next(node for node in outputs["nodes"] if node["name"] == name)
        # A node without a public address answers through the first server.
        login = (
            f"{user}@{node['publicIp']}"
            if node.get("publicIp")
            else f"-J {user}@{outputs['publicIp']} {user}@{node['privateIp']}"
        )
        report.findings.append(
            Finding(
                "reboot",
                f"node {name}",
                "waits for a reboot"
                + (f" (for {', '.join(packages)})" if packages else "")
                + "; security updates are installed but not all in use until it reboots",
                f"kubectl drain {name} --ignore-daemonsets --delete-emptydir-data, "
                f"ssh {login} sudo systemctl reboot, then kubectl uncordon {name} once it is Ready "
                "(or let the reboot window do it: docs/operations.md, Reboots)",
            )
        )


def check_snapshots(
    report: Report,
    stack: str,
    outputs: Mapping[str, Any],
    first_read: NodeRead | None,
    schedule: str | None,
) -> None:
    bucket = outputs.get("backupBucket")
    if not bucket:
        report.notes.append("etcd snapshots: backups are off (no backupBucket output)")
        return
    if schedule is None:
        report.failures.append(
            Finding(
                "etcd snapshots",
                f"bucket {bucket}",
                "the stack has a backup bucket but its config has backups off, so the schedule is unknown",
                f"pulumi config get --stack {stack} backups; make up STACK={stack} to bring them in line",
            )
        )
        return
    if first_read is None or first_read.snapshots is None:
        return  # the first server's read failed, and says so
    fix = (
        f"check the snapshots on the first server: ssh {outputs['sshUser']}@{outputs['publicIp']} "
        "sudo k3s etcd-snapshot ls; journalctl -u k3s | grep -i snapshot (docs/backups.md)"
    )
    if not first_read.snapshots:
        report.findings.append(
            Finding(
                "etcd snapshots",
                f"bucket {bucket}",
                f"holds no etcd snapshot (schedule '{schedule}')",
                fix,
            )
        )
        return
    name, taken_at = max(first_read.snapshots, key=lambda snapshot: snapshot[1])
    due = croniter(schedule, taken_at).get_next(datetime.datetime)
    age = report.now - taken_at
    report.notes.append(
        f"etcd snapshots: the newest in the bucket is {name}, {age.total_seconds() / 3600:.0f} h old"
        f" (schedule '{schedule}', the next was due {due:%Y-%m-%d %H:%M})"
    )
    if report.now > due + SNAPSHOT_GRACE:
        report.findings.append(
            Finding(
                "etcd snapshots",
                f"bucket {bucket}",
                f"the newest snapshot, {name}, was taken {taken_at:%Y-%m-%d %H:%M}; the schedule "
                f"'{schedule}' should have taken one at {due:%Y-%m-%d %H:%M}",
                fix,
            )
        )


@dataclass(frozen=True)
class Release:
    text: str
    numbers: tuple[int, int, int, int]

    @property
    def minor(self) -> tuple[int, int]:
        return self.numbers[:2]


def release(text: str) -> Release | None:
    found = K3S_RELEASE.fullmatch(text)
    if found is None:
        return None
    major, minor, patch, build = (int(part) for part in found.groups())
    return Release(text, (major, minor, patch, build))


def k3s_channels(url: str) -> dict[str, str]:
    """Channel name → its newest release, from the k3s channel server."""
    fix = f"check that {url} answers (curl -fsS {url})"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as answer:
            listed = json.load(answer)["data"]
        return {channel["name"]: channel["latest"] for channel in listed if channel.get("latest")}
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise CheckFailed(
            "k3s releases", "the k3s channel server", f"could not read {url}: {error}", fix
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise CheckFailed(
            "k3s releases",
            "the k3s channel server",
            f"{url} answered no channel list ({type(error).__name__}: {error})",
            fix,
        ) from None


def check_releases(
    report: Report, stack: str, outputs: Mapping[str, Any], channels: Mapping[str, str]
) -> None:
    running = release(outputs["k3sVersion"])
    if running is None:
        report.failures.append(
            Finding(
                "k3s releases",
                f"stack {stack}",
                f"its k3sVersion output {outputs['k3sVersion']!r} is no k3s release",
                f"make up STACK={stack}",
            )
        )
        return
    major, minor = running.minor
    own = channels.get(f"v{major}.{minor}")
    if own is None:
        report.failures.append(
            Finding(
                "k3s releases",
                "the k3s channel server",
                f"lists no channel v{major}.{minor}, the running minor",
                "look the release up by hand: github.com/k3s-io/k3s/releases",
            )
        )
        return
    upgrade_fix = (
        "pulumi config set --stack {stack} k3sVersion {target}{untested}, then make up STACK={stack}; "
        "the first server takes an etcd snapshot first (docs/upgrades.md)"
    )
    newest_patch = release(own)
    report.notes.append(f"k3s: running {running.text}; the newest v{major}.{minor} is {own}")
    if newest_patch is not None and newest_patch.numbers > running.numbers:
        report.findings.append(
            Finding(
                "k3s releases",
                f"stack {stack}",
                f"runs {running.text}; {own} is the newest patch of v{major}.{minor}",
                upgrade_fix.format(stack=stack, target=own, untested=""),
            )
        )
    following = channels.get(f"v{major}.{minor + 1}")
    if following is not None:
        untested = (
            ""
            if minor + 1 in settings.TESTED_K3S_MINORS
            else " and allowUntestedK3sVersion true (an untested minor)"
        )
        report.notes.append(f"k3s: the next minor's newest is {following}")
        report.findings.append(
            Finding(
                "k3s releases",
                f"stack {stack}",
                f"the next minor, v{major}.{minor + 1}, is out: its newest is {following}; "
                "Kubernetes supports a minor for about a year, so plan the move",
                upgrade_fix.format(stack=stack, target=following, untested=untested),
            )
        )


def aws_json(args: Sequence[str], region: str, subject: str, check: str) -> Any:
    fix = f"check that this works: aws {shlex.join(args[:2])} --region {region} (AWS credentials, the region)"
    result = run(
        ["aws", *args, "--region", region, "--output", "json"],
        AWS_TIMEOUT_SECONDS,
        (check, subject, fix),
    )
    if result.returncode != 0:
        raise CheckFailed(check, subject, f"aws {args[1]} failed: {last_lines(result.stderr)}", fix)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise CheckFailed(check, subject, f"aws {args[1]} printed no JSON", fix) from None


def check_instances(
    report: Report, stack: str, outputs: Mapping[str, Any], burst_percent: int
) -> None:
    region = outputs["region"]
    start = report.now - BURST_WINDOW
    lowest_by_node: list[str] = []
    for node in outputs["nodes"]:
        name = node["name"]
        instance = node.get("instanceName")
        if not instance:
            report.failures.append(
                Finding(
                    "burst capacity",
                    f"node {name}",
                    "the nodes output names no instanceName (deployed before it did)",
                    f"make up STACK={stack} once; it adds the name",
                )
            )
            continue
        subject = f"node {name} (instance {instance})"
        try:
            metric = aws_json(
                [
                    "lightsail",
                    "get-instance-metric-data",
                    "--instance-name",
                    instance,
                    "--metric-name",
                    "BurstCapacityPercentage",
                    "--period",
                    str(BURST_PERIOD_SECONDS),
                    "--start-time",
                    start.isoformat(),
                    "--end-time",
                    report.now.isoformat(),
                    "--unit",
                    "Percent",
                    "--statistics",
                    "Minimum",
                ],  # fmt: skip
                region,
                subject,
                "burst capacity",
            )
            points = [
                point["minimum"] for point in metric.get("metricData", []) if "minimum" in point
            ]
            if not points:
                raise CheckFailed(
                    "burst capacity",
                    subject,
                    "Lightsail returned no BurstCapacityPercentage data for the last 7 days",
                    "check the instance's metrics in the Lightsail console, or: "
                    f"aws lightsail get-instance --instance-name {instance}",
                )
            lowest = min(points)
            lowest_by_node.append(f"{name} {lowest:.0f}%")
            if lowest < burst_percent:
                setting = "bundleId" if node["role"] == "server" else "agentBundleId"
                report.findings.append(
                    Finding(
                        "burst capacity",
                        subject,
                        f"its burst capacity fell to {lowest:.0f}% in the last 7 days (the alarm's threshold: "
                        f"{burst_percent}%): it runs above its CPU baseline for long stretches",
                        f"a larger bundle (pulumi config set --stack {stack} {setting} <bundle>, docs/alarms.md) "
                        "or less CPU for the apps (docs/apps.md)",
                    )
                )
            alarms = aws_json(
                ["lightsail", "get-alarms", "--monitored-resource-name", instance],
                region,
                subject,
                "alarms",
            ).get("alarms", [])
            if not alarms:
                report.findings.append(
                    Finding(
                        "alarms",
                        subject,
                        "has no Lightsail alarm; the stack declares two per instance",
                        f"make up STACK={stack}",
                    )
                )
            for alarm in alarms:
                if alarm.get("state") == "ALARM":
                    report.findings.append(
                        Finding(
                            "alarms",
                            subject,
                            f"alarm {alarm.get('name')} ({alarm.get('metricName')}) is in ALARM",
                            f"aws lightsail get-alarms --region {region} --alarm-name {alarm.get('name')}; "
                            "see docs/alarms.md for what it means and what to do",
                        )
                    )
        except CheckFailed as failed:
            report.failures.append(failed.finding)
    if lowest_by_node:
        report.notes.append(f"burst capacity, lowest over 7 days: {', '.join(lowest_by_node)}")


def check_drift(report: Report, stack: str, config_file: Path | None) -> None:
    args = [
        "pulumi", "preview", "--stack", stack, "--refresh", "--expect-no-changes",
        "--diff", "--suppress-outputs", "--non-interactive",
    ]  # fmt: skip
    if config_file is not None:
        args += ["--config-file", str(config_file)]
    fix = f"run it by hand: pulumi preview --stack {stack} --refresh --diff"
    result = run(args, PREVIEW_TIMEOUT_SECONDS, ("drift", f"stack {stack}", fix))
    if result.returncode == 0:
        report.notes.append("drift: none (pulumi preview --refresh proposes no change)")
        return
    if NO_CHANGES_EXPECTED in result.stdout + result.stderr:
        changes = [
            line.strip()
            for line in result.stdout.splitlines()
            if line.lstrip().startswith(("~", "+", "-", "+-"))
        ]
        report.findings.append(
            Finding(
                "drift",
                f"stack {stack}",
                "the resources differ from the stack's code and config: "
                + ("; ".join(changes[:10]) or last_lines(result.stdout)),
                f"see what changed: pulumi preview --stack {stack} --refresh --diff; then make up STACK={stack} "
                "to put it back, or change the code or config to keep it",
            )
        )
        return
    report.failures.append(
        Finding(
            "drift",
            f"stack {stack}",
            f"pulumi preview failed: {last_lines(result.stderr or result.stdout)}",
            fix,
        )
    )


def health(
    stack: str, config_file: Path | None, channels_url: str, now: datetime.datetime
) -> Report:
    report = Report(stack, now)
    try:
        outputs = stack_outputs(stack)
        stack_config = stack_settings(stack, config_file)
    except CheckFailed as failed:
        report.failures.append(failed.finding)
        return report

    node_reads: dict[str, NodeRead] = {}
    has_bucket = bool(outputs.get("backupBucket"))
    with tempfile.TemporaryDirectory() as work_dir:
        nodes = Nodes(outputs, Path(work_dir))
        for node in outputs["nodes"]:
            first = node.get("publicIp") == outputs["publicIp"] and node["role"] == "server"
            try:
                node_reads[node["name"]] = nodes.read(node, list_snapshots=first and has_bucket)
            except CheckFailed as failed:
                report.failures.append(failed.finding)
    first_read = next(
        (
            node_reads.get(node["name"])
            for node in outputs["nodes"]
            if node.get("publicIp") == outputs["publicIp"] and node["role"] == "server"
        ),
        None,
    )
    check_certificates(report, stack, outputs, node_reads, stack_config.cert_rotation)
    check_snapshots(report, stack, outputs, first_read, stack_config.snapshot_schedule)
    check_reboots(report, outputs, node_reads)
    try:
        check_releases(report, stack, outputs, k3s_channels(channels_url))
    except CheckFailed as failed:
        report.failures.append(failed.finding)
    check_instances(report, stack, outputs, stack_config.burst_percent)
    try:
        check_drift(report, stack, config_file)
    except CheckFailed as failed:
        report.failures.append(failed.finding)
    return report


# --- the GitHub issue


def gh(args: Sequence[str], stdin: str | None = None) -> str:
    fix = "check the workflow's GH_TOKEN and its issues: write permission (gh auth status)"
    result = run(
        ["gh", *args], GH_TIMEOUT_SECONDS, ("github issue", "the stack's issue", fix), stdin=stdin
    )
    if result.returncode != 0:
        raise CheckFailed(
            "github issue",
            "the stack's issue",
            f"gh {args[0]} {args[1]} failed: {last_lines(result.stderr)}",
            fix,
        )
    return result.stdout


def sync_issue(report: Report, run_url: str | None) -> str:
    """Opens or updates the stack's issue while something needs a person; closes it when all is well."""
    title = ISSUE_TITLE.format(stack=report.stack)
    listed = json.loads(
        gh(
            [
                "issue",
                "list",
                "--state",
                "open",
                "--search",
                f'"{title}" in:title',
                "--json",
                "number,title",
                "--limit",
                "100",
            ]
        )
        or "[]"
    )
    numbers = [issue["number"] for issue in listed if issue["title"] == title]
    if report.status == 0:
        for number in numbers:
            gh(
                [
                    "issue",
                    "close",
                    str(number),
                    "--comment",
                    f"All is well as of {report.now:%Y-%m-%d %H:%M} UTC"
                    + (f" ({run_url})" if run_url else ""),
                ]
            )
        return f"closed issue {', '.join(f'#{n}' for n in numbers)}" if numbers else "no open issue"
    body = report.markdown(run_url)
    if numbers:
        gh(["issue", "edit", str(numbers[0]), "--body-file", "-"], stdin=body)
        return f"updated issue #{numbers[0]}"
    gh(["issue", "create", "--title", title, "--body-file", "-"], stdin=body)
    return "opened an issue"


def main(argv: list[str] | None = None, now: Callable[[], datetime.datetime] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="dev")
    parser.add_argument(
        "--config-file",
        type=Path,
        help="the config `pulumi up` ran with, when not Pulumi.<stack>.yaml (the workflow's copy)",
    )
    parser.add_argument("--k3s-channels-url", default=K3S_CHANNELS_URL)
    parser.add_argument(
        "--github-issue", action="store_true", help="keep the stack's GitHub issue up to date (gh)"
    )
    args = parser.parse_args(argv)
    report = health(
        args.stack,
        args.config_file,
        args.k3s_channels_url,
        (now or (lambda: datetime.datetime.now(datetime.UTC)))(),
    )
    print(report.text())
    if not args.github_issue:
        return report.status
    server, repository, run_id = (
        os.environ.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    run_url = (
        f"{server}/{repository}/actions/runs/{run_id}" if server and repository and run_id else None
    )
    try:
        print(f"github: {sync_issue(report, run_url)}")
    except CheckFailed as failed:
        print(failed.finding.text(), file=sys.stderr)
        return 2
    return 2 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
