"""Fault table row ``s3-stopped``: the S3 store (moto's server, addressed as MinIO would be: endpoint
URL, path style, credentials) stops while a task persists its result there.

What these tests hold: the run fails with an error naming the store's endpoint and bucket; once the
store is back, a new run with the same inputs completes; and no cache entry that was not written
whole is served later.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.pipeline import isolated_pipeline  # noqa: F401
from tests.support.s3_server import RestartableS3, restartable_s3  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.faults("s3-stopped")]

RESULTS_FOLDER = "prefect-results"


@pytest.fixture
def stored_in_s3(isolated_pipeline, restartable_s3, monkeypatch) -> Iterator[RestartableS3]:  # noqa: F811
    """Snapshots, baskets and models in the bucket, and every task result through an S3Bucket block on it."""
    from prefect.settings import PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK, temporary_settings
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    endpoint = restartable_s3.endpoint
    for name, value in endpoint.env().items():
        monkeypatch.setenv(name, value)
    suffix = uuid.uuid4().hex[:8]
    credentials = AwsCredentials(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=endpoint.region,
        aws_client_parameters=AwsClientParameters(
            endpoint_url=endpoint.url, config={"s3": {"addressing_style": "path"}}
        ),
    )
    credentials.save(f"faults-s3-{suffix}", overwrite=True)
    S3Bucket(bucket_name=endpoint.bucket, credentials=credentials, bucket_folder=RESULTS_FOLDER).save(
        f"faults-results-{suffix}", overwrite=True
    )
    with temporary_settings(updates={PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: f"s3-bucket/faults-results-{suffix}"}):
        yield restartable_s3


def stop_s3_when_a_result_record_is_written(s3: RestartableS3, monkeypatch, step: str) -> list[float]:
    """The store stops once, just before the S3Bucket block writes the result record of ``step``
    (after the step stored its files); the moment it stopped."""
    from prefect_aws.s3 import S3Bucket

    write, stopped = S3Bucket._write_sync, []

    def write_while_s3_stops(block, key: str, data: bytes) -> None:
        if not stopped and f"/flavor-ml-{step}-" in key:
            s3.stop()
            stopped.append(time.monotonic())
        return write(block, key, data)

    monkeypatch.setattr(S3Bucket, "_write_sync", write_while_s3_stops)
    return stopped


def stop_s3_after_the_first_model_file(s3: RestartableS3, monkeypatch) -> list[float]:
    """The store stops once, when the train step has stored the first of its model files; the moment it stopped."""
    from flavor_ml.storage import ArtifactStore

    put, stored, stopped = ArtifactStore.put_file, [], []

    def put_while_s3_stops(store, local_path, key: str, **kwargs) -> str:
        if key.startswith("models/"):
            if stored and not stopped:
                s3.stop()
                stopped.append(time.monotonic())
            stored.append(key)
        return put(store, local_path, key, **kwargs)

    monkeypatch.setattr(ArtifactStore, "put_file", put_while_s3_stops)
    return stopped


def result_records(s3: RestartableS3) -> dict[str, object]:
    """Every cached step's result record in the bucket, by cache key: each must read back whole."""
    from prefect.results import ResultRecord

    client, bucket = s3.endpoint.client(), s3.endpoint.bucket
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{RESULTS_FOLDER}/flavor-ml-").get("Contents", [])
    return {
        obj["Key"].rsplit("/", 1)[-1]: ResultRecord.deserialize(
            client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        )
        for obj in listed
    }


def briefly(error: Exception) -> str:
    """The error's first sentence, with the object's long content-addressed uri shortened."""
    return re.sub(r"s3://\S+/", "s3://…/", str(error).split(". ")[0])


def task_states(summary) -> dict[str, str]:
    return {name.split("[", 1)[0]: task.state for name, task in summary.tasks.items()}


def test_s3_stopped_while_train_stores_its_model_fails_train_naming_the_store_and_a_rerun_completes(
    stored_in_s3, monkeypatch, fault_outcome
):
    from flavor_ml.errors import StorageError
    from flavor_ml.integrity import damage
    from flavor_ml.settings import load_settings
    from flows.run_info import _read_task_runs
    from flows.train import train_embeddings

    endpoint = stored_in_s3.endpoint
    stopped = stop_s3_after_the_first_model_file(stored_in_s3, monkeypatch)

    failed = train_embeddings(return_state=True)
    seconds = time.monotonic() - stopped[0]

    assert failed.is_failed()
    train = next(run for run in _read_task_runs(str(failed.state_details.flow_run_id)) if run.name == "train")
    assert train.state.is_failed()
    with pytest.raises(StorageError) as error:
        failed.result()
    assert str(error.value).startswith(f"the S3 store at {endpoint.url} (bucket '{endpoint.bucket}') could not ")
    fault_outcome(f"S3 down while train stored its model: train Failed in {seconds:.0f} s: {briefly(error.value)}")

    stored_in_s3.start()
    assert not any(key.startswith("flavor-ml-train-") for key in result_records(stored_in_s3))
    again = train_embeddings()

    states = task_states(again)
    assert (states["fetch"], states["normalize"], states["merge"], states["train"]) == (
        "Cached",
        "Cached",
        "Cached",
        "Completed",
    )
    assert damage(again.model, load_settings().storage) is None
    fault_outcome(
        "S3 back: a new run completed (fetch, normalize, merge Cached; train computed again, its model whole)"
    )


def test_s3_stopped_while_train_writes_its_result_record_fails_the_run_naming_the_store_and_no_partial_entry_is_served(
    stored_in_s3, monkeypatch, fault_outcome, caplog
):
    from flavor_ml.errors import StorageError
    from flows.train import train_embeddings

    endpoint = stored_in_s3.endpoint
    stopped = stop_s3_when_a_result_record_is_written(stored_in_s3, monkeypatch, "train")

    with caplog.at_level(logging.ERROR):
        failed = train_embeddings(return_state=True)
    seconds = time.monotonic() - stopped[0]

    assert failed.is_failed()
    # Prefect logs the failed write with its own traceback and carries on (train is Completed, uncached); the
    # step says what that means, and the run stops at the first use of the store, naming it.
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("the result of this step")]
    assert len(said) == 1 and "nothing is cached under flavor-ml-train-" in said[0], said
    assert said[0].startswith(
        f"the result of this step was not stored in s3://{endpoint.bucket}/{RESULTS_FOLDER} at {endpoint.url} "
    )
    with pytest.raises(StorageError) as error:
        failed.result()
    assert str(error.value).startswith(f"the S3 store at {endpoint.url} (bucket '{endpoint.bucket}') could not")
    stored_in_s3.start()
    records = result_records(stored_in_s3)  # each reads back whole
    assert not any(key.startswith("flavor-ml-train-") for key in records), sorted(records)
    fault_outcome(
        "S3 down while train's result was written: train logged that its result was not stored (nothing cached); "
        f"the run failed in {seconds:.0f} s: {briefly(error.value)}"
    )

    again = train_embeddings()
    states = task_states(again)
    # Train's entry was never written: train is computed again; what was stored before is served.
    assert (states["fetch"], states["normalize"], states["merge"], states["train"]) == (
        "Cached",
        "Cached",
        "Cached",
        "Completed",
    )
    train_key = again.tasks["train"].cache_key
    assert result_records(stored_in_s3)[train_key].result.sha256 == again.model.sha256
    fault_outcome("S3 back: a new run computed train again (no entry had been written) and stored a whole entry for it")
