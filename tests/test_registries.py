"""Private registries: `registries` checked, rendered into every node's install as k3s'
registries.yaml, secret everywhere else; and the node scripts that write it and restart k3s."""

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

from components import k3s, k3s_agent
from components.registries import Registry
from tests.helpers import (
    ADMIN_CIDR,
    COMMAND,
    PROJECT_DIR,
    deploy,
    install_settings,
    rejected,
)
from tests.node_stand_in import Node

GHCR_TOKEN = "ghp_registry-token-never-shown"
HUB_TOKEN = "dckr_pat_hub-token-never-shown"
REGISTRIES = {
    "ghcr.io": {"username": "gallery-bot", "password": GHCR_TOKEN},
    "docker.io": {
        "username": "gallery",
        "password": HUB_TOKEN,
        "mirror": "https://mirror.example.com:5000",
    },
}
# What k3s reads (docs.k3s.io/installation/private-registry): mirrors.<host>.endpoint and
# configs.<host>.auth, the credentials keyed by the host they are for.
EXPECTED_FILE = {
    "mirrors": {"docker.io": {"endpoint": ["https://mirror.example.com:5000"]}},
    "configs": {
        "ghcr.io": {"auth": {"username": "gallery-bot", "password": GHCR_TOKEN}},
        "docker.io": {"auth": {"username": "gallery", "password": HUB_TOKEN}},
    },
}
SERVERS = ("lightsail-k3s-dev", "lightsail-k3s-dev-server-2", "lightsail-k3s-dev-server-3")
AGENTS = ("lightsail-k3s-dev-agent-1", "lightsail-k3s-dev-agent-2")
NODES = SERVERS + AGENTS
CLUSTER = {"serverCount": 3, "agentCount": 2, "agentBundleId": "micro_3_0"}


def registries_file(install) -> str:
    assignments, _ = install_settings(install)
    return base64.b64decode(assignments["K3S_REGISTRIES_B64"]).decode()


@pytest.fixture(scope="module")
def cluster():
    return deploy(secrets={"registries": REGISTRIES}, config=CLUSTER)


def test_every_node_servers_and_agents_gets_the_registries_file_in_its_install(cluster):
    for node in NODES:
        install = cluster.named(f"{node}-install")
        text = registries_file(install)
        assert text.startswith(k3s.CONFIG_HEADER), node
        assert yaml.safe_load(text) == EXPECTED_FILE, node
        # Inside stdin only, which is secret: in the state, the plan and the logs.
        assert "stdin" in install.secret_inputs, node


def test_no_registry_credential_is_in_any_plain_input_or_output(cluster):
    for resource in cluster.resources:
        plain = {k: v for k, v in resource.inputs.items() if k not in resource.secret_inputs}
        text = json.dumps(plain, default=str)
        for secret in (GHCR_TOKEN, HUB_TOKEN, base64.b64encode(GHCR_TOKEN.encode()).decode()):
            assert secret not in text, resource.name
        assert "K3S_REGISTRIES_B64" not in text, resource.name
    for name, output in cluster.outputs.items():
        if not output.secret:
            assert GHCR_TOKEN not in json.dumps(output.value, default=str), name
    assert len(cluster.of_type(COMMAND)) > len(NODES)


def test_a_first_preview_carries_the_file_in_secret_stdin_only():
    preview = deploy(first_preview=True, secrets={"registries": REGISTRIES}, config=CLUSTER)
    for resource in preview.resources:
        plain = {k: v for k, v in resource.inputs.items() if k not in resource.secret_inputs}
        assert GHCR_TOKEN not in json.dumps(plain, default=str), resource.name
    first = preview.named(f"{SERVERS[0]}-install")
    assert "stdin" in first.secret_inputs


def test_without_registries_every_install_carries_an_empty_file():
    plain = deploy(config=CLUSTER)
    for node in NODES:
        assert registries_file(plain.named(f"{node}-install")) == "", node


