"""The suite's own certificate authority for ``--bench-tls``, made with trustme when a session starts.

One ECDSA P-256 CA (trustme's default key) and one server certificate for every loopback name
a URL may use (``127.0.0.1``, ``::1``, ``localhost``), written as PEM files into a temporary
directory that lives as long as the ``with`` block: the server loads the certificate and key,
every client trusts ``ca_file`` and nothing else.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import trustme

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


class LocalCA(NamedTuple):
    ca_file: str
    cert_file: str  # the server's certificate chain
    key_file: str

    @property
    def server_args(self) -> tuple[str, ...]:
        """What ``python -m servers.delay`` needs to serve HTTPS with this certificate."""
        return ("--tls-cert", self.cert_file, "--tls-key", self.key_file)


@contextmanager
def local_ca() -> Iterator[LocalCA]:
    authority = trustme.CA()
    server_cert = authority.issue_cert(*LOOPBACK_NAMES)
    with tempfile.TemporaryDirectory(prefix="coroutine-bench-ca-") as directory:
        files = LocalCA(*(str(Path(directory, name)) for name in ("ca.pem", "cert.pem", "key.pem")))
        authority.cert_pem.write_to_path(files.ca_file)
        server_cert.private_key_pem.write_to_path(files.key_file)
        for blob in server_cert.cert_chain_pems:
            blob.write_to_path(files.cert_file, append=True)
        yield files
