"""Unknown config keys stop the run; fix hints fit where they are read (pulumi up or make plan)."""

import json
import re

import pulumi
import pytest

from components import settings
from components.errors import FIX_FORM_VARIABLE, ConfigError, fix_for
from tests.helpers import PROJECT_DIR, deploy, rejected


def test_a_misspelt_key_names_the_closest_known_one():
    message = rejected(
        "bundleID",
        "did you mean 'bundleId'?",
        "pulumi config rm bundleID; pulumi config set bundleId <value>",
        bundleID="medium_3_0",
    )
    assert "medium_3_0" not in message


def test_a_key_far_from_every_known_one_lists_them():
    rejected(
        "colour",
        "is not a setting of this program (settings: acmeEmail, acmeStaging, adminCidrs, ",
        "pulumi config rm colour",
        colour="blue",
    )


def test_a_path_key_set_without_path_says_so():
    # `pulumi config set tags.team platform` (no --path) stores the literal key "tags.team".
    with pytest.raises(ConfigError) as caught:
        settings.check_unknown_keys({"lightsail-k3s:tags.team"}, settings.declared_keys())
    error = caught.value
    assert "a path into 'tags' set without --path" in str(error)
    assert "pulumi config set --path tags.team <value>" in str(error)


def test_other_namespaces_are_not_ours_to_check():
    deploy(config={"aws:profile": "work"})


def test_under_pulumi_up_the_keys_come_from_the_config_the_cli_passes():
    """pulumi-language-python-exec hands PULUMI_CONFIG to set_all_config; the SDK also reads it directly."""
    rejected(
        "bundleID",
        "did you mean 'bundleId'",
        environ={"PULUMI_CONFIG": json.dumps({"lightsail-k3s:bundleID": "small_3_0"})},
    )


def test_the_declared_keys_are_exactly_the_keys_the_program_reads(monkeypatch):
    """Declared but never read would be accepted and ignored; read but undeclared could never be set."""
    read: set[str] = set()
    original = pulumi.runtime.get_config

    def recording(key: str):
        read.add(key)
        return original(key)

    monkeypatch.setattr(pulumi.runtime, "get_config", recording)
    # Some keys are read only when another asks for them: backups' schedule, the untested-version opt-in.
    deploy(backups="true", k3sVersion="v1.37.0+k3s1", allowUntestedK3sVersion="true")
    project_keys = {
        key.removeprefix("lightsail-k3s:") for key in read if key.startswith("lightsail-k3s:")
    }
    assert project_keys == set(settings.declared_keys(PROJECT_DIR / "Pulumi.yaml"))


@pytest.mark.parametrize(
    ("fix", "in_plan"),
    [
        (
            "pulumi config set --path 'adminCidrs[0]' 203.0.113.7/32 (your public IPv4 as a /32)",
            "make plan SET='adminCidrs[0]=203.0.113.7/32' (your public IPv4 as a /32)",
        ),
        (
            "pulumi config set aws:region ap-northeast-2",
            "make plan SET='aws:region=ap-northeast-2'",
        ),
        (
            "pulumi config set --path 'adminCidrs[0]' <your public IPv4>/32 (or a range)",
            "make plan SET=\"'adminCidrs[0]=<your public IPv4>/32'\" (or a range)",
        ),
        ("pulumi config set --type bool protect false", "make plan SET='protect=false'"),
        (
            "pulumi config set --secret --path 'appSecrets.web.API_KEY' <value>",
            "make plan SECRET='appSecrets.web.API_KEY=<value>'",
        ),
        (
            'pulumi config set sshPublicKey "$(cat ~/.ssh/id_ed25519.pub)", or remove it',
            "make plan SET=\"'sshPublicKey=$(cat ~/.ssh/id_ed25519.pub)'\", or remove it",
        ),
        (
            "pulumi config rm appSecrets, then set each value",
            "remove appSecrets from the stack file, then set each value",
        ),
        ("pulumi config rm --path 'appSecrets.old'", "remove appSecrets.old from the stack file"),
    ],
)
def test_fix_hints_under_make_plan_use_its_set_form(fix, in_plan):
    assert fix_for(fix, "make plan") == in_plan
    assert fix_for(fix, None) == fix


@pytest.mark.parametrize(
    ("source", "in_plan"),
    [
        ("SET=", "drop bundleID from SET=; make plan SET='bundleId=<value>'"),
        (
            "Pulumi.dev.yaml",
            "remove bundleID from Pulumi.dev.yaml; make plan SET='bundleId=<value>'",
        ),
    ],
)
def test_a_removal_names_where_the_value_came_from(source, in_plan):
    fix = "pulumi config rm bundleID; pulumi config set bundleId <value>"
    assert fix_for(fix, "make plan", source) == in_plan


def test_config_errors_take_the_form_the_plan_asks_for(monkeypatch):
    monkeypatch.setenv(FIX_FORM_VARIABLE, "make plan STACK=prod")
    error = ConfigError("protect", "x", "pulumi config set --type bool protect false")
    assert str(error).endswith("fix: make plan STACK=prod SET='protect=false'")
    monkeypatch.delenv(FIX_FORM_VARIABLE)
    assert str(ConfigError("protect", "x", "pulumi config set --type bool protect false")).endswith(
        "fix: pulumi config set --type bool protect false"
    )


def test_every_pulumi_config_hint_in_the_components_has_a_make_plan_form():
    """A hint written in a form fix_for does not know would tell a make plan user to run pulumi config."""
    hints = [
        match[0]
        for path in sorted((PROJECT_DIR / "components").glob("*.py"))
        if path.name != "errors.py"
        for match in re.finditer(r"pulumi config (?:set|rm)[^\n]*", path.read_text())
    ]
    assert len(hints) > 10
    assert [hint for hint in hints if "pulumi config" in fix_for(hint, "make plan")] == []
