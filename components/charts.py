"""Helm charts (`charts`, `chartSecrets`), installed on the node by k3s' bundled helm-controller.

Each chart is a `HelmChart` object (helm.cattle.io/v1) in kube-system whose targetNamespace is the
chart's namespace: helm-controller runs `helm install` in a Job on the cluster
(k3s-io/helm-controller pkg/controllers/chart/chart.go, job()), so nothing is fetched where `pulumi`
runs and a preview stays offline. The chart's namespace is declared here, not by helm-controller's
createNamespace, so its Pod Security labels and its NetworkPolicy are the stack's.

Fields used are in the HelmChart CRD of every helm-controller the tested k3s minors embed: v0.16.13
(k3s' first v1.34 release) to v0.17.1 (the pinned k3sVersion's); tests/fixtures/crds holds both.
`valuesSecrets` exists since v0.16.7 (k3s-io/helm-controller d0ccbb3, "Add ValuesSecrets").
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s
import yaml

from .capacity import CPU_QUANTITY, MEMORY_QUANTITY, Reserved, cpu_millicores, memory_mib
from .errors import ConfigError

CHARTS_TYPE = "lightsail-k3s:index:Charts"
HELM_CHART_API_VERSION = "helm.cattle.io/v1"
# Where the HelmChart objects live, as k3s' own (traefik) do; helm-controller installs each release
# into its targetNamespace.
HELM_CHART_NAMESPACE = "kube-system"
# k3s' packaged HelmCharts in kube-system (k3s manifests/traefik.yaml): a chart of that name would
# replace k3s' Traefik.
K3S_PACKAGED_CHARTS = ("traefik", "traefik-crd")
# helm-controller names the install Job helm-install-<name> (and helm-delete-<name>): a Job's name
# must leave room for its pods' job-name label, a 63-character label value (chart.go, job()).
MAX_CHART_NAME_LENGTH = 63 - len("helm-install-")
# The Secret key that holds a chart's secret values: helm-controller mounts each listed key as one
# more values file, after valuesContent, so the secret values win (chart.go, setValuesSecret).
SECRET_VALUES_KEY = "values.yaml"
# A failed upgrade stays failed, for the operator to read in the Job's log, instead of helm-controller's
# default `reinstall`, which uninstalls the release first: a stateful chart (Kafka) would lose its
# Services and generated Secrets while it reinstalls.
FAILURE_POLICY = "abort"

CHART_KEYS = {"name", "chart", "repo", "version", "namespace", "values", "secretValues", "estimate"}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
CHART_NAME_IN_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# One exact SemVer 2 version (semver.org), as Helm resolves `--version`: anything else is a range.
EXACT_VERSION = re.compile(
    r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)
VALUE_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# Kubernetes quantities as chart values write them (k8s.io/apimachinery resource.Quantity): decimal
# and binary suffixes, or a plain number.
QUANTITY = re.compile(r"(?P<number>[0-9]+(\.[0-9]+)?)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?")
MEMORY_SUFFIX_MIB = {
    None: 1 / 2**20,
    "k": 1000 / 2**20,
    "M": 10**6 / 2**20,
    "G": 10**9 / 2**20,
    "T": 10**12 / 2**20,
    "Ki": 1 / 1024,
    "Mi": 1,
    "Gi": 1024,
    "Ti": 1024**2,
}


class _ValuesDumper(yaml.SafeDumper):
    """Quotes strings of digits and punctuation (03:00, 1.23.0): a YAML 1.1 reader may take some for
    numbers (sexagesimal 13:00 is 780 there), and Helm's values must reach the chart as written."""


_ValuesDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style='"' if re.fullmatch(r"[0-9:._+-]+", text) else None
    ),
)


def values_yaml(values: Mapping[str, Any]) -> str:
    return yaml.dump(dict(values), Dumper=_ValuesDumper, sort_keys=False)


