"""The Pulumi CLI's config step, emulated: what `pulumi up` does with Pulumi.yaml and
Pulumi.<stack>.yaml before the program starts.

Read from pulumi/pulumi v3.259.0 (the newest tag in our mirror; requirements.txt pins the
SDK at 3.272.0, and none of these files changed between v3.259.0 and the mirror's head):

- sdk/go/common/workspace/project.go: `RewriteShorthandConfigValues`, `Project.Validate`,
  `ValidateConfigValue`, `InferFullTypeName`;
- sdk/go/common/workspace/loaders.go: `LoadProjectStackBytes` (un-namespaced stack keys get the
  project's namespace; a key without a value is an empty string);
- pkg/workspace/config.go: `ValidateStackConfigAndApplyProjectConfig` (`mergeConfig`: project
  defaults and values, the missing-key error, type and secret validation, `createConfigValue`);
- sdk/go/common/resource/config/{key,map,object,value}.go: keys, `Map.Set` with `--path`,
  `coerce`, secure values, and how values reach the program (`Value.Value`: strings as they
  are, objects and arrays as Go's `json.Marshal` writes them);
- sdk/go/common/workspace/project.json (`template`) and pkg/cmd/pulumi/project/newcmd/config.go:
  the template section, and the stack `pulumi new` writes from it (`template_stack`);
- sdk/go/common/resource/properties_path.go: `ParsePropertyPathStrict` (`a[0]`, `a.b.c`,
  `["quoted.key"]`);
- YAML is read as gopkg.in/yaml.v3 v3.0.1 resolves plain scalars (resolve.go): only
  true/True/TRUE and false/False/FALSE are booleans, so `yes` stays a string; and a key written
  twice in one mapping is refused, as its decode.go does (GoYamlLoader).

The conformance cases in tests/test_cli_config.py restate pkg/workspace/config_project_test.go
and sdk/go/common/workspace/project_test.go. Not emulated: ESC environments (refused), unquoted
timestamps (refused: the CLI turns them into Go time strings), and the type of a stack file's
`secure:` value, which only the CLI can decrypt (the program gets UNDECRYPTABLE in its place).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from components.settings import SafeYamlLoader

# A stand-in for a `secure:` value of a stack file, which only the CLI can decrypt.
UNDECRYPTABLE = "mock-secret-value"


class CliConfigError(Exception):
    """What the CLI would print before refusing to run; `source` names the file or item at fault."""

    def __init__(self, message: str, source: str = ""):
        self.source = source
        super().__init__(message)

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{self.source}: {text}" if self.source else text


@dataclass(frozen=True)
class Secure:
    """A secret leaf: the stack file's ciphertext (plaintext unknown here) or a known plaintext."""

    plaintext: str | None = None

    def reveal(self) -> str:
        return UNDECRYPTABLE if self.plaintext is None else self.plaintext


# --- YAML as gopkg.in/yaml.v3 reads it -------------------------------------------------------


class GoYamlLoader(SafeYamlLoader):
    """PyYAML with yaml.v3's scalar resolution instead of YAML 1.1's, and its refusal of duplicate keys.

    yaml.v3 v3.0.1 decode.go (`decoder.mapping`, uniqueKeys is always on in newDecoder): two keys of
    one mapping with the same kind and text are an error, `line N: mapping key "k" already defined
    at line M`, collected for the whole document into a TypeError (yaml.go: `yaml: unmarshal
    errors:` and one indented line per error); a mapping with a duplicate is not decoded further.
    PyYAML keeps the last value instead.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        # (start index, end index, error) of each mapping holding a duplicate key, in document order.
        self.duplicate_keys: list[tuple[int, int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[type, str], int] = {}
        for key_node, _ in node.value:
            # A node's text is its scalar's; a collection key (kind only) has none, as in yaml.v3.
            identity = (
                type(key_node),
                key_node.value if isinstance(key_node, yaml.ScalarNode) else "",
            )
            line = key_node.start_mark.line + 1
            if identity in seen:
                self.duplicate_keys.append(
                    (
                        node.start_mark.index,
                        node.end_mark.index,
                        f"line {line}: mapping key {_go_quoted(identity[1])} already defined at line {seen[identity]}",
                    )
                )
            else:
                seen[identity] = line
        return super().construct_mapping(node, deep)  # pyright: ignore[reportArgumentType]

    def unmarshal_errors(self) -> list[str]:
        """The duplicate-key errors yaml.v3 reports: none from inside a mapping it stopped at."""
        refused = [(start, end) for start, end, _ in self.duplicate_keys]
        return [
            error
            for start, end, error in sorted(self.duplicate_keys, key=lambda entry: entry[0])
            if not any(
                outer_start < start and end <= outer_end for outer_start, outer_end in refused
            )
        ]


def _go_quoted(text: str) -> str:
    """Go's %#v of a string (strconv.Quote) for the printable text keys hold."""
    return json.dumps(text, ensure_ascii=False)


