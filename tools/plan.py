"""`make plan`: what a stack would declare, evaluated on the mock engine.

No Pulumi CLI, no credentials: the real program runs with the stack's config
(Pulumi.yaml defaults, then Pulumi.<stack>.yaml). Bad config fails here exactly
as it would in `pulumi up`. Secrets are masked.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pulumi

from tools import cliconfig, mockengine

MASK = "[secret]"
MAX_VALUE_CHARS = 100


def _summarize(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def render(deployment: mockengine.Deployment) -> str:
    lines = [
        "(mock engine: values the providers compute, such as IPs, names and keys, are stand-ins)",
        f"{len(deployment.resources)} resources:",
    ]
    for resource in deployment.resources:
        lines.append(f"  {resource.type}  {resource.name}")
        for key, value in sorted(resource.inputs.items()):
            if key in ("stdin",) or value in (None, "", [], {}):
                continue
            shown = MASK if key in resource.secret_inputs else _summarize(value)
            lines.append(f"      {key}: {shown}")
    lines.append("outputs:")
    for key, output in sorted(deployment.outputs.items()):
        lines.append(f"  {key}: {MASK if output.secret else _summarize(output.value)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value for this plan only; VALUE is JSON when it parses as JSON",
    )
    args = parser.parse_args(argv)
    overrides = {}
    for assignment in args.set:
        key, separator, value = assignment.partition("=")
        if not separator:
            parser.error(f"--set {assignment!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    try:
        deployment = mockengine.run(args.stack, overrides=overrides)
    except cliconfig.CliConfigError as error:
        print(f"error: {error.one_line()}", file=sys.stderr)
        return 1
    except (pulumi.RunError, mockengine.StackNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(render(deployment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