@dataclass(frozen=True)
class ChartBudget:
    """What the apps' budget counts of one chart, and from where."""

    millicores: int
    mib: int
    counted: str  # e.g. "its estimate", "its values: resources, controller.resources x3", "nothing"


@dataclass(frozen=True)
class ChartSpec:
    name: str
    chart: str
    repo: str | None
    version: str
    namespace: str
    values: Mapping[str, Any]
    secret_paths: tuple[str, ...]
    budget: ChartBudget
    # The namespace's Pod Security Admission level; the apps' baseline unless a chart the stack
    # itself declares needs more (kured).
    pod_security: str = "baseline"

    @property
    def secret_name(self) -> str:
        # Not chart-values-<name>: helm-controller owns that Secret and skips it in valuesSecrets.
        return f"{self.name}-secret-values"


@dataclass(frozen=True)
class ChartSettings:
    specs: tuple[ChartSpec, ...] = ()
    # chart name -> the secret values tree; only ever read to build secret Outputs.
    secret_values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    # Logged by the program: charts the budget counts nothing of.
    uncounted_warning: str | None = None

    @property
    def reserved(self) -> Reserved:
        counted = [spec for spec in self.specs if spec.budget.millicores or spec.budget.mib]
        return Reserved(
            millicores=sum(spec.budget.millicores for spec in counted),
            mib=sum(spec.budget.mib for spec in counted),
            detail=", ".join(
                f"{spec.name} {spec.budget.millicores}m/{spec.budget.mib}Mi from {spec.budget.counted}"
                for spec in counted
            ),
        )

    @property
    def namespaces(self) -> dict[str, str]:
        """Each chart namespace and its Pod Security level (the strictest need decides: the first)."""
        levels: dict[str, str] = {}
        for spec in self.specs:
            levels.setdefault(spec.namespace, spec.pod_security)
        return levels


def _chart_error(index: int, name: str | None, problem: str, fix: str) -> ConfigError:
    where = f"charts[{index}]" + (f" ({name})" if name else "")
    return ConfigError("charts", f"{where}: {problem}", fix)


def parse_version(raw: Any, index: int, name: str) -> str:
    fix = (
        f"pin the exact chart version you tested, e.g. charts[{index}].version: 1.4.2 "
        "(helm search repo <chart> --versions lists them)"
    )
    if raw is None or raw == "":
        raise _chart_error(
            index, name, "version is missing, so every install may bring a different chart", fix
        )
    if not isinstance(raw, str):
        # 1.4 arrives as a number from YAML: not a full version either.
        raise _chart_error(index, name, f"version {raw!r} is not a string of an exact version", fix)
    if not EXACT_VERSION.fullmatch(raw):
        raise _chart_error(
            index,
            name,
            f"version {raw!r} is not one exact version (MAJOR.MINOR.PATCH): Helm reads anything else as a "
            "range, which installs whatever matches on the day",
            fix,
        )
    return raw


