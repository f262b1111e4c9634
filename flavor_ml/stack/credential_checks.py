"""Proof that each running service accepts the credentials the stack hands out, and refuses none.

A health check says a server answers; it does not say that the server accepts this stack's
credentials. MLflow keeps its users in its database, MinIO may keep keys in its data folder,
and a service left running from before holds the credentials it was started with. So ``up``
(once each service is healthy) and ``status`` make one authenticated request per credential:

- Prefect: ``GET /api/admin/version`` with ``PREFECT_API_AUTH_STRING`` as basic auth;
- MLflow: ``GET /api/2.0/mlflow/users/get`` as each user the stack hands out (the admin:
  ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``), which must exist, and the admin be an admin;
- the S3 store: a signed ``HeadBucket`` of the stack's bucket with ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY``;
- the inference API: ``GET /admin/unknown`` with ``FLAVOR_API_ADMIN_TOKEN`` as bearer token;

and the same request without credentials, which must be refused (authentication is on).
Each check returns None when all is well, otherwise a :class:`Refusal` saying what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from flavor_ml.stack.config import StackSettings
from flavor_ml.stack.mlflow_auth import (
    READER_PASSWORD_VARIABLE,
    READER_USERNAME,
    WRITER_PASSWORD_VARIABLE,
    WRITER_USERNAME,
)
from flavor_ml.stack.services import API, MLFLOW, PREFECT_SERVER, S3

TIMEOUT = 10.0


@dataclass(frozen=True)
class Refusal:
    """What a check found wrong: the service refused a credential it was given (``refused``), or
    something else (it did not answer, or it answered without asking for credentials)."""

    message: str
    refused: bool = True


def _reason(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def _unreachable(url: str, exc: Exception) -> Refusal:
    return Refusal(f"did not answer at {url} ({type(exc).__name__}: {exc})", refused=False)


def _open(url: str, response: httpx.Response, what: str = "without credentials") -> Refusal:
    return Refusal(f"answered GET {url} {what} ({_reason(response)}): it runs without authentication", refused=False)


def check_prefect(api_url: str, auth_string: str) -> Refusal | None:
    """``api_url`` is the Prefect API (``.../api``); ``auth_string`` is ``user:password``."""
    user, _, password = auth_string.partition(":")
    url = f"{api_url.rstrip('/')}/admin/version"
    try:
        accepted = httpx.get(url, auth=(user, password), timeout=TIMEOUT)
        anonymous = httpx.get(url, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return _unreachable(url, exc)
    if accepted.status_code != 200:
        return Refusal(f"refused PREFECT_API_AUTH_STRING (user {user!r}) on GET {url}: {_reason(accepted)}")
    if anonymous.status_code != 401:
        return _open(url, anonymous)
    return None


def check_mlflow(tracking_uri: str, users: Mapping[str, str], admin: str | None = None) -> Refusal | None:
    """Each of ``users`` (name -> password) authenticates and reads itself; ``admin`` must be an admin."""
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/users/get"
    try:
        for user, password in users.items():
            response = httpx.get(url, params={"username": user}, auth=(user, password), timeout=TIMEOUT)
            if response.status_code != 200:
                return Refusal(f"refused the user {user!r} with the password it was given: {_reason(response)}")
            is_admin = bool(response.json().get("user", {}).get("is_admin"))
            if user == admin and not is_admin:
                return Refusal(f"knows {user!r}, but not as an admin")
            if user != admin and admin is not None and is_admin:
                return Refusal(f"knows {user!r} as an admin, but it is meant to read only", refused=False)
        anonymous = httpx.get(url, params={"username": admin or next(iter(users), "")}, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return _unreachable(url, exc)
    except ValueError:
        return Refusal(f"answered GET {url} with something other than JSON: it is not MLflow", refused=False)
    if anonymous.status_code != 401:
        return _open(url, anonymous)
    return None


def check_s3(endpoint_url: str, bucket: str, access_key: str, secret_key: str, region: str) -> Refusal | None:
    """A signed HeadBucket is let through (to the bucket, or to "no such bucket": the store checks the
    signature first); an unsigned listing of the bucket is refused."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 1},
            connect_timeout=TIMEOUT,
            read_timeout=TIMEOUT,
        ),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if str(code) not in ("404", "NoSuchBucket", "NotFound"):
            return Refusal(f"refused a request signed with AWS_ACCESS_KEY_ID {access_key!r} and its secret key: {code}")
    except BotoCoreError as exc:
        return _unreachable(endpoint_url, exc)
    listing = f"{endpoint_url.rstrip('/')}/{bucket}?list-type=2"
    try:
        anonymous = httpx.get(listing, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return _unreachable(listing, exc)
    if anonymous.status_code < 400:
        return _open(listing, anonymous, "to an unsigned request")
    return None


def check_api(api_url: str, admin_token: str) -> Refusal | None:
    """The admin token opens ``/admin/unknown`` (a read); no token does not."""
    url = f"{api_url.rstrip('/')}/admin/unknown"
    try:
        accepted = httpx.get(
            url, params={"limit": 1}, headers={"Authorization": f"Bearer {admin_token}"}, timeout=TIMEOUT
        )
        anonymous = httpx.get(url, params={"limit": 1}, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        return _unreachable(url, exc)
    if accepted.status_code != 200:
        return Refusal(f"refused FLAVOR_API_ADMIN_TOKEN on GET {url}: {_reason(accepted)}")
    if anonymous.status_code not in (401, 403):
        return _open(url, anonymous, "without a token")
    return None


#: The credentials each service's check needs.
CHECKED_CREDENTIALS: dict[str, tuple[str, ...]] = {
    S3: ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    PREFECT_SERVER: ("PREFECT_API_AUTH_STRING",),
    MLFLOW: (
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        READER_PASSWORD_VARIABLE,
        WRITER_PASSWORD_VARIABLE,
    ),
    API: ("FLAVOR_API_ADMIN_TOKEN",),
}


def check_service(name: str, url: str, settings: StackSettings, credentials: Mapping[str, str]) -> Refusal | None:
    """Check the service ``name`` running at ``url`` with ``credentials``; None for a service with no
    credentials of its own (the worker is a client)."""
    missing = [variable for variable in CHECKED_CREDENTIALS.get(name, ()) if not credentials.get(variable)]
    if missing:
        return Refusal(f"cannot be checked: {', '.join(missing)} is set nowhere", refused=False)
    checks: dict[str, Callable[[], Refusal | None]] = {
        S3: lambda: check_s3(
            url,
            settings.s3_bucket,
            credentials["AWS_ACCESS_KEY_ID"],
            credentials["AWS_SECRET_ACCESS_KEY"],
            settings.s3_region,
        ),
        PREFECT_SERVER: lambda: check_prefect(f"{url}/api", credentials["PREFECT_API_AUTH_STRING"]),
        MLFLOW: lambda: check_mlflow(
            url,
            {
                credentials["MLFLOW_TRACKING_USERNAME"]: credentials["MLFLOW_TRACKING_PASSWORD"],
                READER_USERNAME: credentials[READER_PASSWORD_VARIABLE],
                WRITER_USERNAME: credentials[WRITER_PASSWORD_VARIABLE],
            },
            admin=credentials["MLFLOW_TRACKING_USERNAME"],
        ),
        API: lambda: check_api(url, credentials["FLAVOR_API_ADMIN_TOKEN"]),
    }
    return checks[name]() if name in checks else None