def test_a_change_of_registries_changes_every_nodes_install_and_its_ready_wait(cluster):
    """A changed stdin is an update that runs the install again (components/membership.py); the
    join's stdin holds the install's digest, so each further node's Ready wait runs again too."""
    rotated = {**REGISTRIES, "ghcr.io": {"username": "gallery-bot", "password": "ghp_rotated"}}
    changed = deploy(secrets={"registries": rotated}, config=CLUSTER)
    for node in NODES:
        before, after = (d.named(f"{node}-install") for d in (cluster, changed))
        assert before.inputs["stdin"] != after.inputs["stdin"], node
        assert yaml.safe_load(registries_file(after))["configs"]["ghcr.io"]["auth"] == {
            "username": "gallery-bot",
            "password": "ghp_rotated",
        }
        # Still only triggered by the instance: a change updates in place, never replaces.
        assert before.inputs["triggers"] == after.inputs["triggers"], node
    for node in NODES[1:]:
        join = changed.named(f"{node}-join")
        digest = hashlib.sha256(changed.named(f"{node}-install").inputs["stdin"].encode())
        assert f"INSTALL_DIGEST={digest.hexdigest()}\n" in join.inputs["stdin"], node
        assert join.inputs["stdin"] != cluster.named(f"{node}-join").inputs["stdin"], node


def test_a_change_of_registries_restarts_the_nodes_one_at_a_time(cluster):
    """On a running cluster a changed registries.yaml restarts k3s on every node, so each node's
    install waits for the node before it (its join, or the first server's install), servers first;
    the restart digests read back from the previous deployment say which nodes change
    (components/rollout.py)."""
    rotated = {**REGISTRIES, "ghcr.io": {"username": "gallery-bot", "password": "ghp_rotated"}}
    previous = {key: output.value for key, output in cluster.outputs.items()}
    changed = deploy(secrets={"registries": rotated}, config=CLUSTER, previous_outputs=previous)
    for previous_node, node in zip(NODES, NODES[1:], strict=False):
        assert changed.depends_on(
            changed.named(f"{node}-install"), changed.named(f"{previous_node}-install")
        ), node
    assert changed.depends_on(
        changed.named(f"{NODES[2]}-install"), changed.named(f"{NODES[1]}-join")
    )


def test_make_plan_masks_the_registries(tmp_path):
    secret = (
        f"'registries[\"ghcr.io\"].username=bot' 'registries[\"ghcr.io\"].password={GHCR_TOKEN}'"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "--out", str(tmp_path)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "PLAN_SECRET": secret, "PLAN_SET": f'adminCidrs=["{ADMIN_CIDR}"]'},
    )
    assert result.returncode == 0, result.stderr
    assert GHCR_TOKEN not in result.stdout + result.stderr
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written
    for path in written:
        assert GHCR_TOKEN not in path.read_text(), path
    document = json.loads((tmp_path / "dev" / "plan.json").read_text())
    assert document["config"]["lightsail-k3s:registries"] == "[secret]"


# --- refusals, each naming the key --------------------------------------------------------------


def test_registries_stored_in_plain_text_are_refused():
    message = rejected("registries", "is stored in plain text", registries=REGISTRIES)
    assert GHCR_TOKEN not in message


@pytest.fixture
def stack_with_a_plain_registry_value():
    """A stack file whose registries mixes encrypted values and one added later without --secret."""
    path = PROJECT_DIR / "Pulumi.mixed-registries.yaml"
    config = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())
    config["config"]["lightsail-k3s:registries"] = {
        "ghcr.io": {"username": {"secure": "v1:abc"}, "password": "ghp_plain-hunter2"}
    }
    path.write_text(yaml.safe_dump(config))
    yield "mixed-registries"
    path.unlink()


