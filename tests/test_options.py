"""Every --bench-* option: a bad value is a usage error before any process starts."""

import argparse
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from bench.options import BenchOptions, _int_at_least, strategy_names
from bench.strategies import STRATEGIES
from servers.process import PROJECT_ROOT

BAD_OPTIONS = pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("--bench-requests=0", "argument --bench-requests: must be >= 1, got 0"),
        ("--bench-requests=ten", "argument --bench-requests: expected an integer, got 'ten'"),
        ("--bench-delay-ms=-5", "argument --bench-delay-ms: must be >= 0, got -5"),
        ("--bench-delay-ms=60001", "argument --bench-delay-ms: must be <= 60000, got 60001"),
        ("--bench-concurrency=0", "argument --bench-concurrency: must be >= 1, got 0"),
        ("--bench-rounds=0", "argument --bench-rounds: must be >= 1, got 0"),
        ("--bench-strategies=threads,fibers", "argument --bench-strategies: unknown strategy 'fibers'"),
        ("--bench-strategies=,", "argument --bench-strategies: expected at least one strategy name"),
        ("--bench-scenario=quick,huge", "argument --bench-scenario: unknown scenario 'huge'"),
        ("--bench-max-seconds=0", "argument --bench-max-seconds: must be > 0, got 0"),
        ("--bench-fail-rate=1.5", "argument --bench-fail-rate: must be between 0 and 1, got 1.5"),
        (
            "--bench-drop-rate=some",
            "argument --bench-drop-rate: expected a fraction between 0 and 1, got 'some'",
        ),
        ("--bench-timeout-s=-1", "argument --bench-timeout-s: must be > 0, got -1"),
        ("--bench-client=raw,curl", "argument --bench-client: unknown client 'curl'"),
        (
            "--bench-client=urllib,raw",
            "--bench-client urllib cannot run with --bench-connection reuse (urllib has only new)",
        ),
        (
            "--bench-tls --bench-server-url=http://127.0.0.1:8000",
            "--bench-tls needs the suite's own delay server (its CA, both loopback addresses), "
            "not --bench-server-url http://127.0.0.1:8000",
        ),
        (
            "--bench-host=name --bench-server-url=http://127.0.0.1:8000",
            "--bench-host name needs the suite's own delay server",
        ),
        ("--bench-connection=sometimes", "argument --bench-connection: invalid choice: 'sometimes'"),
        (
            "--bench-server-url=ftp://127.0.0.1:8000",
            "argument --bench-server-url: expected http://HOST:PORT of a delay server, got 'ftp://127.0.0.1:8000'",
        ),
        (
            "--bench-server-url=http://127.0.0.1",
            "argument --bench-server-url: expected http://HOST:PORT with a port, got 'http://127.0.0.1'",
        ),
        (
            "--bench-client=aiohttp",
            "--bench-client aiohttp leaves sequential, threads, threadpool, gevent-joinall, gevent-pool, "
            "trio-nursery, trio-bounded, processpool, asyncio-to-thread with no client",
        ),
        (
            "--bench-client=geventhttpclient --bench-strategies=threads,gevent-pool",
            "--bench-client geventhttpclient leaves threads with no client (threads needs one of requests, httpx, urllib3, raw, pycurl, pyreqwest)",
        ),
        # A workload shaped for a scenario that is not run would be silently ignored.
        (
            "--bench-requests=500 --bench-scenario=story,sweep",
            "--bench-requests shape the quick and everything scenarios, and --bench-scenario story,sweep "
            "runs neither",
        ),
        # A driver on an HTTP scenario, an HTTP client on db: not an empty run, a usage error.
        (
            "--bench-client=psycopg --bench-scenario=quick",
            "--bench-client psycopg has no client for the delay server, where scenario quick sends its "
            "requests: add one of requests, httpx, aiohttp, urllib3, geventhttpclient, raw",
        ),
        (
            "--bench-client=raw --bench-scenario=quick,db",
            "--bench-client raw has no client for PostgreSQL, where scenario db sends its requests: "
            "add one of psycopg, psycopg-imported-first, psycopg2, psycopg2-psycogreen, asyncpg, pg8000",
        ),
        # Issue 25: quick's shape drives either target; the db scenario stays the curated tour.
        (
            "--bench-target=postgres --bench-scenario=db",
            "--bench-target postgres drives quick's shape (the db scenario is the curated tour)",
        ),
        (
            "--bench-target=postgres --bench-client=raw",
            "--bench-client raw has no client for PostgreSQL, where scenario quick sends its requests",
        ),
        ("--bench-target=redis", "argument --bench-target: invalid choice: 'redis'"),
        (
            "--bench-fetch=examples.sleep_subprocess:make_fetch --bench-client=raw",
            "--bench-fetch examples.sleep_subprocess:make_fetch runs the quick scenario's shape",
        ),
        (
            "--bench-fetch=no_module_of_that_name:make_fetch",
            "argument --bench-fetch: no_module_of_that_name:make_fetch: no module named no_module_of_that_name",
        ),
    ],
)


@BAD_OPTIONS
def test_bad_option_is_refused_with_its_reason(pytestconfig, argument, message):
    """Parsed by the parser pytest built, then checked together, as pytest_configure does."""
    with pytest.raises((pytest.UsageError, ValueError), match=re.escape(message)):
        namespace = pytestconfig._parser.parse(argument.split())
        BenchOptions.from_config(_Parsed(namespace, argument.split())).check()


