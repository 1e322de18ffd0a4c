"""S3 object storage access (MinIO client; works against MinIO and SeaweedFS)."""

from __future__ import annotations

import logging

from minio import Minio

from prodcat.config import Settings, get_settings

log = logging.getLogger(__name__)


def get_s3_client(settings: Settings | None = None) -> Minio:
    """A MinIO client for the configured endpoint."""
    cfg = (settings or get_settings()).s3
    return Minio(
        cfg.endpoint,
        access_key=cfg.access_key,
        secret_key=cfg.secret_key.get_secret_value(),
        secure=cfg.secure,
        region=cfg.region,
    )


def ensure_buckets(settings: Settings | None = None) -> list[str]:
    """Create prodcat's buckets when missing; returns the ones created."""
    settings = settings or get_settings()
    client = get_s3_client(settings)
    created = []
    s3 = settings.s3
    for bucket in (s3.images_bucket, s3.mlflow_bucket, s3.reports_bucket):
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
            log.info("created bucket %s", bucket)
            created.append(bucket)
    return created


def empty_bucket(bucket: str, settings: Settings | None = None) -> int:
    """Delete every object in one bucket; returns how many were deleted."""
    from minio.deleteobjects import DeleteObject

    client = get_s3_client(settings)
    if not client.bucket_exists(bucket):
        return 0
    names = [o.object_name for o in client.list_objects(bucket, recursive=True)]
    errors = list(client.remove_objects(bucket, [DeleteObject(n) for n in names]))
    if errors:
        raise RuntimeError(f"could not delete {len(errors)} objects from {bucket}: {errors[0]}")
    return len(names)
