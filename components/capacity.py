"""The node's capacity: what k3s and the OS keep, what the apps may use, and the burst-credit rule.

Every number the budget uses comes from RESERVATIONS (below; AGENT_RESERVATIONS for
agents) and the bundle catalog (components/catalog.py): the kubelet reservations in k3s' config, the
checks on the apps, and the app namespace's ResourceQuota and LimitRange.

Sources:
- AWS Lightsail, "Baseline CPU performance"
  (docs.aws.amazon.com/lightsail/latest/userguide/baseline-cpu-performance.html):
  a bundle sustains a baseline share of its vCPUs; above it the instance spends
  burst credits, and without credits it is held to the baseline. It keeps running.
- k3s, "Resource Profiling" (docs.k3s.io/reference/resource-profiling): a server
  sharing its node with a workload needs about 10% of a core and 768 M of RAM
  with SQLite (k3s 1.19 figures for the datastore and control plane; the k3s
  1.26 rerun reports 1596 M read from `kubectl top node` with Prometheus and
  Grafana running, which counts that workload too).
- Kubernetes, "Reserve Compute Resources for System Daemons"
  (kubernetes.io/docs/tasks/administer-cluster/reserve-compute-resources/):
  allocatable = capacity - kube-reserved - system-reserved - hard eviction
  threshold; the scheduler places pods by their requests against allocatable.
- Kubernetes, "Node-pressure Eviction"
  (kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/):
  the kubelet evicts pods before the node runs out of memory; setting
  eviction-hard replaces every default threshold, so all of them are listed.
- k3s' packaged add-ons request CPU and memory of their own in kube-system:
  CoreDNS 100m / 70Mi (k3s manifests/coredns.yaml) and metrics-server
  100m / 70Mi (k3s manifests/metrics-server/metrics-server-deployment.yaml).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .catalog import BUNDLES, Bundle, server_capable_bundle_ids
from .errors import ConfigError


@dataclass(frozen=True)
class Reservation:
    """Memory a node keeps out of the pods' reach, in MiB."""

    system_mib: int  # the kernel's own share of the RAM and the OS's daemons: systemd, sshd, snapd (system-reserved)
    k3s_mib: int  # k3s: on a server API server, datastore, controllers; on every node kubelet, containerd (kube-reserved)
    eviction_mib: (
        int  # the kubelet evicts pods when less than this is free (eviction-hard memory.available)
    )


