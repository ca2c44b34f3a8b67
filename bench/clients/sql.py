"""What every PostgreSQL driver's fetch shares: the query, the wait it asks for, its connections.

A request to the database is named like one to the delay server, ``{DSN}/delay?ms=D``
(``Workload.url`` with the DSN as its base), so strategies and workloads stay the same for
both targets; a driver connects to ``workload.base_url`` and sleeps for the D it reads here.
Every query is ``SELECT pg_sleep(D)`` (in the driver's parameter style) on an autocommit
connection: the referee counts that statement (``bench/targets/postgres.py``).
"""

from __future__ import annotations

import functools
from collections import deque
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

# The server ends a statement that runs past the workload's timeout: a request never waits
# for ever on a healthy server (a frozen one is the worker's round deadline's to catch).
# Connecting gives up after this, as the HTTP clients' connect timeout does.
CONNECT_TIMEOUT_S = 10


@functools.cache
def sleep_seconds(url: str) -> float:
    return int(parse_qs(urlsplit(url).query)["ms"][0]) / 1000


def dsn(workload) -> str:
    return workload.base_url


def statement_timeout_ms(workload) -> int:
    return int(workload.timeout_s * 1000)


def completed(_result) -> None:
    """A query that returned succeeded: a failed one raises, and the fetch counts the error."""
    return None


class Connections:
    """One connection per request that may be in flight, opened before the rounds; a request borrows one.

    The strategies never have more requests in flight than connections, so one is always
    free; if one ever is not, ``pop`` raises and the request is counted as an error.
    """

    def __init__(self, connections) -> None:
        self._idle = deque(connections)

    @contextmanager
    def borrowed(self):
        connection = self._idle.pop()
        try:
            yield connection
        finally:
            self._idle.append(connection)

    def __iter__(self):
        return iter(list(self._idle))
