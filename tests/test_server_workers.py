"""The delay server's worker processes: one exact /stats over all of them, lateness from arrival,
and a lifecycle where no worker outlives the server or hangs it."""

import http.client
import math
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.harness import kernel
from servers.percentile import percentile
from servers.process import running_delay_server
from servers.stats import (
    LATENESS_BUCKETS,
    LATENESS_RATIO,
    SERVED,
    SharedStats,
    bucket_midpoint_ms,
    lateness_bucket,
)
from tests.test_server import get
from tests.test_server_faults import host_port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(condition, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the merged view, in-process ----------------------------------------------------------


def test_buckets_are_log_spaced_at_two_percent():
    assert lateness_bucket(0.0) == lateness_bucket(0.009) == 0
    for value_ms in (0.01, 0.37, 1.0, 99.9, 2500.0, 59_000.0):
        midpoint = bucket_midpoint_ms(lateness_bucket(value_ms))
        assert abs(midpoint - value_ms) / value_ms <= math.sqrt(LATENESS_RATIO) - 1 + 1e-9
    assert lateness_bucket(10**9) == LATENESS_BUCKETS - 1


def test_percentiles_come_from_the_merged_histograms_of_all_workers():
    """Two workers with very different lateness: the merged p50/p99 are those of all samples
    together (to bucket resolution), not an average of each worker's percentiles."""
    stats = SharedStats(workers=2)
    fast = [0.1 + i * 0.001 for i in range(900)]
    slow = [200.0 + i for i in range(100)]
    for index, values in ((0, fast), (1, slow)):
        stats.attach(index)
        for value in values:
            stats.enter()
            stats.finish(SERVED, value)
    figures = stats.as_dict()
    everything = sorted(fast + slow)
    lateness = figures["lateness_ms"]
    assert lateness["samples"] == 1000
    for key, pct in (("p50", 50), ("p99", 99)):
        assert lateness[key] == pytest.approx(percentile(everything, pct), rel=0.011)
    assert lateness["max"] == max(everything)
    assert figures["served"] == 1000
    assert figures["served_per_worker"] == [900, 100]


def test_max_in_flight_is_the_peak_of_the_total_not_a_sum_of_peaks():
    stats = SharedStats(workers=2)
    stats.attach(0)
    for _ in range(3):
        stats.enter()
    for _ in range(3):
        stats.leave()
    stats.attach(1)
    for _ in range(3):
        stats.enter()  # worker 1 peaks at 3 after worker 0's peak of 3 has passed
    assert (stats.as_dict()["in_flight"], stats.as_dict()["max_in_flight"]) == (3, 3)
    stats.reset()  # keeps what is in flight, and the peak restarts from it
    assert (stats.as_dict()["in_flight"], stats.as_dict()["max_in_flight"]) == (3, 3)
    stats.leave()
    assert stats.as_dict()["max_in_flight"] == 3


# -- a real server with two workers -------------------------------------------------------


@pytest.fixture(scope="module")
def two_workers():
    with running_delay_server(extra_args=("--workers", "2")) as server:
        yield server


def test_stats_are_exact_totals_under_concurrent_load(two_workers):
    server = two_workers
    server.reset_stats()
    requests = 200
    with ThreadPoolExecutor(max_workers=requests) as pool:
        pending = [pool.submit(get, server.url_for("/delay?ms=2000"), 30) for _ in range(requests)]
        # Mid-load, every request is in flight at once, whichever worker holds it.
        assert wait_until(lambda: server.stats()["in_flight"] == requests), server.stats()
        statuses = [future.result()[0] for future in pending]
    assert statuses == [200] * requests
    stats = server.stats()
    assert (stats["served"], stats["in_flight"], stats["max_in_flight"]) == (requests, 0, requests)
    assert stats["lateness_ms"]["samples"] == requests
    assert sum(stats["served_per_worker"]) == requests
    # The kernel spread the connections: all on one worker is a 2**-199 event.
    assert all(served > 0 for served in stats["served_per_worker"]), stats["served_per_worker"]
    assert stats["workers"] == 2 and len(stats["worker_pids"]) == 2


def test_max_in_flight_over_two_waves_is_one_wave(two_workers):
    """Two waves of 100 one after the other: the total peaks at 100. A sum of per-worker
    peaks would exceed 100 unless both waves split between the workers identically."""
    server = two_workers
    server.reset_stats()
    for _wave in range(2):
        with ThreadPoolExecutor(max_workers=100) as pool:
            pending = [pool.submit(get, server.url_for("/delay?ms=1000"), 30) for _ in range(100)]
            assert wait_until(lambda: server.stats()["in_flight"] == 100)
            assert [future.result()[0] for future in pending] == [200] * 100
    stats = server.stats()
    assert (stats["served"], stats["max_in_flight"]) == (200, 100)


def test_any_worker_answers_stats_with_the_same_view(two_workers):
    server = two_workers
    server.reset_stats()
    get(server.url_for("/delay?ms=1"))
    answers = [server.stats() for _ in range(40)]  # a new connection each: both workers answer
    assert {answer["answered_by_worker"] for answer in answers} == {0, 1}
    assert {answer["served"] for answer in answers} == {1}


def test_reset_clears_every_worker(two_workers):
    server = two_workers
    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(lambda _: get(server.url_for("/delay?ms=1")), range(20)))
    namespace_before = kernel.listen_overflows()
    server.reset_stats()
    stats = server.stats()
    namespace_since = kernel.listen_overflows() - namespace_before
    assert stats["served"] == 0 and stats["served_per_worker"] == [0, 0]
    assert stats["lateness_ms"]["samples"] == 0
    assert stats["cpu_seconds"] < 5
    # Overflows counted from the reset: at most what the whole namespace saw meanwhile.
    assert 0 <= stats["listen_overflows"] <= namespace_since