def parse_source(raw: dict[str, Any], index: int, name: str) -> tuple[str, str | None]:
    """The chart and its repository: a chart name in an https repo, or an oci:// reference alone."""
    chart, repo = raw.get("chart"), raw.get("repo")
    fix = (
        "either repo: https://<repository> with chart: <name in it>, "
        "or chart: oci://<registry>/<path>/<chart> without repo"
    )
    if not isinstance(chart, str) or not chart:
        raise _chart_error(index, name, f"chart {chart!r} is not a chart name or reference", fix)
    if repo is not None:
        if not isinstance(repo, str):
            raise _chart_error(index, name, f"repo {repo!r} is not a URL", fix)
        url = urlsplit(repo)
        if url.scheme == "oci":
            raise _chart_error(
                index,
                name,
                f"repo {repo!r} is an OCI registry, which Helm does not add as a repository",
                f"write the whole reference in chart, e.g. chart: {repo.rstrip('/')}/{chart}, and remove repo",
            )
        if url.scheme == "http":
            raise _chart_error(
                index,
                name,
                f"repo {repo!r} is plain HTTP: anyone on the way could swap the chart",
                f"use the repository's https:// URL: {'https' + repo[len('http') :]}",
            )
        if url.scheme != "https" or not url.hostname:
            raise _chart_error(index, name, f"repo {repo!r} is not an https:// URL", fix)
        if url.username or url.password:
            raise _chart_error(
                index,
                name,
                "repo holds credentials in its URL, which would sit in the stack file and the HelmChart in plain text",
                "use a repository that needs no credentials, or remove them from the URL",
            )
        if not CHART_NAME_IN_REPO.fullmatch(chart):
            raise _chart_error(
                index,
                name,
                f"chart {chart!r} is not a chart name in repo {repo}",
                "give the chart's name only, e.g. chart: kafka",
            )
        return chart, repo
    reference = urlsplit(chart)
    if reference.scheme == "oci":
        last = reference.path.rsplit("/", 1)[-1]
        if not reference.hostname or not last or ":" in last or "@" in chart:
            raise _chart_error(
                index,
                name,
                f"chart {chart!r} is not an oci:// reference without a tag (oci://<registry>/<path>/<chart>)",
                "give the version in version, not in the reference",
            )
        return chart, None
    if reference.scheme in ("http", "https"):
        raise _chart_error(
            index,
            name,
            f"chart {chart!r} is an archive URL, whose version helm-controller does not check",
            fix,
        )
    raise _chart_error(
        index, name, f"chart {chart!r} has neither repo nor an oci:// reference", fix
    )


def parse_namespace(
    raw: Any, index: int, name: str, app_namespace: str, reserved: Mapping[str, str]
) -> str:
    namespace = name if raw is None else raw
    if not isinstance(namespace, str) or not DNS_LABEL.fullmatch(namespace):
        raise _chart_error(
            index,
            name,
            f"namespace {namespace!r} is not a DNS label",
            "lowercase letters, digits and '-', at most 63 characters, e.g. namespace: kafka",
        )
    if namespace.startswith("kube-") or namespace == "default":
        raise _chart_error(
            index,
            name,
            f"namespace {namespace!r} is one of Kubernetes' own",
            f"give the chart a namespace of its own, e.g. namespace: {name}",
        )
    if namespace == app_namespace:
        raise _chart_error(
            index,
            name,
            f"namespace {namespace!r} is the apps' namespace (appNamespace), whose budget, quota and policy are the apps'",
            f"give the chart a namespace of its own, e.g. namespace: {name}",
        )
    if namespace in reserved:
        raise _chart_error(
            index,
            name,
            f"namespace {namespace!r} belongs to {reserved[namespace]}",
            "give the chart a namespace of its own",
        )
    return namespace


def parse_value_paths(raw: Any, index: int, name: str) -> tuple[str, ...]:
    fix = "e.g. secretValues: [auth.password], each value in chartSecrets.<chart>.<path>"
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(
        isinstance(path, str) and all(VALUE_PATH_SEGMENT.fullmatch(s) for s in path.split("."))
        for path in raw
    ):
        raise _chart_error(
            index, name, f"secretValues {raw!r} is not a list of dotted value paths", fix
        )
    for path in raw:
        for other in raw:
            if other != path and other.startswith(path + "."):
                raise _chart_error(
                    index,
                    name,
                    f"secretValues lists {path} and {other}, which lies inside it",
                    "keep one",
                )
    return tuple(dict.fromkeys(raw))


def _lookup(tree: Any, path: str) -> tuple[bool, Any]:
    for segment in path.split("."):
        if not isinstance(tree, dict) or segment not in tree:
            return False, None
        tree = tree[segment]
    return True, tree


def _leaves(tree: Any, prefix: str) -> list[str]:
    if isinstance(tree, dict) and tree:
        return [leaf for key, value in tree.items() for leaf in _leaves(value, f"{prefix}.{key}")]
    return [prefix]


