"""Every stack file in the repository passes the Pulumi CLI's own config step, and runs.

The CLI refuses a stack before the program starts when a key that Pulumi.yaml declares has no
default and the stack does not set it, or when a typed key holds the wrong type
(tools/cliconfig.py emulates that step from pulumi/pulumi's source).
"""

from pathlib import Path

import pytest

from components import settings
from components.errors import ConfigError
from tests.helpers import ADMIN_CIDR, PROJECT_DIR, deploy
from tools import cliconfig

STACKS = cliconfig.stack_names(PROJECT_DIR)


def test_the_repository_ships_stack_files():
    assert "dev" in STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_the_cli_accepts_the_stack_file_as_shipped(stack):
    project = cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml")
    config = cliconfig.StackConfig.load(project, PROJECT_DIR / f"Pulumi.{stack}.yaml")
    cliconfig.apply_project_config(stack, project, config)


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_runs_on_the_stack_with_the_admin_cidr_make_up_sets(stack):
    deployment = deploy(stack)
    firewall = deployment.one("aws:lightsail/instancePublicPorts:InstancePublicPorts")
    assert [ADMIN_CIDR] in [rule["cidrs"] for rule in firewall.inputs["portInfos"]]


def test_every_declared_project_key_has_a_default_so_no_stack_must_set_it():
    """A stack added later inherits these; a key without a default would be required of it."""
    project = cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml")
    without_default = [
        key
        for key, declaration in project.config.items()
        if not (declaration.has_default or declaration.has_value)
    ]
    assert without_default == []


def test_an_empty_stack_file_passes_the_cli_step(tmp_path: Path):
    project = cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml")
    empty = tmp_path / "Pulumi.empty.yaml"
    empty.write_text("config: {}\n")
    config = cliconfig.StackConfig.load(project, empty)
    cliconfig.apply_project_config("empty", project, config)
    assert config.for_program()["lightsail-k3s:adminCidrs"] == "[]"
    assert config.for_program()["lightsail-k3s:tags"] == "{}"


def test_the_dev_stack_runs_on_pulumi_yamls_defaults(dev):
    """Pulumi.dev.yaml sets no key that has a default, so a changed default shows here."""
    instance = dev.one("aws:lightsail/instance:Instance")
    assert instance.inputs["bundleId"] == "small_3_0"
    assert instance.inputs["blueprintId"] == "ubuntu_24_04"
    assert instance.inputs["availabilityZone"] == "ap-northeast-2a"
    assert "addOn" not in instance.inputs
    assert instance.protect is False
    assert instance.inputs.get("tags") in (None, {})
    assert dev.outputs["k3sVersion"].value == "v1.36.1+k3s1"
    assert dev.outputs["appNamespace"].value == "apps"
    assert "sshPrivateKey" in dev.outputs


def test_a_cli_that_does_not_apply_pulumi_yamls_defaults_is_named():
    """Defaults live in Pulumi.yaml alone; a CLI older than project config (3.44) passes none of them."""
    config = {"aws:region": "ap-northeast-2", "lightsail-k3s:adminCidrs": f'["{ADMIN_CIDR}"]'}
    with pytest.raises(ConfigError) as caught:
        settings.parse_settings(config.get, lambda key: False, "dev", {}, dry_run=True)
    assert "Pulumi.yaml declares its default" in str(caught.value)
    assert "Pulumi CLI 3.44 or newer" in str(caught.value)
