"""Runs the real __main__.py on Pulumi's in-process mock engine.

Config is built the way the Pulumi CLI builds it: Pulumi.yaml defaults, then
Pulumi.<stack>.yaml, then overrides. Every resource registration is recorded
with its options (parent, provider, dependencies, delete-before-replace,
secret outputs, timeouts) and the stack outputs are read back from the stack's
own output registration, secrets marked. Tests and `make plan` both use this.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import functools
import hashlib
import logging
import os
import runpy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import set_root_resource
from pulumi.runtime.stack import run_in_stack

from tools import cliconfig

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACK_TYPE = "pulumi:pulumi:Stack"

MOCK_ACCOUNT = "123456789012"
MOCK_STATIC_IP = "203.0.113.10"
MOCK_PRIVATE_IP = "172.26.10.20"
MOCK_NODE_TOKEN = "K10" + "ab" * 32 + "::server:" + "cd" * 16
MOCK_BUCKET_ACCESS_KEY_ID = "AKIAMOCKBUCKETKEY000"
MOCK_BUCKET_SECRET_ACCESS_KEY = "mock/bucket+secret/key0000000000000000000"
# k3s issues client certificates for 365 days (docs.k3s.io/cli/certificate); tests shorten it.
CLIENT_CERTIFICATE_VALIDITY = datetime.timedelta(days=365)


class StackNotFound(Exception):
    pass


def _secret_leaves(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _secret_leaves(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_secret_leaves(member) for member in value]
    return cliconfig.Secure(value if isinstance(value, str) else cliconfig.go_json(value))


def project_name() -> str:
    return cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml").name


def stack_config(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    secret_overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Config as the CLI hands it to the program: {full key: text}, and the secret keys.

    Overrides are written into the stack's config first, as if in Pulumi.<stack>.yaml (None removes a key;
    keys may be --path keys), then the CLI's config step runs (tools/cliconfig.py) and raises as it would.
    """
    project = cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml")
    stack_file = PROJECT_DIR / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        known = cliconfig.stack_names(PROJECT_DIR)
        raise StackNotFound(f"no stack file {stack_file.name}; stacks with a file: {', '.join(known)}")
    config = cliconfig.StackConfig.load(project, stack_file)
    for source, secret in ((overrides or {}, False), (secret_overrides or {}, True)):
        for key, value in source.items():
            if value is None:
                config.remove(key)
            else:
                config.set_structure(key, _secret_leaves(value) if secret else value)
    cliconfig.apply_project_config(stack, project, config)
    return config.for_program(), config.secret_keys()


def _walk_secrets(value: Any, secret_leaf: Callable[[Any], tuple[Any, bool] | None]) -> tuple[Any, bool]:
    """Rebuilds dicts and lists, letting `secret_leaf` replace leaves; says whether any leaf was secret."""
    replaced = secret_leaf(value)
    if replaced is not None:
        return replaced
    if isinstance(value, dict):
        pairs = {key: _walk_secrets(item, secret_leaf) for key, item in value.items()}
        return {key: item for key, (item, _) in pairs.items()}, any(secret for _, secret in pairs.values())
    if isinstance(value, list):
        pairs = [_walk_secrets(item, secret_leaf) for item in value]
        return [item for item, _ in pairs], any(secret for _, secret in pairs)
    return value, False


def _unwrap_leaf(leaf: Any) -> tuple[Any, bool] | None:
    if rpc.is_rpc_secret(leaf):
        return _unwrap(leaf["value"])[0], True
    if isinstance(leaf, float) and leaf.is_integer():
        # The RPC layer carries every number as a double; JSON (and the CLI) show whole numbers as integers.
        return int(leaf), False
    return None


def _unwrap(value: Any) -> tuple[Any, bool]:
    """Removes RPC secret wrappers; says whether the value held a secret anywhere."""
    return _walk_secrets(value, _unwrap_leaf)


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    provider: str
    inputs: dict[str, Any]
    secret_inputs: set[str]
    dependencies: list[str]
    delete_before_replace: bool
    additional_secret_outputs: list[str]
    protect: bool
    custom_timeouts: dict[str, str]
    # Each alias as sent to the engine: {"urn": …} or the fields its spec sets (name, type, parentUrn, …).
    aliases: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class StackOutput:
    value: Any
    secret: bool


