"""The real ``flavor-ml serve`` process under abuse (the "api-abuse" row of bench/faults.py):
oversized, malformed and endless bodies, a thousand connections at once and clients that never
finish their request. Every answer is a 4xx or a clean close, never a 500; memory stays bounded;
``/health`` stays under 50 ms p99; afterwards the API answers queries as before.

The server runs with the soft limit of open files most Linux hosts give a process (1,024), so that
a thousand connections meet the limit they would meet in production.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, start, stop, wait_until_healthy
from tests.support.serving import RegistryStore, session_sqlite_uri, small_embeddings, unique_model_name, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.faults("api-abuse")]

READ_TIMEOUT = 2.0  # FLAVOR_API_READ_TIMEOUT_SECONDS of the server under test (10 s by default)
MAX_CONNECTIONS = 1200  # FLAVOR_API_MAX_CONNECTIONS of the server under test (2,048 by default)
HOST_FILE_LIMIT = 1024  # the soft RLIMIT_NOFILE of a process on most Linux hosts
MAX_BODY = 64 * 1024  # FLAVOR_API_MAX_BODY_BYTES's default
TEN_MB = 10 * 1024 * 1024
HEALTH_P99_MS = 50.0
RSS_GROWTH_MB = 100.0  # what a thousand connections may add to the server's resident memory


@dataclass(frozen=True)
class Server:
    base: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    version: str


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """``flavor-ml serve`` on a free loopback port, serving a promoted version, ready."""
    root = tmp_path_factory.mktemp("abuse")
    store = RegistryStore.create(session_sqlite_uri(tmp_path_factory), root / "scratch", (root / "art").as_uri())
    name = unique_model_name()
    with store.active():
        version = store.log_version(name, small_embeddings(seed=11))
        store.promote(name, version)
    port, log = free_port(), root / "serve.log"
    command = [sys.executable, "-m", "flavor_ml", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "FLAVOR_MODEL_NAME": name,
        "FLAVOR_API_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
        "FLAVOR_API_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    process = start(["prlimit", f"--nofile={HOST_FILE_LIMIT}:", "--", *command], log, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{base}/health", process, log, timeout=60)
        wait_until(lambda: httpx.get(f"{base}/ready").status_code == 200, 30, "the first load")
        yield Server(base, port, process, log, version)
    finally:
        stop(process)
    written = log.read_text()
    assert "Exception in ASGI application" not in written, written[-3000:]
    assert "Too many open files" not in written, "the server ran out of file descriptors"


# --- bodies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no response before the close
    body_bytes_sent: int
    closed: bool  # the server closed the connection after answering


def send_until_answered(port: int, head: bytes, body: bytes) -> Answer:
    """Send ``head``, then (unless the server answers the head alone within a second) ``body`` for as
    long as the server reads it and has not answered; then read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        sent, view = 0, memoryview(body)
        answered_at_once = select.select([sock], [], [], 1.0)[0]
        while sent < len(body) and not answered_at_once:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable or not writable:
                break
            try:
                sent += sock.send(view[sent : sent + 65536])
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(1.0)  # far less than uvicorn's 5 s keep-alive: a close now is the server's choice
        response, closed = b"", False
        try:
            while chunk := sock.recv(65536):
                response += chunk
            closed = True
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else None
    return Answer(status, sent, closed)


def post_head(extra: str) -> bytes:
    return f"POST /complete HTTP/1.1\r\nHost: abuse\r\nContent-Type: application/json\r\n{extra}\r\n".encode()


