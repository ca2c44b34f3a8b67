"""The event loops a worker can run a strategy on, each behind one small interface.

``new_loop(name)`` returns an object with ``run_until_complete(coroutine)`` and ``close()``,
which the worker calls once per round, as it always has for asyncio. A loop lives as long as
its worker, so a client made in it (session and connection pool) serves every round.

- ``asyncio``: ``asyncio.new_event_loop()``.
- ``uvloop``: ``uvloop.new_event_loop()``, what ``uvloop.run(main())`` runs on.
- ``trio``: trio has no loop object to come back to; one ``trio.run`` must hold the client
  for the worker's life. It runs in a greenlet on the worker's only thread: each
  ``run_until_complete`` switches into it with a coroutine, its host task awaits that
  coroutine and switches back with the result (SQLAlchemy's greenlet bridge between sync
  and async code, the other way round). Between rounds the run is suspended inside its host
  task, as an asyncio loop is between ``run_until_complete`` calls: nothing of trio runs
  while the worker reads its next command, and no thread is ever started.
"""

from __future__ import annotations

import asyncio


def new_loop(name: str):
    if name == "asyncio":
        return asyncio.new_event_loop()
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    if name == "trio":
        return TrioLoop()
    raise ValueError(f"unknown event loop {name!r}")


async def running_loop() -> str:
    """What is really running this coroutine: the asyncio loop's class, or "trio"."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio

        trio.lowlevel.current_task()  # raises unless trio is running us
        return "trio"
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


class TrioLoop:
    """One ``trio.run`` for the worker's life, entered once per coroutine to run."""

    def __init__(self) -> None:
        import greenlet

        self._greenlet = greenlet.greenlet(self._run)
        self._greenlet.switch()  # trio starts, and its host task waits for the first coroutine

    def _run(self) -> None:
        import trio

        trio.run(self._host)

    async def _host(self):
        coroutine = self._greenlet.parent.switch()
        while coroutine is not None:
            try:
                outcome = (await coroutine, None)
            except BaseException as exc:  # handed to the caller, as run_until_complete would
                outcome = (None, exc)
            coroutine = self._greenlet.parent.switch(outcome)

    def run_until_complete(self, coroutine):
        result, error = self._greenlet.switch(coroutine)
        if error is not None:
            raise error
        return result

    def close(self) -> None:
        if not self._greenlet.dead:
            self._greenlet.switch(None)  # the host task returns, and trio.run with it
