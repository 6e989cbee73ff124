"""The mock engine: runs the real __main__.py on Pulumi's in-process mocks and records what it declares.

Config reaches the program as the Pulumi CLI hands it over: tools/cliconfig.py applies Pulumi.yaml
and Pulumi.<stack>.yaml (plus overrides, as if written into the stack file) and refuses what the CLI
refuses. Every resource registration is recorded with its inputs and options (parent, provider,
dependencies, protect, delete-before-replace, secret outputs, timeouts, aliases, …), and the stack
outputs are read back from the stack's own output registration, secrets marked. The mocks answer by
resource type and name, as the providers would after a successful create. `make plan` and the tests
both run the program through `run`; the SDK internals this needs live in tools/pulumi_sdk.py.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import json
import logging
import os
import re
import runpy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.errors import STACK_FILE_VARIABLE
from tools import cliconfig, pulumi_sdk
from tools.pulumi_sdk import Secret

PROJECT_DIR = Path(__file__).resolve().parent.parent

MOCK_ACCOUNT = "123456789012"
MOCK_STATIC_IP = "203.0.113.10"
# The shape of a Lightsail zone's NS records (aws-cli awscli/examples/lightsail/get-domain.rst).
MOCK_NAME_SERVERS = [
    "ns-1436.awsdns-51.org",
    "ns-137.awsdns-17.com",
    "ns-1710.awsdns-21.co.uk",
    "ns-692.awsdns-22.net",
]
MOCK_NODE_TOKEN = "K10" + "ab" * 32 + "::server:" + "cd" * 16
MOCK_BUCKET_ACCESS_KEY_ID = "AKIAMOCKBUCKETKEY000"
MOCK_BUCKET_SECRET_ACCESS_KEY = "mock/bucket+secret/key0000000000000000000"
# k3s issues client certificates for 365 days (docs.k3s.io/cli/certificate); tests shorten it.
CLIENT_CERTIFICATE_VALIDITY = datetime.timedelta(days=365)
# How long each node's certificates have left, by node name, where a test makes one expire sooner
# than CLIENT_CERTIFICATE_VALIDITY (a node not rotated since the others were).
NODE_CERTIFICATE_VALIDITY: dict[str, datetime.timedelta] = {}
# k3s' CAs are valid for 10 years (docs.k3s.io/cli/certificate).
CA_CERTIFICATE_VALIDITY = datetime.timedelta(days=3650)
MOCK_AGENT_SECRET = "ef" * 24
MOCK_AGENT_TOKEN = "K10" + "ab" * 32 + "::node:" + MOCK_AGENT_SECRET
# What the token controller writes into a service-account-token Secret: a JWT and the cluster's CA.
MOCK_SERVICE_ACCOUNT_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtb2NrIn0.bW9jaw"
SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"


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
    edit_config: Callable[[cliconfig.StackConfig], None] | None = None,
    config_file: Path | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Config as the CLI hands it to the program: {full key: text}, and the secret keys.

    Overrides are written into the stack's config first, as if in Pulumi.<stack>.yaml (None removes a key;
    keys may be --path keys), then `edit_config` may change it further, then the CLI's config step runs
    (tools/cliconfig.py) and raises as it would. `config_file` is the CLI's --config-file: the
    stack's config from that file instead of Pulumi.<stack>.yaml.
    """
    project = cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml")
    stack_file = config_file or PROJECT_DIR / f"Pulumi.{stack}.yaml"
    if config_file is not None and not config_file.is_file():
        raise StackNotFound(f"no config file {config_file}")
    if not stack_file.exists():
        known = cliconfig.stack_names(PROJECT_DIR)
        raise StackNotFound(
            f"no stack file {stack_file.name}; stacks with a file: {', '.join(known)}"
        )
    config = cliconfig.StackConfig.load(project, stack_file)
    for source, secret in ((overrides or {}, False), (secret_overrides or {}, True)):
        for key, value in source.items():
            if value is None:
                config.remove(key)
            else:
                config.set_structure(key, _secret_leaves(value) if secret else value)
    if edit_config is not None:
        edit_config(config)
    cliconfig.apply_project_config(stack, project, config)
    return config.for_program(), config.secret_keys()