GoYamlLoader.yaml_implicit_resolvers = {}
_GO_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9_]+)$")
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_SPECIAL_FLOATS = {
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{1,2}-\d{1,2}([Tt ]\d{1,2}:\d{1,2}:\d{1,2}(\.\d+)?([Zz]|[-+]\d{2}:\d{2})?)?$"
)


class _GoScalar:
    pass


def _resolve_go_scalar(text: str) -> Any:
    """yaml.v3 resolve.go for an untagged plain scalar."""
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in _GO_SPECIAL_FLOATS:
        return _GO_SPECIAL_FLOATS[text]
    if _TIMESTAMP.match(text):
        raise ValueError(f"{text!r} is read as a timestamp by the CLI; quote it")
    plain = text.replace("_", "")
    if _GO_INT.match(text) and plain.lstrip("+-"):
        try:
            return _go_parse_int(plain)
        except ValueError:
            pass
    if _GO_FLOAT.match(plain):
        return float(plain)
    return text


def _go_parse_int(plain: str) -> int:
    """strconv.ParseInt(s, 0, 64), widened to uint64 as yaml.v3 does."""
    sign = -1 if plain.startswith("-") else 1
    digits = plain.lstrip("+-")
    if digits[:2].lower() == "0x":
        value = int(digits[2:], 16)
    elif digits[:2].lower() == "0o":
        value = int(digits[2:], 8)
    elif digits[:2].lower() == "0b":
        value = int(digits[2:], 2)
    elif len(digits) > 1 and digits.startswith("0"):
        value = int(digits[1:], 8)
    else:
        value = int(digits, 10)
    value *= sign
    if not -(2**63) <= value < 2**64:
        raise ValueError("out of range")
    return value


def _construct_plain_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    if not node.style and node.tag == "tag:yaml.org,2002:go-plain":  # libyaml: "", PyYAML: None
        try:
            return _resolve_go_scalar(node.value)
        except ValueError as error:
            raise yaml.constructor.ConstructorError(
                None, None, str(error), node.start_mark
            ) from None
    return loader.construct_scalar(node)


GoYamlLoader.add_implicit_resolver("tag:yaml.org,2002:go-plain", re.compile(r"^", re.S), None)
GoYamlLoader.add_constructor("tag:yaml.org,2002:go-plain", _construct_plain_scalar)


def load_yaml(path: Path) -> Any:
    """Reads a YAML file as the CLI does; errors become one CliConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise CliConfigError(error.strerror or str(error), path.name) from None
    except UnicodeDecodeError as error:
        raise CliConfigError(f"invalid YAML file: {error}", path.name) from None
    loader = GoYamlLoader(text)
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise CliConfigError(
            f"invalid YAML file: {where}{error.problem or error.context}", path.name
        ) from None
    except yaml.YAMLError as error:
        raise CliConfigError(f"invalid YAML file: {error}", path.name) from None
    finally:
        loader.dispose()
    errors = loader.unmarshal_errors()
    if errors:
        raise CliConfigError("yaml: unmarshal errors:\n  " + "\n  ".join(errors), path.name)
    return document


# --- Values as the CLI stores and hands them on -------------------------------------------------


def go_json(value: Any) -> str:
    """Go's json.Marshal: sorted keys, no spaces, <, >, & escaped, floats in Go's shortest form."""
    if isinstance(value, Secure):
        value = value.reveal()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CliConfigError(f"json: unsupported value: {_go_float_text(value)}")
        return _go_float_text(value)
    if isinstance(value, str):
        return (
            json.dumps(value, ensure_ascii=False)
            .replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    if isinstance(value, list):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ",".join(
                f"{go_json(str(key))}:{go_json(value[key])}" for key in sorted(value, key=str)
            )
            + "}"
        )
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _go_float_text(value: float) -> str:
    """strconv.FormatFloat as encoding/json uses it: 'f' between 1e-6 and 1e21, else 'e' with a short exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        text = format(Decimal(repr(value)), "f")
        return text[:-2] if text.endswith(".0") else text
    mantissa, exponent = repr(value).split("e")
    return f"{mantissa.removesuffix('.0')}e{exponent[0]}{exponent[1:].lstrip('0') or '0'}"


