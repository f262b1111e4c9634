"""The stack's bucket on its S3-compatible store (MinIO or the moto stand-in), created when missing."""

from __future__ import annotations

from collections.abc import Mapping

from flavor_ml.stack.errors import StackError


def ensure_bucket(endpoint_url: str, bucket: str, credentials: Mapping[str, str], region: str = "us-east-1") -> bool:
    """Create ``bucket`` unless it exists; True when it was created. Path-style addressing."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3}),
    )
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise StackError(f"cannot check bucket {bucket!r} at {endpoint_url}: {exc}") from None
    except BotoCoreError as exc:
        raise StackError(f"the S3 store at {endpoint_url} is not answering: {exc}") from None
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise StackError(f"cannot create bucket {bucket!r} at {endpoint_url}: {exc}") from None
        return False
    return True


def main() -> None:
    """``python -m flavor_ml.stack.bucket``: create FLAVOR_S3_BUCKET at FLAVOR_S3_ENDPOINT_URL (compose's
    one-shot ``create-bucket`` service); AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY sign the requests."""
    import os
    import sys

    missing = [
        name
        for name in ("FLAVOR_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        if not os.environ.get(name)
    ]
    if missing:
        sys.exit(f"create-bucket: set {', '.join(missing)}")
    endpoint, bucket = os.environ["FLAVOR_S3_ENDPOINT_URL"], os.environ.get("FLAVOR_S3_BUCKET", "flavor-ml")
    try:
        created = ensure_bucket(endpoint, bucket, os.environ, os.environ.get("FLAVOR_S3_REGION", "us-east-1"))
    except StackError as exc:
        sys.exit(f"create-bucket: {exc}")
    print(f"bucket {bucket!r} at {endpoint}: {'created' if created else 'exists'}")


if __name__ == "__main__":
    main()