@pytest.mark.parametrize(
    "argument",
    [
        "--bench-client=raw,psycopg --bench-scenario=quick,db",
        # The ladder's rungs name their own client (raw): only the seed comparison needs an HTTP one.
        "--bench-client=requests,aiohttp,httpx",
        "--bench-client=psycopg --bench-scenario=db,cpu",
        "--bench-target=postgres --bench-client=psycopg,asyncpg",
    ],
)
def test_clients_for_every_chosen_target_are_accepted(pytestconfig, argument):
    namespace = pytestconfig._parser.parse(argument.split())
    BenchOptions.from_config(_Parsed(namespace, argument.split())).check()


@pytest.mark.parametrize(
    ("argument", "scenarios"),
    [
        ("", ("story",)),
        ("--bench-requests=10000 --bench-delay-ms=2000", ("quick",)),
        ("--bench-delay-ms 2000", ("quick",)),
        ("--bench-requests=100 --bench-scenario=everything,cpu", ("everything", "cpu")),
        # What quick's shape is sent to, or your own IO in place of a client: quick too.
        ("--bench-target=postgres", ("quick",)),
        ("--bench-fetch=examples.sleep_subprocess:make_fetch", ("quick",)),
    ],
)
def test_the_options_that_shape_a_workload_run_it(pytestconfig, argument, scenarios):
    """--bench-requests or --bench-delay-ms alone run quick, never the default story that ignores them."""
    namespace = pytestconfig._parser.parse(argument.split())
    options = BenchOptions.from_config(_Parsed(namespace, argument.split()))
    options.check()
    assert options.scenarios == scenarios


class _Parsed:
    """What BenchOptions.from_config needs of a config: its parsed options and its command line."""

    def __init__(self, namespace, args: list[str]) -> None:
        self.namespace = namespace
        self.invocation_params = SimpleNamespace(args=tuple(args))

    def getoption(self, name: str):
        return getattr(self.namespace, name)


@pytest.mark.parametrize(
    "argument",
    [
        "--bench-requests=0",
        "--bench-client=geventhttpclient --bench-strategies=threads,gevent-pool",
        "--bench-server-url=http://127.0.0.1",
        "--bench-client=psycopg --bench-scenario=quick",
        # pytest-benchmark times nothing under xdist: the run would save untimed rows.
        "-n 2",
    ],
)
def test_a_bad_option_stops_pytest_before_anything_starts(argument):
    """The real command line, for one case of each kind: a usage error, and nothing collected."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "bench/", *argument.split(), "-p", "no:cacheprovider"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout[-2000:] + result.stderr[-2000:]
    assert "error" in result.stderr.lower() or "leaves" in result.stderr
    assert "collected" not in result.stdout  # stopped before collection, so before any server or worker


def test_every_option_has_help_text(pytestconfig):
    """Each --bench-* option carries its own help, naming its default where it has one."""
    options = [
        action
        for action in pytestconfig._parser.optparser._actions  # the parser pytest built
        if any(flag.startswith("--bench-") for flag in action.option_strings)
    ]
    assert len(options) == 22
    for action in options:
        assert action.help and len(action.help) > 30, action.option_strings
        if action.default not in (None, False):
            assert "default" in action.help, action.option_strings
    # argparse %-formats every help text: a stray "%" in a scenario's description broke --help.
    assert "--bench-scenario" in pytestconfig._parser.optparser.format_help()


def test_quick_defaults_are_io_bound():
    """D must be several times N x the client's CPU per request, or the unbounded strategies
    never have all N in flight and the default run tells a CPU story instead of an IO one."""
    from bench.clients import CLIENTS, DEFAULT_CLIENT
    from bench.options import DEFAULT_DELAY_MS, DEFAULT_REQUESTS

    for name in DEFAULT_CLIENT.values():
        cpu_seconds = CLIENTS[name].estimated_cpu_seconds(DEFAULT_REQUESTS, in_flight=DEFAULT_REQUESTS)
        # 2.5, not 3: httpx (trio's default) estimates 2.2 ms a request at 40 in flight, on
        # purpose long; trio-nursery[httpx] measured 1.25 ms.
        assert 2.5 * cpu_seconds <= DEFAULT_DELAY_MS / 1000, name


def test_strategy_names_keep_order_and_reject_repeats():
    assert strategy_names("gevent-pool, sequential") == ("gevent-pool", "sequential")
    assert set(strategy_names(",".join(STRATEGIES))) == set(STRATEGIES)
    with pytest.raises(argparse.ArgumentTypeError, match="named twice"):
        strategy_names("threads,threads")


def test_integer_bounds():
    parse = _int_at_least(1, 10)
    assert parse("1") == 1
    assert parse("10") == 10
    for bad in ("0", "11", "1.5", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


def test_the_seed_replay_options_are_accepted(pytestconfig):
    """urllib, new connections, TLS, localhost: the seed's workload, with its two gevent models."""
    argument = (
        "--bench-client=urllib --bench-connection=new --bench-tls --bench-host=name "
        "--bench-strategies=gevent-joinall,gevent-pool"
    )
    options = BenchOptions.from_config(
        _Parsed(pytestconfig._parser.parse(argument.split()), argument.split())
    )
    options.check()
    assert (options.clients, options.connection, options.tls, options.host) == (
        ("urllib",),
        "new",
        True,
        "name",
    )