def ten_mb_of_json() -> bytes:
    names = b'"basil", ' * (TEN_MB // 9)
    return b'{"ingredients": [' + names[: TEN_MB - 20] + b'"basil"]}'


def as_chunks(body: bytes, size: int = 16 * 1024) -> bytes:
    encoded = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(encoded) + b"0\r\n\r\n"


def test_a_10_mb_json_body_is_refused_with_413_before_it_is_read_and_the_connection_closed(server, fault_outcome):
    body = ten_mb_of_json()

    answer = send_until_answered(server.port, post_head(f"Content-Length: {len(body)}\r\n"), body)

    assert answer.status == 413
    assert answer.body_bytes_sent < len(body) // 2, "the server read most of the body it had refused"
    assert answer.closed, "the server kept the connection open to read the rest of the refused body"
    fault_outcome(f"10 MB JSON: 413 and close, {answer.body_bytes_sent / 1e6:.1f} MB of the body sent by then")


def test_a_chunked_body_over_the_limit_is_refused_with_413_once_the_limit_is_passed(server, fault_outcome):
    body = as_chunks(ten_mb_of_json())

    answer = send_until_answered(server.port, post_head("Transfer-Encoding: chunked\r\n"), body)

    assert answer.status == 413
    assert answer.body_bytes_sent < len(body) // 2, "the server read most of the body it had refused"
    assert answer.closed
    fault_outcome(
        f"chunked 10 MB JSON: 413 and close, {answer.body_bytes_sent / 1e6:.1f} MB pushed into the socket by then"
    )


@pytest.mark.parametrize(
    "case, body",
    [
        ("deeply nested JSON", ('{"ingredients": ' + "[" * 30_000 + "]" * 30_000 + "}").encode()),
        ("invalid UTF-8", b'{"ingredients": ["bas\xff\xfeil"]}'),
    ],
)
def test_a_body_that_cannot_be_parsed_is_400_from_the_real_server(server, fault_outcome, case, body):
    response = httpx.post(f"{server.base}/complete", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad request"
    fault_outcome(f"{case}: {response.status_code}")


# --- connections --------------------------------------------------------------------------------

DRIP_SECONDS = 0.2  # a slow client sends one byte this often
SIMILAR = b"GET /similar/basil HTTP/1.1\r\nHost: abuse\r\n\r\n"
SLOW_HEADERS = b"GET /similar/basil HTTP/1.1\r\nHost: abuse\r\nX-Slow: "  # and one more byte every drip, forever
SLOW_BODY = post_head("Content-Length: 1000\r\n") + b'{"ingredients": ["basil"'  # then a space every drip


@dataclass
class Seen:
    """What the clients of one kind saw: statuses answered, when the server closed them, refusals."""

    statuses: Counter[str] = field(default_factory=Counter)
    closed_after: list[float] = field(default_factory=list)
    still_open: int = 0
    refused: int = 0

    def summary(self) -> str:
        """E.g. '200 x500, closed by the server after 5.1-5.9 s'."""
        parts = [", ".join(f"{status} x{count}" for status, count in sorted(self.statuses.items())) or "no answer"]
        if self.closed_after:
            first, last = f"{min(self.closed_after):.1f}", f"{max(self.closed_after):.1f}"
            parts.append(f"closed by the server after {first if first == last else f'{first}-{last}'} s")
        parts += [f"{self.still_open} left open"] if self.still_open else []
        parts += [f"{self.refused} refused"] if self.refused else []
        return ", ".join(parts)


async def client(port: int, first: bytes, drip: bytes, hold: float, seen: Seen) -> None:
    """Connect, send ``first``, then ``drip`` every DRIP_SECONDS (if any) until the server closes or
    ``hold`` seconds pass; record the status of the first response and when the server closed."""
    opened = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        seen.refused += 1
        return
    received = b""
    try:
        writer.write(first)
        while time.monotonic() - opened < hold:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), DRIP_SECONDS)
            except TimeoutError:
                if drip:
                    writer.write(drip)
                continue
            if not chunk:
                seen.closed_after.append(time.monotonic() - opened)
                break
            received += chunk
        else:
            seen.still_open += 1
    except OSError:  # reset by the server
        seen.closed_after.append(time.monotonic() - opened)
    finally:
        writer.close()
    if received.startswith(b"HTTP/1.1 "):
        seen.statuses[received.split(b" ", 2)[1].decode()] += 1


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def flood(
    server: Server, kinds: dict[str, tuple[int, bytes, bytes]], hold: float
) -> tuple[dict[str, Seen], float]:
    """Run every kind's clients at once for ``hold`` seconds; what each kind saw and the peak RSS (MB)."""
    seen = {kind: Seen() for kind in kinds}
    clients = [
        client(server.port, first, drip, hold, seen[kind])
        for kind, (count, first, drip) in kinds.items()
        for _ in range(count)
    ]
    peak = 0.0

    async def watch_memory() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mb(server.process.pid))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch_memory())
    await asyncio.gather(*clients)
    watcher.cancel()
    return seen, peak


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def test_a_thousand_connections_and_slow_clients_leave_health_fast_and_memory_bounded(server, fault_outcome):
    kinds = {
        "idle": (500, b"", b""),  # connect and say nothing
        "querying": (500, SIMILAR, b""),  # one query each, then stay on keep-alive
        "slow headers": (25, SLOW_HEADERS, b"a"),
        "slow body": (25, SLOW_BODY, b" "),
    }
    hold = READ_TIMEOUT + 5.0  # every kind outlives the read timeout and uvicorn's 5 s keep-alive
    before = rss_mb(server.process.pid)
    probe = subprocess.Popen(
        [sys.executable, "-m", "tests.support.health_probe", server.base, str(hold), "0.02"],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )

    seen, peak = asyncio.run(flood(server, kinds, hold))

    probed = json.loads(probe.communicate(timeout=30)[0])
    latencies, probe_outcomes = probed["latencies_ms"], probed["outcomes"]
    statuses = sum((s.statuses for s in seen.values()), Counter())
    health_p99 = p99(latencies)
    fault_outcome(
        f"1,000 connections + 50 slow clients for {hold:.0f} s: /health p99 {health_p99:.1f} ms "
        f"(max {max(latencies):.0f} ms, {len(latencies)} probes, {probe_outcomes}), "
        f"RSS {before:.0f} -> peak {peak:.0f} MB, statuses {dict(statuses)}"
    )
    for kind, what in seen.items():
        fault_outcome(f"{kinds[kind][0]} {kind}: {what.summary()}")

    assert probe_outcomes == {"200": len(latencies)}, probe_outcomes
    assert health_p99 < HEALTH_P99_MS, f"/health p99 {health_p99:.1f} ms"
    assert seen["querying"].statuses == Counter({"200": 500}), seen["querying"]  # below the limit: no 503
    for kind in ("idle", "slow headers", "slow body"):  # cut off after the read timeout, not held
        assert seen[kind].still_open == 0, f"{seen[kind].still_open} {kind} connections were never closed"
        assert max(seen[kind].closed_after) < READ_TIMEOUT + 2.0, seen[kind].closed_after
    assert seen["slow body"].statuses == Counter({"408": 25}), seen["slow body"]
    assert peak - before < RSS_GROWTH_MB
    # and it serves as before
    similar = httpx.get(f"{server.base}/similar/basil", params={"k": 3})
    assert similar.status_code == 200 and similar.headers["x-model-version"] == server.version
    assert len(similar.json()["similar"]) == 3


