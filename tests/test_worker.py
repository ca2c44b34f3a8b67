"""The worker processes: real OS threads where promised, gevent patched where promised, caps honoured."""

import json
import subprocess
import sys

import pytest

from bench.clients import BLOCKING, CLIENTS, clients_for
from bench.strategies import STRATEGIES, Fanout
from bench.worker_process import PROJECT_ROOT, WorkerError, WorkerProcess
from bench.workload import Workload

REQUESTS = 12
CONCURRENCY = 4
# Long enough that every request of a wave is open at the same time, on a loaded machine too.
DELAY_MS = 500


@pytest.fixture
def overlapping_workload(delay_server) -> Workload:
    return Workload(delay_server.base_url, requests=REQUESTS, delay_ms=DELAY_MS, concurrency=CONCURRENCY)


@pytest.mark.parametrize("strategy", STRATEGIES.values(), ids=STRATEGIES.keys())
def test_isolation_threads_and_in_flight_caps(strategy, overlapping_workload, delay_server):
    """Threads are OS threads and unpatched; gevent is patched and single-threaded; caps hold.

    The server's max_in_flight is the referee for concurrency: 1 for sequential, C for the
    pools (a pool that leaked past C, or a connection pool that serialized, would show here),
    N for one task per request.
    """
    with WorkerProcess(strategy, clients_for(strategy)[0], overlapping_workload) as worker:
        delay_server.reset_stats()
        result = worker.measure_round()
        server_in_flight = delay_server.stats()["max_in_flight"]

    assert (result["ok"], result["errors"]) == (REQUESTS, 0)
    assert result["monkey_patched"] is strategy.gevent
    in_flight = strategy.fanout.max_in_flight(REQUESTS, CONCURRENCY)
    assert server_in_flight == in_flight
    threads = result["os_threads_peak"]
    if strategy.processes:
        # C processes of one thread each, and the worker's: main, the pool's manager and its queue feeder.
        assert (result["processes_peak"], threads) == (CONCURRENCY + 1, CONCURRENCY + 3)
        return
    assert result["processes_peak"] == 1
    if strategy.loop == "uvloop":
        # aiohttp connects with loop.sock_connect, which uvloop resolves (even 127.0.0.1) in
        # libuv's thread pool: UV_THREADPOOL_SIZE, 4 by default (uvloop/loop.pyx, sock_connect).
        assert threads == 1 + 4
    elif strategy.gevent or strategy.api != BLOCKING or strategy.fanout is Fanout.ONE:
        assert threads == 1, (
            "greenlets, asyncio and trio tasks and sequential code need no OS thread but the main one"
        )
    else:
        assert threads == in_flight + 1, "one OS thread per request in flight"


def test_worker_refuses_a_gevent_strategy_without_the_patch(delay_server):
    workload = Workload(delay_server.base_url, requests=1, delay_ms=0, concurrency=1)
    result = subprocess.run(
        [sys.executable, "-m", "bench.worker", "gevent-joinall", "requests", json.dumps(workload.as_dict())],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "fatal": "gevent-joinall needs monkey_patched=True (run it with python -m bench.gevent_worker)"
    }


def test_harness_overhead_is_recorded(delay_server):
    workload = Workload(delay_server.base_url, requests=1, delay_ms=0, concurrency=1)
    with WorkerProcess(STRATEGIES["sequential"], CLIENTS["requests"], workload) as worker:
        result = worker.measure_round()
    assert result["round_trip_seconds"] >= result["wall_seconds"] > 0
    assert result["cpu_seconds"] > 0


def test_a_worker_killed_mid_round_fails_with_a_clear_error(delay_server):
    workload = Workload(delay_server.base_url, requests=1, delay_ms=10_000, concurrency=1)
    with WorkerProcess(STRATEGIES["sequential"], CLIENTS["requests"], workload) as worker:
        import os
        import signal
        import threading

        threading.Timer(0.5, os.kill, (worker.pid, signal.SIGKILL)).start()
        with pytest.raises(WorkerError, match=r"sequential worker exited \(status -9\) mid-conversation"):
            worker.run_round()
