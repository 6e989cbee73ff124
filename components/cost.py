"""What the stack costs a month, line by line: the `costBreakdown` and `monthlyCostUsd` outputs.

Prices are us-east-1 list prices from the AWS Lightsail pricing page
(aws.amazon.com/lightsail/pricing), recorded 2026-11-26; other regions and
later dates may differ (`aws lightsail get-bundles`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .backups import BUCKET_BUNDLE_ID, BUCKET_MONTHLY_USD
from .catalog import Bundle

# Lightsail snapshot storage, instance and disk snapshots alike (Lightsail pricing page).
SNAPSHOT_USD_PER_GB_MONTH = 0.05
# Lightsail block storage, the servers' data disks (Lightsail pricing page, "Block storage").
BLOCK_STORAGE_USD_PER_GB_MONTH = 0.10


@dataclass(frozen=True)
class LineItem:
    item: str
    monthly_usd: float
    basis: str

    def as_output(self) -> dict[str, object]:
        return {"item": self.item, "monthlyUsd": self.monthly_usd, "basis": self.basis}


def cost_breakdown(
    instances: Mapping[str, Bundle],
    auto_snapshots: bool,
    backup_bucket: bool,
    data_disks: Mapping[str, int] | None = None,
) -> list[LineItem]:
    """`instances` maps each node's role ("server", "agent-1", …) to its bundle; `data_disks` each
    server's role to the GB of its data disk (0: none)."""
    items = [
        LineItem(
            f"instance {role} {bundle.bundle_id}",
            float(bundle.monthly_usd),
            "bundle list price, billed hourly up to this",
        )
        for role, bundle in instances.items()
    ]
    items.extend(
        LineItem(
            f"data disk {role}",
            round(size_gb * BLOCK_STORAGE_USD_PER_GB_MONTH, 2),
            f"{size_gb} GB block storage x USD {BLOCK_STORAGE_USD_PER_GB_MONTH}/GB-month",
        )
        for role, size_gb in (data_disks or {}).items()
        if size_gb
    )
    items.append(LineItem("static IP", 0.0, "free while attached to an instance"))
    if backup_bucket:
        items.append(
            LineItem(
                f"backup bucket {BUCKET_BUNDLE_ID}",
                float(BUCKET_MONTHLY_USD),
                "Lightsail object storage plan with 5 GB included (components/backups.py)",
            )
        )
    if auto_snapshots:
        # Lightsail keeps the seven newest automatic snapshots and bills the storage
        # they use (Lightsail snapshots FAQ); snapshots are incremental, so our
        # estimate is one copy of each whole disk: the first snapshot's upper bound,
        # to which a k3s node's daily changes add little.
        items.extend(
            LineItem(
                f"automatic snapshots {role} (estimate)",
                round(bundle.disk_gb * SNAPSHOT_USD_PER_GB_MONTH, 2),
                f"{bundle.disk_gb} GB disk x USD {SNAPSHOT_USD_PER_GB_MONTH}/GB-month",
            )
            for role, bundle in instances.items()
        )
    return items


def monthly_total(items: list[LineItem]) -> float:
    return round(sum(item.monthly_usd for item in items), 2)
