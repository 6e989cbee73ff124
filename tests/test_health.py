"""make health (tools/health.py), offline: stand-ins for pulumi, aws, ssh and gh on PATH, the k3s
channel server as a file, and each node as a directory that the ssh stand-in runs the real
node-health.sh against. Every finding comes with its fix; a healthy cluster reports nothing to do;
a read that fails is named, never "nothing to do"."""

import base64
import contextlib
import datetime
import io
import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers import PROJECT_DIR, tool, write_executable
from tools import health

NOW = datetime.datetime(2026, 12, 2, 6, 30, tzinfo=datetime.UTC)
STACK = "prod"
FIRST = "lightsail-k3s-prod"
AGENT = "lightsail-k3s-prod-agent-1"
FIRST_IP = "203.0.113.10"
AGENT_PRIVATE_IP = "172.26.1.20"
BUCKET = "lightsail-k3s-prod-etcd-1a2b3c"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfTheFirstServer"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nstand-in\n-----END OPENSSH PRIVATE KEY-----"

PULUMI = """#!/bin/bash
echo "pulumi $*" >> "$STUB_LOG"
case "$1 $2" in
  "stack output")
    [ -z "${STUB_OUTPUT_FAILS:-}" ] || { echo "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE" >&2; exit 255; }
    cat "$STUB_DIR/outputs.json" ;;
  "preview --stack")
    if [ -n "${STUB_DRIFT:-}" ]; then
      echo "    ~ aws:lightsail/instancePublicPorts:InstancePublicPorts lightsail-k3s-prod-firewall update [diff: ~portInfos]"
      echo "error: no changes were expected but changes were proposed" >&2
      exit 255
    fi
    [ -z "${STUB_PREVIEW_FAILS:-}" ] || { echo "error: could not load plugin aws" >&2; exit 255; }
    echo "Resources:"; echo "    42 unchanged" ;;
esac
"""

# Runs the program it is sent against the node directory of its destination (the address after
# the options, before `sudo`), as that node's root would.
SSH = """#!/bin/bash
args=("$@")
for i in "${!args[@]}"; do
  if [ "${args[$i]}" = sudo ]; then destination="${args[$((i - 1))]}"; fi
done
host="${destination#*@}"
proxy=""
case " $* " in *ProxyCommand=*) proxy=" through a jump" ;; esac
echo "ssh $destination$proxy" >> "$STUB_LOG"
node="$STUB_DIR/nodes/$host"
[ -d "$node" ] || { echo "ssh: connect to host $host port 22: Connection timed out" >&2; exit 255; }
K3S_BIN="$node/k3s" REBOOT_REQUIRED="$node/reboot-required" bash -s
"""

NODE_K3S = """#!/bin/bash
node="$(dirname "$0")"
case "$1 $2" in
  "certificate check") cat "$node/certificates.json" ;;
  "etcd-snapshot ls") echo "Name Location Size Created"; cat "$node/snapshots" 2>/dev/null || true ;;
esac
"""

AWS = """#!/bin/bash
echo "aws $*" >> "$STUB_LOG"
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in --instance-name | --monitored-resource-name) instance="${args[$((i + 1))]}" ;; esac
done
file="$STUB_DIR/aws/$2-$instance.json"
[ -f "$file" ] || { echo "An error occurred (AccessDeniedException) when calling the $2 operation" >&2; exit 254; }
cat "$file"
"""

GH = """#!/bin/bash
echo "gh $*" >> "$STUB_LOG"
if [ "$2" = list ]; then cat "$STUB_DIR/gh-issues.json"; exit 0; fi
case " $* " in *" --body-file - "*) cat > "$STUB_DIR/gh-body.md" ;; esac
"""


def certificate_check(expires_at: datetime.datetime) -> str:
    """What `k3s certificate check --output json` prints (k3s pkg/cli/cert/cert.go)."""
    certificates = [
        {"Filename": "client-admin.crt", "ExpiryTime": expires_at.isoformat(), "Status": "OK"},
        {"Filename": "server-ca.crt", "ExpiryTime": "2036-01-01T00:00:00Z", "Status": "OK"},
    ]
    return json.dumps({"Certificates": certificates})


