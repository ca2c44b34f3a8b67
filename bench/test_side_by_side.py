"""Side by side: the same workload sent by each strategy and client, each in its own worker processes.

The rows of a workload run together, interleaved (``bench/harness/interleave.py``), the first time
one of its tests runs; each test then hands its row's real, timed rounds to pytest-benchmark
and records the worker's, the server's and the kernel's figures in extra_info.

A row that ran is always saved (issue 22, item 2), INVALID with its reason where it is; one
none of whose rounds ran to its end is saved with null timings (``bench/analysis/results.py``,
issue 19, item 1). After saving, an INVALID row fails its test, unless it is a limit the run
probes: a ladder rung's row that fell behind, or a row beyond the capacity the preflight
measured, is an expected failure (xfail), shown with its reason. Only a row that never ran
(too long for --bench-max-seconds, beyond the open files, a rung above one the preflight did
not hold) is skipped, and the closing summary names it.
"""

import pytest

from bench.analysis.row_info import row_info
from bench.analysis.verdicts import MARGINS_KEY
from bench.names import row_label


def test_side_by_side(benchmark, shape, strategy, client, workloads):
    """R timed rounds over K worker processes; memory, CPU, threads, latency and validity."""
    # The fixture is fed the interleaved run's rounds (hand_over), never runs its own; marked used
    # from the start, as pedantic() marks it, so a run stopped mid-row (Ctrl-C) does not warn of
    # an unused fixture (fixture.py, ``_cleanup``).
    benchmark._mode = "the interleaved rounds (bench/test_side_by_side.py)"
    label = row_label(strategy.name, client)
    if reason := workloads.skip_reason(shape, strategy, client) or workloads.ladder.skip_reason(shape):
        workloads.ladder.skipped_row(shape, label, reason)
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
    hand_over(benchmark, record.rounds)
    info["instrument_capacity"] = capacity.describe() if capacity else None
    info["beyond_capacity"] = capacity.beyond_reason(info) if capacity else None
    info["server_priority"] = workloads.server_priority_for(shape)
    info["open_files_limit"] = workloads.file_limit.open_files
    # Each warm-up again before a round (connections that might have idled out), as the server counted it.
    info["rewarm_connections_accepted"] = [w.get("server_connections_accepted") for w in record.rewarms]
    info[MARGINS_KEY] = workloads.options.margins._asdict()
    benchmark.extra_info.update(info, timeline=record.timeline)
    if info["valid"]:
        return
    # Saved above, whatever follows: pytest-benchmark keeps a row whose test then fails or xfails.
    if limit := workloads.ladder.row_xfail_reason(shape, info) or info["beyond_capacity"]:
        pytest.xfail(f"{label} on {shape.group}: INVALID: {info['invalid_reason']} ({limit})")
    pytest.fail(f"{label}: INVALID: {info['invalid_reason']}")


def hand_over(benchmark, rounds: list[dict]) -> None:
    """Give pytest-benchmark the rounds the interleaved run timed, as its pedantic mode records its own.

    One test per row cannot interleave rows, so pytest-benchmark cannot time them itself;
    this is what ``pedantic`` does with each round's duration (fixture.py, ``_raw_pedantic``).
    Only rounds that ran to their end are times: a round cut short at its deadline measured
    the deadline, not the strategy.
    """
    if benchmark.disabled:
        return
    stats = benchmark._make_stats(1)
    for seconds in [r["timed_seconds"] for r in rounds if not r.get("round_failed")]:
        stats.update(seconds)
    if not stats:
        # pytest-benchmark cannot summarize no data: it leaves out a benchmark with an error,
        # and bench/conftest.py saves the row beside the others, with null timings.
        benchmark.has_error = True
