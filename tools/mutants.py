"""`make mutants`: a small, documented mutation run. Each mutant is one realistic regression;
the suite must fail on every one of them (a "kill"). A surviving mutant is a behaviour no test
protects.

Each mutant is applied to a scratch copy of the working tree (git ls-files, made a git repository of
its own, as tests that list the tracked files expect), and only the tests named with it run there,
so the whole run takes minutes, not hours. Those tests must first pass on the unmutated copy: a
test failing for another reason would otherwise count as a kill. Add a mutant with every bug
that reaches review: the list is the project's memory of what must stay guarded.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    why: str
    path: str
    original: str
    mutated: str
    tests: tuple[str, ...]


MUTANTS = (
    Mutant(
        "a refused k3sVersion no longer stops the cluster (the instance changes before the refusal)",
        "__main__.py",
        "settings.cluster_name, settings.cluster, gated, deployed=read_deployed_nodes(previous)",
        "settings.cluster_name, settings.cluster, deployed=read_deployed_nodes(previous)",
        ("tests/test_upgrades_and_cis.py",),
    ),
    Mutant(
        "a failed download carries on with the install",
        "components/remote/install-k3s-server.sh",
        "set -euo pipefail",
        "set -uo pipefail",
        ("tests/test_remote_scripts.py",),
    ),
    Mutant(
        "the Ready wait never times out",
        "components/remote/k3s-wait.sh",
        'if [ "$(date +%s)" -ge "$deadline" ]; then',
        "if false; then",
        ("tests/test_remote_scripts.py",),
    ),
    Mutant(
        "the default bundle changes unnoticed",
        "Pulumi.yaml",
        "default: small_3_0",
        "default: medium_3_0",
        ("tests/test_core_stack.py", "tests/test_one_home.py", "tests/test_shipped_stacks.py"),
    ),
    Mutant(
        "the rolling-update surge pod is left out of the budget",
        "components/capacity.py",
        "return sum(measure(w.resources) * w.replicas for w in running) + max(",
        "return sum(measure(w.resources) * w.replicas for w in running) + 0 * max(",
        ("tests/test_capacity.py",),
    ),
    Mutant(
        "requests may exceed limits",
        "components/capacity.py",
        "resources.request_millicores > resources.limit_millicores",
        "resources.request_millicores > resources.limit_millicores + 1000",
        ("tests/test_capacity.py", "tests/test_apps.py"),
    ),
    Mutant(
        "every Service selects every app's pods",
        "components/apps.py",
        'selector={"app.kubernetes.io/name": app.name},',
        'selector={"app.kubernetes.io/managed-by": "lightsail-k3s"},',
        ("tests/test_apps.py",),
    ),
    Mutant(
        "a kind: List manifest is applied as one object",
        "components/app_settings.py",
        'if document["kind"].endswith("List"):',
        'if document["kind"] == "NoSuchKind":',
        ("tests/test_apps.py",),
    ),
    Mutant(
        "the firewall is replaced create-before-delete (the new rules are closed again)",
        "components/host.py",
        "opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),",
        "opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False),",
        ("tests/test_core_stack.py", "tests/test_host.py"),
    ),
    Mutant(
        "the kubeconfig read keeps stdout in plain state",
        "components/k3s.py",
        'additional_secret_outputs=["stdout"]',
        "additional_secret_outputs=[]",
        ("tests/test_core_stack.py",),
    ),
    Mutant(
        "the kubeconfig read prints the secret into the logs",
        "components/k3s.py",
        "logging=command.remote.Logging.NONE,",
        "logging=command.remote.Logging.STDOUT_AND_STDERR,",
        ("tests/test_core_stack.py",),
    ),
    Mutant(
        "a drain that cannot reach the API server reads the failure as no node, and skips it",
        "components/remote/node-membership.sh",
        """  if ! found="$(kubectl get node "$NODE_NAME" --ignore-not-found -o name 2>&1)"; then""",
        """  if ! found="$(kubectl get node "$NODE_NAME" --ignore-not-found -o name 2>/dev/null)" && false; then""",
        ("tests/test_remote_scripts.py",),
    ),
    Mutant(
        "a joining node's instance is replaced create-first: the new host installs k3s under the"
        " node's name before the old one is drained, stopped and deleted",
        "components/cluster.py",
        """                    delete_before_replace=True,
                    data_disk_gb=data_disk_gb,""",
        """                    data_disk_gb=data_disk_gb,""",
        ("tests/test_replacement.py", "tests/test_agents.py"),
    ),
    Mutant(
        "the CPU request check refuses apps that fill the quota exactly",
        "components/capacity.py",
        "if cpu_requests > budget.requests_cpu_millicores:",
        "if cpu_requests >= budget.requests_cpu_millicores:",
        ("tests/test_capacity.py",),
    ),
    Mutant(
        "the sustained-CPU rule counts each app once, whatever its replicas",
        "components/capacity.py",
        "sum(w.resources.request_millicores * w.replicas for w in workloads)",
        "sum(w.resources.request_millicores for w in workloads)",
        ("tests/test_capacity.py",),
    ),
    Mutant(
        "further servers and agents ignore sshHostKeys: only the first server can keep its own host key",
        "components/cluster.py",
        "                    existing_host_key=spec.ssh_host_keys.get(host_name),\n",
        "",
        ("tests/test_host_keys.py",),
    ),
    Mutant(
        "make up closes the opening for an address outside adminCidrs only after an update that succeeded",
        "bin/up.sh",
        """    trap close_after_run EXIT
    bin/deploy-access.sh open "$STACK" "$this_address" "$run_config"
    pulumi up --stack "$STACK" --config-file "$run_config" --policy-pack policy
