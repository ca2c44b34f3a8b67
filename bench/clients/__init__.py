"""The client registry: every HTTP client by name. Adding one is a module here plus one entry below.

The client is the second axis of the suite (design rule 3): a row is a concurrency model
(``bench/strategies/``) sending its requests through one of these. Each module offers the
fetch of every API it serves, under one contract:

- ``blocking_fetch(workload, pool_size) -> fetch`` for code that blocks (threads, greenlets);
- ``async def asyncio_fetch(workload, pool_size) -> fetch``, built inside the loop that will
  await it (``fetch.aclose`` closes its session, if it has one);
- ``async def trio_fetch(workload, pool_size) -> fetch``, the same inside a ``trio.run``;

where ``fetch(url) -> Outcome`` (awaitable for asyncio). Every fetch uses the workload's
timeout, never retries, keeps a connection for each of ``pool_size`` requests in flight (or,
with ``workload.new_connections``, opens one per request in its idiomatic way), verifies
https URLs against ``workload.ca_file`` and is given ``127.0.0.1`` or ``localhost`` URLs. Modules are named, not imported: the pytest process never loads
a client, its worker processes do.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from bench.names import DELAY, OWN, POSTGRES
from bench.workload import NEW, REUSE

BLOCKING = "blocking"
ASYNCIO = "asyncio"
TRIO = "trio"


@dataclass(frozen=True)
class Client:
    name: str
    module: str
    apis: tuple[str, ...]
    # Built on gevent's own sockets: it only makes sense (and only runs concurrently) in a
    # patched worker, so it is offered to the gevent strategies alone.
    gevent_only: bool = False
    # What one request costs the client in CPU, to estimate a row's time before it runs:
    # a fixed part, and a part that grows with the requests in flight (a pool that scans all
    # its connections per request). Measured on the 2-core development machine; they err long.
    cpu_ms_per_request: float = 2.0
    cpu_ms_per_request_per_in_flight: float = 0.0
    # The --bench-connection modes it has: urllib has no pool, so it cannot reuse a connection.
    connections: tuple[str, ...] = (REUSE, NEW)
    # Where the client puts itself between the model and its resolver, if it does.
    resolver_note: str = ""
    # What it speaks to (bench/targets/): the delay server over HTTP, or PostgreSQL.
    target: str = DELAY
    # A module the gevent worker imports before it patches, as a program that imports its
    # driver at the top would: the trap row of issue 18 (bench/harness/gevent_worker.py).
    imports_before_patch: str | None = None
    # False where its IO is not Python's socket (C or Rust doing its own): gevent's patch cannot
    # reach it, so under gevent its requests go out one at a time (a trap row, shown serialized).
    patch_reaches_io: bool = True

    def estimated_cpu_seconds(self, requests: int, in_flight: int) -> float:
        per_request_ms = self.cpu_ms_per_request + self.cpu_ms_per_request_per_in_flight * in_flight
        return requests * per_request_ms / 1000

    def runs_serialized(self, strategy) -> bool:
        return strategy.gevent and not self.patch_reaches_io

    def serves(self, strategy) -> bool:
        return strategy.api in self.apis and (strategy.gevent or not self.gevent_only)

    def connects(self, connection: str) -> bool:
        return connection in self.connections

    def fetch_factory(self, api: str):
        """The module's ``blocking_fetch``, ``asyncio_fetch`` or ``trio_fetch``."""
        return getattr(importlib.import_module(self.module), f"{api}_fetch")


