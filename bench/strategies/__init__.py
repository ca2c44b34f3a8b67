"""The registry: every strategy by name. Adding one is a module here plus one entry below.

Each module exposes ``run(fetch, urls, concurrency) -> list[Outcome]`` and nothing else
(``async def run`` for those with an event loop), except a pool of workers (see ``pooled``).
A strategy names the model only; the HTTP client
is the other axis (``bench/clients/``), and any client that serves the strategy's API can be
paired with it. Modules are named, not imported, so the pytest process never imports them;
their worker processes do.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass
from enum import Enum

from bench.clients import ASYNCIO, BLOCKING, TRIO
from bench.names import TWIN_SUFFIX


def default_executor_workers() -> int:
    """ThreadPoolExecutor's size when nobody passes one (Lib/concurrent/futures/thread.py)."""
    cpus = getattr(os, "process_cpu_count", os.cpu_count)() or 1  # process_cpu_count: 3.13+
    return min(32, cpus + 4)


class Fanout(Enum):
    """How many requests a strategy keeps in flight at once."""

    ONE = "one at a time"
    PER_REQUEST = "one task per request"
    POOL = "a pool of C"
    # asyncio.to_thread's executor, left at its default size: min(32, cpus + 4), whatever C is.
    DEFAULT_EXECUTOR = "the default executor's threads"

    def max_in_flight(self, requests: int, concurrency: int) -> int:
        if self is Fanout.DEFAULT_EXECUTOR:
            return min(default_executor_workers(), requests)
        return {Fanout.ONE: 1, Fanout.PER_REQUEST: requests, Fanout.POOL: min(concurrency, requests)}[self]


@dataclass(frozen=True)
class Strategy:
    name: str
    module: str
    fanout: Fanout
    # gevent strategies run in a worker that calls monkey.patch_all() before anything else.
    gevent: bool = False
    # Which fetch it calls: a blocking one (threads, greenlets, processes) or an awaitable one.
    api: str = BLOCKING
    # The event loop its ``run`` is awaited on, built by the worker (bench/harness/loops.py): "asyncio",
    # "uvloop" or "trio"; None for code that blocks. asyncio.to_thread awaits on a loop and
    # calls a blocking fetch.
    loop: str | None = None
    # A pool of workers (threads, processes) that outlives a round: the module's
    # ``open_pool(fetch, C)`` starts it once per worker process, in the untimed warm-up, and
    # every round calls ``run(pool, fetch, urls)``. One rule for every pooled model: start-up
    # in no timed round, reported as the warm-up's time (issue 19, item 3). Pools that hold no
    # workers (gevent's Pool, a Semaphore, a CapacityLimiter) have nothing to start.
    pooled: bool = False
    # A pool of processes, each with its own client (pool size 1): ``open_pool`` is given what
    # makes a process's client, and the row's memory and CPU are those of the whole tree.
    processes: bool = False

    @property
    def worker_module(self) -> str:
        """The module its worker process runs: the patched one for gevent strategies."""
        return "bench.harness.gevent_worker" if self.gevent else "bench.harness.worker"

    def load(self):
        return importlib.import_module(self.module)


STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        Strategy("sequential", "bench.strategies.sequential", Fanout.ONE),
        Strategy("threads", "bench.strategies.threads", Fanout.PER_REQUEST),
        Strategy("threadpool", "bench.strategies.threadpool", Fanout.POOL, pooled=True),
        Strategy("gevent-joinall", "bench.strategies.gevent_joinall", Fanout.PER_REQUEST, gevent=True),
        Strategy("gevent-pool", "bench.strategies.gevent_pool", Fanout.POOL, gevent=True),
        Strategy(
            "asyncio-gather",
            "bench.strategies.asyncio_gather",
            Fanout.PER_REQUEST,
            api=ASYNCIO,
            loop="asyncio",
        ),
        Strategy(
            "asyncio-bounded", "bench.strategies.asyncio_semaphore", Fanout.POOL, api=ASYNCIO, loop="asyncio"
        ),
        Strategy(
            "asyncio-uvloop",
            "bench.strategies.asyncio_uvloop",
            Fanout.PER_REQUEST,
            api=ASYNCIO,
            loop="uvloop",
        ),
        Strategy("trio-nursery", "bench.strategies.trio_nursery", Fanout.PER_REQUEST, api=TRIO, loop="trio"),
        Strategy("trio-bounded", "bench.strategies.trio_bounded", Fanout.POOL, api=TRIO, loop="trio"),
        Strategy("processpool", "bench.strategies.processpool", Fanout.POOL, pooled=True, processes=True),
        Strategy(
            "asyncio-to-thread", "bench.strategies.asyncio_to_thread", Fanout.DEFAULT_EXECUTOR, loop="asyncio"
        ),
    )
}

# The A/A check (docs/reference/statistics.md): with COROUTINE_BENCH_AA_TWIN=NAME, NAME is registered a
# second time as NAME-twin, the same module in a worker of its own. Identical work must never
# come out significantly different; the twins are compared head to head in every workload.
AA_TWIN_VARIABLE = "COROUTINE_BENCH_AA_TWIN"
if twin_of := os.environ.get(AA_TWIN_VARIABLE):
    if twin_of not in STRATEGIES:
        raise SystemExit(f"{AA_TWIN_VARIABLE}={twin_of!r}: no such strategy; known: {', '.join(STRATEGIES)}")
    STRATEGIES[twin_of + TWIN_SUFFIX] = dataclasses.replace(STRATEGIES[twin_of], name=twin_of + TWIN_SUFFIX)
