"""The suite's shared vocabulary, at the ground floor: every layer may import it, it imports nothing.

Names that several layers use to talk about the same thing (a row's label, the ladder's models,
the A/A twin, the targets, how memory was measured, what a model holds per waiting request)
live here, so that a lower layer never reaches up for them and data flows one way (issue 22,
item 6; ``tests/test_layers.py`` holds the layers to it).
"""

from __future__ import annotations

# Targets (bench/targets/): what the requests go to.
DELAY = "delay"
POSTGRES = "postgres"
# A user's own IO (--bench-fetch, bench/clients/byo.py): whatever it talks to, with no referee.
OWN = "own"
# How a message names each one.
TARGET_NAMES = {DELAY: "the delay server", POSTGRES: "PostgreSQL", OWN: "your own IO (--bench-fetch)"}

# The A/A check's twin of a strategy (bench/strategies, COROUTINE_BENCH_AA_TWIN): NAME + this suffix.
TWIN_SUFFIX = "-twin"

# The ladder of the default run (bench/scenarios.py): one request per thread, greenlet or task,
# all with the raw client, so what differs is the model.
LADDER_MODELS = ("threads", "gevent-joinall", "asyncio-gather")
LADDER_CLIENT = "raw"
# What a ladder model holds for each waiting request, as the closing summary names it.
UNIT = {"threads": "a thread", "gevent-joinall": "a greenlet", "asyncio-gather": "an asyncio task"}

# How a row's memory was measured (its extra_info's memory_method) when it sums a process tree.
PSS_METHOD_PREFIX = "summed PSS of the worker and its processes"


def row_label(strategy: str, client) -> str:
    """``strategy[client]``; the CPU-bound control has no client and is named by its strategy."""
    name = getattr(client, "name", client)
    return f"{strategy}[{name}]" if name else strategy
