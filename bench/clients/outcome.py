"""Turn a client's ``get(url) -> HTTP status`` into the suite's ``fetch(url) -> Outcome``, once.

Every client module writes only what its library needs to send one GET and read the body;
timing the request and turning any failure into a counted error live here.
"""

from __future__ import annotations

import time
from http import HTTPStatus

from bench.workload import Outcome, describe_error


def status_error(status: int) -> str | None:
    return None if status == 200 else f"HTTP {status}"


# What the delay server answers past its connection cap (--max-connections): a request's error
# is this exact status, never a message that happens to contain "503".
REFUSED_BY_CAP = status_error(HTTPStatus.SERVICE_UNAVAILABLE)


def blocking_fetch_from(get, error_of=status_error):
    """``error_of`` judges what ``get`` returned: an HTTP status here, nothing for a database query."""

    def fetch(url: str) -> Outcome:
        started = time.perf_counter()
        try:
            error = error_of(get(url))
        except Exception as exc:  # every failure becomes a counted error, whatever its type
            error = describe_error(exc)
        return Outcome(error is None, started, time.perf_counter(), error)

    return fetch


def asyncio_fetch_from(get, aclose=None, error_of=status_error):
    """The awaitable form, for asyncio and trio alike: it awaits ``get`` and nothing else."""

    async def fetch(url: str) -> Outcome:
        started = time.perf_counter()
        try:
            error = error_of(await get(url))
        except Exception as exc:
            error = describe_error(exc)
        return Outcome(error is None, started, time.perf_counter(), error)

    if aclose is not None:
        fetch.aclose = aclose
    return fetch
