"""The workload every strategy runs, and what one task's outcome looks like.

Only the concurrency model differs between strategies: the URL, the HTTP client settings and
the timeout (or, in the CPU-bound control, the amount of work) are the same for all of them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

# Generous on purpose: a timeout must never be what ends a healthy request, even with
# thousands in flight on a loaded 2-core machine; it is there so a broken server cannot hang us.
REQUEST_TIMEOUT_S = 30.0
# --bench-connection: keep-alive connections reused across requests, or one new connection per
# request, the way the seed's urlopen(url) does it (issue 17).
REUSE = "reuse"
NEW = "new"
CONNECTIONS = (REUSE, NEW)
# How a request asks for its connection to end with it: the server closes first, so TIME_WAIT
# stays on its side (RFC 9112 9.6).
CONNECTION_CLOSE = {"Connection": "close"}
# --bench-host: the literal 127.0.0.1, or a name each model resolves its own way (issue 17).
HOST_IP = "ip"
HOST_NAME = "name"
LOOPBACK_NAME = "localhost"


@dataclass(frozen=True)
class Workload:
    """N tasks; for ``kind="io"`` each is a GET of ``/delay?ms=D``, for ``"cpu"`` pure-Python work.

    C caps the pooled strategies. ``cpu_iterations`` sizes the CPU task: the same count for
    every strategy, calibrated once by the parent.
    """

    base_url: str
    requests: int
    delay_ms: int
    concurrency: int
    timeout_s: float = REQUEST_TIMEOUT_S
    kind: str = "io"
    cpu_iterations: int = 0
    # Faults the server injects on purpose (--bench-fail-rate, --bench-drop-rate), e.g. "&fail=0.2".
    fault_query: str = ""
    # A GET with no delay, measured before the run: on loopback a fraction of a ms, to a
    # server on another host the network's round trip, which every wave of requests pays.
    round_trip_ms: float = 0.0
    connection: str = REUSE
    # --bench-tls: the PEM of the CA every client verifies the server against ("" for plain HTTP).
    ca_file: str = ""
    # --bench-fetch: the user's factory, package.module:name (bench/clients/byo.py); "" for none.
    fetch_spec: str = ""

    @property
    def new_connections(self) -> bool:
        return self.connection == NEW

    @property
    def request_headers(self) -> dict[str, str]:
        """The headers of every request: ``Connection: close`` for new connections, none for keep-alive."""
        return dict(CONNECTION_CLOSE) if self.new_connections else {}

    # How much each worker lowers its own priority at start (--bench-server-priority; harness/priority.py).
    worker_nice: int = 0

    @property
    def url(self) -> str:
        return f"{self.base_url}/delay?ms={self.delay_ms}{self.fault_query}"

    def urls(self) -> list[str]:
        return [self.url] * self.requests

    def warmup_urls(self, in_flight: int) -> list[str]:
        """What primes a fresh worker: as many requests as it keeps in flight, none of them waiting.

        It opens the connections (and starts the threads) every round reuses, for a fraction
        of a round's time; no faults are injected, so it never fails on purpose.
        """
        return [f"{self.base_url}/delay?ms=0"] * min(self.requests, in_flight)

    def ideal_seconds(self, max_in_flight: int) -> float:
        """The wall time if only the server's delay and the round trip cost anything: ceil(N / C) waves."""
        return math.ceil(self.requests / max_in_flight) * (self.delay_ms + self.round_trip_ms) / 1000

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> Workload:
        return cls(**fields)


class Outcome(NamedTuple):
    """One task as the client saw it (perf_counter seconds); ``error`` is a one-line reason or None."""

    ok: bool
    started: float
    finished: float
    error: str | None = None


def by_name(base_url: str) -> str:
    """The same server, named ``localhost`` instead of its loopback address (--bench-host name)."""
    parts = urlsplit(base_url)
    return parts._replace(netloc=f"{LOOPBACK_NAME}:{parts.port}").geturl()


def fault_query(fail_rate: float = 0.0, drop_rate: float = 0.0, stall: bool = False) -> str:
    """The /delay parameters that make the server fail, drop or stall requests on purpose."""
    parts = [f"&fail={fail_rate:g}"] if fail_rate else []
    parts += [f"&drop={drop_rate:g}"] if drop_rate else []
    parts += ["&stall=1"] if stall else []
    return "".join(parts)


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
