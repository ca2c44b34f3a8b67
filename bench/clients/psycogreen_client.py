"""psycopg2 with psycogreen's wait callback: libpq in non-blocking mode, waiting on gevent's hub.

``psycogreen.gevent.patch_psycopg()`` registers ``psycopg2.extensions.set_wait_callback``,
the documented way to make psycopg2 cooperate with a coroutine library; offered to the gevent
strategies only.
"""

from __future__ import annotations

from bench.clients import psycopg2_client


def blocking_fetch(workload, pool_size: int):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    return psycopg2_client.blocking_fetch(workload, pool_size)
