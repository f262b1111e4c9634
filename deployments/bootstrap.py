"""Create, idempotently, what the deployments need on a Prefect server: the process work pool,
the AwsCredentials block and the S3Bucket block that holds task results. All from environment
variables, so the same command serves the native stack and docker-compose:

======================================  ==========================================================
``PREFECT_API_URL``                     the server (``PREFECT_API_AUTH_STRING`` for its basic auth)
``FLAVOR_WORK_POOL``                    process work pool to create (``flavor-pool``)
``FLAVOR_S3_ENDPOINT_URL``              S3-compatible endpoint (MinIO); path-style addressing
``FLAVOR_S3_BUCKET``                    bucket, created when missing (``flavor-ml``)
``FLAVOR_S3_REGION``                    region (``us-east-1``)
``AWS_ACCESS_KEY_ID`` and secret        the store's credentials, kept in the AwsCredentials block
``FLAVOR_AWS_CREDENTIALS_BLOCK``        its name (``flavor-s3``)
``FLAVOR_RESULT_STORAGE_BLOCK``         slug of the S3Bucket block (``s3-bucket/flavor-results``),
                                        what ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK`` names
``FLAVOR_RESULT_STORAGE_FOLDER``        its folder in the bucket (``prefect-results``)
======================================  ==========================================================

Run ``python -m deployments.bootstrap`` (what the compose worker does before it starts) or
``flavor-ml stack bootstrap`` (the native stack; ``stack up`` runs it by itself). Running it
again changes nothing but block values that differ from the environment. It ends by writing
and reading back a small object through the S3Bucket block, so a block that cannot reach the
store fails here rather than in the first flow run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class BootstrapConfig:
    work_pool: str
    endpoint_url: str
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str
    credentials_block: str
    result_block: str
    result_folder: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BootstrapConfig:
        env = os.environ if environ is None else environ
        missing = [
            name
            for name in ("PREFECT_API_URL", "FLAVOR_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            if not env.get(name)
        ]
        if missing:
            raise SystemExit(f"bootstrap: set {', '.join(missing)} (see `flavor-ml stack env`)")
        from flavor_ml.stack.credentials import is_placeholder

        placeholders = [
            name
            for name in (
                "PREFECT_API_AUTH_STRING",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "MLFLOW_TRACKING_PASSWORD",
            )
            if is_placeholder(env.get(name, ""))
        ]
        if placeholders:
            raise SystemExit(
                f"bootstrap: {', '.join(placeholders)} still hold the .env.example placeholders; "
                "set real secrets in .env"
            )
        block_type, _, result_block = env.get("FLAVOR_RESULT_STORAGE_BLOCK", "s3-bucket/flavor-results").partition("/")
        if block_type != "s3-bucket" or not result_block:
            raise SystemExit("bootstrap: FLAVOR_RESULT_STORAGE_BLOCK must look like s3-bucket/<name>")
        return cls(
            work_pool=env.get("FLAVOR_WORK_POOL", "flavor-pool"),
            endpoint_url=env["FLAVOR_S3_ENDPOINT_URL"],
            bucket=env.get("FLAVOR_S3_BUCKET", "flavor-ml"),
            region=env.get("FLAVOR_S3_REGION", "us-east-1"),
            access_key_id=env["AWS_ACCESS_KEY_ID"],
            secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            credentials_block=env.get("FLAVOR_AWS_CREDENTIALS_BLOCK", "flavor-s3"),
            result_block=result_block,
            result_folder=env.get("FLAVOR_RESULT_STORAGE_FOLDER", "prefect-results"),
        )


async def ensure_work_pool(name: str) -> str:
    """The process work pool ``name``: ``"created"`` or ``"exists"``; an error if it has another type."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async with get_client() as client:
        try:
            pool = await client.read_work_pool(name)
        except ObjectNotFound:
            try:
                await client.create_work_pool(
                    WorkPoolCreate(
                        name=name,
                        type="process",
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                        description="flavor-ml flow runs as local processes of a worker that has the package installed",
                    )
                )
            except ObjectAlreadyExists:  # another bootstrap won the race
                return "exists"
            return "created"
    if pool.type != "process":
        raise SystemExit(
            f"bootstrap: work pool {name!r} exists with type {pool.type!r}, not 'process'; "
            "delete it or set FLAVOR_WORK_POOL to another name"
        )
    return "exists"


async def save_blocks(config: BootstrapConfig) -> None:
    """The AwsCredentials block (endpoint, path-style) and the S3Bucket block that uses it."""
    from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

    credentials = AwsCredentials(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        region_name=config.region,
        aws_client_parameters=AwsClientParameters(
            endpoint_url=config.endpoint_url,
            config={"s3": {"addressing_style": "path"}},
        ),
    )
    await credentials.asave(config.credentials_block, overwrite=True)
    bucket = S3Bucket(bucket_name=config.bucket, credentials=credentials, bucket_folder=config.result_folder)
    await bucket.asave(config.result_block, overwrite=True)


async def check_result_storage(config: BootstrapConfig) -> None:
    """Write and read back one object through the saved S3Bucket block, as Prefect will."""
    from prefect_aws import S3Bucket

    bucket = await S3Bucket.aload(config.result_block)
    await bucket.awrite_path("_bootstrap/check", b"ok")
    if await bucket.aread_path("_bootstrap/check") != b"ok":
        raise SystemExit(f"bootstrap: s3-bucket/{config.result_block} did not read back what it wrote")


async def bootstrap(config: BootstrapConfig) -> list[str]:
    """Everything, in order; returns one line per thing done."""
    from flavor_ml.stack.bucket import ensure_bucket

    created = ensure_bucket(
        config.endpoint_url,
        config.bucket,
        {"AWS_ACCESS_KEY_ID": config.access_key_id, "AWS_SECRET_ACCESS_KEY": config.secret_access_key},
        config.region,
    )
    lines = [f"bucket {config.bucket!r} at {config.endpoint_url}: {'created' if created else 'exists'}"]
    lines.append(f"work pool {config.work_pool!r} (process): {await ensure_work_pool(config.work_pool)}")
    await save_blocks(config)
    lines.append(
        f"block aws-credentials/{config.credentials_block}: saved (endpoint {config.endpoint_url}, "
        "path-style addressing)"
    )
    await check_result_storage(config)
    lines.append(
        f"block s3-bucket/{config.result_block}: saved and checked (s3://{config.bucket}/{config.result_folder})"
    )
    return lines


def main() -> None:
    config = BootstrapConfig.from_env()
    for line in asyncio.run(bootstrap(config)):
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
