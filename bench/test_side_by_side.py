"""Side by side: the same workload sent by each strategy and client, each in its own worker processes.

The rows of a workload run together, interleaved (``bench/harness/interleave.py``), the first time
one of its tests runs; each test then hands its row's real, timed rounds to pytest-benchmark
and records the worker's, the server's and the kernel's figures in extra_info.
"""

import pytest

from bench.analysis.row_info import row_info
from bench.analysis.summary import row_label


def test_side_by_side(benchmark, shape, strategy, client, workloads):
    """R timed rounds over K worker processes; memory, CPU, threads, latency and validity."""
    label = row_label(strategy.name, client)
    if reason := workloads.skip_reason(shape, strategy, client):
        pytest.skip(f"{label} on {shape.group}: {reason}")
    benchmark.group = shape.group
    record = workloads.record(shape, strategy, client)
    info = row_info(
        strategy,
        client,
        workloads.workload(shape),
        record.monkey_patched,
        record.warmups,
        record.rounds,
        scenario=shape.scenario,
    )
    capacity = workloads.capacities.get(shape)
    if capacity and (reason := capacity.skip_reason(info)):
        pytest.skip(f"{label} on {shape.group}: {reason}")  # not handed over: nothing saved
    hand_over(benchmark, [r["timed_seconds"] for r in record.rounds if r["timed_seconds"] is not None])
    info["instrument_capacity"] = capacity.describe() if capacity else None
    info["server_priority"] = workloads.server_priority
    info["open_files_limit"] = workloads.file_limit.open_files
    benchmark.extra_info.update(info, timeline=record.timeline)
    if not info["valid"]:
        pytest.fail(f"{label}: INVALID: {info['invalid_reason']}")


def hand_over(benchmark, round_seconds: list[float]) -> None:
    """Give pytest-benchmark the rounds the interleaved run timed, as its pedantic mode records its own.

    One test per row cannot interleave rows, so pytest-benchmark cannot time them itself;
    this is what ``pedantic`` does with each round's duration (fixture.py, ``_raw_pedantic``).
    """
    if benchmark.disabled or not round_seconds:
        return
    stats = benchmark._make_stats(1)
    for seconds in round_seconds:
        stats.update(seconds)