# A server's, by the bundle's RAM in GB. k3s needs 768 MiB with a small
# workload (k3s resource profiling) and more as the objects it watches grow, so
# larger nodes, which hold more pods, keep more; the OS share and the eviction
# threshold (Kubernetes' default 100Mi on the smallest node, about 3% of RAM
# above it) are our estimates.
RESERVATIONS: dict[float, Reservation] = {
    2: Reservation(system_mib=256, k3s_mib=768, eviction_mib=100),
    4: Reservation(system_mib=256, k3s_mib=896, eviction_mib=128),
    8: Reservation(system_mib=384, k3s_mib=1024, eviction_mib=256),
    16: Reservation(system_mib=512, k3s_mib=1280, eviction_mib=512),
    32: Reservation(system_mib=512, k3s_mib=1536, eviction_mib=1024),
    64: Reservation(system_mib=768, k3s_mib=2048, eviction_mib=2048),
}
# An agent runs no datastore or control plane: k3s' agent needs 256 M (k3s resource profiling,
# "K3s agent"), so that is its kube-reserved on every bundle. Its OS share and eviction threshold
# are a server's on the same RAM; on the bundles too small for a server (agents only), our estimates,
# with Kubernetes' default 100Mi threshold.
AGENT_K3S_MIB = 256
AGENT_RESERVATIONS: dict[float, Reservation] = {
    0.5: Reservation(system_mib=128, k3s_mib=AGENT_K3S_MIB, eviction_mib=100),
    1: Reservation(system_mib=192, k3s_mib=AGENT_K3S_MIB, eviction_mib=100),
    **{
        ram_gb: Reservation(r.system_mib, AGENT_K3S_MIB, r.eviction_mib)
        for ram_gb, r in RESERVATIONS.items()
    },
}
# k3s' own CPU use: 10% of a core (k3s resource profiling; an agent's 5%, kept at a server's 10%
# here). The OS share is our estimate.
K3S_MILLICORES = 100
SYSTEM_MILLICORES = 100
# What CoreDNS and metrics-server request in kube-system (k3s manifests, above).
ADDON_REQUEST_MILLICORES = 200
ADDON_REQUEST_MIB = 140
# Kubernetes' other default hard eviction thresholds (Node-pressure Eviction), kept as they are.
NODEFS_EVICTION_PERCENT = 10
IMAGEFS_EVICTION_PERCENT = 15
DISK_EVICTION_THRESHOLDS = (
    f"nodefs.available<{NODEFS_EVICTION_PERCENT}%",
    f"imagefs.available<{IMAGEFS_EVICTION_PERCENT}%",
    "nodefs.inodesFree<5%",
    "imagefs.inodesFree<5%",
)
# What the apps' volumes may take of a node's disk. local-path keeps each volume as a directory under
# <data-dir>/storage, /var/lib/rancher/k3s/storage (k3s pkg/cli/server/server.go, DefaultLocalStoragePath;
# manifests/local-storage.yaml), on the root filesystem that also holds the OS, k3s, its datastore and
# every image; and it does not enforce a claim's size (rancher/local-path-provisioner README, "Cons":
# the capacity limit is ignored), so the sizes are a plan this check holds the apps to. Kept free: the
# share below which the kubelet evicts pods for the images' filesystem, the root filesystem here
# (IMAGEFS_EVICTION_PERCENT; the kubelet's image garbage collection also starts at 85% use,
# imageGCHighThresholdPercent), and SYSTEM_DISK_RESERVE_GB for the rest of what lives there. That
# figure is our estimate, not a measurement: the Ubuntu image with its packages and snaps, about 3 GB;
# the journal, at most 4 GB (journald.conf(5): SystemMaxUse= is 10% of the filesystem, capped at 4G);
# k3s' binary, its packaged images and its datastore, about 3 GB (etcd's default quota is 2 GB);
# the apps' images and container logs, about 5 GB.
SYSTEM_DISK_RESERVE_GB = 15
# Lightsail sizes disks in GB; counted as 10^9 bytes, the smaller reading.
BYTES_PER_GB = 10**9

# Per-container defaults (the LimitRange applies them too): three small apps,
# one with two replicas, fit the default small_3_0 node with room for a rolling update.
DEFAULT_REQUESTS = {"cpu": "25m", "memory": "64Mi"}
DEFAULT_LIMITS = {"cpu": "250m", "memory": "128Mi"}
# The kubelet turns a CPU limit into a CFS quota of at least 1 ms per 100 ms
# period, so a limit below 10m acts as 10m (kubernetes pkg/kubelet/cm/helpers_linux.go,
# MinQuotaPeriod); a request of 0 asks for nothing. Below 16Mi hardly any
# process starts, so such a memory value is a typo (our floor).
MIN_REQUEST_MILLICORES = 1
MIN_LIMIT_MILLICORES = 10
MIN_MEMORY_MIB = 16

CPU_QUANTITY = re.compile(r"^(\d+m|\d+(\.\d{1,3})?)$")
MEMORY_QUANTITY = re.compile(r"^\d+(Ki|Mi|Gi)?$")
# Kubernetes' quantity grammar (k8s.io/apimachinery pkg/api/resource/quantity.go): a number, then a
# binary suffix (Ki to Ei), a decimal one (k, M, G, T, P, E) or a decimal exponent (e3, E6). A sign,
# and milli or smaller suffixes, are valid quantities but never the size of a volume.
STORAGE_QUANTITY = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<exponent>[eE][+-]?\d{1,2})|(?P<decimal>[kMGTPE]))?"
)
BINARY_FACTORS = {f"{prefix}i": 1024 ** (power + 1) for power, prefix in enumerate("KMGTPE")}
DECIMAL_FACTORS = {prefix: 1000 ** (power + 1) for power, prefix in enumerate("kMGTPE")}
# A claim below 1Mi is a size without its unit ("10" is ten bytes), not a plan.
MIN_VOLUME_BYTES = 2**20


class CpuBudget(enum.Enum):
    """What to do when the apps' sustained CPU exceeds the bundle's baseline (`cpuBudget`)."""

    WARN = "warn"
    ENFORCE = "enforce"
    OFF = "off"


def parse_cpu_budget(raw: str) -> CpuBudget:
    try:
        return CpuBudget(raw)
    except ValueError:
        raise ConfigError(
            "cpuBudget",
            f"{raw!r} is not one of warn, enforce, off",
            "pulumi config set cpuBudget warn (enforce refuses apps above the baseline, off skips the check)",
        ) from None


