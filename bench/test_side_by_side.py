"""Side by side: the same N delayed GETs sent by each strategy, each in its own worker process.

pytest-benchmark times each round from the parent (the worker's own figures and the
harness overhead go into extra_info); setup, imports and the worker's start are untimed.
"""

import pytest

from bench.row_info import row_info
from bench.worker_process import WorkerProcess

# One untimed round first: connections get opened and code paths warmed, for every strategy alike.
WARMUP_ROUNDS = 1


def test_io_bound(benchmark, strategy, workload, bench_options, delay_server):
    """Time N GETs of /delay?ms=D; record memory, CPU, threads and ok/errors per round."""
    benchmark.group = f"io: {workload.requests} x {workload.delay_ms} ms, C={workload.concurrency}"
    with WorkerProcess(strategy, workload) as worker:
        rounds = []
        benchmark.pedantic(
            lambda: rounds.append(worker.run_round()),
            rounds=bench_options.rounds,
            warmup_rounds=WARMUP_ROUNDS,
            iterations=1,
        )
    benchmark.extra_info.update(
        row_info(strategy, workload, worker.monkey_patched, rounds[0], rounds[WARMUP_ROUNDS:])
    )
    if not benchmark.extra_info["valid"]:
        pytest.fail(f"{strategy.name}: INVALID: {benchmark.extra_info['invalid_reason']}")
