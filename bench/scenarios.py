"""Named scenarios: which workloads ``pytest bench/ --bench-scenario NAME[,NAME...]`` runs.

Each workload shape becomes its own pytest-benchmark group, so strategies are only ever
compared on the same work. ``--bench-requests`` and ``--bench-delay-ms`` shape ``quick``
(and ``everything``, the same workload); ``--bench-concurrency`` sizes the pools of ``quick``,
``sweep`` and ``cpu``.

The default, ``story``, answers the seed's question in about a minute and a half (issue 16):
the seed's comparison, with the seed's kind of client, then a ladder of requests in flight
where each model's own cost shows (the raw client, the floor of client cost), as far up as
the instrument certifies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.analysis.verdicts import DECIDING_PROCESSES
from bench.clients import CLIENTS, DEFAULT_CLIENT, FLOOR, OWN_CLIENT, Client, clients_for
from bench.clients.byo import provided_kinds
from bench.names import LADDER_CLIENT, LADDER_MODELS
from bench.strategies import STRATEGIES, Strategy
from bench.targets import DELAY, OWN, POSTGRES
from bench.workload import HOST_IP, HOST_NAME, NEW, REUSE

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

# The seed post's comparison: its two gevent snippets (spawn + joinall, and Pool(2).map) beside
# sequential code, threads and asyncio. Ten requests keep sequential at one second a round, and
# the delay is five times what requests needs to send them (~2 ms each), so they all wait at once.
SEED_MODELS = ("sequential", "threads", "gevent-joinall", "gevent-pool", "asyncio-gather")
SEED_REQUESTS, SEED_DELAY_MS, SEED_POOL = 10, 100, 2
# The seed's head-to-head lines are the closest of the run (threads, greenlets and tasks within a
# few % of each other): the default run gives them 3 rounds over 3 processes and its story says
# it does not decide them (bench/analysis/verdicts.py, DECIDING_PROCESSES); the rounds go where they
# decide something, the 1,000 rung, whose memory and CPU ratios (2-3x) resolve with 5 processes a
# side. The seed scenario runs the seed's peers alone with processes enough to decide them: 20
# worker starts a model do not fit the default's 90 s beside the ladder.
SEED_ROUNDS = 3
SEED_PEERS = ("threads", "gevent-joinall", "asyncio-gather")
# (in flight, delay ms, rounds). The delay grows with the rung: the server's lateness while it
# accepts a burst grows with the burst, and its limit is 10% of the delay (row_info). The top
# rung runs only where the preflight certifies it (the delay server of issue 15 holds ~19,000);
# one round a model keeps the default run near 90 s there, and gives its costs, not verdicts
# (fewer than 3 rounds rank nothing: the summary compares at the highest rung with 3). The
# 1,000 rung's rounds are 1 s so that 5 of them (one per worker process) fit.
LADDER = ((100, 500, 3), (1_000, 1_000, 5), (10_000, 2_000, 1))


@dataclass(frozen=True)
class Cell:
    """How a workload's rows connect: --bench-connection, --bench-tls and --bench-host, or a
    connections scenario's cell (issue 17)."""

    connection: str = REUSE
    tls: bool = False
    host: str = HOST_IP

    @property
    def label(self) -> str:
        return f"{self.connection}/{'TLS' if self.tls else 'plain'}/{self.host}"

    @classmethod
    def from_options(cls, options) -> Cell:
        return cls(options.connection, options.tls, options.host)


# Each cell adds one cost to the one before: a new connection, then a name lookup, then TLS.
CONNECTION_CELLS = (
    Cell(REUSE, False, HOST_IP),
    Cell(NEW, False, HOST_IP),
    Cell(NEW, False, HOST_NAME),
    Cell(NEW, True, HOST_NAME),
)
# The seed's two models, and the event loops users pick instead.
CONNECTION_MODELS = ("gevent-joinall", "gevent-pool", "asyncio-gather", "asyncio-uvloop", "trio-nursery")


