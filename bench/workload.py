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
# The warm-up's barrier (the delay server's gather=K): its requests wait at the server until all
# K are in flight, so every connection a round reuses is open at once (issue 22). When K come
# they are answered at once; this long is only ever waited by a model that never gets K in
# flight: enough to start 10,000 threads and connect them on a loaded 2-core machine. Never
# more than half the request timeout, so no client gives up on it first.
GATHER_WAIT_MS = 15_000
# The delay server the suite starts closes a connection idle this long (its own default, 30 s,
# is a cap on stalled clients): a warm-up of 10,000 threads on a loaded 2-core machine has taken
# 72 s here, and connections opened at its start must still be open when the round reuses them.
SUITE_IDLE_TIMEOUT_S = 600.0
# How long a connection may sit idle between two uses and still be trusted to be open: well under
# the suite's server's idle timeout, and the keep-alive expiry each client that has one is given.
# A worker that could leave a connection idle longer warms again before its next round. (A server
# at --bench-server-url keeps its own idle timeout: a round that finds connections closed opens
# new ones, and the referee makes the row INVALID, never silently mixed.)
KEEPALIVE_IDLE_S = SUITE_IDLE_TIMEOUT_S / 2


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

    @property
    def gather_wait_ms(self) -> int:
        return int(min(GATHER_WAIT_MS, self.timeout_s * 1000 / 2))

    def warmup_urls(self, in_flight: int, gather: bool = True) -> list[str]:
        """What primes a fresh worker: as many requests as it keeps in flight, held open together.

        Each asks the delay server to answer only once all of them are in flight (``gather=K``),
        so the model opens every connection its rounds reuse (and starts its threads), not the
        handful that ``ms=0`` requests finished one after another would leave. ``gather=False``
        (a database: its drivers open their connections before the warm-up) sends ``ms=0``.
        No faults are injected, so it never fails on purpose.
        """
        count = min(self.requests, in_flight)
        if not gather:
            return [f"{self.base_url}/delay?ms=0"] * count
        return [f"{self.base_url}/delay?ms={self.gather_wait_ms}&gather={count}"] * count

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