def cpu_millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else round(float(quantity) * 1000)


def storage_bytes(quantity: str) -> int | None:
    """The bytes of a storage quantity ("10Gi", "500M", "1.5Gi"), rounded up as Kubernetes rounds a
    quantity's value; None when it is not one."""
    match = STORAGE_QUANTITY.fullmatch(quantity)
    if match is None:
        return None
    number = Fraction(match["number"])
    if match["binary"]:
        number *= BINARY_FACTORS[match["binary"]]
    elif match["decimal"]:
        number *= DECIMAL_FACTORS[match["decimal"]]
    elif match["exponent"]:
        number *= Fraction(10) ** int(match["exponent"][1:])
    return math.ceil(number)


def memory_mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity) / (1024 * 1024)


@dataclass(frozen=True)
class ContainerResources:
    """A container's requests and limits, as given to Kubernetes and as numbers."""

    requests: dict[str, str]
    limits: dict[str, str]

    @property
    def request_millicores(self) -> int:
        return cpu_millicores(self.requests["cpu"])

    @property
    def limit_millicores(self) -> int:
        return cpu_millicores(self.limits["cpu"])

    @property
    def request_mib(self) -> float:
        return memory_mib(self.requests["memory"])

    @property
    def limit_mib(self) -> float:
        return memory_mib(self.limits["memory"])


def parse_resources(raw: Any, where: str) -> ContainerResources:
    """An app's `resources` with the defaults filled in; `where` names the app in errors, e.g. "apps[0] (web)"."""
    fix = "use e.g. resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {cpu: 500m, memory: 256Mi}}"
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - {"requests", "limits"}:
        raise ConfigError(
            "apps", f"{where}: resources {raw!r} may only hold requests and limits", fix
        )
    sections = {}
    for section, defaults in (("requests", DEFAULT_REQUESTS), ("limits", DEFAULT_LIMITS)):
        given = raw.get(section) or {}
        if not isinstance(given, dict) or set(given) - {"cpu", "memory"}:
            raise ConfigError(
                "apps", f"{where}: resources.{section} {given!r} may only hold cpu and memory", fix
            )
        values = {**defaults, **{k: str(v) for k, v in given.items()}}
        cpu, memory = values["cpu"], values["memory"]
        if not CPU_QUANTITY.fullmatch(cpu):
            raise ConfigError(
                "apps", f"{where}: resources.{section}.cpu {cpu!r} is not a CPU quantity", fix
            )
        if not MEMORY_QUANTITY.fullmatch(memory):
            raise ConfigError(
                "apps", f"{where}: resources.{section}.memory {memory!r} is not Ki/Mi/Gi", fix
            )
        cpu_floor = MIN_REQUEST_MILLICORES if section == "requests" else MIN_LIMIT_MILLICORES
        if cpu_millicores(cpu) < cpu_floor:
            raise ConfigError(
                "apps",
                f"{where}: resources.{section}.cpu {cpu!r} is below the {cpu_floor}m minimum",
                f"set resources.{section}.cpu to at least {cpu_floor}m, or leave it out for the default",
            )
        if memory_mib(memory) < MIN_MEMORY_MIB:
            raise ConfigError(
                "apps",
                f"{where}: resources.{section}.memory {memory!r} is below the {MIN_MEMORY_MIB}Mi minimum",
                f"set resources.{section}.memory to at least {MIN_MEMORY_MIB}Mi, or leave it out for the default",
            )
        sections[section] = values
    resources = ContainerResources(sections["requests"], sections["limits"])
    if (
        resources.request_millicores > resources.limit_millicores
        or resources.request_mib > resources.limit_mib
    ):
        raise ConfigError(
            "apps", f"{where}: requests {resources.requests} exceed limits {resources.limits}", fix
        )
    return resources


@dataclass(frozen=True)
class Workload:
    """One app as the budget sees it: `where` names it in errors."""

    where: str
    replicas: int
    resources: ContainerResources
    # False for an app whose Deployment stops its pod before starting the next (Recreate: its volumes).
    surges: bool = True


@dataclass(frozen=True)
class Reserved:
    """What other workloads on the node take from the apps' share: the charts' CPU requests and memory."""

    millicores: int = 0
    mib: int = 0
    # What is counted and from where, for the budget's messages, e.g. "kafka 500m/1024Mi from its estimate".
    detail: str = ""

    def __str__(self) -> str:
        return f"the charts ({self.detail})"