def test_every_registry_value_is_encrypted_in_the_stack_file(stack_with_a_plain_registry_value):
    message = rejected(
        "registries",
        'registries["ghcr.io"].password is stored in plain text in the stack file',
        "pulumi config set --secret --path 'registries[\"ghcr.io\"].password'",
        stack=stack_with_a_plain_registry_value,
    )
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("https://ghcr.io", "is not a registry host"),
        ("ghcr.io/acme", "is not a registry host"),
        # No dot and no port: an image's first component then names a Docker Hub namespace.
        ("ghcr", "is not a registry host"),
        ("GHCR.io", "is not a registry host"),
        ("registry.example.com:99999", "is not a registry host"),
        ("*", "is not a registry host"),
        ("index.docker.io", "Docker Hub is docker.io"),
    ],
)
def test_a_host_that_is_not_a_registry_host_is_refused(host, problem):
    message = rejected(
        "registries",
        f'registries["{host}"]',
        problem,
        secrets={"registries": {host: {"username": "u", "password": GHCR_TOKEN}}},
    )
    assert GHCR_TOKEN not in message


@pytest.mark.parametrize("host", ["registry.example.com:5000", "localhost:5000", "10.0.0.5:5000"])
def test_hosts_with_a_port_are_registry_hosts(host):
    deployment = deploy(secrets={"registries": {host: {"username": "u", "password": "p"}}})
    text = registries_file(deployment.named("lightsail-k3s-dev-install"))
    assert yaml.safe_load(text)["configs"] == {host: {"auth": {"username": "u", "password": "p"}}}


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"username": "", "password": GHCR_TOKEN}, 'registries["ghcr.io"].username is empty'),
        ({"username": "bot", "password": ""}, 'registries["ghcr.io"].password is empty'),
        ({"username": "bot"}, 'registries["ghcr.io"].password is missing'),
        ({"password": GHCR_TOKEN}, 'registries["ghcr.io"].username is missing'),
    ],
)
def test_an_empty_or_missing_username_or_password_is_refused(entry, fragment):
    message = rejected(
        "registries",
        fragment,
        'pulumi config set --secret --path \'registries["ghcr.io"].',
        secrets={"registries": {"ghcr.io": entry}},
    )
    assert GHCR_TOKEN not in message


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"username": "u", "password": "p", "token": "t"}, "unknown keys ['token']"),
        ({"username": "u", "password": "p", "mirror": "mirror.example.com"}, "is not an http(s)"),
        (
            {"username": "u", "password": "p", "mirror": "https://u:p@mirror.example.com"},
            "without credentials",
        ),
        ({"username": "u", "password": "p", "mirror": ""}, 'registries["ghcr.io"].mirror is empty'),
    ],
)
def test_unknown_keys_and_bad_mirrors_are_refused(entry, fragment):
    rejected("registries", fragment, secrets={"registries": {"ghcr.io": entry}})


@pytest.mark.parametrize(
    ("value", "kind"), [(None, "null"), (42, "int"), (["x"], "list"), ({"a": "b"}, "dict")]
)
def test_registry_values_must_be_strings(value, kind):
    # Set as one encrypted JSON object: `--secret --path` leaves are strings.
    message = rejected(
        "registries",
        f'registries["ghcr.io"].password is {kind}, not a string',
        secrets={"registries": json.dumps({"ghcr.io": {"username": "u", "password": value}})},
    )
    assert "42" not in message


def test_registries_must_be_an_object_of_objects():
    rejected(
        "registries",
        'registries["ghcr.io"] is not an object of username, password, mirror',
        secrets={"registries": json.dumps({"ghcr.io": "token"})},
    )
    rejected(
        "registries",
        "is not an object of registry hosts",
        secrets={"registries": json.dumps(["ghcr.io"])},
    )


# --- on the node: the scripts write the file root-only and restart k3s -------------------------

GHCR = (Registry("ghcr.io", "gallery-bot", GHCR_TOKEN),)
ROTATED = (Registry("ghcr.io", "gallery-bot", "ghp_rotated"),)


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


def placed(node: Node) -> str:
    return (node.config_dir / "registries.yaml").read_text()


def test_a_server_install_writes_the_file_root_only_before_k3s_starts(node):
    result = node.install(registries=GHCR)
    assert result.returncode == 0, result.stderr
    assert placed(node) == k3s.registries_file(GHCR)
    assert stat.S_IMODE((node.config_dir / "registries.yaml").stat().st_mode) == 0o600
    assert not [call for call in node.calls() if GHCR_TOKEN in call]
    assert GHCR_TOKEN not in result.stdout + result.stderr


