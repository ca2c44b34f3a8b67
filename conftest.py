"""Shared by the tests and the benchmarks: the ``--bench-*`` options and the delay server."""

import pytest

from bench.harness import priority
from bench.options import BenchOptions, add_options
from bench.reporting.context import SERVER_INFO, server_python_executable
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
def delay_server(pytestconfig):
    """The delay server for the whole session: one started elsewhere (--bench-server-url), or
    one in its own process here (its Python: bench/reporting/context.py)."""
    if url := pytestconfig.getoption("bench_server_url"):
        try:
            server = remote_delay_server(url)
        except ServerStartError as exc:
            pytest.exit(f"--bench-server-url: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        yield _recorded(pytestconfig, server)
        return
    with running_delay_server(python=server_python_executable()) as server:
        yield _recorded(pytestconfig, server)


def _recorded(config, server):
    """Note in the saved run which server it used, its workers and the measured round trip."""
    stats = server.stats()
    config.stash[SERVER_INFO] = {
        "url": server.base_url,
        "started_by_suite": server.started_here,
        "workers": stats.get("workers"),
        "round_trip_ms": server.round_trip_ms(),
        "priority": priority.raise_server(config.getoption("bench_server_priority"), server),
    }
    return server
