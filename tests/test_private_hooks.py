"""Private attributes of other libraries: a missing one stops the run at start, naming it."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import geventhttpclient.client
from bench_command import run_bench

from bench import private_hooks


def benchmark_config(without: str | None = None) -> SimpleNamespace:
    """A pytest config whose benchmark session has what pytest-benchmark's sets, except ``without``."""
    names = [name for name in private_hooks.SESSION_ATTRIBUTES if name != without]
    return SimpleNamespace(_benchmarksession=SimpleNamespace(**dict.fromkeys(names)))


def test_this_environment_has_every_hook():
    assert private_hooks.missing(benchmark_config()) == []


def test_each_missing_hook_is_named(monkeypatch):
    monkeypatch.delattr(geventhttpclient.client, "_may_retry_after_send_error")
    renamed = dataclasses.replace(private_hooks.AIOHTTP_HOOK, attribute="_retry_connection_renamed")
    monkeypatch.setattr(private_hooks, "AIOHTTP_HOOK", renamed)
    absent = private_hooks.missing(benchmark_config(without="json"))
    assert absent == [
        "geventhttpclient.client._may_retry_after_send_error (bench/clients/geventhttpclient_client.py "
        "replaces it to turn off GET retries)",
        "aiohttp.ClientSession._retry_connection_renamed (bench/clients/aiohttp_client.py sets it to "
        "False to turn off resends)",
        "pytest_benchmark.session.BenchmarkSession.json (bench/conftest.py reads the session's benchmarks)",
    ]
    assert private_hooks.missing(SimpleNamespace())[-1].startswith("pytest config._benchmarksession")


def test_a_benchmark_run_missing_one_stops_before_anything_runs(tmp_path):
    """As if a release had dropped it: pytest bench/ exits at start with the message, no row runs."""
    script = (
        "import sys, pytest, pytest_benchmark.fixture as f\n"
        "del f.BenchmarkFixture._make_stats\n"
        "sys.exit(pytest.main(sys.argv[1:]))\n"
    )
    done = run_bench(tmp_path, "--bench-strategies=threads", start=("-c", script))
    output = done.stdout + done.stderr
    assert done.returncode == 4, output  # pytest.ExitCode.USAGE_ERROR
    assert "private attributes the suite relies on are missing" in output, output
    assert "pytest_benchmark.fixture.BenchmarkFixture._make_stats" in output, output
    assert "instrument," not in output, "nothing ran: no preflight, no row"
    assert not list(tmp_path.rglob("*.json")), "nothing saved"
