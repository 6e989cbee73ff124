"""Entry point the Pulumi CLI runs for `--policy-pack policy`; the rules live in policies.py."""

from policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="lightsail-k3s", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
