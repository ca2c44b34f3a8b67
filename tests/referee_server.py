"""A referee for the client tests: a small HTTP server that counts each client's requests apart.

Every request's path starts with a segment naming its client (``/p3/delay?ms=0``). The server
counts arrivals per segment, answers each one as ``answer(segment, k)`` says (k: the arrival's
number within its segment), and can hold every request of a segment until ``release_at`` of
them have arrived. Holding needs no clock: "all N were in flight at once" is then true by
construction, whatever the machine's load, and a client whose pool caps it never reaches N
and is answered at ``HOLD_DEADLINE_S`` instead (issue 19, item 8).

Built like the delay server's lifecycle (port 0, ready before use, stopped in ``finally``) on
an asyncio loop in a thread of the test process, with a listen backlog for thousands.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

OK = "ok"
FAIL = "fail"  # answered 500
DROP = "drop"  # the connection closed unanswered
# A held request is answered after this anyway: a capped client fails its count, never hangs.
HOLD_DEADLINE_S = 60.0
BACKLOG = 4096

RESPONSES = {
    OK: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    FAIL: b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom",
}


@dataclass
class RefereeServer:
    base_url: str
    arrived: collections.Counter = field(default_factory=collections.Counter)
    outcomes: collections.Counter = field(default_factory=collections.Counter)  # (segment, OK/FAIL/DROP)

    def url_for(self, segment: str) -> str:
        return f"{self.base_url}/{segment}"


@contextmanager
def running_referee_server(
    answer: Callable[[str, int], str] = lambda segment, k: OK, release_at: int | None = None
) -> Iterator[RefereeServer]:
    loop = asyncio.new_event_loop()
    released: dict[str, asyncio.Event] = collections.defaultdict(asyncio.Event)
    referee: RefereeServer | None = None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                segment = head.split(b" ", 2)[1].decode().split("/")[1]
                k = referee.arrived[segment]
                referee.arrived[segment] += 1
                if release_at is not None:
                    if referee.arrived[segment] >= release_at:
                        released[segment].set()
                    with suppress(TimeoutError):
                        await asyncio.wait_for(released[segment].wait(), HOLD_DEADLINE_S)
                outcome = answer(segment, k)
                referee.outcomes[segment, outcome] += 1
                if outcome == DROP:
                    return
                writer.write(RESPONSES[outcome])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed its connection
        finally:
            writer.close()

    async def stop() -> None:
        server.close()
        handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
        for _ in range(3):  # a closed transport lets go of its socket on a later loop iteration
            await asyncio.sleep(0)

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, backlog=BACKLOG))
    referee = RefereeServer(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    thread = threading.Thread(target=loop.run_forever, name="referee-server", daemon=True)
    thread.start()
    try:
        yield referee
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
