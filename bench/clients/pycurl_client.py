"""pycurl: libcurl, blocking in the thread that calls it, or its multi interface on the asyncio loop.

Its IO is libcurl's (C), never Python's ``socket``: gevent's patch cannot reach it, so under
gevent each ``perform()`` holds the hub for the whole request and the greenlets' requests go
out one at a time (a trap row, shown serialized). The asyncio form is libcurl's own event
interface (``CURLMOPT_SOCKETFUNCTION`` / ``TIMERFUNCTION``, the way Tornado's curl client
drives it): libcurl says which sockets to watch and when to wake it, the loop's
``add_reader``/``add_writer``/``call_later`` do the waiting, on asyncio's loop or uvloop's.
There is no trio form: trio has no ``add_reader``, and a watcher task per socket would be a
client of our own, not libcurl's interface.
"""

from __future__ import annotations

import asyncio
import re

from bench.clients.outcome import asyncio_fetch_from, blocking_fetch_from

# libcurl's CURLOPT_TIMEOUT bounds the whole transfer, connect included, like the other
# clients' timeouts; CONNECTTIMEOUT alone defaults to 300 s.


def _configured(easy, workload):
    """One easy handle: the workload's timeout, no proxy, and the connection policy.

    ``NOSIGNAL``: libcurl's resolver timeouts use SIGALRM otherwise, which is unsafe with
    threads. The body goes to a function that drops it (libcurl still reads all of it).
    New connections: ``Connection: close`` on every request (libcurl then closes it).
    TLS: ``CAINFO`` is the suite's CA and nothing else.
    """
    import pycurl

    easy.setopt(pycurl.NOSIGNAL, 1)
    easy.setopt(pycurl.TIMEOUT_MS, int(workload.timeout_s * 1000))
    easy.setopt(pycurl.CONNECTTIMEOUT_MS, int(workload.timeout_s * 1000))
    easy.setopt(pycurl.PROXY, "")
    easy.setopt(pycurl.FOLLOWLOCATION, 0)
    easy.setopt(pycurl.WRITEFUNCTION, _discard)
    easy.setopt(pycurl.HTTPHEADER, [f"{name}: {value}" for name, value in workload.request_headers.items()])
    if workload.ca_file:
        easy.setopt(pycurl.CAINFO, workload.ca_file)
        easy.setopt(pycurl.CAPATH, "")
    return easy


def _discard(chunk: bytes) -> None:
    return None


class CurlError(Exception):
    """libcurl's error, its code and message, without the elapsed time libcurl writes into it
    ("after 1001 milliseconds"): a round's error samples group by message, and the same timeout
    must read the same whatever the millisecond it fired at."""

    def __init__(self, code: int, message: str):
        super().__init__(f"({code}) {_ELAPSED.sub('', message)}")
        self.code = code


_ELAPSED = re.compile(r" after \d+ (milliseconds|ms)")


def blocking_fetch(workload, pool_size: int):
    """An easy handle per request in flight, each keeping its own connection between requests.

    Idle handles wait in a list (append and pop are atomic under the GIL): a request that
    finds none makes one, so the pool never caps anything, and a handle is used by one thread
    at a time, as libcurl requires.
    """
    import pycurl

    idle: list[pycurl.Curl] = []

    def get(url: str) -> int:
        easy = idle.pop() if idle else _configured(pycurl.Curl(), workload)
        easy.setopt(pycurl.URL, url)
        try:
            easy.perform()
            return easy.getinfo(pycurl.RESPONSE_CODE)
        except pycurl.error as exc:
            raise CurlError(*exc.args) from None
        finally:
            idle.append(easy)

    return blocking_fetch_from(get)


class _MultiOnLoop:
    """libcurl's multi handle driven by an asyncio loop: a request is an easy handle and a future."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool_size: int):
        import pycurl

        self._pycurl = pycurl
        self._loop = loop
        self._multi = pycurl.CurlMulti()
        # The connections libcurl keeps open between requests: one per request in flight.
        self._multi.setopt(pycurl.M_MAXCONNECTS, max(pool_size, 1))
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._wake_in)
        self._watched: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: dict[pycurl.Curl, asyncio.Future] = {}

    def start(self, easy) -> asyncio.Future:
        future = self._loop.create_future()
        self._waiting[easy] = future
        self._multi.add_handle(easy)  # libcurl asks for a timer at once, and starts from there
        return future

    def _watch(self, what: int, fd: int, multi, socket_data) -> None:
        """CURLMOPT_SOCKETFUNCTION: which of one socket's events libcurl waits for now."""
        pycurl = self._pycurl
        if fd in self._watched:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
            self._watched.discard(fd)
        if what == pycurl.POLL_REMOVE:
            return
        if what in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            self._loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if what in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            self._loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        self._watched.add(fd)

    def _wake_in(self, timeout_ms: int) -> None:
        """CURLMOPT_TIMERFUNCTION: libcurl's next deadline (-1: none). Never act from inside
        the callback (libcurl forbids re-entering it): the loop calls back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout_ms >= 0:
            self._timer = self._loop.call_later(timeout_ms / 1000, self._act, self._pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        while True:
            status, _running = self._multi.socket_action(fd, events)
            if status != self._pycurl.E_CALL_MULTI_PERFORM:
                break
        self._collect()

    def _collect(self) -> None:
        """Hand every finished transfer's status (or libcurl's error) to its future."""
        while True:
            queued, done, failed = self._multi.info_read()
            for easy in done:
                self._finish(easy, None)
            for easy, code, message in failed:
                self._finish(easy, CurlError(code, message))
            if not queued:
                return

    def _finish(self, easy, error: BaseException | None) -> None:
        self._multi.remove_handle(easy)
        future = self._waiting.pop(easy)
        if error is None:
            future.set_result(easy.getinfo(self._pycurl.RESPONSE_CODE))
        else:
            future.set_exception(error)

    def forget(self, easy) -> None:
        """Take back a transfer whose task was cancelled before libcurl finished it."""
        if self._waiting.pop(easy, None) is not None:
            self._multi.remove_handle(easy)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for fd in self._watched:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        self._watched.clear()
        for easy in list(self._waiting):
            self._multi.remove_handle(easy)
            self._waiting.pop(easy).cancel()
        self._multi.close()


async def asyncio_fetch(workload, pool_size: int):
    """One multi handle for the loop; idle easy handles are reused (the connections live in the
    multi handle's cache, shared by all of them)."""
    import pycurl

    multi = _MultiOnLoop(asyncio.get_running_loop(), pool_size)
    idle: list[pycurl.Curl] = []

    async def get(url: str) -> int:
        easy = idle.pop() if idle else _configured(pycurl.Curl(), workload)
        easy.setopt(pycurl.URL, url)
        try:
            return await multi.start(easy)
        finally:
            multi.forget(easy)
            idle.append(easy)

    async def aclose() -> None:
        multi.close()

    return asyncio_fetch_from(get, aclose=aclose)
