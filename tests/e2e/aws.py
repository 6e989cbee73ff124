"""What the end-to-end tests share: their prerequisites, a throwaway stack, and HTTPS to the cluster.

They create billed AWS resources for a few minutes, so they never run in `make test` (pyproject.toml
keeps tests/e2e out of its collection); `make e2e` runs them, or skips them naming what is missing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi import automation as auto

from tests.helpers import PROJECT_DIR

CONSUMER_DIR = PROJECT_DIR / "examples" / "consumer"
REGION = os.environ.get("AWS_REGION", "ap-northeast-2")
PASSPHRASE = "e2e-throwaway"
# The app test_cluster.py deploys, so appUrl has something to answer.
DEMO_APP = {
    "name": "whoami",
    "image": "traefik/whoami:v1.11.0",
    "port": 80,
    "healthPath": "/health",
}
# Outputs the Automation API reports as secret: it marks an output secret when `pulumi stack output
# --json` prints it as "[secret]" (sdk/python/lib/pulumi/automation/_local_workspace.py,
# stack_outputs), which the CLI does for a value that is a secret as a whole (pulumi/pulumi
# pkg/backend/display/json.go, MassageSecrets); a secret nested in an object would not count.
SECRET_OUTPUTS = frozenset({"kubeconfig", "consumerKubeconfigs", "nodeToken", "sshPrivateKey"})
# The dev stack's consumer (Pulumi.dev.yaml), whose kubeconfig examples/consumer deploys with.
DEV_CONSUMERS = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"][
    "lightsail-k3s:consumers"
]

# A preview counts each resource whose step is `same` as "same", but a read only when what it read
# differs from the copy in the checkpoint (pulumi/pulumi pkg/engine/update.go,
# previewActions.OnResourceStepPost and shouldRecordReadStep). The program reads one resource: the
# version gate's StackReference to the stack's own outputs (components/k3s.py, previous_deployment).
# During an `up` it reads the outputs of the `up` before, so the preview after an `up` that changed
# an output (the first `up` always: it read none, pkg/backend/diy/state.go getSnapshotStackOutputs)
# reads outputs its stored copy lacks and reports
# {"same": n, "read": 1}. A read changes nothing, and `pulumi preview --expect-no-changes` ignores
# reads too (engine.HasChanges, same file; pkg/cmd/pulumi/operations/preview.go).
SELF_READS = 1


def unexpected_changes(change_summary: Mapping[str, int]) -> dict[str, int]:
    """What a preview's `change_summary` reports beyond `same` and the version gate's one read:
    empty when the preview leaves the stack as it is."""
    changes = {
        op: count for op, count in change_summary.items() if count and op not in ("same", "read")
    }
    if change_summary.get("read", 0) > SELF_READS:
        changes["read"] = change_summary["read"]
    return changes


# How long each `pulumi up` of the suite took, in order: (what it did, seconds). The suite prints
# them when it ends (tests/e2e/conftest.py), so a run on AWS measures create time by cluster size.
PHASES: list[tuple[str, float]] = []


def timed_up(stack: Any, phase: str) -> auto.UpResult:
    """`stack.up()`, its output printed, and its duration recorded in PHASES as `phase`."""
    started = time.monotonic()
    try:
        return stack.up(on_output=print)
    finally:
        elapsed = time.monotonic() - started
        PHASES.append((phase, elapsed))
        print(f"phase {phase}: {elapsed:.0f} s")


def phase_report(phases: list[tuple[str, float]]) -> list[str]:
    """PHASES as the lines the suite prints at its end."""
    return [f"{seconds:7.0f} s  {phase}" for phase, seconds in phases]


def missing_prerequisite() -> str | None:
    if shutil.which("pulumi") is None:
        return "the Pulumi CLI is not installed (curl -fsSL https://get.pulumi.com | sh)"
    home = Path.home()
    if not (
        os.environ.get("AWS_ACCESS_KEY_ID")
        or os.environ.get("AWS_PROFILE")
        or os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        or (home / ".aws" / "credentials").exists()
        or (home / ".aws" / "config").exists()
    ):
        return "no AWS credentials (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    return None


def requires_aws(*commands: str) -> pytest.MarkDecorator:
    """Skips a module, naming what is missing: the Pulumi CLI, AWS credentials, or one of `commands`."""
    missing = missing_prerequisite() or next(
        (f"{command} is not installed" for command in commands if shutil.which(command) is None),
        None,
    )
    return pytest.mark.skipif(missing is not None, reason=missing or "")


def fetch(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30, context=context) as response:
        return response.status, response.read().decode()


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 600, interval: float = 10
) -> Any:
    """Polls `check` until it returns something truthy; fails naming `what` and the last error."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, urllib.error.URLError, KeyError, ValueError) as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}; last error: {last_error}"
    )


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


