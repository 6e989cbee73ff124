"""The error types for bad configuration: a bad value (ConfigError), a stack file the CLI misreads (StackFileError)."""

import json
import os
import re

import pulumi

PROJECT = "lightsail-k3s"

# Set by `make plan` (tools/plan.py) to the command a user runs there, e.g. "make plan STACK=prod":
# fix hints then show that command's SET=/SECRET= form instead of `pulumi config set`.
FIX_FORM_VARIABLE = "LIGHTSAIL_K3S_FIX_FORM"
# Also set by `make plan`: JSON of {full top-level key: where its value came from} ("SET=",
# "SECRET=", "Pulumi.<stack>.yaml", "Pulumi.yaml's default"), so a fix says which one to change.
VALUE_SOURCES_VARIABLE = "LIGHTSAIL_K3S_VALUE_SOURCES"
# Set by `make plan CONFIG_FILE=<path>` (tools/plan.py --config-file, the CLI's flag of that name):
# the stack file the checks of the file itself read (plain-text secrets, committed deployCidrs,
# unknown sections) instead of Pulumi.<stack>.yaml beside Pulumi.yaml.
STACK_FILE_VARIABLE = "LIGHTSAIL_K3S_STACK_FILE"
FROM_SET = ("SET=", "SECRET=")
DEFAULT_SOURCE = "Pulumi.yaml's default"

# A shell word as the hints write them: quoted pieces, <placeholders> and bare text, run together.
_PIECE = r"'[^']*'|\"[^\"]*\"|<[^>]*>|[^\s'\",;()<]+"
_WORD = rf"(?:{_PIECE})+"
_FLAGS = r"(?: --(?:path|secret|plaintext)| --(?:type|stack) \S+)*"
_CONFIG_SET = re.compile(
    rf"pulumi config set(?P<flags>{_FLAGS}) (?P<key>{_WORD}) (?P<value>{_WORD})"
)
_CONFIG_RM = re.compile(rf"pulumi config rm(?: --(?:path|stack \S+))* (?P<key>{_WORD})")


def _unquoted(word: str) -> str:
    return re.sub(
        _PIECE, lambda piece: piece[0][1:-1] if piece[0][:1] in ("'", '"') else piece[0], word
    )


def _plan_form(match: re.Match[str], command: str) -> str:
    variable = "SECRET" if "--secret" in match["flags"] else "SET"
    item = f"{_unquoted(match['key'])}={_unquoted(match['value'])}"
    # make hands SET to tools/plan.py, which splits it like a shell: an item with spaces needs
    # its own quotes inside; a double-quoted value ("$(cat …)") is for the shell to expand.
    if '"' in match["value"] or re.search(r"\s", item):
        return f"{command} {variable}=\"'{item}'\""
    return f"{command} {variable}='{item}'"


def _removal(key: str, source: str | None) -> str:
    if source in FROM_SET:
        return f"drop {key} from {source}"
    return (
        f"remove {key} from {source if source and source.endswith('.yaml') else 'the stack file'}"
    )


def fix_for(fix: str, command: str | None, source: str | None = None) -> str:
    """The fix as `command` (the plan) takes it, or as written (for `pulumi config`) when no command.

    `source`: where the plan's value came from. The fix says so: a value given with SET= is not
    told to be removed from the stack file, and one from the stack file is not mistaken for SET='s.
    """
    if not command:
        return fix
    fix = _CONFIG_SET.sub(lambda match: _plan_form(match, command), fix)
    fix, removals = _CONFIG_RM.subn(lambda match: _removal(_unquoted(match["key"]), source), fix)
    if source and not (removals and source != DEFAULT_SOURCE):
        fix += f" (the value came from {source})"
    return fix


_PATH_START = re.compile(r"[.\[]")


def value_source(key: str) -> str | None:
    """Where `make plan` took the value of `key` (a full key, maybe a --path key) from; None outside it."""
    sources = json.loads(os.environ.get(VALUE_SOURCES_VARIABLE) or "{}")
    namespace, _, name = key.partition(":")
    return sources.get(f"{namespace}:{_PATH_START.split(name, maxsplit=1)[0]}")


class ConfigError(pulumi.RunError):
    """A config value is missing or invalid; the message names the key and the fix.

    A pulumi.RunError, so the CLI prints the message without a Python traceback.
    """

    def __init__(self, key: str, problem: str, fix: str):
        self.key = key if ":" in key else f"{PROJECT}:{key}"
        command = os.environ.get(FIX_FORM_VARIABLE)
        source = value_source(self.key) if command else None
        super().__init__(f"config '{self.key}': {problem}\n  fix: {fix_for(fix, command, source)}")


class StackFileError(pulumi.RunError):
    """A stack file whose shape the CLI reads other than its author meant; the message names the file and the fix."""

    def __init__(self, file_name: str, problem: str, fix: str):
        self.file_name = file_name
        super().__init__(f"{file_name}: {problem}\n  fix: {fix}")