@dataclass(frozen=True)
class Shape:
    """One workload of a scenario: N tasks, D ms of server delay, pools of C."""

    scenario: str
    requests: int
    delay_ms: int
    concurrency: int
    kind: str = "io"
    rounds: int | None = None  # None: --bench-rounds
    processes: int | None = None  # None: --bench-processes
    # Every client that can serve a strategy (the clients scenario), not only the chosen ones.
    every_client: bool = False
    # The models of this workload (None: --bench-strategies), narrowed by --bench-strategies.
    models: tuple[str, ...] | None = None
    # One client for every row, whatever --bench-client says (None: --bench-client).
    client: str | None = None
    # A rung of a ladder: it runs only if the preflight certifies that the server holds it.
    rung: bool = False
    # What the requests go to (bench/targets/): the delay server, or PostgreSQL's pg_sleep.
    target: str = DELAY
    # The connections scenario: its own cell (None: the command line's), and the raw floor
    # beside each model's default client.
    cell: Cell | None = None
    with_floor: bool = False
    # --bench-fetch's factory, for the target OWN: the user's own IO (bench/clients/byo.py).
    fetch: str | None = None

    def connecting(self, options) -> Cell:
        return self.cell or Cell.from_options(options)

    @property
    def group(self) -> str:
        if self.kind == "cpu":
            return f"{self.scenario}: {self.requests} CPU tasks of ~{CPU_TASK_MS} ms, C={self.concurrency}"
        if self.target == POSTGRES:
            return f"{self.scenario}: {self.requests} x pg_sleep of {self.delay_ms} ms, C={self.concurrency}"
        if self.target == OWN:
            return (
                f"{self.scenario}: {self.requests} x {self.fetch} of {self.delay_ms} ms, C={self.concurrency}"
            )
        if self.rung:
            return f"{self.scenario}: {self.requests} in flight x {self.delay_ms} ms, {self.client} client"
        cell = f" {self.cell.label}" if self.cell else ""
        return f"{self.scenario}{cell}: {self.requests} x {self.delay_ms} ms, C={self.concurrency}"

    @property
    def test_id(self) -> str:
        if self.cell:
            return f"{self.scenario}-{self.cell.label.replace('/', '-')}"
        return (
            f"{self.scenario}-N{self.requests}"
            if self.scenario in ("sweep", "ladder", "db")
            else self.scenario
        )

    def pairs(self, options) -> list[tuple[Strategy, Client | None]]:
        """The rows of this workload: (strategy, client), in registry order; no client for the CPU task."""
        rows = []
        connection = self.connecting(options).connection
        for name in options.strategies:
            if self.models is not None and name not in self.models:
                continue
            strategy = STRATEGIES[name]
            if self.kind == "cpu":
                rows.append((strategy, None))
                continue
            names = (self.client,) if self.client else options.clients
            if self.every_client:
                names = names if names is not None else tuple(CLIENTS)
            if self.with_floor and names is None:
                names = tuple(dict.fromkeys((DEFAULT_CLIENT[strategy.api], FLOOR)))
            rows += [(strategy, client) for client in clients_for(strategy, names, connection, self.target)]
        return rows

    def skip_reason(self, strategy: Strategy, client: Client | None, options) -> str | None:
        """Why a row would not fit in --bench-max-seconds, estimated before it runs; None if it fits."""
        rounds = self.rounds or options.rounds
        processes = min(rounds, self.processes or options.processes)
        warmup = self.estimated_warmup_seconds(strategy, client)
        estimate = rounds * self.estimated_round_seconds(strategy, client) + processes * (
            WORKER_START_ESTIMATE_S + warmup
        )
        if estimate > options.max_seconds:
            # A trap row is too long because it runs one request at a time: say so, not just how long.
            trap = (
                "serialized (gevent's patch cannot reach its IO), "
                if client and client.runs_serialized(strategy)
                else ""
            )
            return f"{trap}estimated {estimate:.0f} s > --bench-max-seconds {options.max_seconds:.0f}"
        if self.target == OWN and strategy.api not in provided_kinds(
            self.fetch, self.delay_ms / 1000, self.requests
        ):
            return f"{self.fetch} provides no {strategy.api} fetch"
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
        if client.runs_serialized(strategy):  # a trap row: one request at a time
            in_flight = 1
        waves = math.ceil(self.requests / in_flight)
        return waves * self.delay_ms / 1000 + client.estimated_cpu_seconds(self.requests, in_flight)


class Ladder:
    """Which rungs of a ladder run: the ladder takes its top rung from the preflight.

    ``certify(shape)`` measures whether the delay server holds a rung (one burst of its
    in-flight count at its delay: a rung is held or not) and returns the capacity, with
    ``held``, ``asked`` and ``describe()``. A rung runs if it is held; the rungs above one that
    is not are skipped without a burst (nothing ran: the closing summary says which and why). A
    skipped rung is the instrument's limit on this machine, never a failure of the run (design
    rule 9). A rung's row that ran is always saved (issue 22): if it comes out invalid because
    the server fell behind, its reason says whose lateness it was (the model's cost or the
    instrument's own limit, ``row_info.lateness_owner``) and the rung marks it an expected
    failure (``row_xfail_reason``), shown, not failing the run: a rung probes a limit. Such a row
    does not stop the ladder (a model whose threads starve the server at one rung says nothing
    about the others at the next); the next rung's burst does.
    """

    def __init__(self, certify: Callable[[Shape], object]) -> None:
        self.certify = certify
        self.reasons: dict[Shape, str | None] = {}  # a rung's own answer: why it does not run
        self.stops: dict[Shape, str] = {}  # rungs the instrument did not hold: none above them runs
        # Rows skipped before they ran, by workload: {label: why}, for the closing summary to name.
        self.skipped: dict[Shape, dict[str, str]] = {}

    def skipped_row(self, shape: Shape, label: str, reason: str) -> None:
        self.skipped.setdefault(shape, {})[label] = reason

    def skip_reason(self, shape: Shape) -> str | None:
        if not shape.rung:
            return None
        if shape not in self.reasons:
            below = [
                s.requests for s in self.stops if s.scenario == shape.scenario and s.requests < shape.requests
            ]
            if below:
                reason = f"above {min(below)} in flight, a rung the instrument did not hold here"
            else:
                capacity = self.certify(shape)
                held = capacity is None or capacity.held >= capacity.asked
                reason = None if held else f"the ladder stops below this rung: {capacity.describe()}"
            self.reasons[shape] = reason
            if reason:
                self.stops[shape] = reason
        return self.reasons[shape]

    def row_xfail_reason(self, shape: Shape, info: dict) -> str | None:
        """A rung's row that fell behind (the instrument's limit, or the model taking the server's
        CPU): saved INVALID, and an expected failure of the probe, with whose it was."""
        if not shape.rung or info.get("valid"):
            return None
        if not (info.get("instrument_limited") or info.get("model_limited")):
            return None
        owner = {"model": "the model's cost", "instrument": "the instrument's limit"}.get(
            info.get("lateness_owner") or "instrument"
        )
        return f"a rung probes a limit: {owner}"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    shapes: Callable[[object], list[Shape]]


