"""The one error type for bad configuration."""

import pulumi

PROJECT = "lightsail-k3s"


class ConfigError(pulumi.RunError):
    """A config value is missing or invalid; the message names the key and the fix.

    A pulumi.RunError, so the CLI prints the message without a Python traceback.
    """

    def __init__(self, key: str, problem: str, fix: str):
        self.key = key if ":" in key else f"{PROJECT}:{key}"
        super().__init__(f"config '{self.key}': {problem}\n  fix: {fix}")
