"""The scripts the components run on their hosts, shipped inside this package (components/remote/)."""

import base64
import re
import shlex
from collections.abc import Mapping
from importlib import resources

# The shell libraries the node scripts load (`source <(base64 -d <<< "$VARIABLE")`), by the
# variable that carries each one on stdin: a rule the scripts share has one copy, sent along.
LIBRARY_VARIABLES = {
    "k3s-upgrade-path.sh": "UPGRADE_PATH_LIB_B64",
    "k3s-wait.sh": "WAIT_LIB_B64",
    "k3s-registries.sh": "REGISTRIES_LIB_B64",
    "security-updates.sh": "SECURITY_UPDATES_LIB_B64",
}
_LIBRARY_BY_VARIABLE = {variable: library for library, variable in LIBRARY_VARIABLES.items()}
_LIBRARY_LOAD = re.compile(r'^source <\(base64 -d <<< "\$(\w+)"\)$', re.MULTILINE)


def remote_script(name: str) -> str:
    """Loaded as package data, so the components work when installed elsewhere."""
    return resources.files(__name__.rpartition(".")[0]).joinpath("remote", name).read_text()


def node_program(script: str, settings: Mapping[str, str]) -> str:
    """What a command feeds to `bash -s`: settings and libraries as shell assignments, then the script.

    On stdin, not on the command line, so no setting shows in a process list; bin/restore.sh
    sends the restore scripts the same way. The libraries are the ones the script loads, in its
    order: a library it does not load would still change its stdin, and pulumi-command re-runs a
    command whose stdin changes.
    """
    assignments = dict(settings)
    for library in (_LIBRARY_BY_VARIABLE[variable] for variable in _LIBRARY_LOAD.findall(script)):
        encoded = base64.b64encode(remote_script(library).encode()).decode()
        assignments[LIBRARY_VARIABLES[library]] = encoded
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in assignments.items()) + script