CLIENTS: dict[str, Client] = {
    client.name: client
    for client in (
        Client("requests", "bench.clients.requests_client", (BLOCKING,), cpu_ms_per_request=2.0),
        Client(
            "httpx",
            "bench.clients.httpx_client",
            (BLOCKING, ASYNCIO, TRIO),
            cpu_ms_per_request=1.0,
            cpu_ms_per_request_per_in_flight=0.004,
        ),
        Client(
            "aiohttp",
            "bench.clients.aiohttp_client",
            (ASYNCIO,),
            cpu_ms_per_request=0.5,
            resolver_note="aiohttp's ThreadedResolver (loop.getaddrinfo) behind its DNS cache (10 s)",
        ),
        Client("urllib3", "bench.clients.urllib3_client", (BLOCKING,), cpu_ms_per_request=1.0),
        Client(
            "geventhttpclient",
            "bench.clients.geventhttpclient_client",
            (BLOCKING,),
            gevent_only=True,
            cpu_ms_per_request=0.5,
        ),
        Client("raw", "bench.clients.raw", (BLOCKING, ASYNCIO, TRIO), cpu_ms_per_request=0.5),
        # Clients whose IO is not Python (issue 25): libcurl, and reqwest on tokio's thread.
        Client(
            "pycurl",
            "bench.clients.pycurl_client",
            (BLOCKING, ASYNCIO),
            cpu_ms_per_request=0.5,
            patch_reaches_io=False,
            resolver_note="libcurl's threaded resolver (getaddrinfo on a thread of its own per lookup)",
        ),
        Client(
            "pyreqwest",
            "bench.clients.pyreqwest_client",
            (BLOCKING, ASYNCIO),
            cpu_ms_per_request=0.5,
            patch_reaches_io=False,
            resolver_note="hyper's GaiResolver (getaddrinfo on tokio's blocking threads)",
        ),
        Client(
            "urllib", "bench.clients.urllib_client", (BLOCKING,), cpu_ms_per_request=1.0, connections=(NEW,)
        ),
        # PostgreSQL's drivers (bench/clients/sql.py): SELECT pg_sleep(D) on one connection per
        # request in flight. trio has no native driver: psycopg's trio form runs the blocking
        # one in trio.to_thread. asyncpg needs an asyncio loop, so it never runs under gevent.
        Client("psycopg", "bench.clients.psycopg_client", (BLOCKING, ASYNCIO, TRIO), target=POSTGRES),
        Client(
            "psycopg-imported-first",
            "bench.clients.psycopg_client",
            (BLOCKING,),
            gevent_only=True,
            target=POSTGRES,
            imports_before_patch="psycopg",
            patch_reaches_io=False,
        ),
        Client(
            "psycopg2", "bench.clients.psycopg2_client", (BLOCKING,), target=POSTGRES, patch_reaches_io=False
        ),
        Client(
            "psycopg2-psycogreen",
            "bench.clients.psycogreen_client",
            (BLOCKING,),
            gevent_only=True,
            target=POSTGRES,
        ),
        Client("asyncpg", "bench.clients.asyncpg_client", (ASYNCIO,), target=POSTGRES),
        Client("pg8000", "bench.clients.pg8000_client", (BLOCKING,), target=POSTGRES),
        # --bench-fetch: the user's own IO in whichever of the three forms their factory provides.
        Client("own", "bench.clients.byo", (BLOCKING, ASYNCIO, TRIO), target=OWN, cpu_ms_per_request=0.5),
    )
}

# Without --bench-client, the seed's story: requests where code blocks, aiohttp for asyncio;
# httpx's AsyncClient for trio (it runs there through anyio; aiohttp is asyncio only).
DEFAULT_CLIENT = {BLOCKING: "requests", ASYNCIO: "aiohttp", TRIO: "httpx"}
# ...and for PostgreSQL, psycopg 3: the one driver with a blocking and an asyncio form.
DEFAULT_DB_CLIENT = "psycopg"
# How a worker's command line says "no client": the CPU-bound control sends no requests.
NO_CLIENT = "-"
# The row of --bench-fetch: the user's own IO, no HTTP client.
OWN_CLIENT = "own"
# The floor of client cost: what a model costs above it is the model's own cost.
FLOOR = "raw"


def clients_for(
    strategy, names: tuple[str, ...] | None = None, connection: str = REUSE, target: str = DELAY
) -> list[Client]:
    """The clients of a target a strategy runs with: those of ``names`` that can serve it (with
    ``connection``), or its default."""
    if names is None:
        return [CLIENTS[DEFAULT_CLIENT[strategy.api] if target == DELAY else DEFAULT_DB_CLIENT]]
    return [
        CLIENTS[name]
        for name in names
        if CLIENTS[name].target == target
        and CLIENTS[name].serves(strategy)
        and CLIENTS[name].connects(connection)
    ]
