"""S3 client construction shared by services, probes and the local stack."""

from __future__ import annotations

from typing import Any


def make_s3_client(
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    timeout_s: float = 10.0,
) -> Any:
    """Return a boto3 S3 client for a path-style, S3-compatible endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


def ensure_buckets(client: Any, buckets: tuple[str, ...]) -> list[str]:
    """Create each bucket that does not exist yet; return the ones created."""
    from botocore.exceptions import ClientError

    present = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = []
    for bucket in buckets:
        if bucket in present:
            continue
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            # Another init step may have created it between the list and here.
            if exc.response["Error"]["Code"] not in {
                "BucketAlreadyOwnedByYou",
                "BucketAlreadyExists",
            }:
                raise
        else:
            created.append(bucket)
    return created
