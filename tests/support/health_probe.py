"""Time ``GET /health`` from a process of its own, as an orchestrator's probe would.

    python -m tests.support.health_probe http://127.0.0.1:8000 SECONDS INTERVAL

Opens a new connection for every request (a probe does; it also times the server's accept), and
prints one JSON object when done: ``{"latencies_ms": [...], "outcomes": {"200": n, "timeout": n, ...}}``.
Its own process, so that the clients a test floods the server with cannot slow its clock.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

TIMEOUT = 5.0


def probe(url: str, seconds: float, interval: float) -> dict[str, object]:
    address = urlsplit(url)
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=TIMEOUT)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            outcomes[str(response.status)] += 1
        except TimeoutError:
            outcomes["timeout"] += 1
        except OSError as exc:
            outcomes[type(exc).__name__] += 1
        finally:
            connection.close()
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, interval - (time.perf_counter() - started)))
    return {"latencies_ms": latencies, "outcomes": dict(outcomes)}


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))))
