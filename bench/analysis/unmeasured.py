"""Rows with no timed round, saved beside pytest-benchmark's rows instead of vanishing (issue 19, item 1).

A row whose worker would not start, whose warm-up failed, or none of whose rounds ran to its
end has no time to give pytest-benchmark, which cannot summarize no data and leaves the row
out of its ``benchmarks`` list. Such a row is saved under its own key of the same document,
with its ``extra_info`` (INVALID, and why) and explicit null timings: ``pytest-benchmark
compare`` reads only ``benchmarks`` and still works, ``bench.analysis.results`` reads both.
"""

from __future__ import annotations

from pytest_benchmark.stats import Stats

UNMEASURED_KEY = "benchmarks_without_rounds"
NULL_STATS = dict.fromkeys(Stats.fields) | {"rounds": 0, "data": [], "iterations": 1}


def unmeasured_rows(benchmarks) -> list[dict]:
    """This suite's benchmarks that had no round to hand over, as saved entries with null timings."""
    return [
        bench.as_dict(stats=False) | {"stats": dict(NULL_STATS)}
        for bench in benchmarks
        if bench.has_error and not bench.stats and "strategy" in bench.extra_info
    ]