class Cluster:
    """A healthy prod cluster of one server and one agent (no public IP), as the stand-ins answer."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = root
        self.stubs = root / "stubs"
        self.stubs.mkdir()
        self.log = root / "calls.log"
        self.log.touch()
        for name, text in (("pulumi", PULUMI), ("ssh", SSH), ("aws", AWS), ("gh", GH)):
            write_executable(self.stubs / name, text)
        self.outputs = {
            "publicIp": FIRST_IP,
            "sshUser": "ubuntu",
            "sshHostKey": HOST_KEY,
            "sshPrivateKey": PRIVATE_KEY,
            "k3sVersion": "v1.36.1+k3s1",
            "region": "ap-northeast-2",
            "backupBucket": BUCKET,
            "kubeconfigExpiresAt": (NOW + datetime.timedelta(days=300)).isoformat(),
            "nodes": [
                {"name": FIRST, "role": "server", "bundleId": "medium_3_0", "privateIp": "172.26.1.10",
                 "publicIp": FIRST_IP, "instanceName": f"{FIRST}-instance-1a2b"},
                {"name": AGENT, "role": "agent", "bundleId": "small_3_0", "privateIp": AGENT_PRIVATE_IP,
                 "instanceName": f"{AGENT}-instance-3c4d"},
            ],
        }  # fmt: skip
        self.write_outputs()
        for host in (FIRST_IP, AGENT_PRIVATE_IP):
            self.node(host).mkdir(parents=True)
            write_executable(self.node(host) / "k3s", NODE_K3S)
            self.certificates(host, NOW + datetime.timedelta(days=200))
        # The schedule (0 */12 * * *) took one at 00:00 today.
        self.snapshots(
            [("etcd-snapshot-lightsail-k3s-prod-1764633600", NOW.replace(hour=0, minute=0))]
        )
        (root / "aws").mkdir()
        for node in self.outputs["nodes"]:
            self.burst(node["instanceName"], [100.0, 64.0, 88.0])
            self.alarms(node["instanceName"], ["OK", "OK"])
        self.channels({"stable": "v1.35.9+k3s1", "v1.35": "v1.35.9+k3s1", "v1.36": "v1.36.1+k3s1"})
        (root / "gh-issues.json").write_text("[]")
        monkeypatch.setenv("PATH", f"{self.stubs}:{tool('bash').rsplit('/', 1)[0]}:/usr/bin:/bin")
        monkeypatch.setenv("STUB_LOG", str(self.log))
        monkeypatch.setenv("STUB_DIR", str(root))
        for variable in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"):
            monkeypatch.delenv(variable, raising=False)

    def node(self, host: str) -> Path:
        return self.root / "nodes" / host

    def write_outputs(self) -> None:
        (self.root / "outputs.json").write_text(json.dumps(self.outputs))

    def certificates(self, host: str, expires_at: datetime.datetime) -> None:
        (self.node(host) / "certificates.json").write_text(certificate_check(expires_at))

    def snapshots(self, taken: list[tuple[str, datetime.datetime]]) -> None:
        (self.node(FIRST_IP) / "snapshots").write_text(
            "".join(
                f"{name} file:///var/lib/rancher/k3s/server/db/snapshots/{name} 4096 {at:%Y-%m-%dT%H:%M:%SZ}\n"
                f"{name} s3://{BUCKET}/lightsail-k3s/{name} 4096 {at:%Y-%m-%dT%H:%M:%SZ}\n"
                for name, at in taken
            )
        )

    def burst(self, instance: str, minimums: list[float]) -> None:
        points = [
            {"minimum": value, "timestamp": NOW.isoformat(), "unit": "Percent"}
            for value in minimums
        ]
        (self.root / "aws" / f"get-instance-metric-data-{instance}.json").write_text(
            json.dumps({"metricName": "BurstCapacityPercentage", "metricData": points})
        )

    def alarms(self, instance: str, states: list[str]) -> None:
        alarms = [
            {"name": f"{instance}-alarm-{n}", "metricName": metric, "state": state,
             "monitoredResourceInfo": {"name": instance, "resourceType": "Instance"}}
            for n, (metric, state) in enumerate(zip(("BurstCapacityPercentage", "StatusCheckFailed"), states, strict=True))
        ]  # fmt: skip
        (self.root / "aws" / f"get-alarms-{instance}.json").write_text(
            json.dumps({"alarms": alarms})
        )

    def channels(self, latest: dict[str, str]) -> None:
        data = [
            {"id": name, "type": "channel", "name": name, "latest": release}
            for name, release in latest.items()
        ]
        (self.root / "channels.json").write_text(json.dumps({"type": "collection", "data": data}))

    def health(self, *flags: str, **env: str) -> tuple[int, str]:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            argv = [
                "--stack",
                STACK,
                "--k3s-channels-url",
                (self.root / "channels.json").as_uri(),
                *flags,
            ]
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                status = health.main(argv, now=lambda: NOW)
        return status, printed.getvalue()

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    return Cluster(tmp_path, monkeypatch)


def test_a_healthy_cluster_reports_nothing_to_do(cluster):
    status, printed = cluster.health()
    assert status == 0, printed
    assert printed.splitlines()[-1] == "nothing to do"
    assert "fix:" not in printed
    # What it read, for the record.
    assert "certificates: the earliest expiry is node lightsail-k3s-prod's, 2027-06-20" in printed
    assert (
        "etcd snapshots: the newest in the bucket is etcd-snapshot-lightsail-k3s-prod-1764633600, 6 h old"
        in printed
    )
    assert "reboots: no node waiting for one" in printed
    assert "k3s: running v1.36.1+k3s1; the newest v1.36 is v1.36.1+k3s1" in printed
    assert (
        "burst capacity, lowest over 7 days: lightsail-k3s-prod 64%, lightsail-k3s-prod-agent-1 64%"
        in printed
    )
    assert "drift: none" in printed
    calls = cluster.calls()
    assert "pulumi stack output --stack prod --json --show-secrets" in calls
    assert "ssh ubuntu@203.0.113.10" in calls
    # The agent has no public address: reached through the first server.
    assert "ssh ubuntu@172.26.1.20 through a jump" in calls
    assert (
        "pulumi preview --stack prod --refresh --expect-no-changes --diff --suppress-outputs --non-interactive"
        in calls
    )
    metric = next(call for call in calls if "get-instance-metric-data" in call)
    assert "--metric-name BurstCapacityPercentage --period 3600" in metric
    assert "--start-time 2026-11-25T06:30:00+00:00 --end-time 2026-12-02T06:30:00+00:00" in metric
    assert "--unit Percent --statistics Minimum --region ap-northeast-2 --output json" in metric


def findings(printed: str) -> list[tuple[str, str]]:
    """Each finding of a report: its `health: …` line and its `  fix: …` line."""
    lines = printed.splitlines()
    return [
        (line, lines[index + 1])
        for index, line in enumerate(lines)
        if line.startswith("health: ") and lines[index + 1].startswith("  fix: ")
    ]


def only_finding(printed: str) -> tuple[str, str]:
    (found,) = findings(printed)
    return found


def test_a_node_certificate_near_its_expiry_says_to_rotate(cluster):
    cluster.certificates(AGENT_PRIVATE_IP, NOW + datetime.timedelta(days=12))
    status, printed = cluster.health()
    assert status == 1
    problem, fix = only_finding(printed)
    assert (
        problem
        == "health: node lightsail-k3s-prod-agent-1: its certificates expire on 2026-12-14, in 12 days"
    )
    assert fix == (
        "  fix: pulumi config set --stack prod certRotation 1, then make up STACK=prod (docs/certificates.md)"
    )


def test_an_expired_kubeconfig_says_to_rotate(cluster):
    cluster.outputs["kubeconfigExpiresAt"] = (NOW - datetime.timedelta(days=1)).isoformat()
    cluster.write_outputs()
    status, printed = cluster.health()
    assert status == 1
    problem, fix = only_finding(printed)
    assert problem == "health: the kubeconfig: its certificates expired on 2026-12-01"
    assert "certRotation 1" in fix


def test_a_late_snapshot_is_measured_against_the_schedule(cluster):
    cluster.snapshots(
        [("etcd-snapshot-lightsail-k3s-prod-1764547200", NOW.replace(day=1, hour=0, minute=0))]
    )
    status, printed = cluster.health()
    assert status == 1
    problem, fix = only_finding(printed)
    assert problem == (
        f"health: bucket {BUCKET}: the newest snapshot, etcd-snapshot-lightsail-k3s-prod-1764547200, was taken "
        "2026-12-01 00:00; the schedule '0 */12 * * *' should have taken one at 2026-12-01 12:00"
    )
    assert fix.startswith(
        "  fix: check the snapshots on the first server: ssh ubuntu@203.0.113.10 sudo k3s etcd-snapshot ls"
    )


def test_a_snapshot_due_within_the_grace_is_not_late_yet(cluster, monkeypatch):
    # Taken at 12:00 yesterday: the next was due at 00:00, 6.5 h ago.
    cluster.snapshots([("a", NOW.replace(day=1, hour=12, minute=0))])
    monkeypatch.setattr(health, "SNAPSHOT_GRACE", datetime.timedelta(hours=7))
    assert cluster.health()[0] == 0
    monkeypatch.setattr(health, "SNAPSHOT_GRACE", datetime.timedelta(hours=6))
    assert cluster.health()[0] == 1


def test_an_empty_bucket_is_a_finding(cluster):
    cluster.snapshots([])
    status, printed = cluster.health()
    assert status == 1
    assert (
        only_finding(printed)[0]
        == f"health: bucket {BUCKET}: holds no etcd snapshot (schedule '0 */12 * * *')"
    )


def test_a_node_waiting_for_a_reboot_is_listed_with_how_to_reboot_it(cluster):
    (cluster.node(AGENT_PRIVATE_IP) / "reboot-required").touch()
    (cluster.node(AGENT_PRIVATE_IP) / "reboot-required.pkgs").write_text(
        "linux-image-6.8.0-90-generic\nlibc6\n"
    )
    status, printed = cluster.health()
    assert status == 1
    problem, fix = only_finding(printed)
    assert problem == (
        "health: node lightsail-k3s-prod-agent-1: waits for a reboot (for libc6, linux-image-6.8.0-90-generic); "
        "security updates are installed but not all in use until it reboots"
    )
    assert "kubectl drain lightsail-k3s-prod-agent-1 --ignore-daemonsets" in fix
    # The agent has no public address: through the first server.
    assert "ssh -J ubuntu@203.0.113.10 ubuntu@172.26.1.20 sudo systemctl reboot" in fix
    assert "reboots: lightsail-k3s-prod-agent-1 waiting for one" in printed


def test_a_newer_patch_and_the_next_minor_are_findings_with_the_upgrade_to_make(cluster):
    cluster.channels({"v1.36": "v1.36.3+k3s1", "v1.37": "v1.37.0+k3s2", "v1.35": "v1.35.9+k3s1"})
    status, printed = cluster.health()
    assert status == 1
    patch, minor = findings(printed)
    assert (
        patch[0]
        == "health: stack prod: runs v1.36.1+k3s1; v1.36.3+k3s1 is the newest patch of v1.36"
    )
    assert patch[1] == (
        "  fix: pulumi config set --stack prod k3sVersion v1.36.3+k3s1, then make up STACK=prod; "
        "the first server takes an etcd snapshot first (docs/upgrades.md)"
    )
    assert minor[0].startswith(
        "health: stack prod: the next minor, v1.37, is out: its newest is v1.37.0+k3s2"
    )
    # v1.37 is past the tested minors: the fix says what else the upgrade takes.
    assert (
        "k3sVersion v1.37.0+k3s2 and allowUntestedK3sVersion true (an untested minor)" in minor[1]
    )


def test_low_burst_capacity_and_a_firing_alarm_are_findings(cluster):
    agent_instance = f"{AGENT}-instance-3c4d"
    cluster.burst(agent_instance, [80.0, 12.5, 40.0])
    cluster.alarms(agent_instance, ["ALARM", "OK"])
    status, printed = cluster.health()
    assert status == 1
    burst, alarm = findings(printed)
    assert burst[0] == (
        f"health: node {AGENT} (instance {agent_instance}): its burst capacity fell to 12% in the last 7 days "
        "(the alarm's threshold: 30%): it runs above its CPU baseline for long stretches"
    )
    assert "pulumi config set --stack prod agentBundleId <bundle>" in burst[1]
    assert alarm[0] == (
        f"health: node {AGENT} (instance {agent_instance}): alarm {agent_instance}-alarm-0 "
        "(BurstCapacityPercentage) is in ALARM"
    )


def test_drift_is_a_finding_naming_what_changed(cluster):
    status, printed = cluster.health(STUB_DRIFT="1")
    assert status == 1
    problem, fix = only_finding(printed)
    assert (
        "~ aws:lightsail/instancePublicPorts:InstancePublicPorts lightsail-k3s-prod-firewall update"
        in problem
    )
    assert fix.startswith("  fix: see what changed: pulumi preview --stack prod --refresh --diff")


def test_the_workflows_config_file_reaches_the_preview(cluster):
    config = cluster.root / "run-config.yaml"
    config.write_text((PROJECT_DIR / "Pulumi.prod.yaml").read_text())
    status, printed = cluster.health("--config-file", str(config))
    assert status == 0, printed
    assert any(
        call.endswith(f"--non-interactive --config-file {config}") for call in cluster.calls()
    )


@pytest.mark.parametrize(
    ("break_it", "subject", "said"),
    [
        (lambda c: c.node(AGENT_PRIVATE_IP).rename(c.root / "gone"), f"node {AGENT}", "Connection timed out"),
        (lambda c: (c.node(FIRST_IP) / "certificates.json").write_text("not json"), f"node {FIRST}",
         "printed no certificate list"),
        (lambda c: (c.root / "channels.json").unlink(), "the k3s channel server", "could not read file:"),
        (lambda c: (c.root / "aws" / f"get-alarms-{FIRST}-instance-1a2b.json").unlink(),
         f"node {FIRST} (instance {FIRST}-instance-1a2b)", "aws get-alarms failed: An error occurred"),
        (lambda c: c.burst(f"{FIRST}-instance-1a2b", []), f"node {FIRST} (instance {FIRST}-instance-1a2b)",
         "Lightsail returned no BurstCapacityPercentage data"),
    ],
    ids=["ssh", "certificate-check", "channels", "alarms", "no-metric-data"],
)  # fmt: skip
def test_a_read_that_fails_is_named_and_never_nothing_to_do(cluster, break_it, subject, said):
    break_it(cluster)
    status, printed = cluster.health()
    assert status == 2
    assert "nothing to do" not in printed
    assert "could not check (1):" in printed
    failure = next(line for line in printed.splitlines() if line.startswith(f"health: {subject}: "))
    assert said in failure
    assert printed.splitlines()[printed.splitlines().index(failure) + 1].startswith("  fix: ")


@pytest.mark.parametrize("variable", ["STUB_OUTPUT_FAILS", "STUB_PREVIEW_FAILS"])
def test_a_failed_pulumi_read_is_named(cluster, variable):
    status, printed = cluster.health(**{variable: "1"})
    assert status == 2
    assert "nothing to do" not in printed
    assert "fix: " in printed


def test_every_wait_is_bounded(cluster, monkeypatch):
    write_executable(cluster.stubs / "ssh", "#!/bin/sh\nsleep 30\n")
    monkeypatch.setattr(health, "SSH_TIMEOUT_SECONDS", 1)
    status, printed = cluster.health()
    assert status == 2
    assert "took over 1s" in printed


# --- the GitHub issue


def test_findings_open_the_stacks_issue_with_each_fix(cluster, monkeypatch):
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "gallery/lightsail-k3s")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    (cluster.node(FIRST_IP) / "reboot-required").touch()
    status, printed = cluster.health("--github-issue")
    assert status == 0, printed
    assert "github: opened an issue" in printed
    gh = [call for call in cluster.calls() if call.startswith("gh ")]
    assert gh[0] == (
        'gh issue list --state open --search "Health of stack prod" in:title --json number,title --limit 100'
    )
    assert gh[1] == "gh issue create --title Health of stack prod --body-file -"
    body = (cluster.root / "gh-body.md").read_text()
    assert "([run](https://github.com/gallery/lightsail-k3s/actions/runs/42))" in body
    assert "### Needs a person\n- **reboot**, node lightsail-k3s-prod: waits for a reboot" in body
    assert "  fix: `kubectl drain lightsail-k3s-prod --ignore-daemonsets" in body


def test_the_open_issue_is_updated_not_doubled(cluster):
    (cluster.root / "gh-issues.json").write_text(
        json.dumps(
            [
                {"number": 7, "title": "Health of stack prod-eu"},
                {"number": 9, "title": "Health of stack prod"},
            ]
        )
    )
    (cluster.node(FIRST_IP) / "reboot-required").touch()
    status, printed = cluster.health("--github-issue")
    assert status == 0
    assert "github: updated issue #9" in printed
    assert [c for c in cluster.calls() if c.startswith("gh issue edit")] == [
        "gh issue edit 9 --body-file -"
    ]


def test_all_well_closes_the_issue(cluster):
    (cluster.root / "gh-issues.json").write_text(
        json.dumps([{"number": 9, "title": "Health of stack prod"}])
    )
    status, printed = cluster.health("--github-issue")
    assert status == 0
    assert "github: closed issue #9" in printed
    assert any(
        c.startswith("gh issue close 9 --comment All is well as of 2026-12-02 06:30 UTC")
        for c in cluster.calls()
    )


def test_a_check_that_failed_keeps_the_issue_open_and_fails_the_run(cluster):
    (cluster.root / "gh-issues.json").write_text(
        json.dumps([{"number": 9, "title": "Health of stack prod"}])
    )
    (cluster.root / "channels.json").unlink()
    status, printed = cluster.health("--github-issue")
    assert status == 2
    assert "github: updated issue #9" in printed
    assert not [c for c in cluster.calls() if c.startswith("gh issue close")]
    assert "### Could not check\n- **k3s releases**" in (cluster.root / "gh-body.md").read_text()


# --- the node script on its own


def test_node_health_reads_certificates_reboot_and_the_buckets_snapshots(tmp_path):
    write_executable(tmp_path / "k3s", NODE_K3S)
    (tmp_path / "certificates.json").write_text(certificate_check(NOW))
    (tmp_path / "snapshots").write_text(
        "a file:///x/a 1 2026-12-01T00:00:00Z\na s3://b/a 1 2026-12-01T00:00:00Z\n"
    )
    result = subprocess.run(
        [tool("bash"), "-s"],
        input=health.node_program(
            health.remote_script("node-health.sh"), {"LIST_SNAPSHOTS": "true"}
        ),
        env={
            "PATH": "/usr/bin:/bin",
            "K3S_BIN": str(tmp_path / "k3s"),
            "REBOOT_REQUIRED": str(tmp_path / "none"),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert base64.b64decode(lines[0].split()[1]).decode() == certificate_check(NOW)
    assert lines[1:] == [
        "reboot-required no",
        "snapshot a 2026-12-01T00:00:00Z",
        "snapshots listed",
    ]