NOTHING_RESERVED = Reserved()


@dataclass(frozen=True)
class NamespaceBudget:
    """The apps' share of the node: the check's limits, and what the ResourceQuota and LimitRange enforce."""

    requests_cpu_millicores: int
    memory_mib: int
    max_container_cpu_millicores: int

    def quota(self) -> dict[str, str]:
        # No limits.cpu: CPU is compressible, so limits may add up past the vCPUs (burst).
        # requests.memory never binds before limits.memory, as requests never exceed limits.
        return {
            "requests.cpu": f"{self.requests_cpu_millicores}m",
            "requests.memory": f"{self.memory_mib}Mi",
            "limits.memory": f"{self.memory_mib}Mi",
        }

    def container_max(self) -> dict[str, str]:
        return {"cpu": f"{self.max_container_cpu_millicores}m", "memory": f"{self.memory_mib}Mi"}


@dataclass(frozen=True)
class NodeCapacity:
    """One bundle's node as k3s runs it: reservations, allocatable, the apps' share, the baseline."""

    bundle: Bundle
    reservation: Reservation
    # The charts' share, which the apps' budget leaves to them.
    reserved: Reserved = NOTHING_RESERVED

    @classmethod
    def of(cls, bundle: Bundle, reserved: Reserved = NOTHING_RESERVED) -> NodeCapacity:
        """A server's node."""
        return cls(bundle, RESERVATIONS[bundle.ram_gb], reserved)

    @classmethod
    def of_agent(cls, bundle: Bundle) -> NodeCapacity:
        """An agent's node: only k3s' agent to keep room for."""
        return cls(bundle, AGENT_RESERVATIONS[bundle.ram_gb])

    @property
    def allocatable_millicores(self) -> int:
        return self.bundle.vcpus * 1000 - K3S_MILLICORES - SYSTEM_MILLICORES

    @property
    def allocatable_mib(self) -> int:
        r = self.reservation
        return int(self.bundle.ram_gb * 1024) - r.system_mib - r.k3s_mib - r.eviction_mib

    @property
    def budget(self) -> NamespaceBudget:
        return NamespaceBudget(
            requests_cpu_millicores=self.allocatable_millicores
            - ADDON_REQUEST_MILLICORES
            - self.reserved.millicores,
            memory_mib=self.allocatable_mib - ADDON_REQUEST_MIB - self.reserved.mib,
            # CPU limits may exceed the baseline; one container cannot use more than the node has.
            max_container_cpu_millicores=self.bundle.vcpus * 1000,
        )

    def kubelet_args(self) -> list[str]:
        """k3s `kubelet-arg` entries that make the kubelet keep the same reservations the budget assumes."""
        r = self.reservation
        return [
            f"system-reserved=cpu={SYSTEM_MILLICORES}m,memory={r.system_mib}Mi",
            f"kube-reserved=cpu={K3S_MILLICORES}m,memory={r.k3s_mib}Mi",
            "eviction-hard="
            + ",".join((f"memory.available<{r.eviction_mib}Mi", *DISK_EVICTION_THRESHOLDS)),
        ]

    def describe_memory(self) -> str:
        r = self.reservation
        return (
            f"{self.bundle.ram_gb:g} GB minus k3s {r.k3s_mib}Mi, its add-ons {ADDON_REQUEST_MIB}Mi, "
            + (f"{self.reserved} {self.reserved.mib}Mi, " if self.reserved.mib else "")
            + f"the OS {r.system_mib}Mi and the eviction threshold {r.eviction_mib}Mi"
        )

    def describe_cpu(self) -> str:
        return (
            f"{self.bundle.vcpus} vCPUs minus k3s {K3S_MILLICORES}m, its add-ons {ADDON_REQUEST_MILLICORES}m"
            + (f", {self.reserved} {self.reserved.millicores}m" if self.reserved.millicores else "")
            + f" and the OS {SYSTEM_MILLICORES}m"
        )


def sustained_millicores(
    workloads: Sequence[Workload], reserved: Reserved = NOTHING_RESERVED
) -> int:
    """The CPU the node runs at when every replica uses what it requests: k3s' own, the charts' counted
    requests and the apps' requests."""
    return (
        K3S_MILLICORES
        + reserved.millicores
        + sum(w.resources.request_millicores * w.replicas for w in workloads)
    )


