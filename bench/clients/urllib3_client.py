"""urllib3: what requests runs on, without requests' layers on top."""

from __future__ import annotations

from bench.clients.outcome import blocking_fetch_from


def blocking_fetch(workload, pool_size: int):
    """A PoolManager whose pool per host holds a connection per request in flight.

    Its default ``maxsize`` is 1: every request beyond the first in flight would open a
    connection and throw it away. ``block=False`` never queues a request for a connection,
    ``retries=False`` never resends and returns a 500 as a response. New connections:
    ``Connection: close`` on every request. TLS: ``ca_certs`` is the suite's CA.
    """
    import urllib3

    manager = urllib3.PoolManager(
        maxsize=pool_size,
        block=False,
        retries=False,
        timeout=urllib3.Timeout(workload.timeout_s),
        headers=workload.request_headers,
        ca_certs=workload.ca_file or None,
    )

    def get(url: str) -> int:
        return manager.request("GET", url).status  # preload_content: the body is read

    return blocking_fetch_from(get)
