"""The delay server: endpoints, bad input, the ready line, concurrency and shutdown."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from servers.app import MAX_BODY_BYTES, BadRequest, parse_delay_query
from servers.process import PROJECT_ROOT, READY_PREFIX, ServerStartError, running_delay_server


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_delay_answers_with_the_asked_body(delay_server):
    status, body = get(delay_server.url_for("/delay?ms=5&bytes=1234"))
    assert (status, len(body)) == (200, 1234)


def test_delay_defaults_to_no_wait_and_empty_body(delay_server):
    assert get(delay_server.url_for("/delay")) == (200, b"")


def test_largest_body_is_served(delay_server):
    status, body = get(delay_server.url_for(f"/delay?bytes={MAX_BODY_BYTES}"))
    assert (status, len(body)) == (200, MAX_BODY_BYTES)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("ms=-1", "ms must be a non-negative integer, got '-1'"),
        ("ms=abc", "ms must be a non-negative integer, got 'abc'"),
        ("ms=1.5", "ms must be a non-negative integer, got '1.5'"),
        ("ms=", "ms must be a non-negative integer, got ''"),
        ("ms=60001", "ms must be <= 60000, got 60001"),
        ("ms=99999999999999999999", "ms must be a non-negative integer, got '99999999999999999999'"),
        (f"bytes={MAX_BODY_BYTES + 1}", f"bytes must be <= {MAX_BODY_BYTES}, got {MAX_BODY_BYTES + 1}"),
        ("ms=1&ms=2", "ms given 2 times"),
        ("sleep=5", "unknown parameter 'sleep'; known: ms, bytes, fail, drop, stall, gather"),
        ("fail=1.5", "fail must be a fraction between 0 and 1, got '1.5'"),
        ("fail=-0.1", "fail must be a fraction between 0 and 1, got '-0.1'"),
        ("drop=half", "drop must be a fraction between 0 and 1, got 'half'"),
        ("stall=2", "stall must be <= 1, got 2"),
        ("stall=yes", "stall must be a non-negative integer, got 'yes'"),
    ],
)
def test_bad_delay_query_gets_400_with_one_line_reason(delay_server, query, reason):
    status, body = get(delay_server.url_for(f"/delay?{query}"))
    assert status == 400
    assert body.decode() == reason + "\n"


def test_unknown_path_gets_404_and_the_server_keeps_serving(delay_server):
    status, body = get(delay_server.url_for("/nowhere"))
    assert status == 404
    assert body.decode().count("\n") == 1
    assert get(delay_server.url_for("/delay?ms=0"))[0] == 200


def test_parse_delay_query_accepts_the_limits():
    from multidict import MultiDict

    assert parse_delay_query(MultiDict(ms="60000", bytes=str(MAX_BODY_BYTES))) == {
        "ms": 60000,
        "bytes": MAX_BODY_BYTES,
        "fail": 0.0,
        "drop": 0.0,
        "stall": 0,
        "gather": 0,
    }
    assert parse_delay_query(MultiDict(fail="1", drop="0.25", stall="1"))["drop"] == 0.25
    with pytest.raises(BadRequest):
        parse_delay_query(MultiDict(ms="+5"))


def test_stats_reports_counts_lateness_and_tcp_nodelay(delay_server):
    delay_server.reset_stats()
    for _ in range(3):
        get(delay_server.url_for("/delay?ms=20"))
    stats = delay_server.stats()
    assert stats["served"] == 3
    assert stats["in_flight"] == 0
    assert stats["max_in_flight"] == 1
    assert stats["lateness_ms"]["samples"] == 3
    assert 0 <= stats["lateness_ms"]["p50"] <= stats["lateness_ms"]["p99"] <= stats["lateness_ms"]["max"]
    # Nagle off on the accepted socket, or keep-alive clients stall ~40 ms a request.
    assert stats["tcp_nodelay"] is True


def test_stats_reset_needs_post(delay_server):
    assert get(delay_server.url_for("/stats/reset"))[0] == 405


def test_serves_delayed_requests_concurrently(delay_server):
    """100 requests of 1 s at once: concurrent takes ~1 s, a serialized server 100 s.

    1 s rather than less, so that on a loaded machine the last of the 100 threads still
    starts before the first request ends (max_in_flight counts them all at once)."""
    delay_server.reset_stats()
    requests, delay_s = 100, 1.0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=requests) as pool:
        statuses = list(pool.map(lambda _: get(delay_server.url_for("/delay?ms=1000"))[0], range(requests)))
    elapsed = time.perf_counter() - started
    assert statuses == [200] * requests
    assert delay_server.stats()["max_in_flight"] == requests
    # A generous ratio, not a timing threshold: serialized would be 100x the delay.
    assert elapsed < 10 * delay_s, f"100 concurrent 1 s requests took {elapsed:.1f} s"


def test_ready_line_is_the_only_output_and_stop_exits_0():
    """Started by hand: after serving requests (no per-request logging) and a SIGTERM, stdout
    held the ready line alone and stderr nothing."""
    process = subprocess.Popen(
        [sys.executable, "-m", "servers.delay", "--port", "0"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = process.stdout.readline()
        assert ready.startswith(READY_PREFIX), ready + process.stderr.read()
        base_url = ready[len(READY_PREFIX) :].strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert [get(base_url + path)[0] for path in ("/delay?ms=1", "/stats", "/nothing-here")] == [
            200,
            200,
            404,
        ]
        process.send_signal(signal.SIGTERM)
        rest, errors = process.communicate(timeout=10)  # the timeout is only a hang guard
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert (process.returncode, rest, errors) == (0, "", "")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_server_promptly_even_mid_delay(signum):
    with running_delay_server() as server, ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(get, server.url_for("/delay?ms=30000"), 30)
        deadline = time.monotonic() + 5
        while server.stats()["in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.process.send_signal(signum)
        assert server.process.wait(timeout=10) == 0  # the wait's timeout is only a hang guard
        assert server.process.stdout.read() == ""  # nothing after the ready line
        with pytest.raises(OSError):
            pending.result()


def test_start_fails_loudly_when_the_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            pytest.raises(ServerStartError, match=r"exited with status 1.*cannot listen"),
            running_delay_server(port=port),
        ):
            pass


def test_start_fails_loudly_without_a_ready_line_before_the_deadline(monkeypatch):
    """A server that never prints its ready line: the wait ends at its deadline with a clear error."""
    fake = [sys.executable, "-c", "import time; time.sleep(30)"]
    real_popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda _args, **kw: real_popen(fake, **kw))
    with (
        pytest.raises(ServerStartError, match="no ready line within"),
        running_delay_server(startup_timeout_s=0.5),
    ):
        pass


def test_command_line_rejects_a_bad_port():
    result = subprocess.run(
        [sys.executable, "-m", "servers.delay", "--port", "70000"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--port must be in 0..65535" in result.stderr


def test_stats_is_json(delay_server):
    status, body = get(delay_server.url_for("/stats"))
    assert status == 200
    assert {"served", "in_flight", "max_in_flight", "lateness_ms"} <= set(json.loads(body))
