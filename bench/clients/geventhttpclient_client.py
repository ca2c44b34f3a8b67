"""geventhttpclient: the fast path gevent users pick (Locust's FastHttpUser is built on it)."""

from __future__ import annotations

from urllib.parse import urlsplit

from bench.clients.outcome import blocking_fetch_from


def blocking_fetch(workload, pool_size: int):
    """One HTTPClient per host, its pool sized to the requests in flight, retries off.

    Its pool defaults to one connection, and its semaphore makes every other greenlet wait
    for it: ``concurrency`` must be the in-flight count or the pool caps the strategy.
    New connections: ``Connection: close`` on every request (the released connection is then
    closed). TLS: one context per client, verifying against the suite's CA (``ca_certs``).
    """
    import geventhttpclient.client
    from geventhttpclient import HTTPClient

    # request() retries an idempotent GET up to pool size + 1 times after a send error or a
    # closed connection, with no public switch (client.py, attempts_left); every retry path
    # asks this function first. The server's request count catches it if that ever changes.
    geventhttpclient.client._may_retry_after_send_error = lambda method: False
    clients: dict[str, HTTPClient] = {}
    tls = {"ssl": True, "ssl_options": {"ca_certs": workload.ca_file}} if workload.ca_file else {}

    def get(url: str) -> int:
        parts = urlsplit(url)
        client = clients.get(parts.netloc)
        if client is None:
            client = clients[parts.netloc] = HTTPClient(
                parts.hostname,
                parts.port,
                concurrency=pool_size,
                connection_timeout=workload.timeout_s,
                network_timeout=workload.timeout_s,
                headers=workload.request_headers,
                **tls,
            )
        response = client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
        try:
            response.read()
            return response.status_code
        finally:
            response.release()

    return blocking_fetch_from(get)
