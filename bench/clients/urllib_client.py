"""urllib: the seed's own client, ``urllib.request.urlopen(url)`` (its ``urllib2`` in Python 3).

Every call opens a new connection (urllib sends ``Connection: close`` itself and has no pool),
so it serves ``--bench-connection new`` only: the seed's workload exactly.
"""

from __future__ import annotations

from bench.clients.outcome import blocking_fetch_from
from bench.clients.tls import client_context


def blocking_fetch(workload, pool_size: int):
    """urlopen per request, with the workload's timeout and, for https, the suite's CA."""
    import urllib.error
    import urllib.request

    context = client_context(workload)

    def get(url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=workload.timeout_s, context=context) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:  # urlopen raises for a 500: it is still a status
            with error:
                error.read()
                return error.code

    return blocking_fetch_from(get)
