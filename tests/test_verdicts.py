"""The statistics behind the verdict lines, on synthetic round times."""

import random

import pytest

from bench.analysis.verdicts import speedup
from bench.harness.timeline import max_in_flight, round_details
from bench.workload import Outcome
from servers.percentile import percentile


def noisy(center: float, spread: float, n: int = 7, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [center * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


def test_clear_speedup_is_significant_and_its_interval_holds_the_ratio():
    result = speedup(noisy(5.0, 0.01), noisy(0.2, 0.05, seed=2))
    assert result.significant
    assert result.low <= result.ratio <= result.high
    assert result.low > 23 and result.high < 27  # 5.0 / 0.2 = 25, give or take the noise


def test_overlapping_samples_are_no_significant_difference():
    result = speedup(noisy(1.0, 0.2, seed=3), noisy(1.0, 0.2, seed=4))
    assert not result.significant
    assert "no significant difference from sequential" in result.describe("sequential")


def test_slower_is_said_as_slower():
    result = speedup([1.0, 1.01, 0.99, 1.0, 1.0], [2.0, 2.02, 1.98, 2.0, 2.01])
    assert result.describe("sequential").startswith("2.0x slower than sequential")


def test_verdicts_are_reproducible():
    reference, candidate = noisy(1.0, 0.1, seed=5), noisy(0.5, 0.1, seed=6)
    assert speedup(reference, candidate) == speedup(reference, candidate)


def test_speedup_needs_rounds():
    with pytest.raises(ValueError, match="at least one round"):
        speedup([], [1.0])


def outcome(start, end, ok=True):
    return Outcome(ok, start, end, None if ok else "HTTP 500")


def test_max_in_flight_counts_overlaps():
    assert max_in_flight([outcome(0, 1), outcome(1, 2), outcome(2, 3)]) == 1  # back to back, never two
    assert max_in_flight([outcome(0, 3), outcome(1, 2), outcome(1.5, 4), outcome(5, 6)]) == 3
    assert max_in_flight([]) == 0


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7
    assert percentile([], 50) is None


def test_round_details_latency_uses_successes_and_timeline_is_relative():
    details = round_details(
        [outcome(10.0, 10.1), outcome(10.0, 10.3), outcome(10.0, 15.0, ok=False)], 10.0, True
    )
    assert details["latency_p50_ms"] == pytest.approx(100)
    assert details["latency_p99_ms"] == pytest.approx(300)
    assert details["client_max_in_flight"] == 3
    assert details["timeline"]["requests"][1] == [0.0, 300.0, True]


def test_too_few_rounds_give_no_interval_and_no_ranking():
    result = speedup([1.0, 1.1], [0.5, 0.6])
    assert not result.significant
    assert result.describe("threads") == (
        "1.91x faster than threads (under 3 rounds: no confidence interval, not ranked)"
    )


def test_the_interval_sees_noise_between_processes():
    """Tight rounds inside processes that differ: only resampling processes shows it is noise."""
    rng = random.Random(7)
    per_process = [1.0, 1.25, 0.85, 1.1, 0.95]  # each worker's own speed, as measured between workers

    def rounds_of(levels):
        return [[level * (1 + rng.uniform(-0.005, 0.005)) for _ in range(3)] for level in levels]

    reference, candidate = rounds_of(per_process), rounds_of([1.1, 0.85, 1.25, 1.0, 1.2])
    one_process_each = speedup(reference[0], candidate[0])  # what a single worker per row would say
    assert one_process_each.significant, "tight rounds in one process each: a 'difference' appears"
    grouped = speedup(reference, candidate)
    assert grouped.processes == 5
    assert not grouped.significant, "over five processes each, it is noise"


def test_one_process_says_it_is_blind_to_between_process_noise():
    result = speedup([[1.0, 1.01, 0.99]], [[0.5, 0.51, 0.49]])
    assert "one process: blind to between-process noise" in result.describe("sequential")


def test_the_aa_twin_is_registered_only_when_asked_and_compared_head_to_head():
    import os
    import subprocess
    import sys

    from bench.strategies import AA_TWIN_VARIABLE, STRATEGIES
    from servers.process import PROJECT_ROOT

    assert not any(name.endswith("-twin") for name in STRATEGIES)
    script = (
        "from bench.strategies import STRATEGIES\n"
        "from bench.analysis.summary import Row, verdict_lines\n"
        "twin = STRATEGIES['threads-twin']\n"
        "assert twin.module == STRATEGIES['threads'].module and twin.fanout == STRATEGIES['threads'].fanout\n"
        "info = dict(kind='cpu', client=None, valid=True, ideal_seconds=1.0, efficiency=1.0, efficiency_bound='delay')\n"
        "rows = [Row('g', [1.0, 1.1, 0.9], info | dict(strategy=name)) for name in ('threads', 'threads-twin')]\n"
        "print(verdict_lines(rows)[-1])\n"
    )
    env = os.environ | {AA_TWIN_VARIABLE: "threads"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("threads-twin vs threads: no significant difference from threads")
    bad = subprocess.run(
        [sys.executable, "-c", "import bench.strategies"],
        cwd=PROJECT_ROOT,
        env=os.environ | {AA_TWIN_VARIABLE: "fibers"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "COROUTINE_BENCH_AA_TWIN='fibers': no such strategy" in bad.stderr