def _quantity(raw: Any, memory: bool, where: str) -> float:
    """A CPU quantity in millicores or a memory quantity in MiB."""
    text = str(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else raw
    match = QUANTITY.fullmatch(text) if isinstance(text, str) else None
    if (
        match is None
        or (memory and match["suffix"] == "m")
        or (not memory and match["suffix"] not in (None, "m"))
    ):
        raise ConfigError(
            "charts",
            f"{where} {raw!r} is not a Kubernetes {'memory' if memory else 'CPU'} quantity",
            "e.g. cpu: 250m, memory: 512Mi",
        )
    number = float(match["number"])
    if memory:
        return number * MEMORY_SUFFIX_MIB[match["suffix"]]
    return number if match["suffix"] == "m" else number * 1000


def count_values(values: Mapping[str, Any], where: str) -> tuple[float, float, list[str]]:
    """The requests `values` declare: every `resources` object with requests or limits, times the
    replicaCount (or replicas) beside it; memory counts the limit where one is set, else the request,
    as the apps' budget reserves limits. CPU in millicores, memory in MiB, and the paths counted."""
    millicores, mib, counted = 0.0, 0.0, []

    def walk(node: Any, path: str) -> None:
        nonlocal millicores, mib
        if not isinstance(node, dict):
            return
        resources = node.get("resources")
        if isinstance(resources, dict):
            requests, limits = (
                section if isinstance(section := resources.get(key), dict) else {}
                for key in ("requests", "limits")
            )
            replicas = next(
                (
                    node[key]
                    for key in ("replicaCount", "replicas")
                    if isinstance(node.get(key), int) and not isinstance(node.get(key), bool)
                ),
                1,
            )
            here = f"{where}.values.{path}resources"
            cpu = requests.get("cpu")
            memory = limits.get("memory", requests.get("memory"))
            if cpu is not None or memory is not None:
                if cpu is not None:
                    millicores += replicas * _quantity(cpu, False, f"{here}.requests.cpu")
                if memory is not None:
                    section = "limits" if "memory" in limits else "requests"
                    mib += replicas * _quantity(memory, True, f"{here}.{section}.memory")
                counted.append(f"{path}resources" + (f" x{replicas}" if replicas != 1 else ""))
        for key, value in node.items():
            if key != "resources":
                walk(value, f"{path}{key}.")

    walk(values, "")
    return millicores, mib, counted


def parse_estimate(raw: Any, index: int, name: str) -> tuple[int, int] | None:
    fix = "e.g. estimate: {cpu: 500m, memory: 1Gi}: what all the chart's pods request together"
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"cpu", "memory"} or not raw:
        raise _chart_error(index, name, f"estimate {raw!r} may only hold cpu and memory", fix)
    cpu, memory = str(raw.get("cpu", "0m")), str(raw.get("memory", "0Mi"))
    if not CPU_QUANTITY.fullmatch(cpu) or not MEMORY_QUANTITY.fullmatch(memory):
        raise _chart_error(
            index, name, f"estimate {raw!r} is not cpu in cores or m and memory in Ki/Mi/Gi", fix
        )
    return cpu_millicores(cpu), math.ceil(memory_mib(memory))


