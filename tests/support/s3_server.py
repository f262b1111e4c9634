"""A real S3-compatible HTTP endpoint on loopback: moto's server in a thread.

    from tests.support.s3_server import moto_endpoint_url, s3_server  # noqa: F401  (fixtures)

    def test_something(s3_server, tmp_path):
        store = ArtifactStore.from_settings(s3_server.settings(tmp_path))
        s3_server.client().put_object(Bucket=s3_server.bucket, Key="k", Body=b"...")

The fixture sets dummy ``AWS_*`` credentials (and hides any real AWS configuration) for
the test and creates an empty bucket; the server itself is shared by the session and
stopped at its end (import ``moto_endpoint_url`` too when importing the fixture). ``env()`` gives the
variables a subprocess needs to reach the same endpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from flavor_ml.settings import StorageSettings
from tests.support.processes import free_port

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    bucket: str
    region: str = REGION

    def client(self):  # noqa: ANN201 (boto3 builds its client classes at run time)
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
        )

    def settings(self, home: Path, prefix: str = "flavor-ml") -> StorageSettings:
        """Storage settings that put the artifact store in this bucket."""
        return StorageSettings(
            home=home, s3_bucket=self.bucket, s3_prefix=prefix, s3_endpoint_url=self.url, s3_region=self.region
        )

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should use this endpoint as its store."""
        return {
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.url,
            "FLAVOR_S3_BUCKET": self.bucket,
            "FLAVOR_S3_ENDPOINT_URL": self.url,
            "FLAVOR_S3_REGION": self.region,
        }


@pytest.fixture(scope="session")
def moto_endpoint_url() -> Iterator[str]:
    """One moto server for the session (starting and stopping costs ~0.5 s); tests stay
    apart by using a fresh bucket each."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _dummy_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The test's AWS credentials are the dummy ones; no real AWS configuration is read."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    nowhere = tmp_path_factory.mktemp("aws-config") / "none"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_server(
    moto_endpoint_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> S3Endpoint:
    """moto's S3 on 127.0.0.1 and a free port, dummy credentials, and a fresh bucket."""
    _dummy_credentials(monkeypatch, tmp_path_factory)
    endpoint = S3Endpoint(url=moto_endpoint_url, bucket=f"flavor-{uuid.uuid4().hex[:12]}")
    endpoint.client().create_bucket(Bucket=endpoint.bucket)
    return endpoint


class RestartableS3:
    """moto's S3 on a port of its own, that a test may stop (connections are then refused) and
    start again on the same port with the same buckets and objects (moto keeps them in the process)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = S3Endpoint(url=f"http://127.0.0.1:{self.port}", bucket=f"flavor-{uuid.uuid4().hex[:12]}")
        self._server: ThreadedMotoServer | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        # moto's stop() leaves the listening socket open: the kernel would still accept connections.
        if self._server._server is not None:
            self._server._server.server_close()
        self._server = None


@pytest.fixture
def restartable_s3(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RestartableS3]:
    """An S3 store of this test's own (dummy credentials, a fresh bucket), stopped after the test."""
    _dummy_credentials(monkeypatch, tmp_path_factory)
    s3 = RestartableS3()
    s3.start()
    try:
        s3.endpoint.client().create_bucket(Bucket=s3.endpoint.bucket)
        yield s3
    finally:
        s3.stop()
