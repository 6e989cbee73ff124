"""`pulumi new <this repository's URL>`: Pulumi.yaml's `template:` section, the questions it asks, and
the stack it writes, which the CLI's config step and the program accept as they are.

pulumi/pulumi pkg/cmd/pulumi/project/newcmd/config.go (resolveTemplateConfig, encryptTemplateConfig)
writes each answer, else the template's default, as a string under the project's namespace when the
key has none; an empty one is not written. sdk/go/common/workspace/project.json allows `template`
the properties of apitype.ProjectTemplate only.
"""

from pathlib import Path

import pytest

from tests.helpers import FIREWALL, PROJECT_DIR, Declared, rejected
from tools import cliconfig, mockengine

PROJECT = cliconfig.load_project(PROJECT_DIR / "Pulumi.yaml")


def new_stack(answers: dict[str, str]) -> Declared:
    """The dev stack's program run on the config `pulumi new` writes from `answers` alone."""

    def as_pulumi_new_writes_it(config: cliconfig.StackConfig) -> None:
        config.values = dict(cliconfig.template_stack(PROJECT, answers).values)

    return Declared(mockengine.run("dev", edit_config=as_pulumi_new_writes_it))


def test_the_template_asks_for_the_region_admin_cidrs_and_bundle():
    assert sorted(PROJECT.template_config) == ["adminCidrs", "aws:region", "bundleId"]
    assert PROJECT.template_config["aws:region"].default == "ap-northeast-2"
    # The template's bundle is the one the project defaults to: accepting it changes nothing.
    assert PROJECT.template_config["bundleId"].default == PROJECT.config["bundleId"].default
    assert all(question.description for question in PROJECT.template_config.values())


def test_the_answers_are_written_as_pulumi_new_writes_them():
    stack = cliconfig.template_stack(PROJECT, {"adminCidrs": "1.2.3.4/32, 5.6.7.8/32"})
    assert stack.for_program() == {
        "aws:region": "ap-northeast-2",
        "lightsail-k3s:adminCidrs": "1.2.3.4/32, 5.6.7.8/32",
        "lightsail-k3s:bundleId": "small_3_0",
    }


def test_a_stack_from_the_template_deploys_with_the_answered_cidrs():
    deployment = new_stack({"adminCidrs": "1.2.3.4/32, 5.6.7.8/32", "bundleId": "medium_3_0"})
    rules = deployment.one(FIREWALL).inputs["portInfos"]
    ssh = next(rule for rule in rules if rule["fromPort"] == 22)
    assert ssh["cidrs"] == ["1.2.3.4/32", "5.6.7.8/32"]
    assert deployment.one("aws:lightsail/instance:Instance").inputs["bundleId"] == "medium_3_0"


def test_an_empty_admin_cidrs_answer_is_left_to_make_up():
    assert "lightsail-k3s:adminCidrs" not in cliconfig.template_stack(PROJECT, {}).values
    rejected(
        "adminCidrs",
        "no admin CIDRs are set",
        run=lambda **options: new_stack({}),
    )


@pytest.mark.parametrize(
    ("template", "error"),
    [
        (
            "template:\n  descrption: x\n",
            "#/template: additionalProperties 'descrption' not allowed",
        ),
        (
            "template:\n  config:\n    region:\n      secret: maybe\n",
            "#/template/config/region/secret: expected boolean",
        ),
    ],
)
def test_a_template_section_outside_the_project_schema_is_refused(template, error, tmp_path: Path):
    (tmp_path / "Pulumi.yaml").write_text("name: test\n" + template)
    with pytest.raises(cliconfig.CliConfigError) as caught:
        cliconfig.load_project(tmp_path / "Pulumi.yaml")
    assert str(caught.value) == error


def test_a_secret_question_is_written_encrypted(tmp_path: Path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: test\ntemplate:\n  config:\n    token:\n      secret: true\n"
    )
    project = cliconfig.load_project(tmp_path / "Pulumi.yaml")
    assert cliconfig.template_stack(project, {"token": "s3cret"}).secret_keys() == ["test:token"]
