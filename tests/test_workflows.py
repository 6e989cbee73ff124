"""The GitHub workflows, which nothing here can run: GitHub's schema, zizmor's security audit, and
the promises the README makes about them (previews per environment, OIDC, approval for prod)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import PROJECT_DIR

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
BIN = Path(sys.executable).parent
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in PROJECT_DIR.glob("Pulumi.*.yaml")
)
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
    )


def zizmor(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BIN / "zizmor", "--offline", "--format", "plain", str(path)],
        capture_output=True,
        text=True,
    )


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps_using(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(action + "@")]


def test_workflows_match_githubs_schema():
    result = check_jsonschema(*sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_the_zizmor_audit():
    result = zizmor(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def auditor_findings(path: Path) -> list[str]:
    """The audits zizmor's auditor persona (every audit, pedantic ones included) reports for `path`."""
    result = subprocess.run(
        [BIN / "zizmor", "--offline", "--persona", "auditor", "--format", "json", str(path)],
        capture_output=True,
        text=True,
    )
    return [finding["ident"] for finding in json.loads(result.stdout)]


def test_the_state_secrets_are_read_only_inside_the_preview_environment():
    """The Pulumi token and passphrase are secrets of one GitHub environment, which only the jobs
    naming it read (zizmor's secrets-outside-env, an auditor-persona audit)."""
    assert "secrets-outside-env" not in auditor_findings(WORKFLOWS)
    jobs = load("preview.yml")["jobs"]
    text = (WORKFLOWS / "preview.yml").read_text()
    assert "secrets.PULUMI_ACCESS_TOKEN" in text and "secrets.PULUMI_CONFIG_PASSPHRASE" in text
    for name in ("credentials", "preview"):
        assert jobs[name]["environment"] == {"name": "preview", "deployment": False}, name


@pytest.fixture
def broken_copy(tmp_path):
    def make(replace: str, by: str) -> Path:
        text = (WORKFLOWS / "preview.yml").read_text()
        assert replace in text
        broken = tmp_path / "workflows" / "preview.yml"
        broken.parent.mkdir(exist_ok=True)
        broken.write_text(text.replace(replace, by, 1))
        return broken

    return make


def test_the_schema_check_fails_on_a_broken_workflow(broken_copy):
    assert (
        check_jsonschema(broken_copy("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04")).returncode
        != 0
    )


@pytest.mark.parametrize(
    "replace, by",
    [
        # A mutable tag instead of a commit: whoever moves the tag runs code with our token.
        (
            "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1",
            "actions/checkout@v7",
        ),
        # The pull request's branch name pasted into a shell script: template injection.
        ('echo "### Offline plan of', 'echo "${{ github.head_ref }} ### Offline plan of'),
    ],
)
def test_the_security_audit_fails_on_an_unsafe_workflow(broken_copy, replace, by):
    assert zizmor(broken_copy(replace, by)).returncode != 0


def test_every_action_is_pinned_by_commit():
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert PINNED.match(step["uses"]), (path.name, step["uses"])


def test_preview_runs_on_pull_requests_and_tests_first():
    workflow = load("preview.yml")
    # PyYAML reads the bare key `on` as True (YAML 1.1).
    assert "pull_request" in workflow[True]
    jobs = workflow["jobs"]
    assert [step.get("run") for step in jobs["test"]["steps"]][-1] == "make test"
    assert "test" in jobs["preview"]["needs"] and "test" in jobs["offline-plan"]["needs"]


def test_preview_previews_every_stack_with_the_policy_pack_and_comments():
    job = load("preview.yml")["jobs"]["preview"]
    assert job["strategy"]["matrix"]["stack"] == STACKS
    (pulumi,) = steps_using(job, "pulumi/actions")
    options = pulumi["with"]
    assert options["command"] == "preview"
    assert options["stack-name"] == "${{ matrix.stack }}"
    assert (
        options["comment-on-pr"] is True
        and options["diff"] is True
        and options["suppress-outputs"] is True
    )
    assert options["policyPacks"] == "policy"
    assert job["permissions"]["id-token"] == "write"


def test_pull_requests_without_credentials_get_the_offline_plan_diffed_against_the_base():
    jobs = load("preview.yml")["jobs"]
    assert jobs["preview"]["if"] == "needs.credentials.outputs.available == 'true'"
    assert jobs["offline-plan"]["if"] == "needs.credentials.outputs.available != 'true'"
    assert jobs["offline-plan"]["strategy"]["matrix"]["stack"] == STACKS
    plan_step = next(
        step for step in jobs["offline-plan"]["steps"] if "make" in step.get("run", "")
    )
    assert 'make --silent plan STACK="$STACK" BASE="origin/$BASE_REF"' in plan_step["run"]
    assert "GITHUB_STEP_SUMMARY" in plan_step["run"]
    (checkout,) = steps_using(jobs["offline-plan"], "actions/checkout")
    assert checkout["with"]["fetch-depth"] == 0
    # Forks never count as having credentials: GitHub gives them no secrets and no OIDC token.
    check = jobs["credentials"]["steps"][0]
    assert (
        check["env"]["SAME_REPOSITORY"]
        == "${{ github.event.pull_request.head.repo.full_name == github.repository }}"
    )


def test_deploy_runs_up_on_main_dev_then_prod_behind_environments():
    workflow = load("deploy.yml")
    assert workflow[True]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert jobs["dev"]["needs"] == "test" and jobs["prod"]["needs"] == "dev"
    for stack in ("dev", "prod"):
        job = jobs[stack]
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"pulumi-up-{stack}", "cancel-in-progress": False}
        (pulumi,) = steps_using(job, "pulumi/actions")
        assert pulumi["with"]["command"] == "up" and pulumi["with"]["stack-name"] == stack
        assert pulumi["with"]["policyPacks"] == "policy"


def test_cloud_credentials_come_from_oidc_never_from_stored_keys():
    for name in ("preview.yml", "deploy.yml"):
        text = (WORKFLOWS / name).read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
        for job in yaml.safe_load(text)["jobs"].values():
            for step in steps_using(job, "aws-actions/configure-aws-credentials"):
                assert step["with"]["role-to-assume"].startswith("${{ vars.AWS_")
                assert job["permissions"]["id-token"] == "write"


def test_the_venv_target_the_workflows_build_exists():
    result = subprocess.run(
        ["make", "-n", ".venv/.installed"], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_run_script_passes_shellcheck(tmp_path):
    """GitHub runs `run:` blocks with `bash -e {0}`; expressions stay out of them (env only)."""
    scripts = []
    for path in WORKFLOWS.glob("*.yml"):
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for index, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    assert "${{" not in step["run"], (path.name, job_name, index)
                    script = tmp_path / f"{path.stem}-{job_name}-{index}.sh"
                    script.write_text("#!/usr/bin/env bash\nset -e\n" + step["run"])
                    scripts.append(str(script))
    result = subprocess.run([BIN / "shellcheck", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
