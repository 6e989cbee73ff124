"""The GitHub workflows, which nothing here can run: GitHub's schema, zizmor's security audit, and
the promises the manual (docs/environments.md) makes about them (previews per environment, OIDC, approval for prod)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import (
    CURL_STUB,
    PROJECT_DIR,
    PULUMI_STUB,
    closing_target,
    tool,
    write_executable,
)

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


def test_the_auditor_persona_finds_nothing():
    """Every audit, pedantic ones included: each permission says why it is there, and every job of
    the deploy workflow is limited to one run at a time."""
    assert auditor_findings(WORKFLOWS) == []


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
        (up,) = [step for step in job["steps"] if step.get("id") == "up"]
        assert up["env"]["STACK"] == stack
        assert 'pulumi up --stack "$STACK" --config-file' in up["run"]
        assert "--policy-pack policy" in up["run"]


def test_cloud_credentials_come_from_oidc_never_from_stored_keys():
    for name in ("preview.yml", "deploy.yml", "health.yml"):
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


DEPLOY_JOBS = ("dev", "prod")


def deploy_job(stack: str) -> dict:
    return load("deploy.yml")["jobs"][stack]


def named_step(job: dict, step_id: str) -> dict:
    (step,) = [step for step in job["steps"] if step.get("id") == step_id]
    return step


@pytest.mark.parametrize("stack", DEPLOY_JOBS)
def test_deploy_installs_the_cli_only_and_detects_the_runners_address(stack):
    job = deploy_job(stack)
    (pulumi,) = steps_using(job, "pulumi/actions")
    # No command: the action installs the CLI and stops (pulumi/actions src/main.ts, installOnly).
    assert set(pulumi["with"]) == {"pulumi-version"}
    detect = named_step(job, "runner")
    assert 'address="$(bin/deploy-access.sh address)"' in detect["run"]
    assert 'echo "address=$address" >> "$GITHUB_OUTPUT"' in detect["run"]
    assert job["steps"].index(detect) < job["steps"].index(named_step(job, "up"))


@pytest.mark.parametrize("stack", DEPLOY_JOBS)
def test_deploy_closes_the_opening_always_with_fresh_credentials_and_no_more_permissions(stack):
    job = deploy_job(stack)
    up, credentials, close = job["steps"][-3:]
    assert up.get("id") == "up"
    # Also when `up` failed or was cancelled; not when it never ran (nothing was opened).
    for step in (credentials, close):
        assert step["if"] == "always() && steps.up.outcome != 'skipped'"
    assert credentials["uses"].startswith("aws-actions/configure-aws-credentials@")
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    assert close["run"] == 'bin/deploy-access.sh close "$STACK" --diff --suppress-outputs'
    assert close["env"]["STACK"] == stack
    # The job may read the repository and ask for an OIDC token, nothing else: it cannot push a
    # stack file, so the run's address can only ever live in the runner's temporary copy.
    assert job["permissions"] == {"contents": "read", "id-token": "write"}


@pytest.fixture
def runner(tmp_path):
    """A stand-in runner: bin/deploy-access.sh's tools, a `pulumi` and a `curl` that record calls."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    write_executable(stubs / "pulumi", PULUMI_STUB)
    write_executable(stubs / "curl", CURL_STUB)
    for name in ("bash", "dirname", "tr", "cat", "grep", "cp", "tail"):
        os.symlink(tool(name), stubs / name)
    (tmp_path / "temp").mkdir()
    return tmp_path


def run_step(runner: Path, step: dict, outputs: dict[str, str], **env: str):
    """Runs a `run:` step as GitHub does (bash -e, in the checkout), `${{ steps.X.outputs.Y }}` in
    its env taken from `outputs`, secrets and variables as stand-ins; returns the outputs it wrote."""
    output_file = runner / "github-output"
    output_file.write_text("")
    environment = {
        "PATH": str(runner / "bin"),
        "STUB_LOG": str(runner / "calls.log"),
        "STUB_MY_IP": "20.1.2.3",
        "RUNNER_TEMP": str(runner / "temp"),
        "GITHUB_OUTPUT": str(output_file),
        **env,
    }
    for name, value in step.get("env", {}).items():
        reference = re.fullmatch(r"\$\{\{ steps\.(\w+)\.outputs\.(\w+) \}\}", value)
        environment[name] = outputs[f"{reference[1]}.{reference[2]}"] if reference else value
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    written = dict(
        line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line
    )
    return result, {f"{step.get('id')}.{key}": value for key, value in written.items()}


@pytest.mark.parametrize("up_fails", [False, True])
def test_deploy_opens_for_the_run_in_a_temporary_copy_and_closes_from_the_stack_file(
    runner, up_fails
):
    job = deploy_job("dev")
    stack_file = (PROJECT_DIR / "Pulumi.dev.yaml").read_text()
    outputs: dict[str, str] = {}
    fails = {"STUB_UP_FAILS": "1"} if up_fails else {}
    for step_id in ("runner", "up"):
        result, written = run_step(runner, named_step(job, step_id), outputs, **fails)
        assert (result.returncode != 0) == (up_fails and step_id == "up"), result.stderr
        outputs.update(written)
    assert outputs == {"runner.address": "20.1.2.3"}
    result, _ = run_step(runner, job["steps"][-1], outputs)
    assert result.returncode == 0, result.stderr
    run_config = f"{runner}/temp/run-config.yaml"
    calls = (runner / "calls.log").read_text().splitlines()
    assert calls[1:] == [
        f"pulumi config set --stack dev --config-file {run_config} --path deployCidrs[0] 20.1.2.3/32",
        f"pulumi up --stack dev --config-file {run_config} --yes --policy-pack policy --diff "
        "--suppress-outputs",
        "  with: deployCidrs[0] 20.1.2.3/32",
        f"pulumi up --stack dev --yes --target {closing_target()} --policy-pack policy --diff "
        "--suppress-outputs",
    ]
    # The copy began as the stack file, which itself is left as committed.
    assert Path(run_config).read_text().startswith(stack_file)
    assert (PROJECT_DIR / "Pulumi.dev.yaml").read_text() == stack_file