def test_a_client_that_never_finishes_its_headers_or_its_body_is_cut_off_after_the_read_timeout(server, fault_outcome):
    kinds = {"silent": (b"", b""), "slow headers": (SLOW_HEADERS, b"a"), "slow body": (SLOW_BODY, b" ")}
    seen = {kind: Seen() for kind in kinds}

    async def one_of_each() -> None:
        await asyncio.gather(*(client(server.port, *kinds[kind], READ_TIMEOUT + 3, seen[kind]) for kind in kinds))

    asyncio.run(one_of_each())

    for kind, what in seen.items():
        assert len(what.closed_after) == 1, f"the {kind} client was not disconnected"
        assert READ_TIMEOUT - 0.1 < what.closed_after[0] < READ_TIMEOUT + 1.0, what.closed_after
    assert seen["silent"].statuses == seen["slow headers"].statuses == Counter()  # closed without an answer
    assert seen["slow body"].statuses == Counter({"408": 1})
    for kind, what in seen.items():
        fault_outcome(f"one {kind} client alone: {what.summary()}")


def test_past_the_connection_limit_a_request_is_503_until_idle_connections_are_cut_off(server, fault_outcome):
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(MAX_CONNECTIONS)]
    try:
        opened = time.monotonic()
        wait_until(lambda: httpx.get(f"{server.base}/similar/basil").status_code == 503, 2, "a 503 at the limit")
        wait_until(
            lambda: httpx.get(f"{server.base}/similar/basil").status_code == 200,
            READ_TIMEOUT + 2,
            "answers again once the idle connections are cut off",
        )
        answered_after = time.monotonic() - opened
    finally:
        for sock in idle:
            sock.close()

    fault_outcome(f"{MAX_CONNECTIONS:,} idle connections (the limit): 503, then 200 after {answered_after:.1f} s")
