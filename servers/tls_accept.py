"""HTTPS connections, accepted as plain TCP and stamped when their ClientHello arrived (issue 24).

``loop.create_server(ssl=...)`` hands the server nothing before the handshake but a protocol
factory call, at accept: a ClientHello that waited in the kernel's accept queue (the server
busy, or stopped, before ``accept()``) was never seen, so a server swamped by handshakes was
never late for the time connections waited to be accepted. So here a worker accepts the
connection itself (the shape of asyncio's own ``_accept_connection``: every connection ready,
on one readiness of the listening socket), waits for its first bytes, and reads the kernel's
``tcpi_last_data_recv`` then: how long ago the last segment arrived, which is the ClientHello
(a TLS 1.3 client sends nothing more before the server's answer, and on loopback the hello is
one segment). That instant, at tick resolution (1-4 ms), is where the connection's lateness
starts; then ``loop.connect_accepted_socket`` runs the handshake on the loop's own TLS path, as
``create_server`` did. A client that connects and waits before its ClientHello (a thread
preempted between ``connect()`` and the handshake) is not the server's lateness, which is why
the stamp is the hello's and not the TCP handshake's (the SYN's arrival is not in any kernel
timestamp a socket can read: ``TCP_SAVED_SYN`` keeps its headers, not its time).
Plain HTTP is untouched: it is still ``create_server`` with ``DelayApp`` as the factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import struct
import time

from servers.app import DelayApp, DelayProtocol, unread_for_s

# Out of descriptors or kernel memory, accept() fails until something closes: asyncio stops
# accepting for a second then (base_events, ACCEPT_RETRY_DELAY); so does this.
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_RETRY_DELAY_S = 1.0
# struct tcp_info (linux/tcp.h) up to tcpi_bytes_received, and where it and tcpi_last_data_recv are.
_TCP_INFO_BYTES = 136
_LAST_DATA_RECV = struct.Struct("=I")
_LAST_DATA_RECV_OFFSET = 52
_BYTES_RECEIVED = struct.Struct("=Q")
_BYTES_RECEIVED_OFFSET = 128


def hello_waited_s(conn: socket.socket) -> float | None:
    """How long ago the connection's first bytes (its ClientHello) arrived, by the kernel's
    count, or None if nothing has arrived yet: one getsockopt for both."""
    try:
        info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except OSError:
        return None
    if len(info) < _TCP_INFO_BYTES or not _BYTES_RECEIVED.unpack_from(info, _BYTES_RECEIVED_OFFSET)[0]:
        return None
    return _LAST_DATA_RECV.unpack_from(info, _LAST_DATA_RECV_OFFSET)[0] / 1000


class TlsAcceptor:
    """Accept connections on listening sockets and serve each with ``app`` over TLS.

    Every connection is counted as accepted when ``accept()`` returns it, handshake or not, so a
    failed handshake is counted too (issue 17 item 7: N new connections for N requests, at the
    server); one that sends no ClientHello, or does not finish its handshake, within
    ``handshake_timeout_s`` of its accept is closed."""

    def __init__(self, app: DelayApp, context: ssl.SSLContext, handshake_timeout_s: float) -> None:
        self.app = app
        self.context = context
        self.handshake_timeout_s = handshake_timeout_s
        self.loop = asyncio.get_running_loop()
        self.listeners: list[socket.socket] = []
        self.starting: set[asyncio.Task] = set()  # connections before their handshake finished

    def listen(self, sock: socket.socket, backlog: int) -> None:
        sock.setblocking(False)
        sock.listen(backlog)
        self.listeners.append(sock)
        self.loop.add_reader(sock.fileno(), self._accept_ready, sock)

    def close(self) -> None:
        """Stop accepting, and drop the connections still before or in their handshake."""
        for sock in self.listeners:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self.listeners.clear()
        for task in self.starting:
            task.cancel()

    def _accept_ready(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self.loop.remove_reader(listener.fileno())
                    self.loop.call_later(ACCEPT_RETRY_DELAY_S, self._resume_accepting, listener)
                    return
                continue  # ECONNABORTED and the like: that connection is gone, the next may be there
            conn.setblocking(False)
            self.app.stats.connection_accepted()
            task = self.loop.create_task(self._serve(conn))
            self.starting.add(task)
            task.add_done_callback(self.starting.discard)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if listener in self.listeners:
            self.loop.add_reader(listener.fileno(), self._accept_ready, listener)

    async def _serve(self, conn: socket.socket) -> None:
        deadline = self.loop.time() + self.handshake_timeout_s
        # A busy server finds the ClientHello there already: no wait for it then.
        waited_s = hello_waited_s(conn)
        if waited_s is None:
            fd = conn.fileno()
            readable = self.loop.create_future()
            self.loop.add_reader(fd, self._arrived, fd, readable)
            try:
                async with asyncio.timeout_at(deadline):
                    await readable
            except (TimeoutError, asyncio.CancelledError) as exc:  # no ClientHello in time, or stopping
                # Unwatched before it is closed: its descriptor's number is the next accept's.
                self.loop.remove_reader(fd)
                conn.close()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            waited_s = unread_for_s(conn)
        hello_at = time.monotonic() - waited_s
        # A failed handshake (ssl.SSLError, a reset, the timeout) is counted as accepted only.
        # From here the transport owns the socket, and closes it if the handshake fails.
        with contextlib.suppress(OSError):
            await self.loop.connect_accepted_socket(
                lambda: DelayProtocol(self.app, hello_at=hello_at),
                conn,
                ssl=self.context,
                ssl_handshake_timeout=max(deadline - self.loop.time(), 0.001),
            )

    def _arrived(self, fd: int, readable: asyncio.Future) -> None:
        """``fd`` has bytes to read (or its peer closed): the ClientHello arrived."""
        self.loop.remove_reader(fd)
        if not readable.done():
            readable.set_result(None)
