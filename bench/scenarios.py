"""Named scenarios: which workloads ``pytest bench/ --bench-scenario NAME[,NAME...]`` runs.

Each workload shape becomes its own pytest-benchmark group, so strategies are only ever
compared on the same work. ``--bench-requests`` and ``--bench-delay-ms`` shape ``quick``;
``--bench-concurrency`` sizes the pools of ``quick``, ``sweep`` and ``cpu``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.clients import CLIENTS, Client, clients_for
from bench.strategies import STRATEGIES, Strategy
from bench.targets import DELAY, POSTGRES

# Starting a worker (imports, the gevent patch, the client's session) takes well under this.
WORKER_START_ESTIMATE_S = 1.0
# The CPU-bound control's task: long enough to dwarf scheduling overhead, short enough for
# 50 of them to run in a quarter of a second.
CPU_TASK_MS = 5
# The db scenario's models (issue 18): the seed's, plus the other families users pick; the
# bounded asyncio and trio forms add nothing a driver comparison needs.
DB_STRATEGIES = (
    "sequential",
    "threads",
    "threadpool",
    "gevent-joinall",
    "gevent-pool",
    "asyncio-gather",
    "asyncio-uvloop",
    "trio-nursery",
    "processpool",
    "asyncio-to-thread",
)
DB_THOUSAND_STRATEGIES = ("threads", "asyncio-gather", "asyncio-uvloop")


@dataclass(frozen=True)
class Shape:
    """One workload of a scenario: N tasks, D ms of server delay, pools of C."""

    scenario: str
    requests: int
    delay_ms: int
    concurrency: int
    kind: str = "io"
    rounds: int | None = None  # None: --bench-rounds
    # Every client that can serve a strategy (the clients scenario), not only the chosen ones.
    every_client: bool = False
    # What the requests go to (bench/targets/): the delay server, or PostgreSQL's pg_sleep.
    target: str = DELAY
    # The strategies this workload is for (None: all of --bench-strategies).
    strategies: tuple[str, ...] | None = None

    @property
    def group(self) -> str:
        if self.kind == "cpu":
            return f"{self.scenario}: {self.requests} CPU tasks of ~{CPU_TASK_MS} ms, C={self.concurrency}"
        if self.target == POSTGRES:
            return f"{self.scenario}: {self.requests} x pg_sleep of {self.delay_ms} ms, C={self.concurrency}"
        return f"{self.scenario}: {self.requests} x {self.delay_ms} ms, C={self.concurrency}"

    @property
    def test_id(self) -> str:
        return self.scenario if self.scenario not in ("sweep", "db") else f"{self.scenario}-N{self.requests}"

    def pairs(self, options) -> list[tuple[Strategy, Client | None]]:
        """The rows of this workload: (strategy, client), in registry order; no client for the CPU task."""
        rows = []
        for name in options.strategies:
            if self.strategies is not None and name not in self.strategies:
                continue
            strategy = STRATEGIES[name]
            if self.kind == "cpu":
                rows.append((strategy, None))
                continue
            names = options.clients
            if self.every_client:
                names = names if names is not None else tuple(CLIENTS)
            rows += [(strategy, client) for client in clients_for(strategy, names, self.target)]
        return rows

    def skip_reason(self, strategy: Strategy, client: Client | None, options) -> str | None:
        """Why a row would not fit in --bench-max-seconds, estimated before it runs; None if it fits."""
        rounds = self.rounds or options.rounds
        processes = min(rounds, options.processes)
        warmup = self.estimated_warmup_seconds(strategy, client)
        estimate = rounds * self.estimated_round_seconds(strategy, client) + processes * (
            WORKER_START_ESTIMATE_S + warmup
        )
        if estimate > options.max_seconds:
            return f"estimated {estimate:.0f} s > --bench-max-seconds {options.max_seconds:.0f}"
        return None

    def estimated_warmup_seconds(self, strategy: Strategy, client: Client | None) -> float:
        in_flight = strategy.fanout.max_in_flight(self.requests, self.concurrency)
        if client is None:
            return in_flight * CPU_TASK_MS / 1000
        return client.estimated_cpu_seconds(in_flight, in_flight)

    def estimated_round_seconds(self, strategy: Strategy, client: Client | None) -> float:
        in_flight = strategy.fanout.max_in_flight(self.requests, self.concurrency)
        if client is None:
            return self.requests * CPU_TASK_MS / 1000
        waves = math.ceil(self.requests / in_flight)
        return waves * self.delay_ms / 1000 + client.estimated_cpu_seconds(self.requests, in_flight)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    shapes: Callable[[object], list[Shape]]


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "quick",
            "the default: N GETs of D ms (--bench-requests, --bench-delay-ms), pools of C",
            lambda o: [Shape("quick", o.requests, o.delay_ms, o.concurrency)],
        ),
        Scenario(
            "high-concurrency",
            "2,000 GETs of 1,000 ms, pools of 200: thousands in flight at once",
            lambda o: [Shape("high-concurrency", 2000, 1000, 200, rounds=min(o.rounds, 3))],
        ),
        Scenario(
            "sweep",
            "N = 10, 100, 1000, 5000 GETs of 200 ms, pools of C: how time and memory grow with N",
            lambda o: [
                Shape("sweep", n, 200, o.concurrency, rounds=min(o.rounds, 3)) for n in (10, 100, 1000, 5000)
            ],
        ),
        Scenario(
            "clients",
            "2,000 GETs of 1,000 ms, pools of 500, every model with every client that can serve it "
            "(narrowed by --bench-client): the model's cost apart from the client's",
            lambda o: [Shape("clients", 2000, 1000, 500, rounds=min(o.rounds, 3), every_client=True)],
        ),
        Scenario(
            "db",
            "PostgreSQL (its own throwaway cluster, or --bench-db-dsn): 100 queries of SELECT pg_sleep(0.1), "
            "pools of 20, every driver under every model it can run with, the trap rows included; then "
            "1,000 queries of 1 s, all in flight, on 1,000 connections (each a server process), psycopg",
            lambda o: [
                Shape(
                    "db",
                    100,
                    100,
                    20,
                    rounds=min(o.rounds, 3),
                    every_client=True,
                    target=POSTGRES,
                    strategies=DB_STRATEGIES,
                ),
                # What the machine holds: opening 1,000 connections takes a worker 5-20 s here,
                # so one process per row, and the unbounded models that open them fastest.
                Shape(
                    "db",
                    1000,
                    1000,
                    1000,
                    rounds=min(o.rounds, 2),
                    target=POSTGRES,
                    strategies=DB_THOUSAND_STRATEGIES,
                ),
            ],
        ),
        Scenario(
            "cpu",
            f"the control: 50 pure-Python CPU tasks of ~{CPU_TASK_MS} ms instead of requests, pools of C",
            lambda o: [Shape("cpu", 50, 0, o.concurrency, kind="cpu")],
        ),
    )
}


def database_in_flight(options) -> int:
    """The most queries any row of the chosen scenarios keeps in flight: the cluster's connections."""
    return max(
        (
            strategy.fanout.max_in_flight(shape.requests, shape.concurrency)
            for scenario in options.scenarios
            for shape in SCENARIOS[scenario].shapes(options)
            if shape.target == POSTGRES
            for strategy, _ in shape.pairs(options)
        ),
        default=0,
    )