def plain(value: Any) -> Any:
    """The value with its secrets revealed."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, dict):
        return {key: plain(member) for key, member in value.items()}
    if isinstance(value, list):
        return [plain(member) for member in value]
    return value


def holds_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(holds_secret(member) for member in value.values())
    if isinstance(value, list):
        return any(holds_secret(member) for member in value)
    return False


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
    # False: the program left the replacement order to the provider (see pulumi_sdk.ResourceRequest).
    delete_before_replace_defined: bool
    additional_secret_outputs: list[str]
    protect: bool
    custom_timeouts: dict[str, str]
    # Each alias as sent to the engine: {"urn": …} or the fields its spec sets (name, type, parentUrn, …).
    aliases: list[dict[str, Any]] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    deleted_with: str = ""
    replace_with: list[str] = field(default_factory=list)
    remote: bool = False
    # Which resources each input's value came from, as the SDK reports them to the engine.
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    # The inputs as sent, secret values wrapped in pulumi_sdk.Secret.
    sent_inputs: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def _registration(request: pulumi_sdk.ResourceRequest, state: dict[str, Any]) -> Registration:
    return Registration(
        type=request.type,
        name=request.name,
        urn=request.urn,
        parent=request.parent,
        custom=request.custom,
        provider=request.provider,
        inputs=plain(request.inputs),
        secret_inputs={key for key, value in request.inputs.items() if holds_secret(value)},
        dependencies=list(request.dependencies),
        delete_before_replace=request.delete_before_replace,
        delete_before_replace_defined=request.delete_before_replace_defined,
        additional_secret_outputs=list(request.additional_secret_outputs),
        protect=request.protect,
        custom_timeouts=dict(request.custom_timeouts),
        aliases=list(request.aliases),
        ignore_changes=list(request.ignore_changes),
        replace_on_changes=list(request.replace_on_changes),
        retain_on_delete=request.retain_on_delete,
        deleted_with=request.deleted_with,
        replace_with=list(request.replace_with),
        remote=request.remote,
        property_dependencies={
            key: list(urns) for key, urns in request.property_dependencies.items()
        },
        sent_inputs=request.inputs,
        state=state,
    )


@dataclass
class StackOutput:
    value: Any
    secret: bool
    # The value as sent, secret parts wrapped in pulumi_sdk.Secret.
    sent: Any = None


@dataclass
class Deployment:
    """What one run of the program declared, in registration order, and its stack outputs."""

    stack: str
    config: dict[str, str]
    secret_keys: list[str]
    resources: list[Registration]
    outputs: dict[str, StackOutput]
    # What the program logged with pulumi.log.warn.
    warnings: list[str] = field(default_factory=list)
    # Stacks the program read through a StackReference.
    stack_references: list[str] = field(default_factory=list)


def _ip_for(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"203.0.113.{10 + digest[0] % 200}"


@functools.lru_cache(maxsize=8)
def client_certificate_pem(not_valid_after: datetime.datetime) -> bytes:
    """A real self-signed X.509 client certificate shaped like k3s' admin certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "system:admin"),
        ]
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


def _today() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def client_certificate_expiry() -> datetime.datetime:
    """When the sample kubeconfig's certificate expires: CLIENT_CERTIFICATE_VALIDITY from today (whole days)."""
    return _today() + CLIENT_CERTIFICATE_VALIDITY


def node_certificate_expiry(node_name: str) -> datetime.datetime:
    """When node `node_name`'s earliest certificate expires (whole days from today)."""
    return _today() + NODE_CERTIFICATE_VALIDITY.get(node_name, CLIENT_CERTIFICATE_VALIDITY)


def certificate_check_json(node_name: str) -> str:
    """What `k3s certificate check --output json` prints on the node: each file's leaf, then its CA
    (k3s pkg/cli/cert/cert.go, JSONFormatter; Go writes times as RFC 3339, durations in ns)."""
    ca_expiry = _today() + CA_CERTIFICATE_VALIDITY
    leaf_expiry = node_certificate_expiry(node_name)
    now = datetime.datetime.now(datetime.UTC)

    def listed(filename, subject, issuer, usages, expiry):
        return {
            "Filename": filename,
            "Subject": subject,
            "Issuer": issuer,
            "Usages": usages,
            "ExpiryTime": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ResidualTime": int((expiry - now).total_seconds() * 1e9),
            "Status": "OK",
        }

    certificates = []
    for filename, subject in (
        ("client-kubelet.crt", f"system:node:{node_name}"),
        ("client-kube-proxy.crt", "system:kube-proxy"),
    ):
        certificates.append(
            listed(filename, subject, "k3s-client-ca@1700000000", ["ClientAuth"], leaf_expiry)
        )
        certificates.append(
            listed(
                filename,
                "k3s-client-ca@1700000000",
                "k3s-client-ca@1700000000",
                ["CertSign"],
                ca_expiry,
            )
        )
    return json.dumps({"Certificates": certificates}) + "\n"