@dataclass(frozen=True)
class ConfigValue:
    """config.Value: a string (maybe secure), or an "object" value: any JSON value, kept as structure."""

    raw: Any  # str or Secure when not is_object; a JSON-able structure (Secure leaves allowed) when is_object
    is_object: bool = False

    @property
    def secure(self) -> bool:
        return _contains_secure(self.raw)

    def text(self) -> str:
        """Value.Value(decrypter): what the program reads."""
        if self.is_object:
            return go_json(self.raw)
        return self.raw.reveal() if isinstance(self.raw, Secure) else self.raw


def _contains_secure(value: Any) -> bool:
    if isinstance(value, Secure):
        return True
    if isinstance(value, dict):
        return any(_contains_secure(member) for member in value.values())
    if isinstance(value, list):
        return any(_contains_secure(member) for member in value)
    return False


def _contains_undecryptable(value: Any) -> bool:
    if isinstance(value, Secure):
        return value.plaintext is None
    if isinstance(value, dict):
        return any(_contains_undecryptable(member) for member in value.values())
    if isinstance(value, list):
        return any(_contains_undecryptable(member) for member in value)
    return False


def _unmarshal_object(value: Any) -> Any:
    """object.unmarshalObject: `{secure: …}` maps become secure leaves."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("secure"), str):
            return Secure()
        return {str(key): _unmarshal_object(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_unmarshal_object(member) for member in value]
    return value


def _marshal_value(value: Any) -> ConfigValue:
    """object.marshalValue: scalars become strings (JSON text for non-strings), structures stay objects."""
    if isinstance(value, (list, dict)):
        return ConfigValue(value, is_object=True)
    if value is None:
        return ConfigValue("null", is_object=True)
    if isinstance(value, (str, Secure)):
        return ConfigValue(value)
    return ConfigValue(go_json(value))


def stack_value(yaml_value: Any) -> ConfigValue:
    """A stack file's value as config.Value; a key without a value is an empty string (loaders.go)."""
    return ConfigValue("") if yaml_value is None else _marshal_value(_unmarshal_object(yaml_value))


def _project_default_value(value: Any) -> ConfigValue:
    """createConfigValue: string, int and bool as text (%v), everything else as a JSON object value."""
    if isinstance(value, bool):
        return ConfigValue("true" if value else "false")
    if isinstance(value, (str, int)):
        return ConfigValue(str(value))
    return ConfigValue(json.loads(go_json(value)), is_object=True)


# --- Keys and --path ---------------------------------------------------------------------------------


def parse_key(text: str, project: str) -> tuple[str, str]:
    """config.ParseKey, after LoadProjectStackBytes gives un-namespaced keys the project's namespace."""
    if ":" not in text:
        return project, text
    if text.count(":") == 1:
        namespace, name = text.split(":")
        return namespace, name
    parts = text.split(":")
    if len(parts) == 3 and parts[1] == "config" and parts[0] and parts[2]:
        return parts[0], parts[2]
    raise CliConfigError(
        f"could not parse {text} as a configuration key (configuration keys should be of the form `<namespace>:<name>`)"
    )


