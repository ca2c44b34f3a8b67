"""The statistics behind the verdict lines, on synthetic round times."""

import math
import random
import statistics

import pytest

from bench.analysis import verdicts
from bench.analysis.verdicts import Margins, Speedup, Verdict, speedup
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


def test_overlapping_samples_are_not_resolved_when_the_interval_reaches_past_the_margin():
    result = speedup(noisy(1.0, 0.2, seed=3), noisy(1.0, 0.2, seed=4))
    assert not result.significant
    assert result.verdict is Verdict.UNDETERMINED
    assert "against sequential, not resolved by this run" in result.describe("sequential")


def processes_of(center: float, spread: float, processes: int, seed: int) -> list[list[float]]:
    """One round per worker process, each process at its own speed within ±spread of center."""
    rng = random.Random(seed)
    return [[center * (1 + rng.uniform(-spread, spread))] for _ in range(processes)]


def test_a_2_percent_difference_with_a_tight_interval_is_equivalent_at_a_5_percent_margin():
    reference = processes_of(1.02, 0.005, 10, seed=11)
    candidate = processes_of(1.00, 0.005, 10, seed=12)
    result = speedup(reference, candidate, comparisons=6, margin=0.05)
    assert 1.01 < result.ratio < 1.03
    assert result.significant, "the interval excludes 1: a real 2%, and still not a finding"
    assert result.verdict is Verdict.EQUIVALENT
    assert result.describe("threads").startswith("the same time as threads within ±5% (1.02x, 99.2% CI")
    assert speedup(reference, candidate, comparisons=6, margin=0.01).verdict is Verdict.DIFFERENT


def test_a_wide_interval_around_1_6x_is_undetermined():
    reference = processes_of(1.6, 0.6, 3, seed=13)
    candidate = processes_of(1.0, 0.6, 3, seed=14)
    result = speedup(reference, candidate, comparisons=6)
    assert 1.3 < result.ratio < 2.0
    assert result.low < 1 / 1.05 and result.high > 1.05
    assert result.verdict is Verdict.UNDETERMINED
    assert "not resolved by this run" in result.describe("gevent-joinall")
    assert "reaching across the ±5% margin" in result.describe("gevent-joinall")


def test_a_clear_difference_past_the_margin_is_different():
    result = speedup(processes_of(1.10, 0.005, 10, seed=15), processes_of(1.0, 0.005, 10, seed=16), 6)
    assert result.low > 1.05
    assert result.verdict is Verdict.DIFFERENT
    assert result.describe("threads").startswith("1.10x faster than threads (99.2% CI")


def test_an_interval_that_excludes_1_but_reaches_inside_the_margin_is_undetermined():
    """Significant, but whether it matters is not resolved: the flip issue 26 is about."""
    result = Speedup(1.06, 1.02, 1.10, processes=10, margin=0.05)
    assert result.significant
    assert result.verdict is Verdict.UNDETERMINED


def test_the_verdict_reads_the_interval_against_the_margin_at_its_edges():
    assert Speedup(1.0, 1 / 1.05, 1.05, processes=5).verdict is Verdict.EQUIVALENT
    assert Speedup(0.8, 0.75, 1 / 1.051, processes=5).verdict is Verdict.DIFFERENT
    assert Speedup(1.3, 1.2, 1.4, processes=5, margin=0.25).verdict is Verdict.UNDETERMINED
    assert Speedup(1.3, math.nan, math.nan).verdict is Verdict.NOT_RANKED


def test_a_margin_must_be_positive():
    with pytest.raises(ValueError, match="margin must be > 0"):
        speedup([1.0, 1.1, 0.9], [1.0, 1.1, 0.9], margin=0)


def test_the_margins_a_run_recorded_are_the_ones_it_is_read_with():
    assert Margins.of([{}]) == Margins(0.05, 0.10, 0.25), "runs saved before the margins: the defaults"
    recorded = {"equivalence_margins": {"time": 0.03, "memory": 0.2, "cpu": 0.4}}
    assert Margins.of([{}, recorded]) == Margins(0.03, 0.2, 0.4)
    assert Margins(0.03, 0.2, 0.4).describe() == "±3% in time, ±20% in memory, ±40% in CPU"


