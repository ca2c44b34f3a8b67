"""Figures that must not come out silently wrong (issue 19, items 5-7), on synthetic rounds."""

import copy
import json
import os
from pathlib import Path

import pytest
from werkzeug import Response

from bench import compare
from bench.analysis.row_info import row_info
from bench.clients import CLIENTS
from bench.harness import process_tree
from bench.harness.worker_process import WorkerProcess
from bench.strategies import STRATEGIES
from bench.workload import Workload

# A committed run with processpool beside sequential (the quick, sweep and cpu scenarios).
WITH_PROCESSPOOL = Path(__file__).resolve().parent.parent / "results" / "runs" / "qsc.json"
WORKLOAD = Workload("http://127.0.0.1:1", requests=10, delay_ms=100, concurrency=2)
CORES = len(os.sched_getaffinity(0))


def a_round(ok=10, wall=0.5, cpu=0.02, processes=1, **extra) -> dict:
    return {
        "ok": ok,
        "errors": 10 - ok,
        "error_samples": {},
        "errors_http_503": 0,
        "wall_seconds": wall,
        "round_trip_seconds": wall,
        "cpu_seconds": cpu,
        "peak_rss_bytes": 4096,
        "peak_rss_above_idle_bytes": 8192,
        "os_threads_peak": 1,
        "processes_peak": processes,
        "client_max_in_flight": 2,
    } | extra


def info_for(strategy: str, *rounds: dict) -> dict:
    return row_info(STRATEGIES[strategy], CLIENTS["raw"], WORKLOAD, False, [], list(rounds))


# Item 5: a pool of processes never seen is not a pool that cost nothing.


def test_a_process_pool_seen_as_one_process_is_invalid():
    info = info_for("processpool", a_round(processes=1))
    assert not info["valid"]
    assert "1 process seen where a pool of 2 runs" in info["invalid_reason"]
    assert info_for("processpool", a_round(processes=3))["valid"]


def test_a_process_pool_with_unknown_cpu_is_invalid():
    info = info_for("processpool", a_round(processes=3, cpu=None))
    assert not info["valid"] and "the pool's CPU time is unknown" in info["invalid_reason"]
    assert info["cpu_bound_seconds"] is None and info["efficiency_vs_bound"] is None
    assert info["efficiency"] == pytest.approx(info["ideal_seconds"] / 0.5), "ideal / median needs no CPU"


def test_a_missing_proc_facility_is_named():
    assert process_tree.missing_facilities(pid=2**30) == [
        f"/proc/{2**30}/task/{2**30}/children is missing: a pool's processes cannot be found: "
        "their count, memory and CPU are unknown (the kernel lacks CONFIG_PROC_CHILDREN)",
        f"/proc/{2**30}/task/{2**30}/schedstat is missing: a pool's processes' CPU time is unknown "
        "(the kernel lacks CONFIG_SCHED_INFO)",
    ]
    assert process_tree.descendants_cpu_seconds(2**30) is None


# Item 6: a pool of processes' CPU bound uses the cores it can use.


def test_a_process_pools_cpu_bound_spreads_over_the_cores_it_can_use():
    # 3 s of CPU in a 1 s round: on one core that would be efficiency 3 (impossible).
    info = info_for("processpool", a_round(processes=3, cpu=3.0, wall=1.0, round_trip_seconds=1.0))
    cores = min(CORES, 2 + 1)  # C processes and the worker
    assert info["efficiency_cores"] == cores
    assert info["cpu_bound_seconds"] == pytest.approx(3.0 / cores)
    assert info["efficiency_vs_bound"] == pytest.approx(max(0.5, 3.0 / cores) / 1.0)
    assert info["efficiency"] == pytest.approx(info["ideal_seconds"] / 1.0), (
        "ideal / median, whatever the bound"
    )
    assert info_for("threadpool", a_round())["efficiency_cores"] == 1


def test_the_gate_does_not_hold_a_process_pools_efficiency_machine_independent(tmp_path):
    document = json.loads(WITH_PROCESSPOOL.read_text())
    changed = copy.deepcopy(document)
    for bench in changed["benchmarks"]:
        if bench["extra_info"]["strategy"] == "processpool":
            # What half the cores would do to a CPU-bound pool: every round twice as long.
            bench["stats"]["data"] = [2 * s for s in bench["stats"]["data"]]
            # The gate's intervals resample the rounds by process: they slow down too.
            info = bench["extra_info"]
            info["rounds_by_process"] = [[2 * s for s in group] for group in info["rounds_by_process"]]
    current = tmp_path / "fewer-cores.json"
    current.write_text(json.dumps(changed))
    assert compare.main([str(WITH_PROCESSPOOL), str(current)]) == 0
    assert compare.main([str(WITH_PROCESSPOOL), str(current), "--gate-seconds"]) == 1


# Item 7: "refused by the server's cap" counts 503s exactly.


def test_refused_by_the_cap_needs_every_error_to_be_a_503():
    # The three kept samples all contain "503", but only 6 of the 8 errors were the cap's 503.
    samples = {"HTTP 503": 6, "ConnectionRefusedError: 127.0.0.1:5030": 1, "ReadError: read 503 bytes": 1}
    mixed = info_for("threads", a_round(ok=2, error_samples=samples, errors_http_503=6))
    assert not mixed["valid"] and not mixed["instrument_limited"]
    # All 8 were the cap's, though the samples kept only one message.
    capped = info_for("threads", a_round(ok=2, error_samples={"HTTP 503": 8}, errors_http_503=8))
    assert not capped["valid"] and capped["instrument_limited"]


def test_the_worker_counts_every_503_not_only_the_sampled_messages(httpserver):
    httpserver.expect_request("/delay").respond_with_response(Response("full", status=503))
    workload = Workload(
        httpserver.url_for("/").rstrip("/"), requests=6, delay_ms=0, concurrency=2, timeout_s=10
    )
    with WorkerProcess(STRATEGIES["threadpool"], CLIENTS["requests"], workload) as worker:
        result = worker.measure_round()
    assert (result["errors"], result["errors_http_503"]) == (6, 6)
