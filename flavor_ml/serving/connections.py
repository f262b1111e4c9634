"""How ``flavor-ml serve`` holds its connections: a deadline for each request's headers, and enough
open files for the connections it serves.

uvicorn closes a connection that stays idle after a response (its keep-alive timeout), but it
waits for ever on one that never sends a request, or sends its headers a byte at a time: a
thousand such clients hold a thousand sockets. :func:`h11_with_header_deadline` is uvicorn's h11
protocol with a deadline for the headers; the body's deadline is the app's
(:class:`flavor_ml.serving.http.ModelVersionHeader`, which answers 408).
"""

from __future__ import annotations

import asyncio
import logging
import resource

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

# uvicorn's listen backlog: a burst of connections is accepted up to this many at a time, before
# the server has looked at (and closed) any of them.
BACKLOG = 2048
# Files the process holds besides connections: the interpreter's, the model's, logs, the registry.
RESERVED_FILES = 256


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol that closes a connection whose request headers have not arrived
    ``header_timeout_seconds`` after it opened (or after the first byte of a next request)."""

    header_timeout_seconds = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_headers():
            if self._deadline is None:  # not re-armed by each byte: a trickle must not outlive it
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        # uvicorn starts a request-response cycle when a request's headers are complete.
        cycle = self.cycle
        return cycle is None or cycle.response_complete

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.header_timeout_seconds, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.close()


def h11_with_header_deadline(seconds: float) -> type[H11Protocol]:
    """The protocol class to give uvicorn (``http=``) for a header deadline of ``seconds``."""

    class Protocol(HeaderDeadlineProtocol):
        header_timeout_seconds = seconds

    return Protocol


def ensure_open_files(connections: int) -> int:
    """Raise this process's soft limit of open files to what ``connections`` need, as far as the
    hard limit allows; the soft limit then.

    Past the limit, accepting a connection fails and asyncio stops accepting for a second at a
    time: every client, /health included, waits. Most Linux hosts start a process at 1,024.
    """
    needed = connections + BACKLOG + RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)  # never below soft (<= hard)
    if raised > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        log.info("open-file limit raised from %d to %d for %d connections", soft, raised, connections)
    if raised < needed:
        log.warning(
            "the open-file limit is %d (hard limit) but %d connections need %d: raise `ulimit -Hn` or lower "
            "FLAVOR_API_MAX_CONNECTIONS, or a burst of connections will stall every client, /health included",
            raised,
            connections,
            needed,
        )
    return raised