def parse_chart(
    raw: Any, index: int, app_namespace: str, reserved_namespaces: Mapping[str, str]
) -> ChartSpec:
    if not isinstance(raw, dict):
        raise _chart_error(
            index,
            None,
            f"{raw!r} is not an object",
            "each chart is an object with name, chart, version",
        )
    name = raw.get("name")
    if (
        not isinstance(name, str)
        or not DNS_LABEL.fullmatch(name)
        or len(name) > MAX_CHART_NAME_LENGTH
    ):
        raise _chart_error(
            index,
            None,
            f"name {name!r} cannot name the chart's release",
            f"lowercase letters, digits and '-', at most {MAX_CHART_NAME_LENGTH} characters (helm-controller's "
            "Job helm-install-<name> must stay a valid name)",
        )
    unknown = set(raw) - CHART_KEYS
    if unknown:
        raise _chart_error(
            index,
            name,
            f"unknown keys {sorted(unknown)}",
            f"allowed keys: {', '.join(sorted(CHART_KEYS))}",
        )
    if name in K3S_PACKAGED_CHARTS:
        raise _chart_error(
            index,
            name,
            f"{name} is a chart k3s installs itself, which this one would replace",
            "give the chart another name",
        )
    chart, repo = parse_source(raw, index, name)
    version = parse_version(raw.get("version"), index, name)
    namespace = parse_namespace(
        raw.get("namespace"), index, name, app_namespace, reserved_namespaces
    )
    values = raw.get("values") or {}
    if not isinstance(values, dict):
        raise _chart_error(
            index, name, f"values {values!r} is not an object", "e.g. values: {replicaCount: 1}"
        )
    secret_paths = parse_value_paths(raw.get("secretValues"), index, name)
    for path in secret_paths:
        if _lookup(values, path)[0]:
            raise _chart_error(
                index,
                name,
                f"{path} is in both values and secretValues",
                f"keep {path} in one of them",
            )
    estimate = parse_estimate(raw.get("estimate"), index, name)
    if estimate is not None:
        budget = ChartBudget(*estimate, counted="its estimate")
    else:
        millicores, mib, counted = count_values(values, f"charts[{index}] ({name})")
        budget = ChartBudget(
            math.ceil(millicores),
            math.ceil(mib),
            counted=f"its values ({', '.join(counted)})" if counted else "nothing",
        )
    return ChartSpec(name, chart, repo, version, namespace, values, secret_paths, budget)