def story(options) -> list[Shape]:
    """The seed's comparison, then the ladder, lowest rung first (a rung runs only above certified ones)."""
    seed = Shape(
        "seed",
        SEED_REQUESTS,
        SEED_DELAY_MS,
        SEED_POOL,
        rounds=min(options.rounds, SEED_ROUNDS),
        models=SEED_MODELS,
    )
    ladder = [
        Shape(
            "ladder",
            in_flight,
            delay_ms,
            in_flight,
            rounds=min(options.rounds, rounds),
            models=LADDER_MODELS,
            client=LADDER_CLIENT,
            rung=True,
        )
        for in_flight, delay_ms, rounds in LADDER
    ]
    return [seed, *ladder]


def quick(options) -> list[Shape]:
    if getattr(options, "fetch", None):  # the user's own IO in place of a client (issue 25)
        return [
            Shape(
                "quick",
                options.requests,
                options.delay_ms,
                options.concurrency,
                client=OWN_CLIENT,
                target=OWN,
                fetch=options.fetch,
            )
        ]
    # --bench-target postgres: the same shape as SELECT pg_sleep(D) on PostgreSQL (issue 25).
    target = getattr(options, "target", DELAY)
    return [Shape("quick", options.requests, options.delay_ms, options.concurrency, target=target)]


DEFAULT_SCENARIO = "story"

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "story",
            "the default: the seed's comparison (sequential, threads, gevent-joinall, gevent-pool(2), "
            f"asyncio-gather; {SEED_REQUESTS} GETs of {SEED_DELAY_MS} ms, each model's default client), "
            "then a ladder of threads, gevent-joinall and asyncio-gather with the raw client at "
            + ", ".join(f"{n:,}" for n, _, _ in LADDER)
            + " in flight, as far up as the preflight certifies the delay server",
            story,
        ),
        Scenario(
            "seed",
            f"the seed's head to head with processes enough to decide it: {', '.join(SEED_PEERS)} on the seed's {SEED_REQUESTS} "
            f"GETs of {SEED_DELAY_MS} ms with their default clients, {DECIDING_PROCESSES} rounds over as many "
            "worker processes (the default run has too few to decide a difference of a few percent in time)",
            lambda o: [
                Shape(
                    "seed",
                    SEED_REQUESTS,
                    SEED_DELAY_MS,
                    SEED_POOL,
                    rounds=DECIDING_PROCESSES,
                    processes=DECIDING_PROCESSES,
                    models=SEED_PEERS,
                )
            ],
        ),
        Scenario(
            "everything",
            "every model on the quick workload: what pytest bench/ ran by default before story",
            quick,
        ),
        Scenario("quick", "N GETs of D ms (--bench-requests, --bench-delay-ms), pools of C", quick),
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
            "connections",
            "200 GETs of 2,000 ms, pools of 20, in four cells, each adding one cost: reuse/plain/ip, "
            "new/plain/ip, new/plain/name, new/TLS/name; the seed's gevent models and asyncio, "
            "uvloop and trio, with raw and their default client (issue 17)",
            lambda o: [
                Shape(
                    "connections",
                    # 200 new TLS connections, their handshakes counted as lateness since issue 24,
                    # answered 116 ms late (p99) at 1 s here, over the 100 ms allowed: a delay of
                    # 2 s allows 200 ms, so every cell holds; the preflight says if it does not.
                    200,
                    2000,
                    20,
                    rounds=min(o.rounds, 3),
                    cell=cell,
                    models=CONNECTION_MODELS,
                    with_floor=True,
                )
                for cell in CONNECTION_CELLS
            ],
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
                    models=DB_STRATEGIES,
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
                    models=DB_THOUSAND_STRATEGIES,
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
