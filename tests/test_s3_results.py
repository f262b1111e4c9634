"""Task results and artifacts in an S3-compatible store (moto's server on loopback, addressed
exactly as MinIO would be): a second process with empty local state is served from the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.s3_server import moto_endpoint_url, s3_server  # noqa: F401

pytestmark = pytest.mark.slow


def save_result_blocks(url: str, bucket: str) -> None:
    """The S3Bucket block the flow runs write their results through, on the session's Prefect server
    (saved from this process: a subprocess would only import Prefect once more)."""
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    credentials = AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=url, config={"s3": {"addressing_style": "path"}}),
    )
    credentials.save("flavor-s3", overwrite=True)
    S3Bucket(bucket_name=bucket, credentials=credentials, bucket_folder="prefect-results").save(
        "flavor-results", overwrite=True
    )


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)


def train_in(tmp_path, s3_server, name: str) -> dict:
    """`flavor-ml train --json` as on a machine of its own (a new home and local result folder), with
    results in the bucket's S3Bucket block."""
    env = {
        **os.environ,
        **s3_server.env(),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK": "s3-bucket/flavor-results",
        "FLAVOR_TRAIN_EPOCHS": "3",
        "FLAVOR_HOME": str(tmp_path / name),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(tmp_path / f"{name}-results"),
    }
    done = run(["-m", "flavor_ml", "train", "--json"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.faults("cache-damaged")
def test_results_in_the_bucket_serve_a_fresh_process_and_damaged_ones_are_recomputed_never_served(
    s3_server, tmp_path, fault_outcome
):
    save_result_blocks(s3_server.url, s3_server.bucket)
    first = train_in(tmp_path, s3_server, "machine-a")
    second = train_in(tmp_path, s3_server, "machine-b")  # nothing local: a new home, a new local result folder

    assert set(first["tasks"].values()) == {"Completed"}
    assert set(second["tasks"].values()) == {"Cached"}
    assert second["metrics"] == first["metrics"]
    client, bucket = s3_server.client(), s3_server.bucket
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.startswith("flavor-ml/snapshots/") for k in keys), keys
    for name in ("machine-a-results", "machine-b-results"):
        local = tmp_path / name
        assert not local.exists() or not any(local.iterdir()), f"results were written locally to {local}"

    # Damage in the bucket: half of Prefect's result records overwritten, the other half deleted,
    # and the trained model's files overwritten, as a bad copy would leave them.
    records = sorted(key for key in keys if key.startswith("prefect-results/"))
    models = [key for key in keys if key.startswith("flavor-ml/models/")]
    assert records and models
    for key in records[::2]:
        client.put_object(Bucket=bucket, Key=key, Body=b'{"not": "a result record"')
    for key in records[1::2]:
        client.delete_object(Bucket=bucket, Key=key)
    for key in models:
        client.put_object(Bucket=bucket, Key=key, Body=b"damaged")

    again = train_in(tmp_path, s3_server, "machine-c")

    assert set(again["tasks"].values()) <= {"Completed", "Cached"}, again["tasks"]
    recomputed = sorted(name for name, state in again["tasks"].items() if state == "Completed")
    assert "train" in recomputed, again["tasks"]  # its files were damaged: never served
    assert again["metrics"]["completion_hr10"] > 0.5  # evaluated on a sound model
    fault_outcome(
        f"{len(records)} result records in S3 corrupted or deleted, {len(models)} model files overwritten: "
        f"the next run recomputed {len(recomputed)} of {len(again['tasks'])} tasks, none failed"
    )