def _with_surge(workloads: Sequence[Workload], measure) -> float:
    """All replicas plus one extra pod of the largest app that a rolling update (maxSurge 1) starts first."""
    running = [w for w in workloads if w.replicas > 0]
    surging = [measure(w.resources) for w in running if w.surges]
    return sum(measure(w.resources) * w.replicas for w in running) + max(surging, default=0)


def _hard_problems(workloads: Sequence[Workload], node: NodeCapacity) -> list[str]:
    """What cannot work on this node: pods that would never schedule, or memory limits that could OOM it."""
    budget = node.budget
    problems = [
        f"{w.where}: limits.cpu {w.resources.limits['cpu']} is more than the node's {node.bundle.vcpus} vCPUs"
        for w in workloads
        if w.resources.limit_millicores > budget.max_container_cpu_millicores
    ]
    cpu_requests = _with_surge(workloads, lambda r: r.request_millicores)
    if cpu_requests > budget.requests_cpu_millicores:
        problems.append(
            f"the apps request {cpu_requests:g}m of CPU, but the {node.bundle.bundle_id} node can schedule "
            f"{budget.requests_cpu_millicores}m for them ({node.describe_cpu()}), so pods would never start"
        )
    memory_limits = _with_surge(workloads, lambda r: r.limit_mib)
    if memory_limits > budget.memory_mib:
        problems.append(
            f"the apps' memory limits add up to {memory_limits:g}Mi, but the {node.bundle.bundle_id} node has "
            f"{budget.memory_mib}Mi for them ({node.describe_memory()}), so the node could run out of memory"
        )
    return problems


def _cheapest(
    workloads: Sequence[Workload], within_baseline: bool, reserved: Reserved
) -> Bundle | None:
    sustained = sustained_millicores(workloads, reserved)
    for bundle in sorted(
        (BUNDLES[i] for i in server_capable_bundle_ids()), key=lambda b: b.monthly_usd
    ):
        node = NodeCapacity.of(bundle, reserved)
        if (
            node.budget.requests_cpu_millicores > 0
            and node.budget.memory_mib > 0
            and not _hard_problems(workloads, node)
        ) and (not within_baseline or sustained <= bundle.baseline_millicores):
            return bundle
    return None


def _bundle_advice(
    workloads: Sequence[Workload], mode: CpuBudget, current: Bundle, reserved: Reserved
) -> str:
    fits = _cheapest(workloads, within_baseline=mode is not CpuBudget.OFF, reserved=reserved)
    if fits is None:
        return "no Lightsail bundle holds these apps on one node: lower replicas or resources"
    advice = f"the cheapest bundle that fits is {fits.bundle_id} (USD {fits.monthly_usd:g}/month)"
    runs_only = _cheapest(workloads, within_baseline=False, reserved=reserved)
    if mode is CpuBudget.WARN and runs_only not in (None, fits, current):
        advice += (
            f"; {runs_only.bundle_id} (USD {runs_only.monthly_usd:g}/month) also runs them, "
            "but above its CPU baseline, on burst credits"
        )
    return advice


def check_capacity(
    workloads: Sequence[Workload],
    bundle: Bundle,
    mode: CpuBudget,
    reserved: Reserved = NOTHING_RESERVED,
) -> str | None:
    """Raises ConfigError for what cannot work, and, under `enforce`, for sustained CPU above the baseline.

    `reserved` is the charts' share, which the apps' budget leaves to them.
    Returns the warning to log when sustained CPU exceeds the baseline under `warn`, else None.
    """
    node = NodeCapacity.of(bundle, reserved)

    def advice() -> str:
        return _bundle_advice(workloads, mode, bundle, reserved)

    if node.budget.requests_cpu_millicores <= 0 or node.budget.memory_mib <= 0:
        room = NodeCapacity.of(bundle).budget
        raise ConfigError(
            "charts",
            f"{reserved} take {reserved.millicores}m of CPU and {reserved.mib}Mi of memory, but the {bundle.bundle_id} "
            f"node has {room.requests_cpu_millicores}m and {room.memory_mib}Mi for workloads, which leaves the apps nothing",
            f"lower the charts' requests or estimates, or set bundleId: {advice()}",
        )
    problems = _hard_problems(workloads, node)
    if problems:
        raise ConfigError(
            "apps",
            "; ".join(problems),
            f"lower replicas or resources, or set bundleId: {advice()}",
        )
    if mode is CpuBudget.OFF:
        return None
    sustained = sustained_millicores(workloads, reserved)
    baseline = bundle.baseline_millicores
    if sustained <= baseline:
        return None
    charts = f", {reserved} {reserved.millicores}m" if reserved.millicores else ""
    over = (
        f"the apps' sustained CPU, {sustained}m (k3s {K3S_MILLICORES}m{charts} plus the apps' CPU requests times replicas, "
        f"{sustained - K3S_MILLICORES - reserved.millicores}m), is above the {bundle.bundle_id} baseline of {baseline}m "
        f"({bundle.baseline_cpu_percent}% of {bundle.vcpus} vCPUs): running at their requests spends burst credits, "
        f"and once they are gone Lightsail holds the instance to {baseline}m, so everything on it slows down"
    )
    if mode is CpuBudget.ENFORCE:
        raise ConfigError(
            "apps",
            over,
            f"lower CPU requests or replicas, or set bundleId: {advice()}; or set cpuBudget to warn",
        )
    return f"apps: {over}.\n  fix: lower CPU requests or replicas, or set bundleId: {advice()} (cpuBudget: off silences this)"


