"""The task every strategy calls: ``fetch(url) -> Outcome``, built once per worker.

Strategies on threads and greenlets share one ``requests`` fetch; the asyncio strategies
need an awaitable one and get aiohttp's client, set up to the same rules. The CPU-bound
control swaps the request for pure-Python work of a fixed size.
"""

from __future__ import annotations

import time

from bench.workload import Outcome, Workload, describe_error


def requests_fetch(workload: Workload, pool_size: int):
    """A keep-alive ``requests`` session whose pool holds a connection per request in flight.

    requests' default pool keeps 10 connections per host: with more in flight, the extra
    connections are opened and thrown away after each request, so unbounded strategies would
    pay a connect per request that the pools do not. ``pool_block=False`` keeps the pool from
    ever making a request wait for a free connection.
    """
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, pool_block=False, max_retries=0)
    session.mount("http://", adapter)

    def fetch(url: str) -> Outcome:
        started = time.perf_counter()
        try:
            response = session.get(url, timeout=workload.timeout_s)
            error = None if response.status_code == 200 else f"HTTP {response.status_code}"
        except Exception as exc:  # every failure becomes a counted error, whatever its type
            error = describe_error(exc)
        return Outcome(error is None, started, time.perf_counter(), error)

    return fetch


async def aiohttp_fetch(workload: Workload):
    """The asyncio peer of ``requests_fetch``; must be built inside the loop that will use it.

    aiohttp's connector allows 100 connections by default (``limit``), which would quietly
    cap the unbounded strategy; 0 means no limit, as ``pool_block=False`` does for requests.
    """
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False),
        timeout=aiohttp.ClientTimeout(total=workload.timeout_s),
    )
    # aiohttp resends a GET whose keep-alive connection the server closed (RFC 9112 9.3.1.1;
    # client.py, retry_persistent_connection); requests, with max_retries=0, does not. Measured
    # with --bench-drop-rate 0.2: aiohttp reported 3 of 20 drops. There is no public switch,
    # so turn the private one off; the server's request count catches it if this ever stops working.
    session._retry_connection = False

    async def fetch(url: str) -> Outcome:
        started = time.perf_counter()
        try:
            async with session.get(url) as response:
                await response.read()
                error = None if response.status == 200 else f"HTTP {response.status}"
        except Exception as exc:
            error = describe_error(exc)
        return Outcome(error is None, started, time.perf_counter(), error)

    fetch.aclose = session.close
    return fetch


def spin(iterations: int) -> int:
    """Pure-Python arithmetic that holds the GIL throughout.

    Not hashlib: it releases the GIL on buffers over 2 KiB, so threads would run it in
    parallel and the control would no longer show what the GIL does to CPU-bound work.
    """
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def cpu_task(workload: Workload, asynchronous: bool):
    def work(url: str) -> Outcome:
        started = time.perf_counter()
        spin(workload.cpu_iterations)
        return Outcome(True, started, time.perf_counter())

    async def work_async(url: str) -> Outcome:
        return work(url)

    return work_async if asynchronous else work


def calibrate_spin(target_ms: float) -> int:
    """How many ``spin`` iterations take ``target_ms`` here (best of a few tries of ~20 ms)."""
    iterations = 200_000
    best = min(_timed(spin, iterations) for _ in range(3))
    return max(1, round(iterations * target_ms / 1000 / best))


def _timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started