def parse_property_path(path: str) -> list[str | int]:
    """ParsePropertyPathStrict."""
    elements: list[str | int] = []
    if path.startswith("."):
        raise CliConfigError("expected property path to start with a name or index")
    while path:
        if path[0] == ".":
            path = path[1:]
            if not path:
                raise CliConfigError("expected property path to end with a name or index")
            if path[0] == "[":
                raise CliConfigError("expected property name after '.'")
        elif path[0] == "[":
            if len(path) > 1 and path[1] == '"':
                key, index = [], 2
                while True:
                    if index >= len(path):
                        raise CliConfigError("missing closing quote in property name")
                    if path[index] == '"':
                        index += 1
                        break
                    if path[index] == "\\" and index + 1 < len(path) and path[index + 1] == '"':
                        key.append('"')
                        index += 2
                    else:
                        key.append(path[index])
                        index += 1
                if index >= len(path) or path[index] != "]":
                    raise CliConfigError("missing closing bracket in property access")
                elements.append("".join(key))
                path = path[index + 1 :]
            else:
                close = path.find("]")
                if close == -1:
                    raise CliConfigError("missing closing bracket in array index")
                segment = path[1:close]
                if segment == "*":
                    elements.append("*")
                elif re.fullmatch(r"[-+]?\d+", segment):
                    elements.append(int(segment))
                else:
                    raise CliConfigError(
                        f'invalid array index: strconv.ParseInt: parsing "{segment}": invalid syntax'
                    )
                path = path[close + 1 :]
        else:
            end = min((i for i in (path.find("."), path.find("[")) if i != -1), default=len(path))
            elements.append(path[:end])
            path = path[end:]
    return elements


def format_property_path(path: list[str | int]) -> str:
    """PropertyPath.String."""
    text = ""
    for position, element in enumerate(path):
        if isinstance(element, int):
            text += f"[{element}]"
        elif re.fullmatch(r"[A-Za-z0-9_]*", element):
            text += element if position == 0 else f".{element}"
        else:
            text += '["' + element.replace('"', '\\"') + '"]'
    return text


def coerce(text: str) -> Any:
    """config.coerce: "true"/"false" to booleans, base-10 digits without a leading 0 to integers."""
    if text in ("true", "false"):
        return text == "true"
    if len(text) > 1 and text[0] == "0":
        return text
    if re.fullmatch(r"[-+]?\d+", text) and -(2**63) <= int(text) < 2**64:
        return int(text)
    return text


def _set_in(container: Any, prefix: list[str | int], path: list[str | int], new: Any) -> Any:
    """object.Set: returns the updated container."""
    if not path:
        return new
    head = path[0]
    if not isinstance(container, (list, dict)):
        if container is not None and len(prefix) != 1:
            kind = "an array" if isinstance(head, int) else "a map"
            raise CliConfigError(f"{format_property_path(prefix)}: expected {kind}")
        container = [None] * (head + 1) if isinstance(head, int) else {}
    prefix = [*prefix, head]
    if isinstance(container, list):
        if not isinstance(head, int):
            raise CliConfigError(f"{format_property_path(prefix)}: key for an array must be an int")
        if head < 0 or head > len(container):
            raise CliConfigError(f"{format_property_path(prefix)}: array index out of range")
        if head == len(container):
            container.append(None)
        container[head] = _set_in(container[head], prefix, path[1:], new)
        return container
    if not isinstance(head, str):
        raise CliConfigError(f"{format_property_path(prefix)}: key for a map must be a string")
    if len(path) == 1 and not container and head == "secure" and isinstance(new, str):
        raise CliConfigError('maps with the single key "secure" are reserved')
    container[head] = _set_in(container.get(head), prefix, path[1:], new)
    return container


