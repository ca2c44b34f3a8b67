"""The registry: every strategy by name. Adding one is a module here plus one entry below.

Each module exposes ``run(fetch, urls, concurrency) -> list[Outcome]`` and nothing else
(``async def run`` for the asyncio ones). A strategy names the model only; the HTTP client
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

from bench.clients import ASYNCIO, BLOCKING


class Fanout(Enum):
    """How many requests a strategy keeps in flight at once."""

    ONE = "one at a time"
    PER_REQUEST = "one task per request"
    POOL = "a pool of C"

    def max_in_flight(self, requests: int, concurrency: int) -> int:
        return {Fanout.ONE: 1, Fanout.PER_REQUEST: requests, Fanout.POOL: min(concurrency, requests)}[self]


@dataclass(frozen=True)
class Strategy:
    name: str
    module: str
    fanout: Fanout
    # gevent strategies run in a worker that calls monkey.patch_all() before anything else.
    gevent: bool = False
    # Which fetch it calls: a blocking one (threads, greenlets) or an awaitable one.
    api: str = BLOCKING

    @property
    def worker_module(self) -> str:
        """The module its worker process runs: the patched one for gevent strategies."""
        return "bench.gevent_worker" if self.gevent else "bench.worker"

    def load(self):
        return importlib.import_module(self.module)


STRATEGIES: dict[str, Strategy] = {
    strategy.name: strategy
    for strategy in (
        Strategy("sequential", "bench.strategies.sequential", Fanout.ONE),
        Strategy("threads", "bench.strategies.threads", Fanout.PER_REQUEST),
        Strategy("threadpool", "bench.strategies.threadpool", Fanout.POOL),
        Strategy("gevent-joinall", "bench.strategies.gevent_joinall", Fanout.PER_REQUEST, gevent=True),
        Strategy("gevent-pool", "bench.strategies.gevent_pool", Fanout.POOL, gevent=True),
        Strategy("asyncio-gather", "bench.strategies.asyncio_gather", Fanout.PER_REQUEST, api=ASYNCIO),
        Strategy("asyncio-bounded", "bench.strategies.asyncio_semaphore", Fanout.POOL, api=ASYNCIO),
    )
}

# The A/A check (README, "Verdicts"): with COROUTINE_BENCH_AA_TWIN=NAME, NAME is registered a
# second time as NAME-twin, the same module in a worker of its own. Identical work must never
# come out significantly different; the twins are compared head to head in every workload.
AA_TWIN_VARIABLE = "COROUTINE_BENCH_AA_TWIN"
TWIN_SUFFIX = "-twin"
if twin_of := os.environ.get(AA_TWIN_VARIABLE):
    if twin_of not in STRATEGIES:
        raise SystemExit(f"{AA_TWIN_VARIABLE}={twin_of!r}: no such strategy; known: {', '.join(STRATEGIES)}")
    STRATEGIES[twin_of + TWIN_SUFFIX] = dataclasses.replace(STRATEGIES[twin_of], name=twin_of + TWIN_SUFFIX)
