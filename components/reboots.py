"""Coordinated reboots (`rebootWindow`): kured, declared as one more Helm chart (components/charts.py).

kured (kubereboot/kured) runs on every node; when the node needs a reboot (/var/run/reboot-required)
and the time is inside the window, it takes a lock on its own DaemonSet, cordons and drains the node
and reboots it. The lock is released by kured on the rebooted node once it runs there again and has
uncordoned it, so the next node starts only then (kured 1.23.0 cmd/kured/main.go, rebootAsRequired;
pkg/daemonsetlock). With concurrency 1, one node at a time. Without a window, kured is not installed
and nothing reboots by itself.

Sources: chart kured 6.1.0 (kubereboot/charts, tag kured-6.1.0, commit 180a59fa09be7d54834a9176bb276e67c9a49b00,
charts/kured/values.yaml and templates/daemonset.yaml); its appVersion and image ghcr.io/kubereboot/kured:1.23.0
(kubereboot/kured tag 1.23.0, commit ef3c90b2bd58c0571e6eae7b893f0de3709cc98f).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .charts import ChartBudget, ChartSpec, count_values
from .errors import ConfigError

# rebootWindow's `auto` for stacks named prod* (components/settings.py); other stacks get no reboots.
REBOOT_WINDOW_BY_DEFAULT = "Sun 03:00-05:00"
KURED_CHART_REPO = "https://kubereboot.github.io/charts"
KURED_CHART_VERSION = "6.1.0"
KURED_IMAGE = "ghcr.io/kubereboot/kured"
KURED_IMAGE_TAG = "1.23.0"
KURED_NAMESPACE = "kured"
# kured's lock: an annotation on its DaemonSet (its default, written out so the values show it).
KURED_LOCK_ANNOTATION = "weave.works/kured-node-lock"
# How often kured looks for the sentinel inside the window (its default, 1h, could miss a short window).
KURED_CHECK_PERIOD = "5m"
# A drain a PodDisruptionBudget holds up gives up after this, uncordons and retries at the next check
# (kured's default, 0, waits for ever, with the node cordoned past the window).
KURED_DRAIN_TIMEOUT = "10m"
# kured's pod itself: a small Go daemon that sleeps between checks (our requests, so the budget counts it).
KURED_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}}
# hostPID and a privileged container, to reboot the host through nsenter (the chart's
# containerSecurityContext): what only the privileged Pod Security level admits.
KURED_POD_SECURITY = "privileged"

# Days as kured reads them (pkg/timewindow/days.go: su mo tu we th fr sa, sun mon …), written here
# the way the window is: three letters.
DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
WINDOW = re.compile(
    r"(?P<days>[A-Za-z]{3}(,[A-Za-z]{3})*) (?P<start>([01][0-9]|2[0-3]):[0-5][0-9])-(?P<end>([01][0-9]|2[0-3]):[0-5][0-9])"
)
WINDOW_FIX = (
    'pulumi config set rebootWindow "Sun 03:00-05:00" (days, then a UTC start-end: e.g. "Sat,Sun 02:00-04:00"), '
    'or "" to turn reboots off'
)


@dataclass(frozen=True)
class RebootWindow:
    days: tuple[str, ...]
    start: str
    end: str

    def __str__(self) -> str:
        return f"{','.join(self.days)} {self.start}-{self.end}"


def parse_reboot_window(text: str, shown_as: str) -> RebootWindow | None:
    """`text` as `rebootWindow` holds it; `shown_as` says where the value came from, for the error."""
    if text == "":
        return None
    match = WINDOW.fullmatch(text)
    if match is None:
        raise ConfigError(
            "rebootWindow",
            f'{shown_as} {text!r} is not days then a UTC start-end, e.g. "Sun 03:00-05:00" or "Sat,Sun 02:00-04:00" '
            "(three-letter days, 24-hour HH:MM, no time zone)",
            WINDOW_FIX,
        )
    by_lower = {day.lower(): day for day in DAYS}
    days = []
    for day in match["days"].split(","):
        if day.lower() not in by_lower:
            raise ConfigError(
                "rebootWindow",
                f"{shown_as} {text!r} names {day!r}, not a day ({', '.join(DAYS)})",
                WINDOW_FIX,
            )
        if by_lower[day.lower()] in days:
            raise ConfigError("rebootWindow", f"{shown_as} {text!r} names {day} twice", WINDOW_FIX)
        days.append(by_lower[day.lower()])
    if match["start"] >= match["end"]:
        # kured checks the day of the moment it looks (pkg/timewindow, Contains): after midnight it is
        # the next day, which the window may not name.
        raise ConfigError(
            "rebootWindow",
            f"{shown_as} {text!r} ends at or before it starts; a window may not cross midnight",
            "end the window by 23:59, or start it at 00:00 on the next day",
        )
    return RebootWindow(tuple(days), match["start"], match["end"])


def kured_values(window: RebootWindow, single_node: bool) -> dict:
    """The chart's values: the image, the window, the one-at-a-time lock and the drain's bound."""
    return {
        "image": {"repository": KURED_IMAGE, "tag": KURED_IMAGE_TAG},
        "configuration": {
            "rebootDays": [day.lower() for day in window.days],
            "startTime": window.start,
            "endTime": window.end,
            "timeZone": "UTC",
            "concurrency": 1,
            "lockAnnotation": KURED_LOCK_ANNOTATION,
            "period": KURED_CHECK_PERIOD,
            "drainTimeout": KURED_DRAIN_TIMEOUT,
            # One node: its pods have nowhere to go, so a drain that a PodDisruptionBudget holds up
            # would never end; the window is the announced downtime, and the reboot goes ahead.
            "forceReboot": single_node,
        },
        "resources": KURED_RESOURCES,
    }


def kured_chart(window: RebootWindow, single_node: bool) -> ChartSpec:
    values = kured_values(window, single_node)
    millicores, mib, counted = count_values(values, "kured")
    return ChartSpec(
        name="kured",
        chart="kured",
        repo=KURED_CHART_REPO,
        version=KURED_CHART_VERSION,
        namespace=KURED_NAMESPACE,
        values=values,
        secret_paths=(),
        budget=ChartBudget(int(millicores), int(mib), f"its values ({', '.join(counted)})"),
        pod_security=KURED_POD_SECURITY,
    )
