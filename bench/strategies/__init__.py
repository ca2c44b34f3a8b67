"""The registry: every strategy by name. Adding one is a module here plus one entry below.

Each module exposes ``run(fetch, urls, concurrency) -> list[Outcome]`` and nothing else
(``async def run`` for the asyncio ones). Modules are named, not imported, so the pytest
process never imports them; their worker processes do.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import Enum


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
    # "requests" for code that blocks (threads, greenlets); "aiohttp" for asyncio, whose
    # client has its own CPU cost per request: the tables name the client for that reason.
    client: str = "requests"

    @property
    def worker_module(self) -> str:
        """The module its worker process runs: the patched one for gevent strategies."""
        return "bench.gevent_worker" if self.gevent else "bench.worker"

    @property
    def asyncio(self) -> bool:
        return self.client == "aiohttp"

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
        Strategy("asyncio-aiohttp", "bench.strategies.asyncio_gather", Fanout.PER_REQUEST, client="aiohttp"),
        Strategy(
            "asyncio-aiohttp-bounded", "bench.strategies.asyncio_semaphore", Fanout.POOL, client="aiohttp"
        ),
    )
}
