"""The client side of ``--bench-tls``: a context that trusts the suite's local CA and nothing else.

Every client verifies the server's certificate against the workload's CA file (issue 17:
nothing runs with verification off), so a client pointed at the wrong CA fails every
request, each one a counted error. Built inside the worker, after gevent's patch.
"""

from __future__ import annotations

import ssl


def client_context(workload) -> ssl.SSLContext | None:
    """A verifying context for an https workload, None for plain HTTP."""
    if not workload.ca_file:
        return None
    return ssl.create_default_context(cafile=workload.ca_file)