# -- lateness counts the wait before the handler ------------------------------------------


def test_lateness_counts_the_time_requests_waited_for_a_stopped_worker():
    """SIGSTOP the only worker, send requests (new connections, and one on a kept-alive
    connection), SIGCONT after 0.6 s: their lateness includes that wait, though the handler's
    own timer was on time."""
    with running_delay_server(extra_args=("--workers", "1")) as server:
        (worker,) = server.stats()["worker_pids"]
        kept_alive = http.client.HTTPConnection(*host_port(server), timeout=10)
        kept_alive.request("GET", "/delay?ms=0")
        kept_alive.getresponse().read()
        server.reset_stats()
        with ThreadPoolExecutor(max_workers=3) as pool:
            os.kill(worker, signal.SIGSTOP)
            try:
                pending = [pool.submit(get, server.url_for("/delay?ms=10"), 10) for _ in range(3)]
                kept_alive.request("GET", "/delay?ms=10")
                time.sleep(0.6)
            finally:
                os.kill(worker, signal.SIGCONT)
            assert kept_alive.getresponse().status == 200
            assert [future.result()[0] for future in pending] == [200] * 3
        kept_alive.close()
        lateness = server.stats()["lateness_ms"]
    assert lateness["samples"] == 4
    # Every one of the four waited >= 600 ms; allow a kernel tick and the bucket's 1%.
    assert lateness["p50"] >= 550 and lateness["max"] >= 550, lateness


# -- lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_worker_and_exits_0(signum):
    with running_delay_server(extra_args=("--workers", "3")) as server:
        pids = server.stats()["worker_pids"]
        assert all(alive(pid) for pid in pids)
        server.process.send_signal(signum)
        assert server.process.wait(timeout=10) == 0
    assert not any(alive(pid) for pid in pids)


def test_a_killed_worker_stops_the_server_with_a_non_zero_status():
    with running_delay_server(extra_args=("--workers", "2")) as server, ThreadPoolExecutor(1) as pool:
        pids = server.stats()["worker_pids"]
        pending = pool.submit(get, server.url_for("/delay?ms=30000"), 30)
        assert wait_until(lambda: server.stats()["in_flight"] == 1)
        os.kill(pids[0], signal.SIGKILL)
        assert server.process.wait(timeout=10) == 1
        assert wait_until(lambda: not any(alive(pid) for pid in pids))
        with pytest.raises(OSError):
            pending.result(timeout=10)  # the request's worker is gone, whichever it was


def test_workers_die_with_a_killed_parent():
    with running_delay_server(extra_args=("--workers", "2")) as server:
        pids = server.stats()["worker_pids"]
        server.process.kill()
        server.process.wait(timeout=10)
        assert wait_until(lambda: not any(alive(pid) for pid in pids))


def test_uvloop_workers_serve():
    with running_delay_server(extra_args=("--workers", "2", "--loop", "uvloop")) as server:
        assert get(server.url_for("/delay?ms=5&bytes=10")) == (200, b"x" * 10)
        stats = server.stats()
        assert stats["served"] == 1 and stats["tcp_nodelay"] is True
