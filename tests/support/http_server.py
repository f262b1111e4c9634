"""A real, scriptable HTTP server on 127.0.0.1 for tests of code that downloads things.

    server.serve("/recipes.jsonl", Reply(500), Reply(500), Reply(200, body))  # fails twice
    server.serve("/cut.jsonl", Reply(200, body, content_length=len(body) + 100))  # lies
    server.serve("/slow.jsonl", Reply(200, body, delay=2.0))
    url = server.url("/recipes.jsonl"); ...; assert server.count("/recipes.jsonl") == 3

Each path answers with its replies in order; the last one repeats. Unknown paths get 404.
Use the ``http_server`` fixture, or ``with ScriptedHTTPServer() as server:``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None  # announce this instead of len(body): a truncated body
    delay: float = 0.0  # seconds to wait before answering (for timeouts)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


class ScriptedHTTPServer:
    """A threaded HTTP/1.0 server on a free loopback port that answers from a script."""

    def __init__(self) -> None:
        self._routes: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[Request] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                owner._answer(self, send_body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                owner._answer(self, send_body=False)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="scripted-http", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, *replies: Reply) -> str:
        """Script the answers for ``path`` (in order, the last one repeating); returns its URL."""
        if not replies:
            raise ValueError("give at least one Reply")
        with self._lock:
            self._routes[path] = list(replies)
        return self.url(path)

    def count(self, path: str, method: str = "GET") -> int:
        """How many ``method`` requests ``path`` has received."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path and r.method == method)

    def start(self) -> ScriptedHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers that are sleeping in a delay
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, handler: BaseHTTPRequestHandler, send_body: bool) -> None:
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(Request(handler.command, path, dict(handler.headers.items())))
            script = self._routes.get(path)
            if script is None:
                reply = Reply(404, b"not found")
            elif handler.command == "GET" and len(script) > 1:
                reply = script.pop(0)  # HEAD requests look without consuming the script
            else:
                reply = script[0]
        if reply.delay and self._stopping.wait(reply.delay):
            return
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            length = reply.content_length if reply.content_length is not None else len(reply.body)
            handler.send_header("Content-Length", str(length))
            handler.send_header("Connection", "close")
            handler.end_headers()
            if send_body:
                handler.wfile.write(reply.body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. timed out)
            pass
        handler.close_connection = True


@pytest.fixture
def http_server() -> Iterator[ScriptedHTTPServer]:
    """A started ``ScriptedHTTPServer``, stopped after the test."""
    with ScriptedHTTPServer() as server:
        yield server
