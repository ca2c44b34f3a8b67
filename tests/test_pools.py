"""Pools timed alike (issue 19, items 3 and 4): every pool of workers starts in the untimed warm-up,
none in a round, and no row's timed round carries a measurement the others' do not."""

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


def test_no_pss_is_read_during_a_timed_round(delay_server, monkeypatch):
    """smaps_rollup of C+1 processes costs CPU the pool being timed would lose (item 4)."""
    reads = []
    real = process_tree.pss_bytes
    monkeypatch.setattr(process_tree, "pss_bytes", lambda pid: reads.append(pid) or real(pid))
    workload = Workload(delay_server.base_url, requests=4, delay_ms=200, concurrency=2)
    with WorkerProcess(
        STRATEGIES["processpool"], clients_for(STRATEGIES["processpool"])[0], workload
    ) as worker:
        worker.warm_up()
        reads.clear()
        worker.run_round()
        assert reads == [], "the timed round read PSS"
        result = worker.details()
    assert len(reads) == 2 + 1, "after the round: the pool's processes and the worker"
    assert result["peak_rss_above_idle_bytes"] > 0
