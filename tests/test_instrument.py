"""The instrument certifies itself: the preflight's capacity, its skip path, and a server run elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.harness import preflight
from bench.harness.preflight import Capacity, measure_capacity
from bench.workload import Workload
from servers.process import PROJECT_ROOT, running_delay_server


def row(valid: bool, in_flight: int, instrument_limited: bool, reason: str | None = None) -> dict:
    return {
        "valid": valid,
        "client_max_in_flight": in_flight,
        "instrument_limited": instrument_limited,
        "invalid_reason": reason,
    }


@pytest.fixture
def server_holding_250(monkeypatch):
    """A burst of more than 250 comes back late; the preflight halves until one is held."""
    tried = []

    def burst(server, workload):
        tried.append(workload.requests)
        held = workload.requests <= 250
        return {
            "in_flight": workload.requests,
            "lateness_p99_ms": 3.0 if held else 180.0,
            "overflows": 0,
            "errors": 0,
            "held": held,
        }

    monkeypatch.setattr(preflight, "_burst", burst)
    return tried


def test_the_preflight_halves_the_burst_until_the_server_holds_it(server_holding_250):
    workload = Workload("http://127.0.0.1:1", requests=1000, delay_ms=200, concurrency=10)
    capacity = measure_capacity(None, workload, in_flight=1000)
    assert server_holding_250 == [1000, 500, 250]
    assert capacity.held == 250
    assert capacity.describe().startswith("the delay server holds 250 in flight, not 1000 at 200 ms")


def test_only_a_row_invalid_because_the_server_fell_behind_beyond_capacity_is_skipped():
    capacity = Capacity(delay_ms=200, asked=1000, held=250)
    late = "the server fell behind: its responses left 180 ms late (p99), over the 20 ms allowed"
    reason = capacity.skip_reason(row(False, 1000, True, late))
    assert reason and "the instrument cannot hold it: 1000 in flight" in reason
    assert "holds 250 in flight" in reason and "The instrument's capacity" in reason
    assert capacity.skip_reason(row(True, 1000, False)) is None, "a valid row is always kept"
    assert capacity.skip_reason(row(False, 200, True, late)) is None, "within capacity: INVALID, not skipped"
    failed = "3 of 1000 requests failed: HTTP 500 (x3); " + late
    assert capacity.skip_reason(row(False, 1000, False, failed)) is None, "other reasons stay INVALID"


def test_a_healthy_server_holds_a_small_burst(delay_server):
    workload = Workload(delay_server.base_url, requests=30, delay_ms=100, concurrency=30)
    capacity = measure_capacity(delay_server, workload, in_flight=30)
    assert capacity.held == 30, capacity.describe()
    assert capacity.bursts[0]["errors"] == 0


def test_a_run_against_a_server_started_elsewhere_uses_its_stats(tmp_path):
    """--bench-server-url: the suite starts no server, reads /stats remotely and records which it used."""
    with running_delay_server() as server:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "bench/",
                "-p",
                "no:cacheprovider",
                f"--bench-server-url={server.base_url}",
                "--bench-scenario=quick",
                "--bench-strategies=threads",
                "--bench-requests=5",
                "--bench-delay-ms=50",
                "--bench-rounds=2",
                "--bench-processes=1",
                f"--benchmark-storage=file://{tmp_path}/storage",
                f"--benchmark-json={tmp_path}/run.json",
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        served = server.stats()["served"]
    assert done.returncode == 0, done.stdout[-3000:]
    saved = json.loads((tmp_path / "run.json").read_text())
    assert saved["coroutine_bench"]["server"]["url"] == server.base_url
    assert saved["coroutine_bench"]["server"]["started_by_suite"] is False
    [bench] = saved["benchmarks"]
    assert bench["extra_info"]["valid"]
    assert served == 5  # its window was reset remotely before the last round, which sent 5
    assert "holds 5 in flight at 50 ms" in done.stdout


def test_an_unreachable_server_url_stops_the_run_with_a_clear_error(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench/",
            "-p",
            "no:cacheprovider",
            "--bench-server-url=http://127.0.0.1:9",
            "--bench-strategies=threads",
            f"--benchmark-storage=file://{tmp_path}",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--bench-server-url: no delay server answers at http://127.0.0.1:9" in done.stdout + done.stderr


def test_requests_refused_by_the_servers_connection_cap_are_the_instruments_limit():
    from bench.analysis.row_info import row_info
    from bench.clients import CLIENTS
    from bench.strategies import STRATEGIES

    workload = Workload("http://127.0.0.1:1", requests=10, delay_ms=100, concurrency=10)

    def info_for(message: str, refused: int = 0) -> dict:
        failed = {"ok": 0, "errors": 10, "error_samples": {message: 10}, "round_failed": message}
        failed["errors_http_503"] = refused
        return row_info(STRATEGIES["threads"], CLIENTS["raw"], workload, False, [], [failed])

    capped = info_for(
        "could not read the delay server before the round: HTTP Error 503: Service Unavailable", refused=10
    )
    assert not capped["valid"] and capped["instrument_limited"]
    assert Capacity(delay_ms=100, asked=10, held=0).skip_reason(capped), "the row asked for 10, none held"
    broken = info_for("HTTP 500")
    assert not broken["valid"] and not broken["instrument_limited"]
