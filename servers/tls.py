"""The delay server's TLS context (``--tls-cert``/``--tls-key``): every new connection is a full handshake.

TLS 1.3 only, and no session tickets, so no client can resume a session and skip the
handshake that ``--bench-tls`` measures (issue 17). In TLS 1.3, ``OP_NO_TICKET`` alone only
makes OpenSSL issue stateful tickets instead; ``num_tickets = 0`` issues none.
"""

from __future__ import annotations

import ssl


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    context.load_cert_chain(cert_file, key_file)
    return context
