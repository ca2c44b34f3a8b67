"""Benchmark-only wiring: where runs are saved, which strategies run, the tables at the end."""

from pathlib import Path

import pytest
from pytest_benchmark.utils import get_tag

from bench import summary
from bench.strategies import STRATEGIES
from bench.workload import Workload

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
PYTEST_BENCHMARK_DEFAULT_STORAGE = "file://./.benchmarks"


def pytest_configure(config):
    # Runs before pytest-benchmark reads its options (its pytest_configure is trylast), so
    # `pytest bench/` saves every run under results/ unless the user chose a storage.
    if config.getoption("benchmark_storage") == PYTEST_BENCHMARK_DEFAULT_STORAGE:
        config.option.benchmark_storage = f"file://{RESULTS_DIR}"
    if not config.getoption("benchmark_save") and not config.getoption("benchmark_autosave"):
        config.option.benchmark_autosave = get_tag()
    # Keep every round's time, not only the summary: the verdicts and the gate need them.
    config.option.benchmark_save_data = True


def pytest_generate_tests(metafunc):
    if "strategy" in metafunc.fixturenames:
        names = metafunc.config.getoption("bench_strategies")
        metafunc.parametrize("strategy", [STRATEGIES[name] for name in names], ids=names)


@pytest.fixture(scope="session")
def workload(delay_server, bench_options) -> Workload:
    return Workload(
        base_url=delay_server.base_url,
        requests=bench_options.requests,
        delay_ms=bench_options.delay_ms,
        concurrency=bench_options.concurrency,
    )


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own table
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    rows = summary.rows_from_session(session.benchmarks if session else [])
    if rows:
        for line in summary.render(rows):
            terminalreporter.write_line(line)
