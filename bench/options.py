"""The ``--bench-*`` command-line options: their defaults, their help, and their validation.

Bad values are rejected by argparse while pytest parses its command line, so a typo stops
the run with a usage error before a server or a worker starts.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.analysis.verdicts import DECIDING_PROCESSES, Margins
from bench.clients import CLIENTS, DEFAULT_CLIENT, OWN_CLIENT
from bench.clients.byo import FetchSpecError, parse_spec
from bench.harness import priority
from bench.scenarios import DEFAULT_SCENARIO, SCENARIOS
from bench.strategies import STRATEGIES, Fanout
from bench.targets import DELAY, POSTGRES, TARGET_NAMES
from bench.workload import CONNECTIONS, HOST_IP, HOST_NAME, LOOPBACK_NAME, REQUEST_TIMEOUT_S, REUSE

# The quick workload (and everything): sequential needs N x D = 10 s a round, and D is over
# four times N x the client's CPU cost per request (40 x ~1.5 ms), so the unbounded
# strategies really have all N requests in flight before the first answer.
DEFAULT_REQUESTS = 40
DEFAULT_DELAY_MS = 250
DEFAULT_CONCURRENCY = 10
DEFAULT_ROUNDS = 5
# Each row's rounds are spread over this many fresh worker processes (one round each with the
# defaults), so the verdicts' intervals see the noise between processes (docs/reference/statistics.md, "Verdicts").
DEFAULT_PROCESSES = 5
# Per strategy and workload, estimated before it starts: sequential at high concurrency
# would take hours and is skipped with the reason printed.
DEFAULT_MAX_SECONDS = 120.0
MAX_DELAY_MS = 60_000  # the delay server's own limit
# Measured (issue 15, item 3; three runs of each mode at load 5-78 on 2 shared cores): rows of the
# six-model run whose server fell behind, 11 of 18 with no priority, 6 of 18 with the server raised.
# Where the user may not raise it, nothing applies and the run records why.
DEFAULT_SERVER_PRIORITY = priority.RAISE_SERVER
# The strategies --bench-concurrency sizes: those that keep a pool of C in flight.
BOUNDED = tuple(name for name, strategy in STRATEGIES.items() if strategy.fanout is Fanout.POOL)


@dataclass(frozen=True)
class BenchOptions:
    requests: int
    delay_ms: int
    concurrency: int
    strategies: tuple[str, ...]
    rounds: int
    scenarios: tuple[str, ...] = (DEFAULT_SCENARIO,)
    processes: int = DEFAULT_PROCESSES
    max_seconds: float = DEFAULT_MAX_SECONDS
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    timeout_s: float = REQUEST_TIMEOUT_S
    # None: each strategy's default client (requests where code blocks, aiohttp for asyncio).
    clients: tuple[str, ...] | None = None
    connection: str = REUSE
    tls: bool = False
    host: str = HOST_IP
    server_url: str | None = None
    server_priority: str = DEFAULT_SERVER_PRIORITY
    # A PostgreSQL started elsewhere for the db scenario; None: the suite starts its own.
    db_dsn: str | None = None
    # Which of SHAPING_OPTIONS the command line gave: they must reach a scenario that uses them.
    shaped: tuple[str, ...] = ()
    # What "the same" means for each figure's verdicts; recorded in every saved row.
    margins: Margins = field(default_factory=Margins)
    # --bench-fetch: a user's own IO, package.module:name, sent in quick's shape (bench/clients/byo.py).
    fetch: str | None = None
    # --bench-target: what quick's shape sends its requests to (the delay server, or PostgreSQL).
    target: str = DELAY

    @classmethod
    def from_config(cls, config) -> BenchOptions:
        shaped = tuple(option for option in SHAPING_OPTIONS if _given(config, option))
        return cls(
            shaped=shaped,
            requests=config.getoption("bench_requests"),
            delay_ms=config.getoption("bench_delay_ms"),
            concurrency=config.getoption("bench_concurrency"),
            strategies=config.getoption("bench_strategies"),
            rounds=config.getoption("bench_rounds"),
            # --bench-requests or --bench-delay-ms with no scenario named: the workload they shape.
            scenarios=config.getoption("bench_scenario")
            if _given(config, "--bench-scenario")
            or not (shaped or config.getoption("bench_fetch") or _given(config, "--bench-target"))
            else (SHAPED_SCENARIO,),
            processes=config.getoption("bench_processes"),
            max_seconds=config.getoption("bench_max_seconds"),
            fail_rate=config.getoption("bench_fail_rate"),
            drop_rate=config.getoption("bench_drop_rate"),
            timeout_s=config.getoption("bench_timeout_s"),
            clients=config.getoption("bench_client"),
            connection=config.getoption("bench_connection"),
            tls=config.getoption("bench_tls"),
            host=config.getoption("bench_host"),
            server_url=config.getoption("bench_server_url"),
            server_priority=config.getoption("bench_server_priority"),
            db_dsn=config.getoption("bench_db_dsn"),
            margins=config.getoption("bench_margin"),
            fetch=config.getoption("bench_fetch"),
            target=TARGET_OPTIONS[config.getoption("bench_target")],
        )

    def check(self) -> None:
        """Refuse a choice of clients that leaves an asked-for strategy with none to run it, or
        that cannot connect the way --bench-connection asks, or a server the suite cannot
        give its CA or its names to, or a workload shaped for scenarios that are not run."""
        if self.shaped and not set(self.scenarios) & set(SHAPED_BY_OPTIONS):
            raise ValueError(
                f"{' and '.join(self.shaped)} shape the {' and '.join(SHAPED_BY_OPTIONS)} scenarios, and "
                f"--bench-scenario {','.join(self.scenarios)} runs neither: add quick, or drop "
                f"{' and '.join(self.shaped)}"
            )
        if self.server_url and (self.tls or self.host == HOST_NAME or "connections" in self.scenarios):
            asked = (
                "--bench-tls"
                if self.tls
                else f"--bench-host {self.host}"
                if self.host == HOST_NAME
                else "--bench-scenario connections"
            )
            raise ValueError(
                f"{asked} needs the suite's own delay server (its CA, both loopback addresses), not "
                f"--bench-server-url {self.server_url}: drop one of them"
            )
        if self.fetch and (self.scenarios != (SHAPED_SCENARIO,) or self.clients is not None):
            raise ValueError(
                f"--bench-fetch {self.fetch} runs the {SHAPED_SCENARIO} scenario's shape with your own IO "
                "in place of a client: drop --bench-scenario other than quick, and --bench-client"
            )
        if self.target != DELAY and (self.fetch or set(self.scenarios) != {SHAPED_SCENARIO}):
            raise ValueError(
                f"--bench-target {TARGET_OPTION_NAMES[self.target]} drives {SHAPED_SCENARIO}'s shape "
                f"(the db scenario is the curated tour): run --bench-scenario {SHAPED_SCENARIO} alone"
                + (", without --bench-fetch" if self.fetch else "")
            )
        if self.clients is not None and OWN_CLIENT in self.clients:
            raise ValueError(
                f"--bench-client {OWN_CLIENT} is --bench-fetch's row: name your factory with --bench-fetch"
            )
        if self.clients is None:
            return
        if cannot := [name for name in self.clients if not CLIENTS[name].connects(self.connection)]:
            modes = ", ".join(f"{name} has only {'/'.join(CLIENTS[name].connections)}" for name in cannot)
            raise ValueError(
                f"--bench-client {','.join(cannot)} cannot run with --bench-connection {self.connection} "
                f"({modes}): drop the client or change --bench-connection"
            )

        def usable(client, strategy_name: str) -> bool:
            return client.serves(STRATEGIES[strategy_name]) and client.connects(self.connection)

        stranded = [
            name for name in self.strategies if not any(usable(CLIENTS[c], name) for c in self.clients)
        ]
        if stranded:
            # Offered: the clients of the chosen ones' targets (HTTP, or PostgreSQL's drivers).
            targets = {CLIENTS[c].target for c in self.clients}
            needs = "; ".join(
                f"{name} needs one of "
                + ", ".join(c.name for c in CLIENTS.values() if c.target in targets and usable(c, name))
                for name in stranded
            )
            raise ValueError(
                f"--bench-client {','.join(self.clients)} leaves {', '.join(stranded)} with no client "
                f"({needs}): add a client or narrow --bench-strategies"
            )
        # A workload whose target none of the chosen clients speaks to would have no rows at all
        # (psycopg on the HTTP scenarios, an HTTP client on db): said now, not as an empty run.
        spoken = {CLIENTS[c].target for c in self.clients}
        for scenario in self.scenarios:
            for shape in SCENARIOS[scenario].shapes(self):
                if shape.kind == "io" and shape.client is None and shape.target not in spoken:
                    offered = ", ".join(c.name for c in CLIENTS.values() if c.target == shape.target)
                    raise ValueError(
                        f"--bench-client {','.join(self.clients)} has no client for {TARGET_NAMES[shape.target]}, "
                        f"where scenario {scenario} sends its requests: add one of {offered}"
                    )


# --bench-requests and --bench-delay-ms shape these scenarios' workload; given without
# --bench-scenario, the run is that workload (quick) rather than the default story, which would
# silently ignore them.
SHAPING_OPTIONS = ("--bench-requests", "--bench-delay-ms")
SHAPED_BY_OPTIONS = ("quick", "everything")
SHAPED_SCENARIO = "quick"
# --bench-target's names: what a user calls each target quick's shape can drive.
TARGET_OPTIONS = {"http": DELAY, "postgres": POSTGRES}
TARGET_OPTION_NAMES = {target: name for name, target in TARGET_OPTIONS.items()}


def _given(config, option: str) -> bool:
    """Whether the command line named ``option`` (its default may equal what was given)."""
    return any(arg == option or arg.startswith(option + "=") for arg in config.invocation_params.args)


def _int_at_least(minimum: int, maximum: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _names_from(registry: dict, kind: str):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in text.split(",") if name.strip())
        if not names:
            raise argparse.ArgumentTypeError(f"expected at least one {kind} name")
        unknown = [name for name in names if name not in registry]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {kind} {unknown[0]!r}; known: {', '.join(registry)}")
        if len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"a {kind} is named twice in {text!r}")
        return names

    parse.__name__ = f"{kind} names"
    return parse


strategy_names = _names_from(STRATEGIES, "strategy")
client_names = _names_from(CLIENTS, "client")
scenario_names = _names_from(SCENARIOS, "scenario")


def fetch_spec(text: str) -> str:
    try:
        parse_spec(text)
    except FetchSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def server_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme != "http" or not parts.hostname or parts.query or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"expected http://HOST:PORT of a delay server, got {text!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not port:
        raise argparse.ArgumentTypeError(f"expected http://HOST:PORT with a port, got {text!r}")
    return text.rstrip("/")


def database_dsn(text: str) -> str:
    if urlsplit(text).scheme not in ("postgresql", "postgres"):
        raise argparse.ArgumentTypeError(f"expected postgresql://USER@HOST:PORT/DATABASE, got {text!r}")
    return text


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


DEFAULT_MARGIN_TEXT = ",".join(f"{name}={value * 100:g}%" for name, value in Margins()._asdict().items())


def margins(text: str) -> Margins:
    """'time=5%,memory=10%,cpu=25%', any of the parts (the others keep their defaults), or one
    percentage for all three."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) == 1 and "=" not in parts[0]:
        value = _margin(parts[0])
        return Margins(value, value, value)
    given = {}
    for part in parts:
        name, equals, value = part.partition("=")
        if not equals or name.strip() not in Margins._fields:
            raise argparse.ArgumentTypeError(
                f"expected {'/'.join(Margins._fields)}=PERCENT parts, e.g. {DEFAULT_MARGIN_TEXT}, got {part!r}"
            )
        if name.strip() in given:
            raise argparse.ArgumentTypeError(f"{name.strip()} is given twice in {text!r}")
        given[name.strip()] = _margin(value)
    if not given:
        raise argparse.ArgumentTypeError(f"expected a margin such as {DEFAULT_MARGIN_TEXT}, got {text!r}")
    return Margins(**given)


