"""`make plan`: an offline preview a reviewer can trust (complete, ordered, reproducible, secrets masked)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components.errors import FIX_FORM_VARIABLE, VALUE_SOURCES_VARIABLE
from components.settings import TESTED_K3S_MINORS
from tests.helpers import (
    ADMIN_CIDR,
    DEMO_APP,
    PROJECT_DIR,
    Declared,
    deploy,
    write_executable,
)
from tools import plan

SECRET_VALUE = "postgres://shop:hunter2-very-secret@db.internal/shop"
API_APP = '{"name": "api", "image": "ghcr.io/acme/api:1.0.0", "port": 80, "path": "/api", "secretEnv": ["DATABASE_URL"]}'
# JSON with spaces, a --path key, and a quoted item holding spaces.
SET = f'adminCidrs=["{ADMIN_CIDR}", "5.6.7.8/32"] tags.team=platform \'tags["cost centre"]=shop web\' apps[1]={API_APP}'
SECRET = f"'appSecrets.api.DATABASE_URL={SECRET_VALUE}'"


def run_plan(
    out: Path, *args: str, hash_seed: str = "0", **env: str
) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONHASHSEED": hash_seed, **env}
    return subprocess.run(
        [sys.executable, "-m", "tools.plan", "--out", str(out), *args],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env=environ,
    )


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("plan")
    result = run_plan(out, PLAN_SET=SET, PLAN_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    return result, out / "dev"


@pytest.fixture(scope="module")
def same_config_in_process() -> Declared:
    return deploy(
        adminCidrs=[ADMIN_CIDR, "5.6.7.8/32"],
        tags={"team": "platform", "cost centre": "shop web"},
        apps=[
            DEMO_APP,
            json.loads(API_APP),
        ],
        secrets={"appSecrets": {"api": {"DATABASE_URL": SECRET_VALUE}}},
    )


def test_the_settings_arrive_as_typed(planned):
    document = json.loads((planned[1] / "plan.json").read_text())
    firewall = next(r for r in document["resources"] if r["type"].endswith("InstancePublicPorts"))
    assert firewall["inputs"]["portInfos"][0]["cidrs"] == [ADMIN_CIDR, "5.6.7.8/32"]
    instance = next(
        r for r in document["resources"] if r["type"] == "aws:lightsail/instance:Instance"
    )
    assert instance["inputs"]["tags"] == {"team": "platform", "cost centre": "shop web"}
    assert document["config"]["lightsail-k3s:appSecrets"] == "[secret]"


def test_plan_json_holds_every_resource_with_its_options_and_every_output(
    planned, same_config_in_process
):
    document = json.loads((planned[1] / "plan.json").read_text())
    expected = same_config_in_process
    assert sorted(r["urn"] for r in document["resources"]) == sorted(
        r.urn for r in expected.resources
    )
    by_urn = {r["urn"]: r for r in document["resources"]}
    for resource in expected.resources:
        entry = by_urn[resource.urn]
        assert (entry["type"], entry["name"], entry["parent"] or "") == (
            resource.type,
            resource.name,
            resource.parent,
        )
        assert entry["options"]["protect"] == resource.protect
        assert entry["options"]["deleteBeforeReplace"] == resource.delete_before_replace
        assert entry["options"]["dependsOn"] == sorted(set(resource.dependencies))
        assert entry["options"]["additionalSecretOutputs"] == sorted(
            resource.additional_secret_outputs
        )
        assert entry["options"]["customTimeouts"] == resource.custom_timeouts
        assert (entry["provider"] or "") == resource.provider.rsplit("::", 1)[0]
        for key in set(resource.inputs) - resource.secret_inputs:
            assert entry["inputs"][key] == resource.inputs[key], (resource.name, key)
        for key in resource.secret_inputs:
            assert "[secret]" in json.dumps(entry["inputs"][key]), (resource.name, key)
    assert set(document["outputs"]) == set(expected.outputs)
    for key, output in expected.outputs.items():
        if output.secret:
            assert "[secret]" in json.dumps(document["outputs"][key]), key
        else:
            assert document["outputs"][key] == output.value, key


def test_every_kubernetes_object_is_a_yaml_file(planned, same_config_in_process):
    objects = [r for r in same_config_in_process.resources if plan.is_kubernetes_object(r)]
    files = sorted((planned[1] / "k8s").iterdir())
    assert len(files) == len(objects) > 0
    loaded = {
        (d["kind"], d["metadata"]["name"]) for d in (yaml.safe_load(f.read_text()) for f in files)
    }
    assert loaded == {(r.inputs["kind"], r.inputs["metadata"]["name"]) for r in objects}
    secret_object = yaml.safe_load((planned[1] / "k8s" / "secret-apps-api-env.yaml").read_text())
    assert secret_object["stringData"] == {"DATABASE_URL": "[secret]"}


@pytest.mark.parametrize("minor", TESTED_K3S_MINORS)
def test_every_kubernetes_file_matches_the_schema_of_each_tested_minor(planned, minor):
    """What a reviewer feeds to kubeconform or kubectl --dry-run validates, Secrets included."""
    files = sorted((planned[1] / "k8s").iterdir())
    assert any(path.name.startswith("secret-") for path in files)
    for path in files:
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), f"1.{minor}.0", strict=True)


def test_a_secret_given_through_secret_appears_nowhere(planned):
    result, stack_dir = planned
    texts = [result.stdout, result.stderr] + [
        p.read_text() for p in stack_dir.rglob("*") if p.is_file()
    ]
    for text in texts:
        assert SECRET_VALUE not in text
        assert "hunter2" not in text


def test_identical_input_gives_byte_identical_output(planned, tmp_path):
    again = run_plan(tmp_path, hash_seed="1", PLAN_SET=SET, PLAN_SECRET=SECRET)
    assert again.stdout.replace(str(tmp_path), "OUT") == planned[0].stdout.replace(
        str(planned[1].parent), "OUT"
    )
    first = {
        p.relative_to(planned[1]): p.read_bytes() for p in planned[1].rglob("*") if p.is_file()
    }
    second = {
        p.relative_to(tmp_path / "dev"): p.read_bytes()
        for p in (tmp_path / "dev").rglob("*")
        if p.is_file()
    }
    assert first == second


def test_resources_come_parents_first_then_by_name(dev):
    ordered = plan.ordered(dev.resources)
    seen: set[str] = set()
    for resource in ordered:
        assert resource.parent not in {r.urn for r in dev.resources} or resource.parent in seen, (
            resource.name
        )
        seen.add(resource.urn)
    siblings: dict[str, list[tuple[str, str]]] = {}
    for resource in ordered:
        siblings.setdefault(resource.parent, []).append((resource.name, resource.type))
    assert all(names == sorted(names) for names in siblings.values())


def test_the_terminal_view_masks_secrets_and_indents_children(same_config_in_process):
    text = plan.render(same_config_in_process.deployment)
    assert "\n  lightsail-k3s:index:Cluster  lightsail-k3s-dev\n" in text
    assert "\n    lightsail-k3s:index:LightsailHost  lightsail-k3s-dev\n" in text
    assert "\n      aws:lightsail/instance:Instance  lightsail-k3s-dev-instance\n" in text
    assert "\n          bundleId: small_3_0\n" in text
    assert "\n  kubeconfig: [secret]\n" in text
    assert "stringData: [secret]" in text
    for leaked in ("BEGIN OPENSSH PRIVATE KEY", "K10abab", "client-key-data", "hunter2"):
        assert leaked not in text


@pytest.fixture
def in_plan(monkeypatch, capsys):
    """Runs tools.plan in-process; the plan's fix-hint setting is undone afterwards."""
    monkeypatch.setenv(FIX_FORM_VARIABLE, "")
    monkeypatch.setenv(VALUE_SOURCES_VARIABLE, "")
    monkeypatch.delenv("PLAN_SET", raising=False)
    monkeypatch.delenv("PLAN_SECRET", raising=False)

    def run(*args: str, out: Path) -> tuple[int, str, str]:
        code = plan.main(["--out", str(out), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def stack_file():
    """Writes a Pulumi.<name>.yaml next to Pulumi.yaml for one test."""
    written: list[Path] = []

    def write(name: str, text: str) -> str:
        path = PROJECT_DIR / f"Pulumi.{name}.yaml"
        path.write_text(text)
        written.append(path)
        return name

    yield write
    for path in written:
        path.unlink()


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_a_malformed_stack_file_is_one_line_naming_the_file(in_plan, stack_file, tmp_path):
    stack = stack_file("plan-broken", "config:\n  lightsail-k3s:apps: [{name: web\n")
    assert_one_line_error(
        *in_plan("--stack", stack, out=tmp_path),
        "Pulumi.plan-broken.yaml: invalid YAML file: line ",
    )


def test_a_duplicate_key_is_refused_as_the_cli_refuses_it(in_plan, stack_file, tmp_path):
    """gopkg.in/yaml.v3 v3.0.1 decode.go; PyYAML alone would keep the second value."""
    stack = stack_file(
        "plan-duplicate",
        f"config:\n  aws:region: ap-northeast-2\n  lightsail-k3s:adminCidrs: [{ADMIN_CIDR}]\n"
        "  lightsail-k3s:protect: false\n  lightsail-k3s:protect: true\n",
    )
    assert_one_line_error(
        *in_plan("--stack", stack, out=tmp_path),
        "Pulumi.plan-duplicate.yaml: yaml: unmarshal errors: "
        'line 5: mapping key "lightsail-k3s:protect" already defined at line 4',
    )


def test_a_misspelt_section_is_named_not_reported_as_a_missing_region(
    in_plan, stack_file, tmp_path
):
    stack = stack_file(
        "plan-section",
        f"confg:\n  aws:region: ap-northeast-2\n  lightsail-k3s:adminCidrs: [{ADMIN_CIDR}]\n",
    )
    code, out, err = in_plan("--stack", stack, out=tmp_path)
    assert code == 1
    assert err.startswith(
        "error: Pulumi.plan-section.yaml: the top-level section 'confg' is not one the Pulumi CLI reads"
    ), err
    assert err.endswith("fix: rename confg: to config: in Pulumi.plan-section.yaml\n"), err
    assert "aws:region" not in err


@pytest.mark.parametrize(
    ("variable", "text", "fragment"),
    [
        ("--set", "adminCidrs", "SET item 'adminCidrs': expected KEY=VALUE"),
        ("--set", 'adminCidrs=["1.2.3.4/32",', "never closes its bracket"),
        (
            "--set",
            "adminCidrs=[1.2.3.4/32]",
            "SET item 'adminCidrs': the value starts like JSON but is not",
        ),
        (
            "--set",
            "tags.[0]=x",
            "SET item 'tags.[0]': invalid config key path: expected property name after '.'",
        ),
        ("--set", "'bundleId=small", "SET: no closing '"),
        ("--secret", "appSecrets.api.KEY", "SECRET item 'appSecrets.api.KEY': expected KEY=VALUE"),
    ],
)
def test_a_malformed_item_is_one_line_naming_it(in_plan, tmp_path, variable, text, fragment):
    assert_one_line_error(*in_plan(variable, text, out=tmp_path), fragment)


def test_the_clis_own_refusal_is_one_line(in_plan, tmp_path):
    code, out, err = in_plan("--set", f'adminCidrs=["{ADMIN_CIDR}"] protect=yes', out=tmp_path)
    assert_one_line_error(
        code, out, err, "Stack 'dev' with configuration key 'protect' must be of type 'boolean'"
    )


def test_fix_hints_show_the_make_plan_form(in_plan, tmp_path):
    code, out, err = in_plan(
        "--set", f'adminCidrs=["{ADMIN_CIDR}"] autoSnapshotTime=noon', out=tmp_path
    )
    assert code == 1
    assert "fix: use HH:00 in UTC, e.g. make plan SET='autoSnapshotTime=18:00'" in err
    assert "pulumi config" not in err


def test_a_misspelt_key_is_refused_with_the_known_one(in_plan, tmp_path):
    code, out, err = in_plan(
        "--set", f'adminCidrs=["{ADMIN_CIDR}"] bundleID=medium_3_0', out=tmp_path
    )
    assert code == 1
    assert "config 'lightsail-k3s:bundleID'" in err and "did you mean 'bundleId'?" in err
    assert "make plan SET='bundleId=<value>'" in err


def test_a_misspelt_set_key_is_told_to_be_dropped_from_set(in_plan, tmp_path):
    code, out, err = in_plan(
        "--set", f'adminCidrs=["{ADMIN_CIDR}"] bundleID=medium_3_0', out=tmp_path
    )
    assert code == 1
    assert "fix: drop bundleID from SET=; make plan SET='bundleId=<value>'\n" in err
    assert "stack file" not in err


def test_a_misspelt_stack_file_key_is_told_to_be_removed_from_that_file(
    in_plan, stack_file, tmp_path
):
    stack = stack_file(
        "plan-typo",
        f"config:\n  aws:region: ap-northeast-2\n  lightsail-k3s:adminCidrs: [{ADMIN_CIDR}]\n"
        "  lightsail-k3s:bundleID: medium_3_0\n",
    )
    code, out, err = in_plan("--stack", stack, out=tmp_path)
    assert code == 1
    assert (
        "fix: remove bundleID from Pulumi.plan-typo.yaml; "
        "make plan STACK=plan-typo SET='bundleId=<value>'\n"
    ) in err


@pytest.mark.parametrize(
    ("set_items", "source"),
    [
        ("autoSnapshotTime=noon", "SET="),
        ("", "Pulumi.plan-snapshot.yaml"),
    ],
)
def test_each_fix_says_where_the_value_came_from(in_plan, stack_file, tmp_path, set_items, source):
    stack = stack_file(
        "plan-snapshot",
        f"config:\n  aws:region: ap-northeast-2\n  lightsail-k3s:adminCidrs: [{ADMIN_CIDR}]\n"
        "  lightsail-k3s:autoSnapshotTime: midnight\n",
    )
    code, out, err = in_plan("--stack", stack, "--set", set_items, out=tmp_path)
    assert code == 1
    fix = next(line for line in err.splitlines() if line.startswith("  fix: "))
    assert fix.endswith(f"SET='autoSnapshotTime=18:00' (the value came from {source})"), fix


def test_a_default_value_is_named_as_pulumi_yamls(in_plan, tmp_path):
    code, out, err = in_plan(out=tmp_path)
    assert code == 1
    assert "config 'lightsail-k3s:adminCidrs'" in err
    assert err.rstrip().endswith("(the value came from Pulumi.yaml's default)"), err


def test_an_unknown_stack_is_named(in_plan, tmp_path):
    assert_one_line_error(
        *in_plan("--stack", "no-such-stack", out=tmp_path),
        "no stack file Pulumi.no-such-stack.yaml",
    )


def test_make_passes_set_and_secret_unsplit_and_unexpanded(tmp_path):
    """The Makefile hands SET/SECRET to tools/plan.py through the environment, `$`, spaces and quotes included."""
    stand_in = tmp_path / "python"
    write_executable(stand_in, '#!/bin/sh\nprintf "%s|%s|%s" "$PLAN_SET" "$PLAN_SECRET" "$*"\n')
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-s",
            "plan",
            f"PYTHON={stand_in}",
            "SET=a=[1, 2] b='x y'",
            "SECRET=k=$$v$x",
        ],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        env={key: value for key, value in os.environ.items() if not key.startswith("MAKE")},
    )
    assert result.stdout == "a=[1, 2] b='x y'|k=$$v$x|-m tools.plan --stack dev", result.stderr


def test_the_objects_of_existing_manifests_get_their_files_too():
    deployment = deploy(manifestsDir="tests/fixtures/manifests")
    objects = deployment.one(plan.CONFIG_GROUP).inputs["objs"]
    written = [
        yaml.safe_load(text) for text in plan.kubernetes_files(deployment.deployment).values()
    ]
    assert objects and all(obj in written for obj in objects)
