"""Which path a worker's name lookups take, and how many it made (issue 17, --bench-host name).

Each model resolves ``localhost`` its own way, as a user's code would; nothing here changes
the path, it only counts the calls that reach it:

- OS threads (and pool processes) call ``socket.getaddrinfo`` in the calling thread, uncapped;
- asyncio sends it to the loop's default executor (``loop.getaddrinfo`` calls
  ``socket.getaddrinfo`` there, looked up at call time, so the count sees it), shared with
  ``to_thread``; aiohttp goes the same way (its ThreadedResolver) unless its DNS cache answers;
- trio runs ``socket.getaddrinfo`` in a thread, under its default thread limiter;
- gevent asks its hub's resolver (c-ares here: ``GEVENT_RESOLVER=ares``), counted on the hub;
- uvloop asks libuv's ``uv_getaddrinfo`` in libuv's own pool, in C: no Python call to count;
- a client whose IO is native (pycurl, pyreqwest) resolves in its own code, under every model.

A literal address (``127.0.0.1``) may still pass through ``getaddrinfo``, which answers it
without a lookup (asyncio skips the call, trio asks with ``AI_NUMERICHOST``, not counted):
the count is of calls, and only a ``name`` row makes it mean lookups.
"""

from __future__ import annotations

import functools
import os
import socket

# asyncio's default executor: ThreadPoolExecutor() with its default size (Python 3.8+).
ASYNCIO_EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)
# trio.to_thread's default limiter (trio docs, current_default_thread_limiter).
TRIO_THREAD_LIMIT = 40
# libuv's thread pool, unless UV_THREADPOOL_SIZE says otherwise (libuv docs, "Thread pool work scheduling").
LIBUV_THREADS = int(os.environ.get("UV_THREADPOOL_SIZE") or 4)


class ResolverCalls:
    """Counts the calls to the worker's resolver; ``take()`` returns the count since the last take."""

    def __init__(self, strategy, client=None) -> None:
        self._calls: list[None] = []  # list.append is atomic under the GIL and between greenlets
        self.countable = True
        if client is not None and not client.patch_reaches_io:
            # libcurl and reqwest resolve in C or Rust, whatever the model (their resolver_note).
            self.path = "the client's own, in native code (not counted)"
            self.countable = False
        elif strategy.gevent:
            import gevent

            hub_resolver = gevent.get_hub().resolver
            hub_resolver.getaddrinfo = self._counting(hub_resolver.getaddrinfo)
            self.path = (
                f"gevent's hub resolver ({type(hub_resolver).__module__}.{type(hub_resolver).__name__})"
            )
        else:
            socket.getaddrinfo = self._counting(socket.getaddrinfo)
            self.path = _path(strategy)
            self.countable = strategy.loop != "uvloop" and not strategy.processes

    def _counting(self, getaddrinfo):
        @functools.wraps(getaddrinfo)
        def counted(host, port, family=0, type=0, proto=0, flags=0):
            # trio first asks with AI_NUMERICHOST, which never looks anything up.
            if not flags & socket.AI_NUMERICHOST:
                self._calls.append(None)
            return getaddrinfo(host, port, family, type, proto, flags)

        return counted

    def take(self) -> int | None:
        """Calls since the last take; None where the path is not Python's to count (uvloop)."""
        calls = len(self._calls)
        self._calls.clear()
        return calls if self.countable else None


def _path(strategy) -> str:
    if strategy.loop == "asyncio":
        return f"asyncio's default executor (loop.getaddrinfo, {ASYNCIO_EXECUTOR_THREADS} threads)"
    if strategy.loop == "uvloop":
        return f"libuv's thread pool (uv_getaddrinfo, {LIBUV_THREADS} threads; not counted)"
    if strategy.loop == "trio":
        return f"trio's worker threads (trio.socket.getaddrinfo, at most {TRIO_THREAD_LIMIT})"
    if strategy.processes:
        return "socket.getaddrinfo in each pool process (not counted: other processes)"
    return "socket.getaddrinfo in the calling thread"