""",
        """    bin/deploy-access.sh open "$STACK" "$this_address" "$run_config"
    pulumi up --stack "$STACK" --config-file "$run_config" --policy-pack policy
    close_after_run
""",
        ("tests/test_make_up.py",),
    ),
    Mutant(
        "a further server's certificate rotation no longer waits for the one before it (two servers restart at once)",
        "components/cluster.py",
        "            previous = peer.done",
        "            previous = peer.joined",
        ("tests/test_certificates.py",),
    ),
    Mutant(
        "the e2e second run refuses the version gate's read of the stack's own outputs again",
        "tests/e2e/aws.py",
        'if count and op not in ("same", "read")',
        'if count and op != "same"',
        ("tests/test_e2e_checks.py",),
    ),
    Mutant(
        "the instance's replacement order is left to the provider's diff",
        "components/host.py",
        """                ignore_changes=["userData"],
                delete_before_replace=args.delete_before_replace,
""",
        """                ignore_changes=["userData"],
""",
        ("tests/test_core_stack.py",),
    ),
    Mutant(
        "make up builds the virtualenv before it checks for the CLI and credentials",
        "Makefile",
        "up preview destroy:\n",
        "up preview destroy: $(VENV)/.installed\n",
        ("tests/test_make_up.py",),
    ),
    Mutant(
        "a misspelt SET= key is told to be removed from the stack file",
        "components/errors.py",
        "    if source in FROM_SET:",
        "    if source is None:",
        ("tests/test_plan.py", "tests/test_config_keys.py"),
    ),
    Mutant(
        "a stack file with a key written twice is read with the second value, as PyYAML does",
        "tools/cliconfig.py",
        "    if errors:\n",
        "    if False:\n",
        ("tests/test_cli_config.py", "tests/test_plan.py"),
    ),
    Mutant(
        "a misspelt stack file section (confg:) is passed over, and the program reports a missing region",
        "components/settings.py",
        "        if section in STACK_FILE_SECTIONS:\n            continue",
        "        if section:\n            continue",
        ("tests/test_plan.py",),
    ),
    Mutant(
        "make plan writes a Secret's stringData as one masked string, which no schema accepts",
        "tools/plan.py",
        "            objects.append((resource.name, masked_in_shape(resource.sent_inputs)))",
        "            objects.append((resource.name, masked(resource.sent_inputs)))",
        ("tests/test_plan.py",),
    ),
    Mutant(
        "an app without healthPath gets no probe, so a pod that never listens still receives traffic",
        "components/apps.py",
        "        tcp_socket=None if app.health_path else k8s.core.v1.TCPSocketActionArgs(port=app.port),",
        "        tcp_socket=None,",
        ("tests/test_apps.py",),
    ),
    Mutant(
        "the preview's Pulumi token and passphrase are read outside the preview environment",
        ".github/workflows/preview.yml",
        "    environment:\n      name: preview\n      deployment: false\n    permissions: {}\n",
        "    permissions: {}\n",
        ("tests/test_workflows.py",),
    ),
    Mutant(
        "adminCidrs as pulumi new writes it (one comma-separated string) is refused",
        "components/settings.py",
        '            value = [part.strip() for part in raw.split(",") if part.strip()]',
        "            value = raw",
        ("tests/test_template.py", "tests/test_config_rules.py"),
    ),
    Mutant(
        "the first server resets the cluster while another server's etcd still runs (a split brain)",
        "components/remote/restore-etcd-snapshot.sh",
        'if serves_etcd "$address"; then',
        "if false; then",
        ("tests/test_restore.py",),
    ),
    Mutant(
        "a failed restore no longer names the servers it left stopped, nor how to start or rejoin them",
        "bin/restore.sh",
        'if [ "$step" = stop ]; then stopped_servers+=("$server"); fi',
        ":",
        ("tests/test_restore.py",),
    ),
    Mutant(
        "onto replaced instances the other servers rejoin with the replacement cluster's token",
        "bin/restore.sh",
        '"$step" "$restore_token" "$token_drop_in" "$wait_lib_b64"',
        '"$step" "" "$token_drop_in" "$wait_lib_b64"',
        ("tests/test_restore.py",),
    ),
    Mutant(
        "a config change restarts the Type=notify k3s unit blocking, so an unhealthy start waits for ever",
        "components/remote/install-k3s-server.sh",
        "  systemctl restart --no-block k3s",
        "  systemctl restart k3s",
        ("tests/test_remote_scripts.py",),
    ),
    Mutant(
        "the Cluster's children lose their alias to the stack's root: a stack deployed before the"
        " component re-creates every server, agent, bucket, alarm and zone",
        "components/cluster.py",
        "parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]",
        "parent=self",
        ("tests/test_cluster.py",),
    ),
    Mutant(
        "the package's Apps builds its provider without the kubeconfig: its objects go to whatever"
        " cluster the provider process's ambient kubeconfig names",
        "components/apps.py",
        """                kubeconfig=args["kubeconfig"],
