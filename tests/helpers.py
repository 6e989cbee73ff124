"""What the tests share: running the program on the mock engine, and queries over what it declared."""

from pathlib import Path
from typing import Any

from tools import mockengine

PROJECT_DIR = Path(__file__).resolve().parent.parent
# A public address: documentation ranges such as 198.51.100.0/24 are refused as admin CIDRs.
ADMIN_CIDR = "1.2.3.4/32"


def deploy(
    stack: str = "dev",
    preview: bool = False,
    secrets: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> mockengine.Deployment:
    """Runs __main__.py for `stack`, with adminCidrs set as `make up` would set it."""
    overrides.setdefault("adminCidrs", [ADMIN_CIDR])
    return mockengine.run(stack, overrides=overrides, secret_overrides=secrets, preview=preview, environ=environ)
