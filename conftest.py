"""Shared by the tests and the benchmarks: the ``--bench-*`` options and the delay server."""

import pytest

from bench.context import server_python_executable
from bench.options import BenchOptions, add_options
from servers.process import running_delay_server


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
def delay_server():
    """The delay server in its own process, for the whole session (its Python: bench/context.py)."""
    with running_delay_server(python=server_python_executable()) as server:
        yield server
