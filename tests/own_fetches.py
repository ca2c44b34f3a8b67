"""Factories for --bench-fetch's tests (tests/test_own_io.py): each fails in a way a row must show."""

from __future__ import annotations

import itertools


class FailedOnPurpose(RuntimeError):
    pass


def raises_once(kind: str, delay_s: float, in_flight: int):
    """The first call after the warm-up's (which makes one call per request in flight) raises."""
    calls = itertools.count()
    failing_call = max(in_flight, 1)

    def call() -> str:
        if next(calls) == failing_call:
            raise FailedOnPurpose("the round's first call failed on purpose")
        return "done"

    if kind == "blocking":
        return call

    async def fetch() -> str:
        return call()

    return fetch


def blocking_only(kind: str, delay_s: float, in_flight: int):
    return (lambda: None) if kind == "blocking" else None
