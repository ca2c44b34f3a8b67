"""The private attributes of other libraries that the suite relies on, checked before a run starts.

None of them has a public equivalent. If a release renames or drops one, setting it would quietly
do nothing (a client would resend again, a row's times would not reach pytest-benchmark, Ctrl-C
would save a half run), so ``pytest bench/`` stops at start naming the attribute instead
(issue 19, item 12). The versions these were read in are pinned in constraints.txt.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Hook:
    owner: str  # "module:attribute.path" of the object that must have it
    attribute: str
    used_by: str  # where the suite relies on it, and why

    def present_on(self, owner) -> bool:
        return hasattr(owner, self.attribute)

    def owner_object(self):
        module, _, path = self.owner.partition(":")
        found = importlib.import_module(module)
        for part in filter(None, path.split(".")):
            found = getattr(found, part)
        return found

    def describe(self) -> str:
        return f"{self.owner.replace(':', '.')}.{self.attribute} ({self.used_by})"


# Checked on the class or module: what the suite replaces or calls there.
STATIC_HOOKS = (
    Hook(
        "geventhttpclient.client",
        "_may_retry_after_send_error",
        "bench/clients/geventhttpclient_client.py replaces it to turn off GET retries",
    ),
    Hook(
        "pytest_benchmark.fixture:BenchmarkFixture",
        "_make_stats",
        "bench/test_side_by_side.py hands it the interleaved rounds' times",
    ),
    Hook(
        "pytest_benchmark.stats:Stats",
        "fields",
        "bench/analysis/results.py saves a row without rounds with every statistic null",
    ),
    Hook(
        "pytest_benchmark.storage.file:FileStorage",
        "_next_num",
        "bench/harness/atomic_results.py numbers the saved run as upstream does",
    ),
)
# Checked on an instance: they are set in __init__.
SESSION_HOOK = Hook("pytest config", "_benchmarksession", "bench/conftest.py reads the session's benchmarks")
SESSION_ATTRIBUTES = ("benchmarks", "save", "autosave", "json")  # read, and cleared on Ctrl-C
AIOHTTP_HOOK = Hook(
    "aiohttp:ClientSession",
    "_retry_connection",
    "bench/clients/aiohttp_client.py sets it to False to turn off resends",
)


def missing(config) -> list[str]:
    """Every hook this environment lacks, described; empty when all are there."""
    absent = [hook.describe() for hook in STATIC_HOOKS if not hook.present_on(hook.owner_object())]
    if not asyncio.run(_aiohttp_session_has_it()):
        absent.append(AIOHTTP_HOOK.describe())
    session = getattr(config, SESSION_HOOK.attribute, None)
    if session is None:
        absent.append(SESSION_HOOK.describe())
    else:
        absent += [
            f"pytest_benchmark.session.BenchmarkSession.{name} ({SESSION_HOOK.used_by})"
            for name in SESSION_ATTRIBUTES
            if not hasattr(session, name)
        ]
    return absent


async def _aiohttp_session_has_it() -> bool:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        return AIOHTTP_HOOK.present_on(session)


def message(absent: list[str]) -> str:
    return (
        "private attributes the suite relies on are missing in this environment: "
        + "; ".join(absent)
        + ". Install the pinned versions (pip install -c constraints.txt -e '.[test]'), "
        "or adapt the places named to the new release"
    )