""",
        "",
        ("tests/test_components_elsewhere.py",),
    ),
    Mutant(
        "a new bundle for three running servers without data disks begins a new, empty cluster",
        "components/rollout.py",
        "    if several and instance_changes:",
        "    if False:",
        ("tests/test_servers.py",),
    ),
    Mutant(
        "pods may ask the instance metadata service for the node's user data",
        "components/network_policy.py",
        "cidr=ANY_IPV4, except_=[INSTANCE_METADATA_CIDR]",
        "cidr=ANY_IPV4",
        ("tests/test_consumers.py",),
    ),
    Mutant(
        "the registries' passwords are readable by every user on the node",
        "components/remote/k3s-registries.sh",
        'install -m 0600 "$staged" "$placed"',
        'install -m 0644 "$staged" "$placed"',
        ("tests/test_registries.py",),
    ),
)


def copy_tree(destination: Path) -> None:
    files = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "ls-files", "-z"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        source = PROJECT_DIR / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for git_step in (["init", "--quiet"], ["add", "--all"]):
        subprocess.run(["git", "-C", str(destination), *git_step], check=True)
    # The project's virtualenv, untracked there as here: tests that run make (make plan) find it
    # built instead of building one in the scratch copy.
    (destination / ".venv").symlink_to(PROJECT_DIR / ".venv")


def run_tests(tree: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
        cwd=tree,
        capture_output=True,
        text=True,
    )


def killed(mutant: Mutant, tree: Path) -> bool:
    """Applies `mutant` in `tree`, runs its tests there and restores the file; True when a test failed."""
    target = tree / mutant.path
    original_text = target.read_text()
    if original_text.count(mutant.original) < 1:
        raise SystemExit(
            f"mutant {mutant.why!r}: {mutant.original!r} no longer occurs in {mutant.path}"
        )
    target.write_text(original_text.replace(mutant.original, mutant.mutated, 1))
    try:
        return run_tests(tree, mutant.tests).returncode != 0
    finally:
        target.write_text(original_text)


def main() -> int:
    argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        tree = Path(scratch)
        copy_tree(tree)
        named_tests = tuple(sorted({test for mutant in MUTANTS for test in mutant.tests}))
        baseline = run_tests(tree, named_tests)
        if baseline.returncode != 0:
            print(baseline.stdout[-3000:] + baseline.stderr[-2000:], file=sys.stderr)
            print("the mutants' tests fail on the unmutated copy: no kill could be told apart")
            return 2
        survivors = []
        for mutant in MUTANTS:
            outcome = "killed" if killed(mutant, tree) else "SURVIVED"
            print(f"{outcome:9} {mutant.path}: {mutant.why}", flush=True)
            if outcome == "SURVIVED":
                survivors.append(mutant)
    print(f"kill rate: {len(MUTANTS) - len(survivors)}/{len(MUTANTS)}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
