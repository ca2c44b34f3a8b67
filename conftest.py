"""Shared by the tests and the benchmarks: the ``--bench-*`` options and the delay server."""

from contextlib import ExitStack, contextmanager

import pytest

from bench.harness import priority
from bench.harness.local_ca import local_ca
from bench.options import BenchOptions, add_options
from bench.reporting.context import SERVER_INFO, server_python_executable
from bench.scenarios import database_in_flight
from bench.targets import postgres
from bench.targets.postgres_cluster import INSTALL_HINT
from bench.workload import SUITE_IDLE_TIMEOUT_S
from servers.process import ServerStartError, remote_delay_server, running_delay_server


def pytest_addoption(parser):
    add_options(parser)


def pytest_configure(config):
    """Options that are fine alone but not together stop the run before anything starts."""
    try:
        BenchOptions.from_config(config).check()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="session")
def bench_options(pytestconfig) -> BenchOptions:
    return BenchOptions.from_config(pytestconfig)


@pytest.fixture(scope="session")
def delay_server(pytestconfig, request):
    """The delay server for the whole session: one started elsewhere (--bench-server-url), or
    one in its own process here (its Python: bench/reporting/context.py), listening on both
    loopback addresses (--bench-host name), serving HTTPS with a fresh local CA (--bench-tls)."""
    if url := pytestconfig.getoption("bench_server_url"):
        try:
            server = remote_delay_server(url)
        except ServerStartError as exc:
            pytest.exit(f"--bench-server-url: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        return _recorded(pytestconfig, server)
    return request.getfixturevalue(
        "tls_delay_server" if pytestconfig.getoption("bench_tls") else "plain_delay_server"
    )


@pytest.fixture(scope="session")
def plain_delay_server(pytestconfig):
    with _suite_server(tls=False) as server:
        yield _recorded(pytestconfig, server)


@pytest.fixture(scope="session")
def tls_delay_server(pytestconfig):
    """Started only when asked: by --bench-tls, or by a TLS cell of the connections scenario."""
    with _suite_server(tls=True) as server:
        yield _recorded(pytestconfig, server)


@contextmanager
def _suite_server(tls: bool):
    with ExitStack() as stack:
        ca = stack.enter_context(local_ca()) if tls else None
        yield stack.enter_context(
            running_delay_server(
                python=server_python_executable(),
                extra_args=(
                    "--ipv6-loopback",
                    "--idle-timeout-s",
                    str(SUITE_IDLE_TIMEOUT_S),
                    *(ca.server_args if ca else ()),
                ),
                ca_file=ca and ca.ca_file,
            )
        )


@pytest.fixture(scope="session")
def postgres_server(bench_options):
    """PostgreSQL for the session: one at --bench-db-dsn, or a throwaway cluster started here,
    with a connection for every query the chosen scenarios keep in flight. Without PostgreSQL
    installed, what needs it is skipped with how to install it."""
    if bench_options.db_dsn:
        yield postgres.PostgresServer(bench_options.db_dsn)
        return
    if not postgres.available():
        if postgres.required():
            pytest.fail(f"CI=true, and {INSTALL_HINT}", pytrace=False)
        pytest.skip(INSTALL_HINT)
    connections = max(postgres.DEFAULT_CONNECTIONS, database_in_flight(bench_options))
    with postgres.running_postgres(connections + postgres.SPARE_CONNECTIONS) as server:
        yield server


def _recorded(config, server):
    """Note in the saved run which server(s) it used, their workers and the measured round trip;
    a second server (the connections scenario's other one) is recorded under ``also``."""
    stats = server.stats()
    recorded = config.stash.setdefault(SERVER_INFO, {})
    (recorded.setdefault("also", {}) if recorded else recorded).update(
        {
            "url": server.base_url,
            "started_by_suite": server.started_here,
            "workers": stats.get("workers"),
            "round_trip_ms": server.round_trip_ms(),
            "tls": server.negotiated_tls(),
            "priority": priority.raise_server(config.getoption("bench_server_priority"), server),
        }
    )
    return server
