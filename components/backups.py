"""etcd snapshots off the node: a Lightsail bucket, an access key to it, and k3s' S3 settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

# The smallest Lightsail bucket plan: USD 1 a month for 5 GB of storage (AWS Lightsail
# pricing page, object storage, as gathered 2026-11-26; the id as in the pulumi-aws
# lightsail.Bucket docs; list them with `aws lightsail get-bucket-bundles`).
BUCKET_BUNDLE_ID = "small_1_0"
BUCKET_MONTHLY_USD = 1
# Snapshots land under this prefix, so the bucket can hold other things without
# k3s' retention pruning them.
SNAPSHOT_FOLDER = "etcd-snapshots"


@dataclass(frozen=True)
class BackupBucketArgs:
    region: str
    schedule_cron: str
    retention: int
    tags: Mapping[str, str]


def s3_endpoint(region: str) -> str:
    """Lightsail buckets are S3 buckets, served at the region's S3 endpoint.

    AWS Lightsail object storage docs (buckets-in-amazon-lightsail.html): a bucket's
    objects are addressed as https://<bucket>.s3.<region>.amazonaws.com/<key>.
    """
    return f"s3.{region}.amazonaws.com"


def etcd_snapshot_settings(
    bucket: str,
    region: str,
    access_key_id: str,
    secret_access_key: str,
    schedule_cron: str,
    retention: int,
) -> dict[str, Any]:
    """k3s server config keys for scheduled etcd snapshots uploaded to S3 (docs.k3s.io/cli/etcd-snapshot)."""
    return {
        "etcd-snapshot-schedule-cron": schedule_cron,
        "etcd-snapshot-retention": retention,
        "etcd-s3": True,
        "etcd-s3-endpoint": s3_endpoint(region),
        "etcd-s3-region": region,
        "etcd-s3-bucket": bucket,
        "etcd-s3-folder": SNAPSHOT_FOLDER,
        "etcd-s3-access-key": access_key_id,
        "etcd-s3-secret-key": secret_access_key,
    }


class BackupBucket(pulumi.ComponentResource):
    """A Lightsail bucket for etcd snapshots and an access key that reaches only that bucket."""

    bucket_name: pulumi.Output[str]
    # The k3s config keys above; secret, since they hold the access key.
    k3s_settings: pulumi.Output[dict[str, Any]]

    def __init__(
        self, name: str, args: BackupBucketArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("lightsail-k3s:index:BackupBucket", name, None, opts)
        bucket = aws.lightsail.Bucket(
            f"{name}-backups",
            bundle_id=BUCKET_BUNDLE_ID,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # A Lightsail access key belongs to one bucket and can reach nothing else; AWS
        # returns its secret once, at creation, so it lives only in (encrypted) state.
        access_key = aws.lightsail.BucketAccessKey(
            f"{name}-backups-key",
            bucket_name=bucket.name,
            opts=pulumi.ResourceOptions(
                parent=self, additional_secret_outputs=["accessKeyId", "secretAccessKey"]
            ),
        )
        self.bucket_name = bucket.name
        # Explicitly secret: the k3s config (and the install's stdin) must stay secret
        # whatever the provider schema marks.
        self.k3s_settings = pulumi.Output.secret(
            pulumi.Output.all(
                bucket.name, access_key.access_key_id, access_key.secret_access_key
            ).apply(
                lambda values: etcd_snapshot_settings(
                    bucket=values[0],
                    region=args.region,
                    access_key_id=values[1],
                    secret_access_key=values[2],
                    schedule_cron=args.schedule_cron,
                    retention=args.retention,
                )
            )
        )
        self.register_outputs({"bucketName": self.bucket_name})
