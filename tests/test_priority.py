"""--bench-server-priority: the workers lower their own priority, the server's is raised where permitted."""

from __future__ import annotations

import errno
import os

from bench.clients import CLIENTS
from bench.harness import priority
from bench.harness.worker_process import WorkerProcess
from bench.strategies import STRATEGIES
from bench.workload import Workload
from servers.process import DelayServer, running_delay_server


def test_a_worker_lowers_its_own_priority_and_says_so():
    for mode, increment in ((priority.OFF, 0), (priority.NICE_WORKERS, priority.WORKER_NICE_INCREMENT)):
        workload = Workload(
            "http://127.0.0.1:1",
            requests=1,
            delay_ms=0,
            concurrency=1,
            worker_nice=priority.worker_nice_increment(mode),
        )
        with WorkerProcess(STRATEGIES["sequential"], CLIENTS["raw"], workload) as worker:
            assert worker.nice == min(19, os.nice(0) + increment), mode


def test_the_server_is_raised_where_permitted_and_every_thread_of_it():
    with running_delay_server() as server:
        untouched = priority.raise_server(priority.NICE_WORKERS, server)
        assert untouched["server_raised"] is False
        assert untouched["server_nice"] == [os.nice(0)] * (1 + len(server.worker_pids))
        applied = priority.raise_server(priority.RAISE_SERVER, server)
        if applied["server_raised"]:
            assert applied["server_nice"] == [priority.SERVER_NICE] * (1 + len(server.worker_pids))
        else:  # an unprivileged user: recorded as not applied, the server left as it was
            assert "not permitted" in applied["why"]
            assert applied["server_nice"] == untouched["server_nice"]


def test_without_the_privilege_the_server_is_left_alone_and_the_run_says_why(monkeypatch):
    def refuse(which, who, value):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "setpriority", refuse)
    with running_delay_server() as server:
        applied = priority.raise_server(priority.BOTH, server)
    assert applied["server_raised"] is False
    assert applied["why"].startswith("not permitted (Permission denied)")


def test_a_server_started_elsewhere_keeps_its_hosts_priority():
    applied = priority.raise_server(priority.BOTH, DelayServer("http://127.0.0.1:1", None))
    assert applied == {
        "mode": priority.BOTH,
        "server_raised": False,
        "why": "the server runs elsewhere: its host sets its priority",
    }