def _margin(text: str) -> float:
    typed = text.strip()
    if not typed.endswith("%"):
        raise argparse.ArgumentTypeError(f"a margin is a percentage such as 5%, got {text!r}")
    try:
        value = float(typed.removesuffix("%")) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"a margin is a percentage such as 5%, got {text!r}") from None
    if not 0 < value < 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"a margin must be above 0% and below 100%, got {text!r}")
    return value


def add_options(parser) -> None:
    group = parser.getgroup("bench", "side-by-side concurrency benchmark (pytest bench/)")
    group.addoption(
        "--bench-requests",
        type=_int_at_least(1),
        default=DEFAULT_REQUESTS,
        metavar="N",
        help="requests per round in the quick and everything scenarios, sent by every strategy "
        f"(default {DEFAULT_REQUESTS})",
    )
    group.addoption(
        "--bench-delay-ms",
        type=_int_at_least(0, MAX_DELAY_MS),
        default=DEFAULT_DELAY_MS,
        metavar="D",
        help="how long the server waits before answering each request of the quick and everything scenarios, "
        f"in ms (default {DEFAULT_DELAY_MS})",
    )
    group.addoption(
        "--bench-concurrency",
        type=_int_at_least(1),
        default=DEFAULT_CONCURRENCY,
        metavar="C",
        help=f"size of the bounded strategies ({', '.join(BOUNDED)}) in the quick, everything, sweep "
        "and cpu scenarios; high-concurrency uses 200, clients 500, story's seed comparison the seed's 2 "
        f"(default {DEFAULT_CONCURRENCY})",
    )
    group.addoption(
        "--bench-strategies",
        type=strategy_names,
        default=tuple(STRATEGIES),
        metavar="a,b,...",
        help=f"comma-separated strategies to run (default all: {','.join(STRATEGIES)})",
    )
    group.addoption(
        "--bench-client",
        type=client_names,
        default=None,
        metavar="NAME[,NAME...]",
        help="HTTP clients to send the requests with: every (strategy, client) pair that can run "
        f"becomes a row (known: {', '.join(CLIENTS)}; default: "
        + ", ".join(f"{name} for {api} strategies" for api, name in DEFAULT_CLIENT.items())
        + ")",
    )
    group.addoption(
        "--bench-target",
        choices=tuple(TARGET_OPTIONS),
        default="http",
        help="what quick's shape (--bench-requests, --bench-delay-ms, --bench-concurrency) sends its "
        "requests to: http, the delay server, or postgres, SELECT pg_sleep(D) on PostgreSQL with its "
        "drivers as clients (default psycopg) and the database as referee (default http)",
    )
    group.addoption(
        "--bench-fetch",
        type=fetch_spec,
        default=None,
        metavar="package.module:name",
        help="your own IO in place of an HTTP client: a factory make_fetch(kind, delay_s, in_flight) "
        "returning the fetch for each model's kind (blocking, asyncio, trio) or None; runs quick's shape "
        "(--bench-requests, --bench-delay-ms, --bench-concurrency) under every model, with no referee "
        "(docs/reference/own-io.md)",
    )
    group.addoption(
        "--bench-connection",
        choices=CONNECTIONS,
        default=REUSE,
        help="reuse: keep-alive connections, opened by the warm-up and reused by every round; "
        "new: a new connection per request, as the seed's urlopen(url) does (each client's own way: "
        "Connection: close, or its pool off; the server closes first) (default reuse)",
    )
    group.addoption(
        "--bench-tls",
        action="store_true",
        help="serve HTTPS (TLS 1.3, no session tickets) with a certificate from a CA the suite makes "
        "at start (trustme); every client verifies against that CA (default: plain HTTP)",
    )
    group.addoption(
        "--bench-host",
        choices=(HOST_IP, HOST_NAME),
        default=HOST_IP,
        help=f"ip: URLs name 127.0.0.1; name: they name {LOOPBACK_NAME}, which every model resolves "
        "its own way (asyncio's executor, libuv's pool, gevent's resolver, trio's thread); the server "
        "listens on 127.0.0.1 and ::1 (default ip)",
    )
    group.addoption(
        "--bench-rounds",
        type=_int_at_least(1),
        default=DEFAULT_ROUNDS,
        metavar="R",
        help=f"timed rounds per row, over --bench-processes worker processes, each primed by a short "
        f"warm-up (default {DEFAULT_ROUNDS}; "
        "high-concurrency, sweep, clients and story's seed and 100 rung run at most 3, its 1,000 rung 5, "
        f"its 10,000 rung 1; the seed scenario runs {DECIDING_PROCESSES} over as many processes)",
    )
    group.addoption(
        "--bench-processes",
        type=_int_at_least(1),
        default=DEFAULT_PROCESSES,
        metavar="K",
        help="spread each row's timed rounds over K fresh worker processes, the rows taking turns, "
        "so that verdicts see the noise between processes and drift hits every row alike "
        f"(default {DEFAULT_PROCESSES}; at most one process per round)",
    )
    group.addoption(
        "--bench-margin",
        type=margins,
        default=DEFAULT_MARGIN_TEXT,
        metavar="time=P%,memory=P%,cpu=P%",
        help="practical-equivalence margins of the verdicts: a comparison whose interval lies within "
        "±P%% is 'the same', wholly beyond it 'different', across its edge 'not resolved'; any of the "
        f"parts, or one percentage for all three (default {DEFAULT_MARGIN_TEXT.replace('%', '%%')}; "
        "chosen from A/A twins and repeated runs: docs/reference/statistics.md)",
    )
    group.addoption(
        "--bench-scenario",
        type=scenario_names,
        default=(DEFAULT_SCENARIO,),
        metavar="NAME[,NAME...]",
        help=f"scenarios to run, comma-separated (default {DEFAULT_SCENARIO}; {SHAPED_SCENARIO} when "
        f"{' or '.join(SHAPING_OPTIONS)} is given without it): "
        + "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values()),
    )
    group.addoption(
        "--bench-max-seconds",
        type=positive_seconds,
        default=DEFAULT_MAX_SECONDS,
        metavar="S",
        help="skip, with the reason printed, a strategy whose estimated time for one workload "
        f"(all its rounds) exceeds S seconds (default {DEFAULT_MAX_SECONDS:.0f})",
    )
    group.addoption(
        "--bench-report",
        action="store_true",
        help="at the end of the run, write report.md, report.html and PNG charts to results/report/ "
        "(the same as python -m bench.report on this run)",
    )
    group.addoption(
        "--bench-server-url",
        type=server_url,
        default=None,
        metavar="URL",
        help="use a delay server started elsewhere (python -m servers.delay --host ... on another "
        "host) instead of starting one here; every validity rule still applies, from its own /stats "
        "(default: start one on 127.0.0.1)",
    )
    group.addoption(
        "--bench-db-dsn",
        type=database_dsn,
        default=None,
        metavar="DSN",
        help="use a PostgreSQL started elsewhere for the db scenario (it must preload "
        "pg_stat_statements, the referee's count) instead of a throwaway cluster started here",
    )
    group.addoption(
        "--bench-fail-rate",
        type=fraction,
        default=0.0,
        metavar="P",
        help="have the server answer a fraction P of requests with 500, to see the suite "
        "mark rows INVALID with the right error counts (default 0)",
    )
    group.addoption(
        "--bench-drop-rate",
        type=fraction,
        default=0.0,
        metavar="P",
        help="have the server close the connection of a fraction P of requests unanswered (default 0)",
    )
    group.addoption(
        "--bench-timeout-s",
        type=positive_seconds,
        default=REQUEST_TIMEOUT_S,
        metavar="T",
        help=f"per-request timeout of every strategy's HTTP client (default {REQUEST_TIMEOUT_S:.0f})",
    )
    group.addoption(
        "--bench-server-priority",
        choices=priority.MODES,
        default=DEFAULT_SERVER_PRIORITY,
        metavar="MODE",
        help=f"{', '.join(priority.MODES)}: when the server and a worker under test both want a core, "
        "let the server run first: "
        f"nice-workers lowers each worker's priority (nice +{priority.WORKER_NICE_INCREMENT}, no privilege "
        f"needed), raise-server raises the server's (nice {priority.SERVER_NICE}, needs root or "
        "CAP_SYS_NICE, else recorded as not applied), both does both; it changes who gets the CPU, "
        f"not what anything costs (default {DEFAULT_SERVER_PRIORITY})",
    )
