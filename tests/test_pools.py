"""Pools timed alike (issue 19, item 3): every pool of workers starts in the untimed warm-up, none in a round."""

from pathlib import Path

import pytest

from bench.clients import clients_for
from bench.harness import process_tree
from bench.harness.worker_process import WorkerProcess
from bench.strategies import STRATEGIES, Fanout
from bench.workload import Workload

# Models whose pool holds workers (threads or processes) that take time to start.
WORKER_POOLS = [s for s in STRATEGIES.values() if s.pooled or s.fanout is Fanout.DEFAULT_EXECUTOR]


def pool_workers(pid: int) -> set[int]:
    """The worker's other threads and its child processes: whatever a pool started."""
    threads = {int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()} - {pid}
    return threads | set(process_tree.descendants(pid))


def test_every_pool_of_workers_is_registered_as_such():
    assert {s.name for s in WORKER_POOLS} == {"threadpool", "processpool", "asyncio-to-thread"}


@pytest.mark.parametrize("strategy", WORKER_POOLS, ids=[s.name for s in WORKER_POOLS])
def test_the_warm_up_starts_the_pool_and_every_round_reuses_it(strategy, delay_server):
    workload = Workload(delay_server.base_url, requests=4, delay_ms=50, concurrency=2)
    with WorkerProcess(strategy, clients_for(strategy)[0], workload) as worker:
        warm = worker.warm_up()
        started = pool_workers(worker.pid)
        for _ in range(2):
            result = worker.measure_round()
            assert started <= pool_workers(worker.pid), "a round shut the warm-up's pool down"
    assert started, "the warm-up left no pool running: the round would start its own"
    assert result["ok"] == 4
    assert warm["warmup_seconds"] > 0