# --- Project and stack --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Declaration:
    type: str | None
    items: Any
    default: Any
    value: Any
    secret: bool
    description: str

    @property
    def has_default(self) -> bool:
        return self.default is not None

    @property
    def has_value(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Project:
    name: str
    config: dict[str, Declaration]
    # The `template:` section's config (apitype.ProjectTemplateConfigValue): key → (description,
    # default, secret), the questions `pulumi new <this repository>` asks.
    template_config: dict[str, TemplateValue] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateValue:
    description: str
    default: str
    secret: bool


def infer_full_type_name(type_name: str | None, items: Any) -> str:
    if isinstance(items, dict):
        return f"array<{infer_full_type_name(items.get('type'), items.get('items'))}>"
    return type_name or ""


def validate_config_value(type_name: str | None, items: Any, value: Any) -> bool:
    """ValidateConfigValue."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value == math.trunc(value) if math.isfinite(value) else False
        if isinstance(value, str):
            return re.fullmatch(r"[-+]?\d+", value) is not None and -(2**63) <= int(value) < 2**63
        return False
    if type_name == "boolean":
        return value in ("true", "false") if isinstance(value, str) else isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or not isinstance(items, dict):
        return False
    return all(validate_config_value(items.get("type"), items.get("items"), item) for item in value)


def _is_project_key(project: str, key: str) -> bool:
    """configKeyIsNamespacedByProject."""
    return ":" not in key or key.startswith(project + ":")


def load_project(path: Path) -> Project:
    """LoadProject: shorthand rewritten, then Project.Validate."""
    raw = load_yaml(path)
    source = path.name
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise CliConfigError("project is missing a non-empty string 'name' attribute", source)
    name = raw["name"]
    block = raw.get("config") or {}
    if not isinstance(block, dict):
        raise CliConfigError("#/config: expected object", source)
    declarations = {}
    for key, declaration in block.items():
        key = str(key)
        # RewriteShorthandConfigValues: strings, integers, booleans and arrays.
        if isinstance(declaration, (str, int, bool, list)):
            declaration = (
                {"default": declaration} if _is_project_key(name, key) else {"value": declaration}
            )
        if not isinstance(declaration, dict):
            raise CliConfigError(
                f"#/config/{key}: expected a string, integer, boolean, array or object", source
            )
        unknown = set(declaration) - {"type", "items", "description", "secret", "default", "value"}
        if unknown:
            raise CliConfigError(
                f"#/config/{key}: additionalProperties '{sorted(unknown)[0]}' not allowed", source
            )
        type_name = declaration.get("type")
        if type_name is not None and type_name not in (
            "string",
            "integer",
            "boolean",
            "array",
            "object",
        ):
            raise CliConfigError(
                f"#/config/{key}/type: value must be one of 'string', 'integer', 'boolean', 'array', 'object'",
                source,
            )
        declarations[key] = Declaration(
            type=type_name,
            items=declaration.get("items"),
            default=declaration.get("default"),
            value=declaration.get("value"),
            secret=bool(declaration.get("secret", False)),
            description=str(declaration.get("description", "")),
        )
    _validate_project(name, declarations, source)
    return Project(name, declarations, _template_config(raw.get("template"), source))


# sdk/go/common/workspace/project.json, `template` (ProjectTemplate): these properties only; each
# config entry's description a string, secret a boolean, default any value (apitype.ProjectTemplate
# decodes it into a Go string, which yaml.v3 fills with a scalar's text).
TEMPLATE_PROPERTIES = (
    "displayName",
    "description",
    "quickstart",
    "important",
    "metadata",
    "config",
)


def _template_config(template: Any, source: str) -> dict[str, TemplateValue]:
    if template is None:
        return {}
    if not isinstance(template, dict):
        raise CliConfigError(
            "#/template: expected object, but got " + type(template).__name__, source
        )
    unknown = sorted(set(template) - set(TEMPLATE_PROPERTIES))
    if unknown:
        raise CliConfigError(f"#/template: additionalProperties '{unknown[0]}' not allowed", source)
    values = {}
    for key, entry in (template.get("config") or {}).items():
        entry = entry or {}
        if not isinstance(entry.get("description", ""), (str, type(None))):
            raise CliConfigError(f"#/template/config/{key}/description: expected string", source)
        if not isinstance(entry.get("secret", False), (bool, type(None))):
            raise CliConfigError(f"#/template/config/{key}/secret: expected boolean", source)
        default = entry.get("default")
        values[str(key)] = TemplateValue(
            description=entry.get("description") or "",
            default="" if default is None else str(default),
            secret=bool(entry.get("secret")),
        )
    return values


def template_stack(project: Project, answers: Mapping[str, str]) -> StackConfig:
    """The stack config `pulumi new` writes from the template: each key (the project's namespace
    when it has none) gets the answer, else the default; an empty one is not written; every value is
    a string, encrypted when `secret` (pkg/cmd/pulumi/project/newcmd/config.go:
    resolveTemplateConfig, encryptTemplateConfig)."""
    stack = StackConfig(project.name)
    for key, question in project.template_config.items():
        value = answers.get(key) or question.default
        if not value:
            continue
        namespace, name = parse_key(key, project.name)
        stack.values[f"{namespace}:{name}"] = ConfigValue(
            Secure(value) if question.secret else value
        )
    return stack


def _validate_project(name: str, declarations: Mapping[str, Declaration], source: str) -> None:
    """Project.Validate."""
    for key, declaration in declarations.items():
        if declaration.has_default and declaration.has_value:
            raise CliConfigError(
                f"project config '{key}' cannot have both a 'default' and 'value' attribute", source
            )
        if _is_project_key(name, key):
            if declaration.type == "array" and declaration.items is None:
                raise CliConfigError(
                    f"The configuration key '{key}' declares an array "
                    "but does not specify the underlying type via the 'items' attribute",
                    source,
                )
            if declaration.type is not None and declaration.has_default:
                if not validate_config_value(
                    declaration.type, declaration.items, declaration.default
                ):
                    raise CliConfigError(
                        f"The default value specified for configuration key '{key}' is not of the expected type "
                        f"'{infer_full_type_name(declaration.type, declaration.items)}'",
                        source,
                    )
        else:
            if declaration.type is not None:
                raise CliConfigError(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a type",
                    source,
                )
            if declaration.has_default:
                raise CliConfigError(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a default value. "
                    "Did you mean to use the 'value' attribute instead of 'default'?",
                    source,
                )
            if not declaration.has_value:
                raise CliConfigError(
                    f"Configuration key '{key}' is namespaced and must provide an attribute 'value'",
                    source,
                )


class StackConfig:
    """config.Map: full key ("ns:name") to ConfigValue."""

    def __init__(self, project: str, values: Mapping[str, ConfigValue] | None = None):
        self.project = project
        self.values: dict[str, ConfigValue] = dict(values or {})

    @classmethod
    def load(cls, project: Project, path: Path) -> StackConfig:
        """LoadProjectStack."""
        raw = load_yaml(path) if path.exists() else None
        stack = cls(project.name)
        if raw is None:
            return stack
        if not isinstance(raw, dict):
            raise CliConfigError(
                "expected the stack file to hold a map with a `config:` key", path.name
            )
        if raw.get("environment"):
            raise CliConfigError(
                "the stack imports ESC environments, whose values only Pulumi Cloud knows",
                path.name,
            )
        block = raw.get("config") or {}
        if not isinstance(block, dict):
            raise CliConfigError("could not unmarshal map: `config:` is not a map", path.name)
        for key, value in block.items():
            try:
                namespace, name = parse_key(str(key), project.name)
                stack.values[f"{namespace}:{name}"] = stack_value(value)
            except CliConfigError as error:
                raise CliConfigError(f"could not unmarshal map: {error}", path.name) from None
        return stack

    def _split(self, key: str) -> tuple[list[str | int], str]:
        """parseKeyPath."""
        namespace, name = parse_key(key, self.project)
        try:
            path = parse_property_path(name)
        except CliConfigError as error:
            raise CliConfigError(f"invalid config key path: {error}") from None
        if not path:
            raise CliConfigError("empty config key path")
        if not isinstance(path[0], str):
            raise CliConfigError("first path segement of config key must be a string")
        if path[0] == "":
            raise CliConfigError("config key is empty")
        return path, f"{namespace}:{path[0]}"

    def root_key(self, key: str) -> str:
        """The full top-level key a (maybe --path) key is under: `tags.team` → `<project>:tags`."""
        return self._split(key)[1]

    def get(self, key: str) -> ConfigValue | None:
        """Map.Get(key, path=true)."""
        path, root_key = self._split(key)
        root = self.values.get(root_key)
        if len(path) == 1 or root is None:
            return root
        member: Any = root.raw
        for element in path[1:]:
            if isinstance(member, list) and isinstance(element, int) and 0 <= element < len(member):
                member = member[element]
            elif isinstance(member, dict) and isinstance(element, str) and element in member:
                member = member[element]
            else:
                return None
        return _marshal_value(member)

    def set_path(self, key: str, value: str | Secure) -> None:
        """Map.Set(key, value, path=true), as `pulumi config set [--secret] --path KEY VALUE` calls it."""
        path, root_key = self._split(key)
        if len(path) == 1:
            self.values[root_key] = ConfigValue(value)
            return
        new = value if isinstance(value, Secure) else coerce(value)
        self._set_member(root_key, path, new)

    def _set_member(self, root_key: str, path: list[str | int], new: Any) -> None:
        root = self.values.get(root_key)
        container = copy.deepcopy(root.raw) if root is not None else None
        self.values[root_key] = _marshal_value(_set_in(container, path[:1], path[1:], new))

    def set_structure(self, key: str, value: Any) -> None:
        """Writes a value at a --path key as if it were written there in the stack file."""
        path, root_key = self._split(key)
        if len(path) == 1:
            self.values[root_key] = stack_value(value)
            return
        self._set_member(root_key, path, _unmarshal_object(value))

    def remove(self, key: str) -> None:
        """Map.Remove(key, path=true) for a top-level key."""
        path, root_key = self._split(key)
        if len(path) != 1:
            raise CliConfigError(f"{key}: only whole keys can be removed here")
        self.values.pop(root_key, None)

    def secret_keys(self) -> list[str]:
        return sorted(key for key, value in self.values.items() if value.secure)

    def for_program(self) -> dict[str, str]:
        """The map the program gets (PULUMI_CONFIG): every value as text, secrets decrypted."""
        return {key: value.text() for key, value in sorted(self.values.items())}


def _format_missing(keys: list[str]) -> str:
    """formatMissingKeys."""
    if len(keys) == 1:
        return f"'{keys[0]}'"
    keys = sorted(keys)
    return ", ".join(f"'{key}'" for key in keys[:-1]) + f" and '{keys[-1]}'"


def apply_project_config(stack_name: str, project: Project, stack: StackConfig) -> None:
    """ValidateStackConfigAndApplyProjectConfig (mergeConfig with validate=true); raises as the CLI refuses."""
    missing = []
    for key in sorted(project.config):
        declaration = project.config[key]
        namespace, _ = parse_key(key, project.name)
        found = stack.get(key if ":" in key else f"{project.name}:{key}") is not None
        if (
            not found
            and not declaration.has_value
            and not declaration.has_default
            and namespace == project.name
        ):
            missing.append(key)
            continue
        if not found:
            chosen = declaration.default if declaration.has_default else declaration.value
            if chosen is not None:
                _, root_key = stack._split(key if ":" in key else f"{project.name}:{key}")
                stack.values[root_key] = _project_default_value(chosen)
    if missing:
        values = "values" if len(missing) > 1 else "value"
        raise CliConfigError(
            f"Stack '{stack_name}' is missing configuration {values} {_format_missing(missing)}"
        )

    for key in sorted(project.config):
        declaration = project.config[key]
        if declaration.type is None:
            continue
        value = stack.get(key if ":" in key else f"{project.name}:{key}") or ConfigValue("")
        if declaration.secret and not value.secure:
            raise CliConfigError(
                f"Stack '{stack_name}' with configuration key '{key}' must be encrypted as it's secret"
            )
        if _contains_undecryptable(value.raw):
            continue  # only the CLI can decrypt the stack file's ciphertext and check its type
        content = json.loads(value.text()) if value.is_object else value.text()
        if not validate_config_value(declaration.type, declaration.items, content):
            raise CliConfigError(
                f"Stack '{stack_name}' with configuration key '{key}' must be of type "
                f"'{infer_full_type_name(declaration.type, declaration.items)}'"
            )


def stack_names(project_dir: Path) -> list[str]:
    return sorted(
        path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for path in project_dir.glob("Pulumi.*.yaml")
    )