def test_the_same_registries_again_change_nothing(node):
    assert node.install(registries=GHCR).returncode == 0
    node.calls()
    result = node.install(registries=GHCR)
    assert result.returncode == 0, result.stderr
    assert "nothing to change" in result.stdout
    assert not [c for c in node.calls() if c.startswith("systemctl restart")]


def test_changed_registries_restart_k3s_and_wait_for_its_new_run_before_ready(node):
    assert node.install(registries=GHCR).returncode == 0
    node.calls()
    result = node.install(registries=ROTATED)
    assert result.returncode == 0, result.stderr
    calls = node.calls()
    restart = calls.index("systemctl restart --no-block k3s")
    # The run before the restart is read first; the new run is looked for after it, then Ready.
    assert calls[restart - 1] == "systemctl show --property=InvocationID --value k3s"
    assert calls[restart + 1] == "systemctl show --property=InvocationID --value k3s"
    ready = next(i for i, c in enumerate(calls) if 'type=="Ready"' in c)
    assert restart < ready
    assert "ghp_rotated" in placed(node)


def test_a_restart_that_does_not_come_back_fails_naming_the_node(node):
    assert node.install(registries=GHCR).returncode == 0
    result = node.install(
        registries=ROTATED, STUB_RESTART_HANGS="1", READY_TIMEOUT_SECONDS="1", timeout=20
    )
    assert result.returncode == 1
    assert (
        "k3s on node lightsail-k3s-dev was not running again 1s after its restart" in result.stderr
    )


def test_emptied_registries_remove_the_file_this_program_wrote_and_restart(node):
    assert node.install(registries=GHCR).returncode == 0
    node.calls()
    result = node.install(registries=())
    assert result.returncode == 0, result.stderr
    assert not (node.config_dir / "registries.yaml").exists()
    assert "systemctl restart --no-block k3s" in node.calls()


def test_a_registries_file_written_by_hand_is_left_alone_without_registries(node):
    node.config_dir.mkdir(parents=True)
    by_hand = "mirrors:\n  docker.io:\n    endpoint: [https://cache.internal]\n"
    (node.config_dir / "registries.yaml").write_text(by_hand)
    result = node.install(registries=())
    assert result.returncode == 0, result.stderr
    assert placed(node) == by_hand


AGENT = "lightsail-k3s-dev-agent-1"
AGENT_TOKEN = "K10agent-token::node:never-shown"


def agent_program(registries) -> str:
    """What components/k3s_agent.py feeds to `sudo bash -s` on an agent."""
    return k3s.install_program(
        k3s_agent.remote_script("join-k3s-agent.sh"),
        "v1.36.1+k3s1",
        AGENT,
        k3s_agent.agent_config(AGENT, "172.26.1.10", AGENT_TOKEN, ()),
        registries,
    )


def test_an_agent_writes_the_file_root_only_and_restarts_its_agent_on_a_change(node):
    result = node.run(agent_program(GHCR))
    assert result.returncode == 0, result.stderr
    assert placed(node) == k3s.registries_file(GHCR)
    assert stat.S_IMODE((node.config_dir / "registries.yaml").stat().st_mode) == 0o600
    node.calls()
    assert node.run(agent_program(GHCR)).returncode == 0
    assert not [c for c in node.calls() if c.startswith("systemctl restart")]
    assert node.run(agent_program(ROTATED)).returncode == 0
    assert "systemctl restart k3s-agent" in node.calls()
    assert "ghp_rotated" in placed(node)


def test_the_install_program_carries_the_file_on_stdin_only():
    program = agent_program(GHCR)
    encoded = base64.b64encode(k3s.registries_file(GHCR).encode()).decode()
    assert f"K3S_REGISTRIES_B64={encoded}\n" in program
    assert "REGISTRIES_LIB_B64=" in program