def kube_get(outputs: dict, path: str) -> Any:
    """GET on the Kubernetes API with the kubeconfig output's own certificates; the JSON body."""
    kubeconfig = yaml.safe_load(outputs["kubeconfig"].value)
    with tempfile.TemporaryDirectory() as cert_dir:
        status, body = fetch(
            outputs["kubeApiUrl"].value + path, tls_context_from(kubeconfig, Path(cert_dir))
        )
    assert status == 200, (path, status)
    return json.loads(body)


def token_status(kubeconfig_yaml: str, path: str) -> int:
    """The HTTP status of a GET on the API with a token kubeconfig (a consumer's): 200, 403, …"""
    kubeconfig = yaml.safe_load(kubeconfig_yaml)
    cluster = kubeconfig["clusters"][0]["cluster"]
    context = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    request = urllib.request.Request(
        cluster["server"] + path,
        headers={"Authorization": f"Bearer {kubeconfig['users'][0]['user']['token']}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@contextlib.contextmanager
def throwaway_backend() -> Iterator[dict[str, str]]:
    """A file backend of its own, so nothing touches the user's stacks; StackReferences resolve within it."""
    with tempfile.TemporaryDirectory() as state_dir:
        yield {"PULUMI_BACKEND_URL": f"file://{state_dir}", "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}


def throwaway_stack_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def throwaway_cluster(prefix: str, backend: dict[str, str], **config: str) -> Iterator[auto.Stack]:
    """A new stack of this project in `backend`, not yet up: region REGION, this machine's public
    address as its only adminCidrs, `protect` off so it can be destroyed, and `config` (values as
    `pulumi config set` takes them). Destroyed and forgotten afterwards, pass or fail."""
    stack = auto.create_stack(
        throwaway_stack_name(prefix),
        work_dir=str(PROJECT_DIR),
        opts=auto.LocalWorkspaceOptions(env_vars=backend),
    )
    try:
        _, my_ip = fetch("https://checkip.amazonaws.com")
        stack.set_config("adminCidrs[0]", auto.ConfigValue(f"{my_ip.strip()}/32"), path=True)
        # protect is on by default; a throwaway stack must be destroyable.
        settings = {"aws:region": REGION, "protect": "false", **config}
        stack.set_all_config({key: auto.ConfigValue(value) for key, value in settings.items()})
        yield stack
    finally:
        remove_stack(stack, PROJECT_DIR)


def remove_stack(stack: auto.Stack, work_dir: Path) -> None:
    """Destroys the stack's resources, forgets the stack and removes the stack file the CLI wrote."""
    try:
        stack.destroy(on_output=print)
    finally:
        stack.workspace.remove_stack(stack.name)
        (work_dir / f"Pulumi.{stack.name}.yaml").unlink(missing_ok=True)


# Each phase of a node's (re)creation, by the suffix of the resource whose step spans it
# (components/host.py, k3s.py): the instance, its first boot, the data disk's attach and mount,
# and the k3s install with its Ready wait, which a server's install ends with (install-k3s-server.sh),
# then the reads of the kubeconfig and tokens from the Ready server.
NODE_PHASES = {
    "instance": ("-instance",),
    "boot": ("-wait-for-boot",),
    "disk": ("-data-attachment", "-data-mount"),
    "install to Ready": ("-install",),
    "reads after Ready": ("-read-kubeconfig", "-read-node-token", "-read-agent-token"),
}


def phase_durations(events: Iterable[auto.EngineEvent], node: str) -> dict[str, int]:
    """Seconds each phase of `node` took, from the engine's events: from a resource's step starting
    (ResourcePreEvent) to its outputs (ResOutputsEvent), summed over the phase's resources. A
    phase whose steps did not run (nothing changed) is absent."""
    started: dict[str, int] = {}
    spans: dict[str, int] = {}
    for event in events:
        pre, done = event.resource_pre_event, event.res_outputs_event
        if pre is not None:
            started[pre.metadata.urn] = event.timestamp
        elif done is not None and done.metadata.urn in started:
            urn = done.metadata.urn
            spans[urn] = spans.get(urn, 0) + event.timestamp - started.pop(urn)
    durations: dict[str, int] = {}
    for phase, suffixes in NODE_PHASES.items():
        names = {f"{node}{suffix}" for suffix in suffixes}
        matched = [seconds for urn, seconds in spans.items() if urn.rsplit("::", 1)[-1] in names]
        if matched:
            durations[phase] = sum(matched)
    return durations