def static_ip_for(resource_name: str) -> str:
    """The first server's static IP is MOCK_STATIC_IP; a further server's or an agent's has its own."""
    host = resource_name.removesuffix("-attachment").removesuffix("-ip")
    if not re.search(r"-(server|agent)-\d+$", host):
        return MOCK_STATIC_IP
    digest = hashlib.sha256(host.encode()).digest()
    return f"198.51.100.{10 + digest[0] % 200}"


def private_ip_for(instance_name: str) -> str:
    """Each instance its own address in Lightsail's private range."""
    digest = hashlib.sha256(instance_name.encode()).digest()
    return f"172.26.{digest[0]}.{10 + digest[1] % 200}"


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
                    "cluster": {
                        "certificate-authority-data": "bW9jay1jYQ==",
                        "server": "https://127.0.0.1:6443",
                    },
                }
            ],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
            "current-context": "default",
            "users": [
                {
                    "name": "default",
                    "user": {
                        "client-certificate-data": certificate,
                        "client-key-data": "bW9jay1rZXk=",
                    },
                }
            ],
        },
        sort_keys=False,
    )


# Each answer is given what precedes the suffix: the node's (or zone's) name.
COMMAND_STDOUT_BY_NAME_SUFFIX: dict[str, Callable[[str], str]] = {
    "-read-kubeconfig": lambda _: sample_k3s_kubeconfig(),
    "-read-node-token": lambda _: MOCK_NODE_TOKEN + "\n",
    "-read-agent-token": lambda _: MOCK_AGENT_TOKEN + "\n",
    "-read-certificate-expiry": certificate_check_json,
    # DnsZone's local command: `aws lightsail get-domain … --output json`.
    "-name-servers": lambda _: json.dumps(MOCK_NAME_SERVERS),
}


def _command_stdout(name: str) -> str:
    return next(
        (
            stdout(name.removesuffix(suffix))
            for suffix, stdout in COMMAND_STDOUT_BY_NAME_SUFFIX.items()
            if name.endswith(suffix)
        ),
        "",
    )