@dataclass
class Deployment:
    resources: list[Registration]
    outputs: dict[str, StackOutput]
    # What the program logged with pulumi.log.warn.
    warnings: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {[r.name for r in found]}")
        return found[0]

    def named(self, name: str) -> Registration:
        for registration in self.resources:
            if registration.name == name:
                return registration
        raise AssertionError(f"no resource named {name}; have {[r.name for r in self.resources]}")

    def ancestors(self, registration: Registration) -> list[Registration]:
        by_urn = {r.urn: r for r in self.resources}
        chain = []
        while registration.parent in by_urn:
            registration = by_urn[registration.parent]
            chain.append(registration)
        return chain

    def depends_on(self, dependent: Registration, dependency: Registration) -> bool:
        """True when `dependent` waits for `dependency`, directly, through a component or via inputs."""
        by_urn = {r.urn: r for r in self.resources}
        targets = {dependency.urn} | {r.urn for r in self.resources if dependency in self.ancestors(r)}
        seen: set[str] = set()
        frontier = [dependent]
        while frontier:
            for urn in frontier.pop().dependencies:
                if urn in targets:
                    return True
                if urn not in seen and urn in by_urn:
                    seen.add(urn)
                    frontier.append(by_urn[urn])
        return False


def _ip_for(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"203.0.113.{10 + digest[0] % 200}"


@functools.lru_cache(maxsize=8)
def client_certificate_pem(not_valid_after: datetime.datetime) -> bytes:
    """A real self-signed X.509 client certificate shaped like k3s' admin certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"), x509.NameAttribute(NameOID.COMMON_NAME, "system:admin")]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_valid_after - datetime.timedelta(days=365))
        .not_valid_after(not_valid_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def client_certificate_expiry() -> datetime.datetime:
    """When the sample kubeconfig's certificate expires: CLIENT_CERTIFICATE_VALIDITY from today (whole days)."""
    today = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + CLIENT_CERTIFICATE_VALIDITY


def sample_k3s_kubeconfig() -> str:
    """The shape k3s writes to /etc/rancher/k3s/k3s.yaml (server at 127.0.0.1, names `default`)."""
    certificate = base64.b64encode(client_certificate_pem(client_certificate_expiry())).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [
                {
                    "name": "default",
                    "cluster": {"certificate-authority-data": "bW9jay1jYQ==", "server": "https://127.0.0.1:6443"},
                }
            ],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
            "current-context": "default",
            "users": [{"name": "default", "user": {"client-certificate-data": certificate, "client-key-data": "bW9jay1rZXk="}}],
        },
        sort_keys=False,
    )


class LightsailMocks(pulumi_mocks.Mocks):
    """Answers as the providers would after a successful create."""

    def __init__(self, region: str):
        self.region = region

    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        inputs = dict(args.inputs)
        name = inputs.get("name") or f"{args.name}-a1b2c3d"
        state = {**inputs, "name": name}
        resource_id = hashlib.md5(args.name.encode()).hexdigest()
        arn = f"arn:aws:lightsail:{self.region}:{MOCK_ACCOUNT}:{args.typ.rsplit(':', 1)[-1]}/{resource_id}"
        if args.typ == "tls:index/privateKey:PrivateKey":
            state.update(
                privateKeyOpenssh="-----BEGIN OPENSSH PRIVATE KEY-----\nbW9jaw==\n-----END OPENSSH PRIVATE KEY-----\n",
                publicKeyOpenssh="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockMockMockMockMockMockMockMockMockMock\n",
            )
        elif args.typ == "aws:lightsail/instance:Instance":
            blueprint = inputs.get("blueprintId", "")
            state.update(
                arn=arn,
                privateIpAddress=MOCK_PRIVATE_IP,
                publicIpAddress=_ip_for(args.name),
                username="admin" if blueprint.startswith("debian") else "ubuntu",
            )
        elif args.typ in ("aws:lightsail/staticIp:StaticIp", "aws:lightsail/staticIpAttachment:StaticIpAttachment"):
            state.update(arn=arn, ipAddress=MOCK_STATIC_IP)
        elif args.typ == "aws:lightsail/keyPair:KeyPair":
            state.update(arn=arn)
        elif args.typ == "aws:lightsail/bucket:Bucket":
            state.update(arn=arn, region=self.region, url=f"https://{name}.s3.{self.region}.amazonaws.com/")
        elif args.typ == "aws:lightsail/bucketAccessKey:BucketAccessKey":
            state.update(accessKeyId=MOCK_BUCKET_ACCESS_KEY_ID, secretAccessKey=MOCK_BUCKET_SECRET_ACCESS_KEY, status="Active")
        elif args.typ == "command:remote:Command":
            create = inputs.get("create", "")
            if "k3s.yaml" in create:
                state["stdout"] = sample_k3s_kubeconfig()
            elif "node-token" in create:
                state["stdout"] = MOCK_NODE_TOKEN + "\n"
            else:
                state["stdout"] = ""
            state["stderr"] = ""
        elif args.typ.startswith("kubernetes:"):
            metadata = dict(inputs.get("metadata") or {})
            metadata.setdefault("name", f"{args.name}-a1b2c3d")
            state["metadata"] = metadata
        return f"{args.name}-id", state

    def call(self, args: pulumi_mocks.MockCallArgs):
        return {}, None


