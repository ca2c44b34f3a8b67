"""Your own IO under every model: ``--bench-fetch package.module:name`` (issue 25).

``name`` is a factory the worker calls once, after gevent's patch and inside the model's event
loop (asyncio's, uvloop's or trio's)::

    def make_fetch(kind: str, delay_s: float, in_flight: int):
        '''A fetch of ``kind`` ("blocking", "asyncio" or "trio") whose one call waits about
        ``delay_s``, or None if the code has no such form; up to ``in_flight`` calls at once.'''

The fetch takes no argument: a plain callable for ``blocking``, a coroutine function for
``asyncio`` and ``trio`` (its ``aclose``, if it has one, is awaited at the end). The suite calls
it N times a round under each model, with the same rounds, warm-up, memory and CPU figures as
an HTTP row. There is no referee: nothing outside the worker counts what arrived, so a row
counts what each call returned (``ok``) and what it raised (``errors``, with the exception's
text), and is INVALID on any exception or a count other than N. Timeouts are the fetch's own:
the suite only stops a round that outlives the harness's deadline.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import json
import subprocess
import sys

from bench.clients.outcome import asyncio_fetch_from, blocking_fetch_from

KINDS = ("blocking", "asyncio", "trio")
# Importing a user's module and calling its factory three times: seconds, not minutes.
PROBE_TIMEOUT_S = 60.0


class FetchSpecError(ValueError):
    pass


def parse_spec(text: str) -> tuple[str, str]:
    """``package.module:name`` -> (module, name); the module must be importable from here."""
    module, colon, name = text.partition(":")
    if not colon or not module or not name.isidentifier():
        raise FetchSpecError(f"{text!r} is not package.module:name (a module, a colon, a factory's name)")
    try:
        found = importlib.util.find_spec(module)
    except ImportError as exc:  # a parent package that is missing
        raise FetchSpecError(f"{text}: cannot find module {module}: {exc}") from None
    if found is None:
        raise FetchSpecError(
            f"{text}: no module named {module} on the path (run from its folder, or set PYTHONPATH)"
        )
    return module, name


def load_factory(spec: str):
    module, name = parse_spec(spec)
    factory = getattr(importlib.import_module(module), name, None)
    if not callable(factory):
        raise FetchSpecError(f"{spec}: module {module} has no callable {name}")
    return factory


def _fetch_of(spec: str, kind: str, workload, pool_size: int):
    fetch = load_factory(spec)(kind, workload.delay_ms / 1000, pool_size)
    if fetch is None:
        raise FetchSpecError(f"{spec} provides no {kind} fetch")
    return fetch


def _counted(_returned) -> None:
    """Whatever the fetch returned is a success: only an exception is an error."""
    return None


def blocking_fetch(workload, pool_size: int):
    fetch = _fetch_of(workload.fetch_spec, "blocking", workload, pool_size)
    return blocking_fetch_from(lambda _url: fetch(), error_of=_counted)


async def asyncio_fetch(workload, pool_size: int):
    fetch = _fetch_of(workload.fetch_spec, "asyncio", workload, pool_size)
    return asyncio_fetch_from(lambda _url: fetch(), aclose=getattr(fetch, "aclose", None), error_of=_counted)


async def trio_fetch(workload, pool_size: int):
    fetch = _fetch_of(workload.fetch_spec, "trio", workload, pool_size)
    return asyncio_fetch_from(lambda _url: fetch(), aclose=getattr(fetch, "aclose", None), error_of=_counted)


@functools.cache
def provided_kinds(spec: str, delay_s: float, in_flight: int) -> tuple[str, ...]:
    """Which kinds the factory provides, asked in a process of its own (the pytest process never
    imports a client): each kind's factory called where it would be, then closed unused."""
    probe = subprocess.run(
        [sys.executable, "-m", __name__, spec, str(delay_s), str(in_flight)],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
    )
    if probe.returncode != 0:
        raise FetchSpecError(f"{spec}: asking which kinds it provides failed: {probe.stderr.strip()[-500:]}")
    return tuple(json.loads(probe.stdout.splitlines()[-1]))


def _probe(spec: str, delay_s: float, in_flight: int) -> list[str]:
    factory = load_factory(spec)
    kinds = []
    if factory("blocking", delay_s, in_flight) is not None:
        kinds.append("blocking")

    async def asks_in_a_loop(kind: str) -> bool:
        fetch = factory(kind, delay_s, in_flight)
        if fetch is not None and (aclose := getattr(fetch, "aclose", None)):
            await aclose()
        return fetch is not None

    if asyncio.run(asks_in_a_loop("asyncio")):
        kinds.append("asyncio")
    import trio

    if trio.run(asks_in_a_loop, "trio"):
        kinds.append("trio")
    return kinds


if __name__ == "__main__":
    # The answer is the last line: a factory that prints must not spoil it.
    print(json.dumps(_probe(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))))