def test_a_failed_preview_still_comments_on_the_pull_request():
    job = load("preview.yml")["jobs"]["preview"]
    comment = job["steps"][-1]
    assert comment["if"] == "failure()"
    assert comment["run"].startswith('gh pr comment "$PR_NUMBER"')
    assert "$GITHUB_RUN_ID" in comment["run"]
    assert job["permissions"]["pull-requests"] == "write"


# --- the health workflow (tools/health.py, docs/operations.md)


def health_job() -> dict:
    return load("health.yml")["jobs"]["health"]


def test_health_runs_daily_and_on_demand_for_every_stack():
    workflow = load("health.yml")
    # PyYAML reads the key `on` as True.
    triggers = workflow[True]
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    (schedule,) = triggers["schedule"]
    assert len(schedule["cron"].split()) == 5 and schedule["cron"].split()[2:] == ["*", "*", "*"]
    job = health_job()
    assert job["strategy"]["matrix"]["stack"] == STACKS
    assert job["strategy"]["fail-fast"] is False
    assert job["timeout-minutes"] <= 60


def test_health_runs_in_the_stacks_environment_with_its_deploy_role_and_least_permissions():
    job = health_job()
    assert job["environment"] == {"name": "${{ matrix.stack }}", "deployment": False}
    assert load("health.yml")["permissions"] == {}
    assert job["permissions"] == {"contents": "read", "id-token": "write", "issues": "write"}
    for step in steps_using(job, "aws-actions/configure-aws-credentials"):
        assert step["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"


def test_health_never_runs_beside_the_stacks_pulumi_up():
    job = health_job()
    assert job["concurrency"] == {
        "group": "pulumi-up-${{ matrix.stack }}",
        "cancel-in-progress": False,
    }
    for stack in DEPLOY_JOBS:
        assert deploy_job(stack)["concurrency"]["group"] == f"pulumi-up-{stack}"


def test_health_pins_the_actions_the_deploy_workflow_pinned():
    uses = {step["uses"] for step in health_job()["steps"] if "uses" in step}
    deployed = {
        step["uses"]
        for job in load("deploy.yml")["jobs"].values()
        for step in job["steps"]
        if "uses" in step
    }
    assert uses <= deployed
    assert len(uses) == 4


def test_health_opens_the_firewalls_alone_runs_the_report_and_always_closes(runner):
    job = health_job()
    stack_file = (PROJECT_DIR / "Pulumi.dev.yaml").read_text()
    outputs: dict[str, str] = {}
    for step_id in ("runner", "open"):
        step = dict(named_step(job, step_id))
        step["env"] = {**step.get("env", {}), "STACK": "dev"}
        result, written = run_step(runner, step, outputs)
        assert result.returncode == 0, result.stderr
        outputs.update(written)
    report, credentials, close = job["steps"][-3:]
    assert report["run"].split() == [
        ".venv/bin/python", "-m", "tools.health", "--stack", '"$STACK"',
        "--config-file", '"$RUNNER_TEMP/run-config.yaml"', "\\", "--github-issue",
    ]  # fmt: skip
    assert report["env"]["GH_TOKEN"] == "${{ github.token }}"
    for step in (credentials, close):
        assert step["if"] == "always() && steps.open.outcome != 'skipped'"
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    close = {**close, "env": {**close["env"], "STACK": "dev"}}
    result, _ = run_step(runner, close, outputs)
    assert result.returncode == 0, result.stderr
    run_config = f"{runner}/temp/run-config.yaml"
    calls = (runner / "calls.log").read_text().splitlines()
    assert calls[1:] == [
        f"pulumi config set --stack dev --config-file {run_config} --path deployCidrs[0] 20.1.2.3/32",
        f"pulumi up --stack dev --config-file {run_config} --yes --target {closing_target()} "
        "--policy-pack policy --suppress-outputs",
        "  with: deployCidrs[0] 20.1.2.3/32",
        f"pulumi up --stack dev --yes --target {closing_target()} --policy-pack policy --suppress-outputs",
    ]
    assert (PROJECT_DIR / "Pulumi.dev.yaml").read_text() == stack_file


def test_a_failed_opening_says_how_to_close_what_it_may_have_opened(runner):
    step = {**named_step(health_job(), "open")}
    step["env"] = {**step["env"], "STACK": "dev", "RUNNER_ADDRESS": "20.1.2.3"}
    result, _ = run_step(runner, step, {}, STUB_CLOSE_FAILS="1")
    assert result.returncode != 0
    assert "fix: bin/deploy-access.sh close dev" in result.stderr
