"""Side by side: the same workload sent by each strategy, each in its own worker process.

pytest-benchmark times each round from the parent; the worker's own figures, the server's
and the kernel's go into extra_info. Setup, imports and the worker's start are untimed.
"""

import pytest

from bench.rounds import RoundRecorder
from bench.row_info import row_info
from bench.summary import row_label
from bench.worker_process import WorkerProcess
from bench.workload import Workload, fault_query

# One untimed round first: connections get opened and code paths warmed, for every strategy alike.
WARMUP_ROUNDS = 1


@pytest.fixture
def workload(shape, delay_server, bench_options, request) -> Workload:
    cpu = shape.kind == "cpu"
    return Workload(
        base_url=delay_server.base_url,
        requests=shape.requests,
        delay_ms=shape.delay_ms,
        concurrency=shape.concurrency,
        kind=shape.kind,
        cpu_iterations=request.getfixturevalue("cpu_iterations") if cpu else 0,
        timeout_s=bench_options.timeout_s,
        fault_query=fault_query(bench_options.fail_rate, bench_options.drop_rate),
    )


def test_side_by_side(benchmark, shape, strategy, client, workload, bench_options, delay_server):
    """Run R timed rounds of the workload; record memory, CPU, threads, latency and validity."""
    rounds = shape.rounds or bench_options.rounds
    estimate = (rounds + WARMUP_ROUNDS) * shape.estimated_round_seconds(strategy, client)
    label = row_label(strategy.name, client)
    if estimate > bench_options.max_seconds:
        pytest.skip(
            f"{label} on {shape.group}: estimated {estimate:.0f} s > --bench-max-seconds "
            f"{bench_options.max_seconds:.0f}"
        )
    benchmark.group = shape.group
    with WorkerProcess(strategy, client, workload) as worker:
        recorder = RoundRecorder(worker, delay_server if shape.kind == "io" else None)
        warmup, measured = recorder.run(benchmark, rounds=rounds, warmup_rounds=WARMUP_ROUNDS)
        timeline = None if recorder.failure else worker.details(timeline=True)["timeline"]
    info = row_info(
        strategy, client, workload, worker.monkey_patched, warmup, measured, scenario=shape.scenario
    )
    benchmark.extra_info.update(info, timeline=timeline)
    if not info["valid"]:
        pytest.fail(f"{label}: INVALID: {info['invalid_reason']}")
