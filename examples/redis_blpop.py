"""A worker waiting on a Redis queue: ``BLPOP`` with a timeout, under every model.

    pytest bench/ --bench-fetch examples.redis_blpop:make_fetch --bench-requests 100 --bench-delay-ms 200

The queue is never filled, so each call waits on the server for its timeout (the delay) and
returns None: the wait is Redis's, the cost around it the model's. ``BENCH_REDIS_URL`` names
the server (default redis://127.0.0.1:6379/0).

Where gevent's patch reaches it: redis-py's blocking client talks over Python's ``socket``,
so in a patched worker each greenlet's ``BLPOP`` waits in the hub and they all wait at once.
asyncio (and uvloop) use ``redis.asyncio``. redis-py has no trio form: the trio rows are
skipped, each with one line.
"""

from __future__ import annotations

import os

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "bench:never-filled"
# Redis answers a BLPOP at its timeout; the socket waits this much longer, so a server that
# is gone is an error, not a hang.
SOCKET_MARGIN_S = 5.0


def make_fetch(kind: str, delay_s: float, in_flight: int):
    # One connection for each call that may be in flight: a BLPOP holds its connection.
    settings = {"max_connections": max(in_flight, 1), "socket_timeout": delay_s + SOCKET_MARGIN_S}
    if kind == "blocking":
        import redis

        client = redis.Redis.from_url(REDIS_URL, **settings)

        def fetch():
            return client.blpop([QUEUE], timeout=delay_s)

        return fetch
    if kind == "asyncio":
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(REDIS_URL, **settings)

        async def fetch():
            return await client.blpop([QUEUE], timeout=delay_s)

        fetch.aclose = client.aclose
        return fetch
    return None
