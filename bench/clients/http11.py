"""A minimal HTTP/1.1 response reader, with no IO of its own: the raw client's forms share it.

It understands exactly what a keep-alive GET needs: the status line, ``Content-Length`` and
``Connection``. Anything else a server might send (chunked encoding, a malformed or oversized
head, a body shorter or longer than announced) is a ``ProtocolError``, never a guess.
"""

from __future__ import annotations

from typing import NamedTuple

# Far above any head the delay server sends (~150 bytes); a longer one is not this server.
MAX_HEAD_BYTES = 64 * 1024


class ProtocolError(Exception):
    """The response is not one this reader can trust; the message says why."""


class Response(NamedTuple):
    status: int
    keep_alive: bool


def request_bytes(host: str, port: int, target: str, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode("latin-1")


class ResponseReader:
    """Feed it bytes as they arrive; ``feed`` returns the Response once the whole body is in."""

    def __init__(self) -> None:
        self._buffer = b""
        self._head: Response | None = None
        self._body_bytes = 0

    def feed(self, data: bytes) -> Response | None:
        if not data:
            where = (
                "the head"
                if self._head is None
                else f"the body ({len(self._buffer)} of {self._body_bytes} bytes)"
            )
            raise ProtocolError(f"connection closed during {where}")
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"response head over {MAX_HEAD_BYTES} bytes")
                return None
            self._head, self._body_bytes = _parse_head(self._buffer[:end])
            self._buffer = self._buffer[end + 4 :]
        if len(self._buffer) < self._body_bytes:
            return None
        if len(self._buffer) > self._body_bytes:
            raise ProtocolError(
                f"{len(self._buffer) - self._body_bytes} bytes after a body of {self._body_bytes}"
            )
        return self._head


def _parse_head(head: bytes) -> tuple[Response, int]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isdigit() and len(code) == 3):
        raise ProtocolError(f"malformed status line {status_line[:80]!r}")
    headers = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"malformed header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise ProtocolError(f"Transfer-Encoding {headers['transfer-encoding']!r} is not supported")
    length = headers.get("content-length", "")
    if not length.isdigit():
        raise ProtocolError(f"no valid Content-Length (got {length[:20]!r})")
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Response(int(code), keep_alive), int(length)