class LightsailMocks(pulumi_sdk.Mocks):
    """Answers as the providers would after a successful create."""

    def __init__(
        self,
        region: str,
        previous_outputs: Mapping[str, Any] | None = None,
        commands_run: bool = True,
        untargeted: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.region = region
        self.previous_outputs = dict(previous_outputs or {})
        # Resource name → the state it kept: what the engine answers for a resource an
        # `up --target` leaves out, its old state (pulumi/pulumi#3251: a `same` step).
        self.untargeted = dict(untargeted or {})
        self.commands_run = commands_run
        self.stack_references: list[str] = []

    def new_resource(self, args: pulumi_sdk.MockResourceArgs):
        inputs = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            # Every reference reads this stack's previous deployment, the only one the program
            # refers to; empty, as the engine answers for a stack never deployed.
            self.stack_references.append(inputs["name"])
            return inputs["name"], {
                "name": inputs["name"],
                "outputs": self.previous_outputs,
                "secretOutputNames": [],
            }
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
                privateIpAddress=private_ip_for(args.name),
                publicIpAddress=_ip_for(args.name),
                username="admin" if blueprint.startswith("debian") else "ubuntu",
            )
        elif args.typ in (
            "aws:lightsail/staticIp:StaticIp",
            "aws:lightsail/staticIpAttachment:StaticIpAttachment",
        ):
            state.update(arn=arn, ipAddress=static_ip_for(args.name))
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = MOCK_AGENT_SECRET
        elif args.typ in (
            "aws:lightsail/keyPair:KeyPair",
            "aws:lightsail/domain:Domain",
            "aws:lightsail/disk:Disk",
        ):
            state.update(arn=arn)
        elif args.typ == "aws:lightsail/bucket:Bucket":
            state.update(
                arn=arn, region=self.region, url=f"https://{name}.s3.{self.region}.amazonaws.com/"
            )
        elif args.typ == "aws:lightsail/bucketAccessKey:BucketAccessKey":
            state.update(
                accessKeyId=MOCK_BUCKET_ACCESS_KEY_ID,
                secretAccessKey=MOCK_BUCKET_SECRET_ACCESS_KEY,
                status="Active",
            )
        elif args.typ in ("command:remote:Command", "command:local:Command") and self.commands_run:
            # Answered by name, whatever the command line: K3sServer names its reads
            # <server>-read-<what>, DnsZone its query <zone>-name-servers.
            state["stdout"] = _command_stdout(args.name)
            state["stderr"] = ""
        elif args.typ.startswith("kubernetes:"):
            metadata = dict(inputs.get("metadata") or {})
            metadata.setdefault("name", f"{args.name}-a1b2c3d")
            state["metadata"] = metadata
            if (
                args.typ == "kubernetes:core/v1:Secret"
                and inputs.get("type") == SERVICE_ACCOUNT_TOKEN_TYPE
                and self.commands_run
            ):
                # pulumi-kubernetes counts such a Secret created once the token controller has
                # filled in its data, and returns that object (provider/pkg/await/awaiters.go,
                # untilCoreV1SecretInitialized). In a first preview the data is absent: unknown.
                state["data"] = {
                    "token": base64.b64encode(MOCK_SERVICE_ACCOUNT_TOKEN.encode()).decode(),
                    "ca.crt": base64.b64encode(b"mock CA").decode(),
                    "namespace": base64.b64encode(metadata.get("namespace", "").encode()).decode(),
                }
        if args.name in self.untargeted:
            state = {**state, **self.untargeted[args.name]}
        return f"{args.name}-id", state

    def call(self, args: pulumi_sdk.MockCallArgs):
        return {}, None


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
    declared: list[Registration] | None = None,
    edit_config: Callable[[cliconfig.StackConfig], None] | None = None,
    previous_outputs: Mapping[str, Any] | None = None,
    reads: list[tuple[str, str]] | None = None,
    first_preview: bool = False,
    config_file: Path | None = None,
    untargeted: Mapping[str, Mapping[str, Any]] | None = None,
) -> Deployment:
    """Evaluates __main__.py for `stack`; raises what the CLI (CliConfigError) or the program (ConfigError) raises.

    `first_preview`: a preview of a stack with no command run yet, so no command's output is
    known: pulumi-command's Create returns in a preview before running anything
    (provider/pkg/provider/remote/commandController.go), and the SDK resolves an output the
    engine did not return as unknown in a preview (sdk/python/lib/pulumi/runtime/rpc.py,
    resolve_properties). A plain `preview` answers as a stack whose commands have run.

    `declared`, when given, receives each registration as it happens, so a caller sees what was
    declared before an error too; `reads`, when given, the type and name of each resource read
    (a StackReference is one). `previous_outputs` are the outputs of the stack's last
    deployment, as a StackReference to the stack reads them. `untargeted`: resources an
    `up --target` leaves out, by name, with the state the engine answers for them (their old one).
    """
    config, secret_keys = stack_config(stack, overrides, secret_overrides, edit_config, config_file)
    registrations: list[Registration] = [] if declared is None else declared
    outputs: dict[str, StackOutput] = {}

    def on_resource(request: pulumi_sdk.ResourceRequest, state: dict[str, Any]) -> None:
        registrations.append(_registration(request, state))

    def on_stack_outputs(sent: dict[str, Any]) -> None:
        outputs.clear()
        outputs.update(
            {
                key: StackOutput(plain(value), holds_secret(value), value)
                for key, value in sent.items()
            }
        )

    mocks = LightsailMocks(
        config.get("aws:region", "us-east-1"),
        previous_outputs,
        commands_run=not first_preview,
        untargeted=untargeted,
    )
    monitor = pulumi_sdk.RecordingMonitor(
        mocks,
        on_resource,
        on_stack_outputs,
        None if reads is None else lambda type_, name: reads.append((type_, name)),
    )
    warnings = _WarningRecorder()
    logger = logging.getLogger(f"{__name__}.program")
    logger.addHandler(warnings)
    saved_environ = dict(os.environ)
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if config_file is not None:
        # The program's checks of the stack file itself read this file too (components/settings.py).
        os.environ[STACK_FILE_VARIABLE] = str(config_file.resolve())
    sys.path.insert(0, str(PROJECT_DIR))
    try:
        pulumi_sdk.run_program(
            lambda: runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__"),
            monitor,
            project=project_name(),
            stack=stack,
            preview=preview or first_preview,
            config=config,
            secret_keys=secret_keys,
            logger=logger,
        )
    finally:
        logger.removeHandler(warnings)
        sys.path.remove(str(PROJECT_DIR))
        os.environ.clear()
        os.environ.update(saved_environ)
    return Deployment(
        stack,
        config,
        secret_keys,
        list(registrations),
        outputs,
        warnings.messages,
        mocks.stack_references,
    )
