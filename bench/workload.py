"""The workload every strategy sends, and the one ``fetch`` they all call.

Only the concurrency model differs between strategies: the URL, the HTTP client, its
connection pool and its timeout are the same for all of them.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

import requests
from requests.adapters import HTTPAdapter

# Generous on purpose: a timeout must never be what ends a healthy request, even with
# thousands in flight on a loaded 2-core machine; it is there so a broken server cannot hang us.
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Workload:
    """N GETs of ``/delay?ms=D`` against the delay server; C caps the pooled strategies."""

    base_url: str
    requests: int
    delay_ms: int
    concurrency: int
    timeout_s: float = REQUEST_TIMEOUT_S

    @property
    def url(self) -> str:
        return f"{self.base_url}/delay?ms={self.delay_ms}"

    def urls(self) -> list[str]:
        return [self.url] * self.requests

    def ideal_seconds(self, max_in_flight: int) -> float:
        """The wall time if only the server's delay cost anything: ceil(N / C) waves of D."""
        return math.ceil(self.requests / max_in_flight) * self.delay_ms / 1000

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> Workload:
        return cls(**fields)


class Outcome(NamedTuple):
    """One request as the client saw it; ``error`` is a one-line reason or None."""

    ok: bool
    started: float
    finished: float
    error: str | None = None


def make_session(pool_size: int) -> requests.Session:
    """A keep-alive session whose pool holds a connection for every request that may be in flight.

    requests' default pool keeps 10 connections per host: with more in flight, the extra
    connections are opened and thrown away after each request, so unbounded strategies would
    pay a connect per request that the pools do not. ``pool_block=False`` keeps the pool from
    ever making a request wait for a free connection.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, pool_block=False, max_retries=0)
    session.mount("http://", adapter)
    return session


def make_fetch(workload: Workload, session: requests.Session):
    """Return ``fetch(url) -> Outcome``: one GET that never raises, so no failure is lost or fast."""

    def fetch(url: str) -> Outcome:
        started = time.perf_counter()
        try:
            response = session.get(url, timeout=workload.timeout_s)
            error = None if response.status_code == 200 else f"HTTP {response.status_code}"
        except Exception as exc:  # every failure becomes a counted error, whatever its type
            error = f"{type(exc).__name__}: {exc}"[:300]
        return Outcome(error is None, started, time.perf_counter(), error)

    return fetch