def test_slower_is_said_as_slower():
    result = speedup([[1.0, 1.01], [0.99, 1.0], [1.0, 1.02]], [[2.0, 2.02], [1.98, 2.0], [2.01, 2.0]])
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
    assert grouped.verdict is Verdict.UNDETERMINED, "and too wide to call the two the same"


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
    # Three rounds of one process a side resolve nothing; identical work is never "different".
    assert done.stdout.startswith("threads-twin vs threads: 1.00x against threads, not resolved by this run")
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


@pytest.mark.parametrize(
    ("typed", "margins"),
    [
        ("time=5%,memory=10%,cpu=25%", Margins(0.05, 0.10, 0.25)),
        ("cpu=40%", Margins(cpu=0.40)),
        ("3%", Margins(0.03, 0.03, 0.03)),
    ],
)
def test_the_margin_option_takes_parts_or_one_percentage(typed, margins):
    from bench.options import margins as parse

    assert parse(typed) == margins


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("tim=5%", "expected time/memory/cpu=PERCENT parts"),
        ("time=5", "a margin is a percentage such as 5%"),
        ("time=0%", "above 0% and below 100%"),
        ("time=5%,time=6%", "time is given twice"),
        (",", "expected a margin such as"),
    ],
)
def test_a_bad_margin_is_refused_with_its_reason(typed, message):
    import argparse

    from bench.options import margins as parse

    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse(typed)


def test_the_spread_script_reads_the_aa_twins_from_a_saved_run(capsys):
    import re

    from bench.analysis.spread import main
    from servers.process import PROJECT_ROOT

    assert main(["--aa", str(PROJECT_ROOT / "results/runs/aa.json")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"A/A quick: \d+ x \d+ ms, C=10, time: twin / original \d\.\d{3} ", out), out
    assert "between processes, CPU:" in out
    with pytest.raises(SystemExit):  # one run is not a repetition
        main(["--repeated", str(PROJECT_ROOT / "results/baseline/baseline.json")])


def test_one_process_a_side_is_never_resolved():
    """Five tight rounds in one process each: the interval sees no between-process noise, so
    however far apart the rows are, the verdict is undetermined (it says why in its interval)."""
    from bench.analysis.verdicts import Verdict, speedup

    s = speedup([[1.0, 1.01, 0.99, 1.0, 1.02]], [[0.5, 0.51, 0.49, 0.5, 0.52]])
    assert s.processes == 1 and s.verdict is Verdict.UNDETERMINED


def _plain_bootstrap(reference, candidate):
    """The bootstrap as first written, in plain Python: the reference the fast one must equal."""
    rng = random.Random(verdicts.SEED)

    def resample(groups):
        drawn = rng.choices(groups, k=len(groups))
        return [value for group in drawn for value in rng.choices(group, k=len(group))]

    return [
        math.log(statistics.median(resample(reference)) / statistics.median(resample(candidate)))
        for _ in range(verdicts.BOOTSTRAP_RESAMPLES)
    ]


@pytest.mark.parametrize(
    "shape", ["one process a side", "one round a process", "equal groups", "unequal groups", "ties"]
)
def test_the_fast_bootstrap_draws_what_the_plain_one_drew(shape):
    """numpy replays Python's Mersenne Twister stream: every resample, not just the interval."""
    rng = random.Random(shape)
    sizes = {
        "one process a side": ([7], [5]),
        "one round a process": ([1] * 20, [1] * 20),  # the seed scenario's and the A/A runs' shape
        "equal groups": ([4] * 5, [4] * 5),
        "unequal groups": ([1, 3, 2, 6], [5, 1, 1]),
        "ties": ([3] * 4, [2] * 6),
    }[shape]
    reference, candidate = (
        [[round(rng.uniform(0.9, 1.3), 1 if shape == "ties" else 6) for _ in range(n)] for n in side]
        for side in sizes
    )
    assert verdicts._bootstrap_log_ratios(reference, candidate) == _plain_bootstrap(reference, candidate)