def _alias(alias: Any) -> dict[str, Any]:
    if alias.urn:
        return {"urn": alias.urn}
    return {field.json_name: value for field, value in alias.spec.ListFields() if value}


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi_mocks.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, StackOutput] | None = None

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == STACK_TYPE:
            return response
        raw_inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        inputs, _ = _unwrap(raw_inputs)
        secret_inputs = {key for key, value in raw_inputs.items() if _unwrap(value)[1]}
        timeouts = request.customTimeouts
        self.registrations.append(
            Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                custom=request.custom,
                provider=request.provider,
                inputs=inputs,
                secret_inputs=secret_inputs,
                dependencies=list(request.dependencies),
                delete_before_replace=request.deleteBeforeReplace,
                additional_secret_outputs=list(request.additionalSecretOutputs),
                protect=request.protect,
                custom_timeouts={
                    k: v for k, v in (("create", timeouts.create), ("update", timeouts.update), ("delete", timeouts.delete)) if v
                },
                aliases=[_alias(alias) for alias in request.aliases],
                state=self.resources[response.urn].state if response.urn in self.resources else {},
            )
        )
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn.split("::")[2] == STACK_TYPE:
            raw = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
            self.stack_outputs = {}
            for key, value in raw.items():
                plain, secret = _unwrap(value)
                self.stack_outputs[key] = StackOutput(plain, secret)
        return super().RegisterResourceOutputs(request)


class _WarningRecorder(logging.Handler):
    """Collects what the program logs at WARNING (the mock engine hands pulumi.log to a logger)."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run(
    stack: str = "dev",
    overrides: Mapping[str, Any] | None = None,
    secret_overrides: Mapping[str, Any] | None = None,
    preview: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Deployment:
    """Evaluates __main__.py for `stack`; raises what the program raises (ConfigError for bad config)."""
    config, secret_keys = stack_config(stack, overrides, secret_overrides)
    project = project_name()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    monitor = RecordingMonitor(LightsailMocks(config.get("aws:region", "us-east-1")))
    warnings = _WarningRecorder()
    logger = logging.getLogger(f"{__name__}.program")
    logger.addHandler(warnings)
    pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor, logger=logger)
    # set_mocks registers a finished root stack of its own; the program gets a fresh one,
    # as under the CLI, so its exports arrive through the stack's output registration.
    set_root_resource(None)
    pulumi.runtime.set_all_config(config, secret_keys)

    saved_environ = dict(os.environ)
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    sys.path.insert(0, str(PROJECT_DIR))
    try:
        loop.run_until_complete(run_in_stack(lambda: runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")))
    finally:
        sys.path.remove(str(PROJECT_DIR))
        os.environ.clear()
        os.environ.update(saved_environ)
        loop.close()
        asyncio.set_event_loop(None)
        logger.removeHandler(warnings)
    return Deployment(monitor.registrations, monitor.stack_outputs or {}, warnings.messages)
