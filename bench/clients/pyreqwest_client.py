"""pyreqwest: Rust's reqwest (hyper on a tokio runtime) behind a blocking and an asyncio client.

Its IO is not Python: the requests run on tokio's own OS thread, and a Python thread (or the
asyncio loop) only waits for the answer. So its threads and CPU count in the worker like any
other (OS threads from /proc, CPU from getrusage over the whole process, tokio's thread
included). gevent's patch cannot reach it: under gevent each blocking request holds the hub
until tokio answers, and the greenlets' requests go out one at a time (a trap row, shown
serialized). There is no trio form: its awaitables need an asyncio loop.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from bench.clients.outcome import asyncio_fetch_from, blocking_fetch_from


def _configured(builder, workload, pool_size: int):
    """The same settings for both forms.

    reqwest has no connection cap by default (``max_connections`` None) and keeps idle
    connections without limit per host; the pool here keeps one for each request in flight.
    ``timeout`` is the whole request, connect to the body's end. It follows redirects and
    decompresses by default: the delay server sends neither, so neither costs anything.
    New connections: ``Connection: close`` on every request (hyper drops the connection).
    TLS: the suite's CA added to the roots reqwest trusts.
    """
    timeout = timedelta(seconds=workload.timeout_s)
    builder = (
        builder.timeout(timeout)
        .connect_timeout(timeout)
        .max_connections(None)
        .pool_max_idle_per_host(pool_size)
        .default_headers(workload.request_headers)
        .no_proxy()
        .http1_only()
    )
    if workload.ca_file:
        builder = builder.add_root_certificate_pem(Path(workload.ca_file).read_bytes())
    return builder.build()


def blocking_fetch(workload, pool_size: int):
    """One client for every thread, built by the first request.

    Building it starts tokio's runtime, which refuses to run in a process forked after that
    (pyreqwest raises): the process pool's worker makes a fetch before it forks, as a
    script would, so the runtime must wait for the first request, in the pool's process.
    """
    from pyreqwest.client import SyncClientBuilder

    built = []
    building = threading.Lock()

    def client():
        if not built:
            with building:
                if not built:
                    built.append(_configured(SyncClientBuilder(), workload, pool_size))
        return built[0]

    def get(url: str) -> int:
        response = client().get(url).build().send()
        response.bytes()
        return response.status

    return blocking_fetch_from(get)


async def asyncio_fetch(workload, pool_size: int):
    from pyreqwest.client import ClientBuilder

    client = _configured(ClientBuilder(), workload, pool_size)

    async def get(url: str) -> int:
        response = await client.get(url).build().send()
        await response.bytes()
        return response.status

    return asyncio_fetch_from(get, aclose=client.close)
