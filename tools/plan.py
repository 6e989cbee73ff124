"""`make plan`: what a stack would declare, evaluated offline on the mock engine.

No Pulumi CLI, no credentials. The stack's config goes through the CLI's own config step
(tools/cliconfig.py: Pulumi.yaml defaults, Pulumi.<stack>.yaml, type and secret checks), then the
real __main__.py runs on Pulumi's mocks (tools/mockengine.py). Values only AWS can know (IPs, ARNs,
keys) are stand-ins. Bad config fails here as it would in `pulumi up`.

Overrides, as if `pulumi config set [--secret] --path KEY VALUE` had been run first:
  --set 'KEY=VALUE …'     several items, split at spaces like a shell (quote an item holding spaces),
                          but a JSON value is one piece, spaces and all;
  --secret 'KEY=VALUE …'  the same, stored as secrets: masked everywhere in the output.
KEY may be a --path key (`adminCidrs[0]`, `tags.team`, `tags["a.b"]`). A VALUE that starts with
`[` or `{` is JSON and is stored as structure, as if written in the stack file; any other VALUE is
a string, as `pulumi config set` stores it. `make plan` passes SET and SECRET here (PLAN_SET,
PLAN_SECRET). Fix hints of bad config are written in that form and say where each value came
from (components/errors.py: SET=, SECRET=, the stack file or Pulumi.yaml's default).

--config-file PATH reads the stack's config from PATH instead of Pulumi.<stack>.yaml, as the
Pulumi CLI's flag of that name does (`make plan STACK=gallery CONFIG_FILE=examples/gallery/Pulumi.gallery.yaml`).

Output: a terminal view (abbreviated), and under build/plan/<stack>/:
  plan.json   {"project", "stack",
               "config":    {full key: value as the program reads it, or "[secret]"},
               "resources": [{"urn", "type", "name", "parent" (urn or null), "provider" (urn or null),
                              "custom", "inputs", "options": {"protect", "deleteBeforeReplace",
                              "dependsOn" (every resource it waits for), "additionalSecretOutputs",
                              "ignoreChanges", "replaceOnChanges", "retainOnDelete", "deletedWith",
                              "customTimeouts", "aliases"}}],
               "outputs":   {name: value, or "[secret]"}}
              Resources are ordered parents before children, then by name and type; keys are
              sorted; secret values (whole subtrees) read "[secret]" and unknown ones "[unknown]".
              Identical input gives byte-identical files.
  k8s/        one YAML file per Kubernetes object (those of manifestsDir included), named
              <kind>-<namespace>-<name>.yaml. A secret map keeps its keys, each value "[secret]"
              (a Secret's `stringData: {API_KEY: "[secret]"}`), so every file validates against
              the Kubernetes schema.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.errors import DEFAULT_SOURCE, FIX_FORM_VARIABLE, VALUE_SOURCES_VARIABLE
from tools import cliconfig, mockengine
from tools.mockengine import Registration
from tools.pulumi_sdk import Secret

MASK = "[secret]"
UNKNOWN = "[unknown]"
MAX_VALUE_CHARS = 100
DEFAULT_OUT = mockengine.PROJECT_DIR / "build" / "plan"
# The RPC layer's marker for a value not known until the resource exists (pulumi.runtime.rpc.UNKNOWN).
RPC_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


class PlanInputError(Exception):
    """A SET or SECRET item the plan cannot use; the message is one line."""


def _read_quoted(text: str, start: int, variable: str) -> tuple[str, int]:
    quote, index, out = text[start], start + 1, []
    while index < len(text) and text[index] != quote:
        if quote == '"' and text[index] == "\\" and index + 1 < len(text):
            index += 1
        out.append(text[index])
        index += 1
    if index >= len(text):
        raise PlanInputError(f"{variable}: no closing {quote}")
    return "".join(out), index + 1


def _scan_balanced(text: str, start: int, variable: str) -> int:
    """The index just past the bracket that closes text[start], skipping JSON strings."""
    depth, index, in_string = 0, start, False
    while index < len(text):
        char = text[index]
        if in_string:
            if char == "\\":
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise PlanInputError(f"{variable}: {text[start : start + 40]!r}… never closes its bracket")


def split_items(text: str, variable: str) -> list[str]:
    """Splits SET/SECRET into items at whitespace, as a shell would, except inside quotes, a key's
    ["quoted"] segment, or a JSON value (which may hold spaces and quotes of its own)."""
    items, index = [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return items
        item, in_value = [], False
        while index < len(text) and not text[index].isspace():
            char = text[index]
            if char in "'\"":
                part, index = _read_quoted(text, index, variable)
                item.append(part)
                in_value = in_value or "=" in part
            elif not in_value and char == "[":
                end = _scan_balanced(text, index, variable)
                item.append(text[index:end])
                index = end
            elif not in_value and char == "=":
                in_value = True
                item.append(char)
                index += 1
                if index < len(text) and text[index] in "[{":
                    end = _scan_balanced(text, index, variable)
                    item.append(text[index:end])
                    index = end
            else:
                item.append(char)
                index += 1
        items.append("".join(item))


def parse_items(text: str, variable: str) -> list[tuple[str, str]]:
    pairs = []
    for item in split_items(text, variable):
        key, separator, value = item.partition("=")
        shown = key if variable == "SECRET" else item
        if not separator or not key:
            raise PlanInputError(f"{variable} item {shown!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return pairs


def apply_items(config: cliconfig.StackConfig, pairs: list[tuple[str, str]], variable: str) -> None:
    for key, value in pairs:
        try:
            if variable == "SECRET":
                config.set_path(key, cliconfig.Secure(value))
            elif value.lstrip()[:1] in ("[", "{"):
                try:
                    structure = json.loads(value)
                except json.JSONDecodeError as error:
                    raise PlanInputError(
                        f"SET item {key!r}: the value starts like JSON but is not: {error}"
                    ) from None
                config.set_structure(key, structure)
            else:
                config.set_path(key, value)
        except cliconfig.CliConfigError as error:
            raise PlanInputError(f"{variable} item {key!r}: {error}") from None


def value_sources(given: dict[str, str]) -> dict[str, str]:
    """Where each full top-level key's value comes from: `given` (the stack file, SET=, SECRET=),
    else Pulumi.yaml's default for the keys the project declares with one."""
    project = cliconfig.load_project(mockengine.PROJECT_DIR / "Pulumi.yaml")
    defaults = {
        key if ":" in key else f"{project.name}:{key}": DEFAULT_SOURCE
        for key, declaration in project.config.items()
        if declaration.has_default or declaration.has_value
    }
    return {**defaults, **given}