def parse_chart_secrets(
    raw: Any,
    is_secret: bool,
    plain_text_paths: Sequence[str],
    specs: Sequence[ChartSpec],
    component_input: bool = False,
) -> dict[str, dict[str, Any]]:
    """Each chart's secretValues, from chartSecrets.<chart>.<path>; values never appear in errors.

    With component_input the values came as the multi-language Apps' chartSecrets input, and
    each fix says what to pass there rather than which stack config to set."""
    by_name = {spec.name: spec for spec in specs}

    def set_fix(path: str) -> str:
        if component_input:
            return f"pass chartSecrets.{path} in the Apps input chartSecrets, as a secret"
        return f"pulumi config set --secret --path 'chartSecrets.{path}' <value>"

    def remove_fix(path: str) -> str:
        if component_input:
            return f"leave chartSecrets.{path} out of the Apps input chartSecrets"
        return f"pulumi config rm --path 'chartSecrets.{path}'"

    if raw and not is_secret:
        raise ConfigError(
            "chartSecrets",
            "is stored in plain text",
            "remove it (pulumi config rm chartSecrets) and set each value with "
            "pulumi config set --secret --path 'chartSecrets.<chart>.<path>' <value>",
        )
    if plain_text_paths:
        path = plain_text_paths[0]
        raise ConfigError(
            "chartSecrets",
            f"{path} is stored in plain text in the stack file, next to encrypted values",
            f"encrypt it: pulumi config set --secret --path '{path}' <value> (and rotate the value: it was readable)",
        )
    raw = raw or {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(
            "chartSecrets",
            "is not an object of chart names to objects of values",
            set_fix("<chart>.<path>"),
        )
    for chart_name, tree in raw.items():
        spec = by_name.get(chart_name)
        if spec is None:
            raise ConfigError(
                "chartSecrets",
                f"has values for {chart_name!r}, which is not in charts",
                remove_fix(chart_name),
            )
        for leaf in _leaves(tree, chart_name):
            path = leaf.partition(".")[2]
            if not any(
                path == listed or path.startswith(listed + ".") for listed in spec.secret_paths
            ):
                raise ConfigError(
                    "chartSecrets",
                    f"chartSecrets.{leaf} is not under a secretValues path of chart {chart_name!r}, so no release would get it",
                    f"add it to the chart's secretValues, or {remove_fix(leaf)}",
                )
    secret_values: dict[str, dict[str, Any]] = {}
    for spec in specs:
        tree: dict[str, Any] = {}
        for path in spec.secret_paths:
            found, value = _lookup(raw.get(spec.name, {}), path)
            if not found or value is None:
                raise ConfigError(
                    "chartSecrets",
                    f"chart {spec.name!r} lists {path} in secretValues, but chartSecrets.{spec.name}.{path} has no value",
                    set_fix(f"{spec.name}.{path}"),
                )
            *parents, last = path.split(".")
            node = tree
            for segment in parents:
                node = node.setdefault(segment, {})
            node[last] = value
        if tree:
            secret_values[spec.name] = tree
    return secret_values


def parse_charts(
    charts_raw: Any,
    secrets_raw: Any,
    secrets_are_secret: bool,
    plain_text_secret_paths: Sequence[str],
    app_namespace: str,
    declared: Sequence[ChartSpec] = (),
) -> ChartSettings:
    """The stack's charts and their secret values, checked; `declared` are the charts the stack adds
    itself (kured), whose names and namespaces the charts may not take."""
    charts = parse_chart_specs(charts_raw, app_namespace, declared)
    return dataclasses.replace(
        charts,
        secret_values=parse_chart_secrets(
            secrets_raw,
            secrets_are_secret,
            plain_text_secret_paths,
            charts.specs[len(declared) :],
        ),
    )


def parse_chart_specs(
    charts_raw: Any, app_namespace: str, declared: Sequence[ChartSpec] = ()
) -> ChartSettings:
    """The charts without their secret values (parse_chart_secrets checks those against them)."""
    charts_raw = [] if charts_raw is None else charts_raw
    if not isinstance(charts_raw, list):
        raise ConfigError("charts", f"{charts_raw!r} is not a list of charts", "see docs/charts.md")
    reserved_namespaces = {
        spec.namespace: f"the {spec.name} chart the stack declares" for spec in declared
    }
    specs = [
        parse_chart(raw, index, app_namespace, reserved_namespaces)
        for index, raw in enumerate(charts_raw)
    ]
    seen = {spec.name: f"the {spec.name} chart the stack declares" for spec in declared}
    for index, spec in enumerate(specs):
        if spec.name in seen:
            raise _chart_error(
                index,
                spec.name,
                f"the name is already used by {seen[spec.name]}",
                "give each chart its own name",
            )
        seen[spec.name] = f"charts[{index}]"
    uncounted = [
        f"charts[{i}] ({s.name})" for i, s in enumerate(specs) if s.budget.counted == "nothing"
    ]
    warning = (
        f"charts: the apps' budget counts nothing of {', '.join(uncounted)}: its values set no resources and it "
        "states no estimate, so its pods may take memory and CPU the apps' quota still promises.\n"
        "  fix: set resources in its values, or estimate: {cpu: <all its pods' requests>, memory: <their memory>}"
        if uncounted
        else None
    )
    return ChartSettings((*declared, *specs), uncounted_warning=warning)


def helm_chart_spec(spec: ChartSpec, with_secret_values: bool) -> dict[str, Any]:
    """The HelmChart's spec: what helm-controller installs, and where."""
    helm_spec: dict[str, Any] = {"chart": spec.chart, "version": spec.version}
    if spec.repo:
        helm_spec["repo"] = spec.repo
    helm_spec["targetNamespace"] = spec.namespace
    helm_spec["failurePolicy"] = FAILURE_POLICY
    if spec.values:
        helm_spec["valuesContent"] = values_yaml(spec.values)
    if with_secret_values:
        # A Secret beside the HelmChart (valuesSecrets must name one in the HelmChart's own namespace,
        # types.go SecretSpec): the values stay out of the HelmChart, which anyone who may read
        # HelmCharts can read, and out of plain state; helm-controller re-runs the install when the
        # Secret changes (chart.go, the hash over ValuesSecrets).
        helm_spec["valuesSecrets"] = [{"name": spec.secret_name, "keys": [SECRET_VALUES_KEY]}]
    return helm_spec


@dataclass(frozen=True)
class ChartsArgs:
    charts: ChartSettings
    # chart name -> its secret values tree (ChartSettings.secret_values); an Output where they
    # arrive as one (the package's Apps, components/apps.py).
    secret_values: pulumi.Input[Mapping[str, Mapping[str, Any]]]
    provider: k8s.Provider
    # The apps' namespace: the one whose pods may reach the charts' Services.
    app_namespace: str
    pod_security_version: str


class Charts(pulumi.ComponentResource):
    """Each chart's namespace (Pod Security labels, a NetworkPolicy), its secret values and its HelmChart."""

    def __init__(self, name: str, args: ChartsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(CHARTS_TYPE, name, None, opts)
        # Imported here: apps.py imports the settings, which import this module.
        from .apps import TRAEFIK_NAMESPACE, pod_security_labels
        from .network_policy import ingress_policy, metadata_egress_policy

        def on_cluster(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=list(depends_on)
            )

        namespaces: dict[str, k8s.core.v1.Namespace] = {}
        for namespace, level in args.charts.namespaces.items():
            labels = pod_security_labels(args.pod_security_version)
            if level != labels["pod-security.kubernetes.io/enforce"]:
                # A chart the stack declares that needs more (kured): warnings and audit entries
                # for what its level admits by design would only repeat it on every pod.
                for mode in ("enforce", "warn", "audit"):
                    labels[f"pod-security.kubernetes.io/{mode}"] = level
            namespaces[namespace] = k8s.core.v1.Namespace(
                f"{name}-namespace-{namespace}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace, labels=labels),
                opts=on_cluster(),
            )
            # As strict as the apps' own policy (components/apps.py), with the apps let in: only the
            # apps, the namespace's own pods and kube-system (Traefik) reach the chart's pods.
            ingress_policy(
                f"{name}-ingress-policy-{namespace}",
                "allow-apps-traefik-and-same-namespace",
                namespace,
                (args.app_namespace, TRAEFIK_NAMESPACE),
                on_cluster(namespaces[namespace]),
            )
            # The chart's pods, like the apps', reach anything but the instance metadata service.
            metadata_egress_policy(
                f"{name}-egress-policy-{namespace}", namespace, on_cluster(namespaces[namespace])
            )

        secret_values = pulumi.Output.from_input(args.secret_values)
        for spec in args.charts.specs:
            depends_on: list[pulumi.Resource] = [namespaces[spec.namespace]]
            # Every path a chart lists in secretValues has a value (parse_chart_secrets).
            with_secret_values = bool(spec.secret_paths)
            if with_secret_values:
                depends_on.append(
                    k8s.core.v1.Secret(
                        f"{name}-{spec.name}-secret-values",
                        metadata=k8s.meta.v1.ObjectMetaArgs(
                            name=spec.secret_name,
                            namespace=HELM_CHART_NAMESPACE,
                            labels={"app.kubernetes.io/managed-by": "lightsail-k3s"},
                        ),
                        type="Opaque",
                        string_data=pulumi.Output.secret(
                            secret_values.apply(
                                lambda values, chart=spec.name: {
                                    SECRET_VALUES_KEY: values_yaml(values[chart])
                                }
                            )
                        ),
                        opts=on_cluster(),
                    )
                )
            k8s.apiextensions.CustomResource(
                f"{name}-{spec.name}-chart",
                api_version=HELM_CHART_API_VERSION,
                kind="HelmChart",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=spec.name, namespace=HELM_CHART_NAMESPACE),
                spec=helm_chart_spec(spec, with_secret_values=with_secret_values),
                opts=on_cluster(*depends_on),
            )
        # Each chart namespace's resource, which consumers' RoleBindings wait for (components/consumers.py).
        self.namespaces = namespaces
        self.register_outputs({})
