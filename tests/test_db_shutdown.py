"""Clean ends with PostgreSQL: no cluster, folder or process left after Ctrl-C, a killed run, a
dead or frozen database (issue 18; the delay server's are in test_shutdown.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from test_shutdown import HANG_GUARD_S, alive, bench_run, descendants, has_worker, running, wait_until

from bench.clients import CLIENTS
from bench.harness.rounds import RoundRecorder
from bench.harness.worker_process import WorkerError, WorkerProcess
from bench.strategies import STRATEGIES
from bench.targets import postgres
from bench.targets.postgres_cluster import INSTALL_HINT
from bench.workload import Workload
from servers.process import PROJECT_ROOT

# Under CI=true a missing PostgreSQL is a failure (conftest.py's postgres_server, running_postgres).
pytestmark = pytest.mark.skipif(not postgres.available() and not postgres.required(), reason=INSTALL_HINT)


def cluster_folders(family: dict[int, str]) -> set[Path]:
    """The temporary folders of the clusters among these processes (postgres -D FOLDER/data)."""
    return {Path(m.group(1)) for cmd in family.values() if (m := re.search(r" -D (\S+)/data ", cmd))}


def has_postgres(family: dict[int, str]) -> bool:
    return bool(cluster_folders(family))


@contextmanager
def frozen(pids):
    """SIGSTOP every process of the cluster (a hung server: its kernel still accepts and acks).

    A process that ended since it was listed (a backend) needs no freezing; before, its
    ProcessLookupError left the ones already stopped stopped for good, orphaned when the
    cluster was torn down (found after a test run, four in state T)."""
    stopped = []
    try:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_the_cluster_and_its_folder_die_with_a_killed_parent():
    """SIGKILL gives the parent no chance to clean up: its keeper sees the pipe close and does."""
    script = (
        "import time\n"
        "from bench.targets.postgres import running_postgres\n"
        "with running_postgres(20) as server:\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(120)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout.readline().strip() == "ready"
            family = descendants(parent.pid)
            [folder] = cluster_folders(family)
            assert folder.is_dir()
        finally:
            parent.kill()
    assert wait_until(lambda: not alive(family), timeout_s=30) is True, f"left behind: {alive(family)}"
    assert not folder.exists()


def test_ctrl_c_during_a_db_run_removes_the_cluster(tmp_path):
    with bench_run(
        tmp_path, "--bench-scenario=db", "--bench-strategies=sequential", "--bench-rounds=1"
    ) as run:
        family = wait_until(
            lambda: running(run) and (d := descendants(run.pid)) and has_worker(d) and has_postgres(d) and d
        )
        [folder] = cluster_folders(family)
        os.killpg(run.pid, signal.SIGINT)
        output, _ = run.communicate(timeout=HANG_GUARD_S)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output[-2000:]
    assert wait_until(lambda: not alive(family), timeout_s=30) is True, f"left behind: {alive(family)}"
    assert not folder.exists()


def test_a_frozen_database_ends_the_round_by_its_deadline(postgres_server, monkeypatch):
    workload = Workload(postgres_server.base_url, 2, 100, 2, timeout_s=5)
    monkeypatch.setattr(WorkerProcess, "round_deadline_s", lambda self: 2.0)
    with WorkerProcess(STRATEGIES["threads"], CLIENTS["psycopg"], workload) as worker:
        with (
            frozen(descendants(postgres_server.process.pid)),
            pytest.raises(WorkerError, match="threads worker gave no answer before its deadline; killed it"),
        ):
            worker.run_round()
        assert wait_until(lambda: not alive([worker.pid]), timeout_s=10) is True


def test_a_frozen_database_between_rounds_fails_the_referees_read_by_its_deadline(
    postgres_server, monkeypatch
):
    """The referee's own queries have a deadline: a frozen database fails the round, never hangs it;
    and closing the referee ends its stuck query's thread before the connection is freed (a thread
    left inside libpq read the freed connection when the server resumed: a segfault, seen once)."""
    monkeypatch.setattr(postgres, "QUERY_DEADLINE_S", 0.5)
    referee = postgres_server.referee(100)
    try:
        with frozen(descendants(postgres_server.process.pid)):
            with pytest.raises(postgres.PostgresError, match=r"gave the referee no answer within 0.5 s"):
                referee.reset_stats()
            referee.close()
            assert not [t.name for t in threading.enumerate() if t.name.startswith("postgres-referee")]
    finally:
        referee.close()


def test_a_dead_database_fails_the_round_with_its_reason():
    """A killed postgres: its keeper exits, and the round recorder says the target is gone."""
    with postgres.running_postgres(20) as server:
        referee = server.referee(100)
        workload = Workload(server.base_url, 2, 100, 2, timeout_s=5)
        with WorkerProcess(STRATEGIES["threads"], CLIENTS["psycopg"], workload) as worker:
            recorder = RoundRecorder(worker, referee)
            [postmaster] = [pid for pid, cmd in descendants(server.process.pid).items() if " -D " in cmd]
            os.kill(postmaster, signal.SIGKILL)
            wait_until(lambda: server.exit_status() is not None, timeout_s=10)
            recorder.record_round()
        referee.close()
    [failed] = recorder.rounds
    assert "exited (status 1) during the run" in failed["round_failed"]