# --- plan.json and the Kubernetes objects ------------------------------------------------------------------


def masked(value: Any) -> Any:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {key: masked(member) for key, member in value.items()}
    if isinstance(value, list):
        return [masked(member) for member in value]
    if value == RPC_UNKNOWN:
        return UNKNOWN
    return value


def masked_in_shape(value: Any) -> Any:
    """masked, but a secret mapping keeps its keys, each value masked: a Secret's
    `stringData: {API_KEY: "[secret]"}` stays a map, as the Kubernetes schema wants its files.
    The keys (the app's secretEnv names, a manifest's data keys) are written in plain config."""
    if isinstance(value, Secret) and isinstance(value.value, dict):
        return {key: MASK for key in value.value}
    if isinstance(value, dict):
        return {key: masked_in_shape(member) for key, member in value.items()}
    if isinstance(value, list):
        return [masked_in_shape(member) for member in value]
    return masked(value)


def ordered(resources: list[Registration]) -> list[Registration]:
    """Parents before children; siblings by name, then type."""
    children: dict[str, list[Registration]] = {}
    urns = {resource.urn for resource in resources}
    for resource in resources:
        children.setdefault(resource.parent if resource.parent in urns else "", []).append(resource)
    result: list[Registration] = []

    def visit(parent: str) -> None:
        for child in sorted(children.get(parent, []), key=lambda r: (r.name, r.type, r.urn)):
            result.append(child)
            visit(child.urn)

    visit("")
    return result


def _provider_urn(reference: str) -> str | None:
    # A provider reference is "<urn>::<id>".
    return reference.rsplit("::", 1)[0] if reference else None


def resource_entry(resource: Registration) -> dict[str, Any]:
    return {
        "urn": resource.urn,
        "type": resource.type,
        "name": resource.name,
        "parent": resource.parent or None,
        "provider": _provider_urn(resource.provider),
        "custom": resource.custom,
        "inputs": masked(resource.sent_inputs),
        "options": {
            "protect": resource.protect,
            "deleteBeforeReplace": resource.delete_before_replace,
            "dependsOn": sorted(set(resource.dependencies)),
            "additionalSecretOutputs": sorted(resource.additional_secret_outputs),
            "ignoreChanges": sorted(resource.ignore_changes),
            "replaceOnChanges": sorted(resource.replace_on_changes),
            "retainOnDelete": resource.retain_on_delete,
            "deletedWith": resource.deleted_with or None,
            "customTimeouts": resource.custom_timeouts,
            "aliases": resource.aliases,
        },
    }


def plan_document(project: str, deployment: mockengine.Deployment) -> dict[str, Any]:
    secret_keys = set(deployment.secret_keys)
    return {
        "project": project,
        "stack": deployment.stack,
        "config": {
            key: MASK if key in secret_keys else value for key, value in deployment.config.items()
        },
        "resources": [resource_entry(resource) for resource in ordered(deployment.resources)],
        "outputs": {key: masked(output.sent) for key, output in deployment.outputs.items()},
    }


def is_kubernetes_object(resource: Registration) -> bool:
    return resource.custom and resource.type.startswith("kubernetes:") and "kind" in resource.inputs