@dataclass(frozen=True)
class VolumeClaim:
    """One app volume as the disk check sees it: `where` names it in errors."""

    where: str
    size: str
    size_bytes: int


def volume_room_bytes(disk_gb: int) -> int:
    """What a disk of `disk_gb` that also holds the OS, k3s and the images leaves the apps' volumes."""
    kept_free = disk_gb * BYTES_PER_GB * IMAGEFS_EVICTION_PERCENT // 100
    return disk_gb * BYTES_PER_GB - kept_free - SYSTEM_DISK_RESERVE_GB * BYTES_PER_GB


def _gb(size_bytes: float) -> str:
    return f"{size_bytes / BYTES_PER_GB:.3g} GB"


def cheapest_bundle_for_volumes(total_bytes: int, bundle_ids: Sequence[str]) -> Bundle | None:
    for bundle in sorted((BUNDLES[i] for i in bundle_ids), key=lambda b: b.monthly_usd):
        if volume_room_bytes(bundle.disk_gb) >= total_bytes:
            return bundle
    return None


def bundle_advice(bundle_key: str, bundle_ids: Sequence[str]) -> Callable[[int], str]:
    """The fix for volumes too big for a bundle's disk: the cheapest of `bundle_ids` that holds them."""

    def advice(total_bytes: int) -> str:
        fits = cheapest_bundle_for_volumes(total_bytes, bundle_ids)
        if fits is None:
            return "no Lightsail bundle's disk holds them"
        return (
            f"set {bundle_key}: the cheapest bundle whose disk holds them is {fits.bundle_id} "
            f"({fits.disk_gb} GB, USD {fits.monthly_usd:g}/month)"
        )

    return advice


def data_disk_advice(total_bytes: int) -> str:
    """The fix for volumes too big for the servers' data disk: the smallest dataDiskGb that holds them."""
    size_gb = max(1, -(-total_bytes // BYTES_PER_GB))
    while volume_room_bytes(size_gb) < total_bytes:
        size_gb += 1
    return f"set dataDiskGb: {size_gb} holds them"


def check_volumes_fit(
    claims: Sequence[VolumeClaim],
    disk_gb: int,
    disk: str,
    advice: Callable[[int], str],
) -> None:
    """Raises ConfigError when the claims add up to more than a disk of `disk_gb` leaves them.

    local-path puts a volume on the node its pod first starts on, so every node an app may start on
    must hold all of them: `disk` names the disk in the message ("the small_3_0 server's 60 GB
    disk"); `advice` gives the fix for the claims' total (bundle_advice, data_disk_advice). The
    same reserve holds for a data disk: it carries k3s' images and data as well (components/host.py).
    """
    total = sum(claim.size_bytes for claim in claims)
    room = volume_room_bytes(disk_gb)
    if total <= room:
        return
    listed = ", ".join(f"{claim.where} {claim.size}" for claim in claims)
    raise ConfigError(
        "apps",
        f"the apps' volumes claim {_gb(total)} ({listed}), but {disk} leaves them {_gb(max(room, 0))} "
        f"({disk_gb} GB less the {IMAGEFS_EVICTION_PERCENT}% the kubelet keeps free and "
        f"{SYSTEM_DISK_RESERVE_GB} GB for the OS, k3s and the images)",
        f"lower the volumes' sizes, or {advice(total)}",
    )
