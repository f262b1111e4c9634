"""moto's S3 server behind a signature check: the stand-in for MinIO where MinIO is not installed.

Plain ``moto_server`` accepts any request, signed or not, and its own IAM mode
(``INITIAL_NO_AUTH_ACTION_COUNT``) cannot be used here: it only knows access keys that it
generated itself, and in server mode it checks signatures against a decoded URL, so signed
listings with a ``prefix`` or ``delimiter`` (``%2F``) fail. This wrapper checks AWS Signature
Version 4 itself, against the raw request, for the one key pair it is given in
``MINIO_ROOT_USER`` / ``MINIO_ROOT_PASSWORD`` (the variables MinIO reads), and answers in
front of moto:

- ``GET /minio/health/live`` -> 200 (MinIO's liveness path, so both stores are probed alike);
- ``/moto-api/*`` -> 403 (moto's control API could reset or dump the store);
- no SigV4 signature, in the ``Authorization`` header or (presigned URL) the query -> 403
  ``AccessDenied``; an expired presigned URL -> 403 ``AccessDenied``;
- another access key -> 403 ``InvalidAccessKeyId``; a wrong signature, or a request more
  than 15 minutes off the clock -> 403 ``SignatureDoesNotMatch`` / ``RequestTimeTooSkewed``.

Only correctly signed requests reach moto. State lives in memory: objects are gone when the
process stops, unlike MinIO's data folder.

Run as ``python -m flavor_ml.stack.moto_s3 --host 127.0.0.1 --port 9000``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

HEALTH_PATH = "/minio/health/live"
MAX_CLOCK_SKEW_SECONDS = 15 * 60
_ALGORITHM = "AWS4-HMAC-SHA256"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Refused(Exception):
    """A request the store does not accept: an S3 error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _header(environ: Mapping[str, Any], name: str) -> str | None:
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return environ.get(key) or None
    return environ.get(f"HTTP_{key}")


def _raw_target(environ: Mapping[str, Any]) -> tuple[str, str]:
    """The path and query exactly as the client sent them (still percent-encoded)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        path, _, query = raw.partition("?")
        return path, query
    from urllib.parse import quote

    return quote(environ.get("PATH_INFO", "")), environ.get("QUERY_STRING", "")


def _canonical_query(query: str, without: str | None = None) -> str:
    """Name=value pairs decoded, re-encoded the strict SigV4 way and sorted (as AWS does)."""
    from urllib.parse import quote, unquote

    pairs = []
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        if unquote(key) != without:
            pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def expected_signature(
    environ: Mapping[str, Any],
    secret: str,
    amz_date: str,
    scope: str,
    signed_headers: list[str],
    payload_hash: str,
    *,
    presigned: bool = False,
) -> str:
    """The SigV4 signature of this request under ``secret`` (header-signed, or presigned: query-signed)."""
    path, query = _raw_target(environ)
    headers = "".join(f"{name}:{' '.join((_header(environ, name) or '').split())}\n" for name in signed_headers)
    canonical_query = _canonical_query(query, without="X-Amz-Signature" if presigned else None)
    canonical = "\n".join(
        [environ["REQUEST_METHOD"].upper(), path, canonical_query, headers, ";".join(signed_headers), payload_hash]
    )
    string_to_sign = "\n".join([_ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, terminator = scope.split("/")
    key = _sign(_sign(_sign(_sign(f"AWS4{secret}".encode(), date), region), service), terminator)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _signature_fields(environ: Mapping[str, Any]) -> tuple[dict[str, str], bool] | None:
    """Credential, SignedHeaders, Signature and Date, from the Authorization header or (presigned) the query."""
    authorization = _header(environ, "authorization") or ""
    if authorization.startswith(_ALGORITHM + " "):
        try:
            fields = dict(part.strip().split("=", 1) for part in authorization[len(_ALGORITHM) :].split(","))
        except ValueError:
            raise Refused("AuthorizationHeaderMalformed", "The authorization header is malformed") from None
        fields["Date"] = _header(environ, "x-amz-date") or ""
        return fields, False
    from urllib.parse import parse_qsl

    query = dict(parse_qsl(_raw_target(environ)[1], keep_blank_values=True))
    if query.get("X-Amz-Algorithm") == _ALGORITHM:
        fields = {
            name: query.get(f"X-Amz-{name}", "")
            for name in ("Credential", "SignedHeaders", "Signature", "Date", "Expires")
        }
        return fields, True
    return None


def verify(environ: Mapping[str, Any], access_key_id: str, secret: str, now: datetime | None = None) -> None:
    """Raise :class:`Refused` unless the request is SigV4-signed with this key pair, and current."""
    found = _signature_fields(environ)
    if found is None:
        raise Refused("AccessDenied", "Access Denied: the request is not signed (AWS Signature Version 4)")
    fields, presigned = found
    try:
        key_id, scope = fields["Credential"].split("/", 1)
        signed, signature = fields["SignedHeaders"], fields["Signature"]
        if len(scope.split("/")) != 4 or not signature:
            raise ValueError(scope)
    except (KeyError, ValueError):
        raise Refused("AuthorizationHeaderMalformed", "The signature fields are malformed") from None
    if not hmac.compare_digest(key_id, access_key_id):
        raise Refused("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    try:
        sent = datetime.strptime(fields["Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise Refused("AccessDenied", "X-Amz-Date is missing or malformed") from None
    age = ((now or datetime.now(UTC)) - sent).total_seconds()
    if presigned:
        expires = int(fields["Expires"]) if fields["Expires"].isdigit() else -1
        if age > expires or age < -MAX_CLOCK_SKEW_SECONDS:
            raise Refused("AccessDenied", "Request has expired")
        payload_hash = "UNSIGNED-PAYLOAD"
    else:
        if abs(age) > MAX_CLOCK_SKEW_SECONDS:
            raise Refused(
                "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
            )
        payload_hash = _header(environ, "x-amz-content-sha256") or ""
        if not payload_hash:
            raise Refused("InvalidRequest", "x-amz-content-sha256 is required with Signature Version 4")
    names = signed.split(";")
    if "host" not in names:
        raise Refused("AccessDenied", "the host header must be signed")
    expected = expected_signature(environ, secret, fields["Date"], scope, names, payload_hash, presigned=presigned)
    if not hmac.compare_digest(expected, signature):
        raise Refused(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature "
            "you provided. Check your key and signing method.",
        )


def guarded(app: WSGIApp, access_key_id: str, secret: str) -> WSGIApp:
    """Health answered here, moto's control API closed, anything not signed with the key pair refused."""

    def respond(start_response: Callable[..., Any], status: str, body: bytes, content_type: str) -> list[bytes]:
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return respond(start_response, "200 OK", b"", "text/plain")
        try:
            if path.startswith("/moto-api"):
                raise Refused("AccessDenied", "moto's control API is closed in the flavor-ml stack")
            verify(environ, access_key_id, secret)
        except Refused as refused:
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{refused.code}</Code>'
                f"<Message>{escape(str(refused))}</Message></Error>"
            ).encode()
            return respond(start_response, "403 Forbidden", body, "application/xml")
        return app(environ, start_response)

    return application


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    access_key_id, secret = os.environ.get("MINIO_ROOT_USER"), os.environ.get("MINIO_ROOT_PASSWORD")
    if not access_key_id or not secret:
        sys.exit("moto_s3: MINIO_ROOT_USER and MINIO_ROOT_PASSWORD must be set (the store's only credentials)")

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = guarded(DomainDispatcherApplication(create_backend_app), access_key_id, secret)
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