def _file_part(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-") or "_"


# pulumi-kubernetes' yaml/v2 ConfigGroup is a component the provider expands; its objects arrive as its `objs` input.
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"


def kubernetes_objects(deployment: mockengine.Deployment) -> list[tuple[str, dict[str, Any]]]:
    """(resource name, object with secrets masked in their shape) for every Kubernetes object, in plan order."""
    objects = []
    for resource in ordered(deployment.resources):
        if is_kubernetes_object(resource):
            objects.append((resource.name, masked_in_shape(resource.sent_inputs)))
        elif resource.type == CONFIG_GROUP:
            objects.extend(
                (resource.name, obj)
                for obj in masked_in_shape(resource.sent_inputs).get("objs") or []
            )
    return objects


def kubernetes_files(deployment: mockengine.Deployment) -> dict[str, str]:
    files: dict[str, str] = {}
    for resource_name, document in kubernetes_objects(deployment):
        metadata = document.get("metadata") or {}
        stem = "-".join(
            _file_part(str(part))
            for part in (
                document.get("kind", "object"),
                metadata.get("namespace") or "_",
                metadata.get("name") or resource_name,
            )
        )
        name = (
            f"{stem}.yaml"
            if f"{stem}.yaml" not in files
            else f"{stem}-{_file_part(resource_name)}.yaml"
        )
        files[name] = yaml.safe_dump(
            document, sort_keys=True, allow_unicode=True, default_flow_style=False
        )
    return files


def write_plan(project: str, deployment: mockengine.Deployment, directory: Path) -> Path:
    """Writes plan.json and k8s/ for the stack under `directory`, replacing what an earlier plan left."""
    stack_dir = directory / deployment.stack
    if stack_dir.exists():
        shutil.rmtree(stack_dir)
    (stack_dir / "k8s").mkdir(parents=True)
    document = plan_document(project, deployment)
    (stack_dir / "plan.json").write_text(
        json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    for name, text in kubernetes_files(deployment).items():
        (stack_dir / "k8s" / name).write_text(text)
    return stack_dir


# --- The terminal view -------------------------------------------------------------------------------------


def _summarize(value: Any) -> str:
    text = (
        value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    )
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def render(deployment: mockengine.Deployment) -> str:
    """The terminal view: every resource in plan order, non-empty inputs abbreviated, then the outputs."""
    lines = [
        "(mock engine: values the providers compute, such as IPs, names and keys, are stand-ins)",
        *(f"warning: {warning}" for warning in deployment.warnings),
        f"{len(deployment.resources)} resources:",
    ]
    depth = {"": 0}
    for resource in ordered(deployment.resources):
        level = depth.get(resource.parent, 0) + 1
        depth[resource.urn] = level
        indent = "  " * level
        lines.append(
            f"{indent}{resource.type}  {resource.name}{'  (protected)' if resource.protect else ''}"
        )
        for key, value in sorted(masked(resource.sent_inputs).items()):
            if key == "stdin" or value in (None, "", [], {}):
                continue
            lines.append(f"{indent}    {key}: {_summarize(value)}")
    lines.append("outputs:")
    for key, output in sorted(deployment.outputs.items()):
        lines.append(f"  {key}: {_summarize(masked(output.sent))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--set", action="append", default=[], metavar="'KEY=VALUE …'")
    parser.add_argument("--secret", action="append", default=[], metavar="'KEY=VALUE …'")
    parser.add_argument(
        "--config-file",
        type=Path,
        help="the stack's config from this file instead of Pulumi.<stack>.yaml, as the CLI's flag",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where plan.json and k8s/ go (under <stack>/)"
    )
    args = parser.parse_args(argv)
    set_texts = [*filter(None, [os.environ.get("PLAN_SET", "")]), *args.set]
    secret_texts = [*filter(None, [os.environ.get("PLAN_SECRET", "")]), *args.secret]

    # Fix hints name the command the user is in (components/errors.py).
    os.environ[FIX_FORM_VARIABLE] = " ".join(
        [
            "make plan",
            *([] if args.stack == "dev" else [f"STACK={args.stack}"]),
            *([] if args.config_file is None else [f"CONFIG_FILE={args.config_file}"]),
        ]
    )
    stack_file = str(args.config_file) if args.config_file else f"Pulumi.{args.stack}.yaml"
    try:
        sets = [pair for text in set_texts for pair in parse_items(text, "SET")]
        secrets = [pair for text in secret_texts for pair in parse_items(text, "SECRET")]

        def overrides(config: cliconfig.StackConfig) -> None:
            sources = dict.fromkeys(config.values, stack_file)
            apply_items(config, sets, "SET")
            apply_items(config, secrets, "SECRET")
            for pairs, variable in ((sets, "SET="), (secrets, "SECRET=")):
                sources.update((config.root_key(key), variable) for key, _ in pairs)
            os.environ[VALUE_SOURCES_VARIABLE] = json.dumps(value_sources(sources))

        deployment = mockengine.run(args.stack, edit_config=overrides, config_file=args.config_file)
    except (PlanInputError, mockengine.StackNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except cliconfig.CliConfigError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return 1
    except pulumi.RunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    stack_dir = write_plan(mockengine.project_name(), deployment, args.out)
    print(render(deployment))
    shown = stack_dir.relative_to(Path.cwd()) if stack_dir.is_relative_to(Path.cwd()) else stack_dir
    print(
        f"full plan: {shown}/plan.json; Kubernetes objects: {shown}/k8s/ ({len(list((stack_dir / 'k8s').iterdir()))} files)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
