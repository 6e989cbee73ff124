"""The CLI's config step (tools/cliconfig.py) against Pulumi's own cases.

Each case restates a test of pulumi/pulumi v3.259.0 (requirements.txt pins pulumi==3.272.0; v3.259.0
is the newest tag our mirror holds, and these files are unchanged from it to the mirror's head):
- pkg/workspace/config_project_test.go: ValidateStackConfigAndApplyProjectConfig (named `Test…` below);
- sdk/go/common/workspace/project_test.go: Project.Validate on load;
- cases marked `config.go` follow pkg/workspace/config.go where no upstream test pins the behaviour.
Expected error texts are the CLI's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools import cliconfig


@dataclass
class Case:
    source: str
    project: str
    stack: str = "config: {}\n"
    error: str | None = None
    expected: dict[str, str] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)


STACK_STEP_CASES = [
    Case(
        "TestStackConfigIsInheritedFromProjectConfig",
        "name: test\nconfig:\n  instanceSize: t3.micro\n  instanceCount: 20\n  protect: true\n",
        "config:\n  test:instanceSize: t4.large\n",
        expected={
            "test:instanceSize": "t4.large",
            "test:instanceCount": "20",
            "test:protect": "true",
        },
    ),
    Case(
        "TestNamespacedConfigValuesAreInheritedCorrectly",
        'name: test\nconfig:\n  aws:region: us-west-1\n  pulumi:disable-default-providers: ["*"]\n  instanceSize: t3.micro\n',
        "config:\n  test:instanceSize: t4.large\n",
        expected={
            "test:instanceSize": "t4.large",
            "aws:region": "us-west-1",
            "pulumi:disable-default-providers": '["*"]',
        },
    ),
    Case(
        "TestLoadingStackConfigWithoutNamespacingTheProject",
        "name: test\nconfig:\n  aws:region: us-west-1\n  instanceSize: t3.micro\n",
        "config:\n  instanceSize: t4.large\n",
        expected={"test:instanceSize": "t4.large", "aws:region": "us-west-1"},
    ),
    Case(
        "TestUntypedProjectConfigValuesAreNotValidated",
        "name: test\nconfig:\n  instanceSize: t3.micro\n  aws:region: us-west-1\n",
        "config:\n  instanceSize: 9999\n  aws:region: 42\n",
        expected={"test:instanceSize": "9999", "aws:region": "42"},
    ),
    Case(
        "TestUntypedProjectConfigValuesWithOnlyDefaultOrOnlyValue",
        "name: test\nconfig:\n  instanceSize:\n    default: t3.micro\n  region:\n    value: us-west-1\n",
        "config:\n  aws:answer: 42\n",
        expected={"test:instanceSize": "t3.micro", "test:region": "us-west-1", "aws:answer": "42"},
    ),
    Case(
        "TestUntypedStackConfigValuesDoNeedProjectDeclaration",
        "name: test\nconfig:\n  createVpc: true\n",
        "config:\n  instanceSize: 42\n",
        expected={"test:instanceSize": "42", "test:createVpc": "true"},
    ),
    Case(
        "TestUntypedProjectConfigObjectValuesPassedDownToStack",
        "name: test\nconfig:\n  instanceSize:\n    value:\n      hello: world\n"
        "  aws:config:\n    value:\n      region: us-west-1\n",
        "config:\n  aws:whatever: 42\n",
        expected={
            "test:instanceSize": '{"hello":"world"}',
            "aws:config": '{"region":"us-west-1"}',
            "aws:whatever": "42",
        },
    ),
    Case(
        "TestStackConfigErrorsWhenStackValueIsNotCorrectlyTyped",
        "name: test\nconfig:\n  values:\n    type: array\n    items:\n      type: string\n    default: [value]\n",
        "config:\n  test:values: someValue\n",
        error="Stack 'dev' with configuration key 'values' must be of type 'array<string>'",
    ),
    Case(
        "TestStackConfigIntegerTypeIsCorrectlyValidated (valid)",
        "name: test\nconfig:\n  importantNumber:\n    type: integer\n",
        "config:\n  test:importantNumber: 20\n",
        expected={"test:importantNumber": "20"},
    ),
    Case(
        "TestStackConfigIntegerTypeIsCorrectlyValidated (invalid)",
        "name: test\nconfig:\n  importantNumber:\n    type: integer\n",
        "config:\n  test:importantNumber: hello\n",
        error="Stack 'dev' with configuration key 'importantNumber' must be of type 'integer'",
    ),
    Case(
        "TestStackConfigErrorsWhenMissingStackValueForConfigTypeWithNoDefault",
        "name: test\nconfig:\n  values:\n    type: array\n    items:\n      type: string\n",
        "",
        error="Stack 'dev' is missing configuration value 'values'",
    ),
    Case(
        "TestStackConfigErrorsWhenMissingTwoStackValueForConfigTypeWithNoDefault",
        "name: test\nconfig:\n  another:\n    type: string\n  values:\n    type: array\n    items:\n      type: string\n",
        "",
        error="Stack 'dev' is missing configuration values 'another' and 'values'",
    ),
    Case(
        "TestStackConfigErrorsWhenMissingMultipleStackValueForConfigTypeWithNoDefault",
        "name: test\nconfig:\n  hello:\n    type: integer\n  values:\n    type: array\n    items:\n      type: string\n"
        "  world:\n    type: string\n",
        "",
        error="Stack 'dev' is missing configuration values 'hello', 'values' and 'world'",
    ),
    Case(
        "TestStackConfigDoesNotErrorWhenProjectHasNotDefinedConfig",
        "name: test\n",
        "config:\n  hello: 21\n  world: 42\n  another: 42\n",
        expected={"test:hello": "21", "test:world": "42", "test:another": "42"},
    ),
    Case(
        "TestStackConfigSecretIsCorrectlyValidated (valid)",
        "name: test\nconfig:\n  importantNumber:\n    type: integer\n    secret: true\n",
        "config:\n  test:importantNumber:\n    secure: MjA=\n",
        expected={"test:importantNumber": cliconfig.UNDECRYPTABLE},
        secret_keys=["test:importantNumber"],
    ),
    Case(
        "TestStackConfigSecretIsCorrectlyValidated (invalid)",
        "name: test\nconfig:\n  importantNumber:\n    type: integer\n    secret: true\n",
        "config:\n  test:importantNumber: 20\n",
        error="Stack 'dev' with configuration key 'importantNumber' must be encrypted as it's secret",
    ),
    Case(
        "TestStackConfigUInt64",
        "name: test\n",
        "config:\n  test:instanceSize: 18446744073709551615\n",
        expected={"test:instanceSize": "18446744073709551615"},
    ),
    Case(
        "config.go: an untyped key with a JSON default is inherited as JSON (tags, apps, appSecrets)",
        "name: test\nconfig:\n  tags:\n    default: {}\n  apps:\n    default: []\n"
        "  appSecrets:\n    secret: true\n    default: {}\n",
        expected={"test:tags": "{}", "test:apps": "[]", "test:appSecrets": "{}"},
    ),
    Case(
        "config.go: an untyped key without a default is required too",
        "name: test\nconfig:\n  tags:\n    description: an object\n  appSecrets:\n    secret: true\n",
        error="Stack 'dev' is missing configuration values 'appSecrets' and 'tags'",
    ),
    Case(
        "config.go: `default: null` is no default",
        "name: test\nconfig:\n  tags:\n    default: null\n",
        error="Stack 'dev' is missing configuration value 'tags'",
    ),
    Case(
        "config.go: a namespaced key's `value` yields to the stack's",
        "name: test\nconfig:\n  aws:region:\n    value: us-west-2\n",
        "config:\n  aws:region: eu-west-2\n",
        expected={"aws:region": "eu-west-2"},
    ),
    Case(
        "config.go: a typed secret key's plain default is refused",
        "name: test\nconfig:\n  token:\n    type: string\n    secret: true\n    default: none\n",
        error="Stack 'dev' with configuration key 'token' must be encrypted as it's secret",
    ),
    Case(
        "config.go: an untyped secret key is not checked",
        "name: test\nconfig:\n  token:\n    secret: true\n    default: none\n",
        expected={"test:token": "none"},
    ),
    Case(
        "config.go: array items are validated",
        "name: test\nconfig:\n  cidrs:\n    type: array\n    items:\n      type: string\n    default: []\n",
        "config:\n  cidrs: [10.0.0.0/8, 7]\n",
        error="Stack 'dev' with configuration key 'cidrs' must be of type 'array<string>'",
    ),
    Case(
        "config.go: a JSON string is not an array",
        "name: test\nconfig:\n  cidrs:\n    type: array\n    items:\n      type: string\n    default: []\n",
        "config:\n  cidrs: '[\"10.0.0.0/8\"]'\n",
        error="Stack 'dev' with configuration key 'cidrs' must be of type 'array<string>'",
    ),
    Case(
        "config.go: booleans are true or false; yaml.v3 reads `yes` as a string",
        "name: test\nconfig:\n  protect:\n    type: boolean\n    default: false\n",
        "config:\n  protect: yes\n",
        error="Stack 'dev' with configuration key 'protect' must be of type 'boolean'",
    ),
    Case(
        "config.go: a secure leaf makes the whole key secret; objects reach the program as sorted JSON",
        "name: test\n",
        "config:\n  appSecrets:\n    web:\n      KEY:\n        secure: abc\n      A: 1\n",
        expected={"test:appSecrets": '{"web":{"A":1,"KEY":"' + cliconfig.UNDECRYPTABLE + '"}}'},
        secret_keys=["test:appSecrets"],
    ),
    Case(
        "loaders.go: a key without a value is an empty string",
        "name: test\n",
        "config:\n  sshPublicKey:\n",
        expected={"test:sshPublicKey": ""},
    ),
]


def _run(case: Case, tmp_path: Path) -> cliconfig.StackConfig:
    (tmp_path / "Pulumi.yaml").write_text(case.project)
    (tmp_path / "Pulumi.dev.yaml").write_text(case.stack)
    project = cliconfig.load_project(tmp_path / "Pulumi.yaml")
    stack = cliconfig.StackConfig.load(project, tmp_path / "Pulumi.dev.yaml")
    cliconfig.apply_project_config("dev", project, stack)
    return stack


@pytest.mark.parametrize("case", STACK_STEP_CASES, ids=lambda case: case.source)
def test_the_stack_step_matches_pulumis_cases(case: Case, tmp_path: Path):
    if case.error:
        with pytest.raises(cliconfig.CliConfigError) as caught:
            _run(case, tmp_path)
        assert str(caught.value) == case.error
    else:
        stack = _run(case, tmp_path)
        assert stack.for_program() == case.expected
        assert stack.secret_keys() == case.secret_keys


PROJECT_VALIDATION_CASES = [
    (
        "TestProjectValidationFailsForIncorrectDefaultValueType",
        "name: test\nconfig:\n  instanceSize:\n    type: integer\n    default: hello\n",
        "The default value specified for configuration key 'instanceSize' is not of the expected type 'integer'",
    ),
    (
        "TestProjectValidationFailsForIncorrectDefaultValueType (nested array)",
        "name: test\nconfig:\n  values:\n    type: array\n    items:\n      type: array\n      items:\n        type: string\n"
        "    default: [hello]\n",
        "The default value specified for configuration key 'values' is not of the expected type 'array<array<string>>'",
    ),
    (
        "TestNamespacedProjectConfigShouldNotBeExplicitlyTyped",
        "name: test\nconfig:\n  aws:region:\n    type: string\n    value:\n      region: us-west-1\n",
        "Configuration key 'aws:region' is not namespaced by the project and should not define a type",
    ),
    (
        "TestProjectConfigCannotHaveBothValueAndDefault",
        "name: test\nconfig:\n  instanceSize:\n    type: string\n    default: t3.micro\n    value: t4.large\n",
        "project config 'instanceSize' cannot have both a 'default' and 'value' attribute",
    ),
    (
        "TestProjectConfigCannotBeTypedArrayWithoutItems",
        "name: test\nconfig:\n  instanceSize:\n    type: array\n    default: [t3.micro, t4.large]\n",
        "The configuration key 'instanceSize' declares an array but does not specify the underlying type via the "
        "'items' attribute",
    ),
    (
        "TestNamespacedProjectConfigShouldNotBeProvideDefault",
        "name: test\nconfig:\n  aws:region:\n    default: us-west-1\n",
        "Configuration key 'aws:region' is not namespaced by the project and should not define a default value. "
        "Did you mean to use the 'value' attribute instead of 'default'?",
    ),
]


@pytest.mark.parametrize(
    ("source", "project", "error"), PROJECT_VALIDATION_CASES, ids=lambda v: v[:60]
)
def test_project_validation_matches_pulumis_cases(
    source: str, project: str, error: str, tmp_path: Path
):
    (tmp_path / "Pulumi.yaml").write_text(project)
    with pytest.raises(cliconfig.CliConfigError) as caught:
        cliconfig.load_project(tmp_path / "Pulumi.yaml")
    assert str(caught.value) == error


@pytest.mark.parametrize(
    ("source", "project"),
    [
        (
            "TestProjectValidationSucceedsForCorrectDefaultValueType",
            "name: test\nconfig:\n  instanceSize:\n    type: integer\n    default: 1\n"
            "  values:\n    type: array\n    items:\n      type: array\n      items:\n        type: string\n"
            "    default: [[hello]]\n",
        ),
        (
            "TestProjectValidationSucceedsForObjectConfigType",
            "name: test\nconfig:\n  example:\n    type: object\n    default:\n      hello: world\n",
        ),
    ],
)
def test_valid_projects_load(source: str, project: str, tmp_path: Path):
    (tmp_path / "Pulumi.yaml").write_text(project)
    assert cliconfig.load_project(tmp_path / "Pulumi.yaml").name == "test"


# `pulumi config set --path` (pkg/cmd/pulumi/config/config.go → config.Map.Set, object.Set) and
# ParsePropertyPathStrict (sdk/go/common/resource/properties_path.go, whose doc comment lists these paths).
PATH_CASES = [
    ("adminCidrs[0]", "203.0.113.7/32", None, {"test:adminCidrs": '["203.0.113.7/32"]'}),
    ("tags.team", "platform", None, {"test:tags": '{"team":"platform"}'}),
    ("a.b.c", "true", None, {"test:a": '{"b":{"c":true}}'}),
    ("a.n", "0123", None, {"test:a": '{"n":"0123"}'}),
    ("a.n", "42", None, {"test:a": '{"n":42}'}),
    ('["key.with.dots"].x', "1", None, {"test:key.with.dots": '{"x":1}'}),
    ('tags["team name"]', "a", None, {"test:tags": '{"team name":"a"}'}),
    (
        'root["key with \\"escaped\\" quotes"]',
        "v",
        None,
        {"test:root": '{"key with \\"escaped\\" quotes":"v"}'},
    ),
    ("count", "42", None, {"test:count": "42"}),
    ("adminCidrs[2]", "x", None, {"test:adminCidrs": '[null,null,"x"]'}),
    ("list[0].name", "web", None, {"test:list": '[{"name":"web"}]'}),
    ("a.b[", "x", "invalid config key path: missing closing bracket in array index", None),
    ("a.[0]", "x", "invalid config key path: expected property name after '.'", None),
    ("[0]", "x", "first path segement of config key must be a string", None),
    ("a.secure", "x", 'maps with the single key "secure" are reserved', None),
]


@pytest.mark.parametrize(("key", "value", "error", "expected"), PATH_CASES)
def test_path_keys_set_values_as_pulumi_config_set_path_does(key, value, error, expected):
    stack = cliconfig.StackConfig("test")
    if error:
        with pytest.raises(cliconfig.CliConfigError) as caught:
            stack.set_path(key, value)
        assert str(caught.value) == error
    else:
        stack.set_path(key, value)
        assert stack.for_program() == expected


def test_path_set_into_an_existing_list_extends_it_by_one_only():
    stack = cliconfig.StackConfig("test")
    stack.set_path("adminCidrs[0]", "a")
    stack.set_path("adminCidrs[1]", "b")
    assert stack.for_program() == {"test:adminCidrs": '["a","b"]'}
    with pytest.raises(
        cliconfig.CliConfigError, match=r"^adminCidrs\[3\]: array index out of range$"
    ):
        stack.set_path("adminCidrs[3]", "d")


def test_a_secret_path_value_makes_the_key_secret():
    stack = cliconfig.StackConfig("test")
    stack.set_path("appSecrets.web.KEY", cliconfig.Secure("s3cret"))
    assert stack.secret_keys() == ["test:appSecrets"]
    assert stack.for_program() == {"test:appSecrets": '{"web":{"KEY":"s3cret"}}'}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("on", "on"),
        ("True", True),
        ("0x1F", 31),
        ("0o17", 15),
        ("017", 15),
        ("1_000", 1000),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("~", None),
        ("'true'", "true"),
    ],
)
def test_yaml_scalars_resolve_as_yaml_v3_does(text, value, tmp_path: Path):
    """gopkg.in/yaml.v3 v3.0.1 resolve.go: YAML 1.2 booleans, Go integer literals."""
    path = tmp_path / "x.yaml"
    path.write_text(f"v: {text}\n")
    assert cliconfig.load_yaml(path) == {"v": value}


@pytest.mark.parametrize(
    ("value", "text"), [(1000.0, "1000"), (0.5, "0.5"), (1e21, "1e+21"), (1.5e-7, "1.5e-7")]
)
def test_numbers_reach_the_program_as_go_writes_them(value, text):
    assert cliconfig.go_json(value) == text


def test_go_json_escapes_html_characters_like_encoding_json():
    assert (
        cliconfig.go_json({"b": "<&>", "a": [1, True, None]})
        == '{"a":[1,true,null],"b":"\\u003c\\u0026\\u003e"}'
    )


def test_malformed_yaml_is_one_line_naming_the_file(tmp_path: Path):
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text("config:\n  a: [1, 2\n")
    with pytest.raises(cliconfig.CliConfigError) as caught:
        cliconfig.load_yaml(path)
    line = caught.value.one_line()
    assert line.startswith("Pulumi.bad.yaml: invalid YAML file: line ")
    assert "\n" not in line


# gopkg.in/yaml.v3 v3.0.1 decode.go `decoder.mapping` (uniqueKeys is always on) and yaml.go `TypeError.Error`.
DUPLICATE_KEY_CASES = [
    (
        "config:\n  aws:region: a\n  lightsail-k3s:protect: false\n  lightsail-k3s:protect: true\n",
        ['line 4: mapping key "lightsail-k3s:protect" already defined at line 3'],
    ),
    (
        # Keys are compared by kind and text: a quoted key is the same key.
        'config:\n  tags: {}\n  "tags": {a: b}\n',
        ['line 3: mapping key "tags" already defined at line 2'],
    ),
    (
        "config:\n  apps:\n    - name: a\n      port: 1\n      port: 2\n    - name: b\n      name: c\n",
        [
            'line 5: mapping key "port" already defined at line 4',
            'line 7: mapping key "name" already defined at line 6',
        ],
    ),
    (
        # A mapping with a duplicate is not decoded further: the one inside it goes unreported.
        "config:\n  a: {x: 1, x: 2}\nconfig: {}\n",
        ['line 3: mapping key "config" already defined at line 1'],
    ),
]


@pytest.mark.parametrize(("text", "errors"), DUPLICATE_KEY_CASES)
def test_a_duplicate_key_is_refused_as_yaml_v3_refuses_it(text, errors, tmp_path: Path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(text)
    with pytest.raises(cliconfig.CliConfigError) as caught:
        cliconfig.load_yaml(path)
    assert str(caught.value) == "yaml: unmarshal errors:\n  " + "\n  ".join(errors)
    assert caught.value.source == "Pulumi.dev.yaml"


def test_equal_values_under_different_keys_are_no_duplicates(tmp_path: Path):
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("config:\n  a: 1\n  b: 1\n  c: {a: 1}\n")
    assert cliconfig.load_yaml(path) == {"config": {"a": 1, "b": 1, "c": {"a": 1}}}
