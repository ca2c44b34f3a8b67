"""Clean ends: Ctrl-C, a killed parent, a dead server, a stuck round, and results never half-written."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from pytest_benchmark.storage.file import FileStorage
from shared_machine import assert_valid_or_the_instruments_limit

from bench.analysis.results import UNMEASURED_KEY
from bench.clients import CLIENTS
from bench.harness import atomic_results
from bench.harness.atomic_results import write_atomically
from bench.harness.worker_process import WorkerError, WorkerProcess
from bench.strategies import STRATEGIES
from bench.workload import Workload, fault_query
from servers.process import PROJECT_ROOT

# Only a guard against hanging the test session; every wait below normally ends in seconds.
HANG_GUARD_S = 60


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every live, non-zombie process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[0] != "Z":
            table[int(entry.name)] = (int(stat[1]), cmdline)
    return table


def descendants(root: int) -> dict[int, str]:
    table = process_table()
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmdline) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = cmdline
                frontier.append(pid)
    return found


def wait_until(predicate, timeout_s: float = HANG_GUARD_S, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s")


def alive(pids) -> set[int]:
    return set(pids) & set(process_table())


def has_worker(family: dict[int, str]) -> bool:
    return any(
        "bench.harness.worker" in cmd or "bench.harness.gevent_worker" in cmd for cmd in family.values()
    )


def running(process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"exited early with {process.returncode}: {process.stdout.read()[-3000:]}")
    return True


@contextmanager
def bench_run(tmp_path, *options):
    """``pytest bench/`` in its own process group; killed at the end if the test left it running."""
    run = start_bench(tmp_path, *options)
    try:
        yield run
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()


def start_bench(tmp_path, *options) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench/",
            "-p",
            "no:cacheprovider",
            f"--benchmark-storage=file://{tmp_path}",
            "--bench-processes=1",  # one worker per row: these tests are about stopping, not statistics
            "--bench-scenario=quick",  # the workload each test shapes with --bench-requests and -delay-ms
            *options,
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C would see it
        # A shell that backgrounds the test run ignores SIGINT, and children inherit that;
        # a terminal's pytest would have Python's default KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_ctrl_c_during_a_run_stops_it_and_leaves_no_process(tmp_path):
    with bench_run(
        tmp_path,
        "--bench-strategies=threads",
        "--bench-requests=5",
        "--bench-delay-ms=20000",
        "--bench-rounds=1",
    ) as run:
        children = wait_until(lambda: running(run) and (d := descendants(run.pid)) and has_worker(d) and d)
        os.killpg(run.pid, signal.SIGINT)
        output, _ = run.communicate(timeout=HANG_GUARD_S)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output[-2000:]
    assert wait_until(lambda: not alive(children), timeout_s=10) is True, f"left behind: {alive(children)}"
    assert not list(tmp_path.rglob("*.json")), "an interrupted run must not save a partial result"


def test_a_dead_server_fails_the_rows_and_the_run_ends(tmp_path):
    with bench_run(
        tmp_path, "--bench-strategies=gevent-pool,threads", "--bench-requests=5", "--bench-delay-ms=3000"
    ) as run:
        family = wait_until(lambda: running(run) and (d := descendants(run.pid)) and has_worker(d) and d)
        server = next(pid for pid, cmd in family.items() if "servers.delay" in cmd)
        os.kill(server, signal.SIGKILL)
        output, _ = run.communicate(timeout=HANG_GUARD_S)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "2 failed" in output, output[-3000:]
    assert "the delay server exited (status -9) during the run" in output


def test_workers_and_server_die_with_a_killed_parent(tmp_path):
    """SIGKILL gives the parent no chance to clean up: PR_SET_PDEATHSIG does it."""
    script = (
        "import sys, time\n"
        "from servers.process import running_delay_server\n"
        "from bench.clients import CLIENTS\n"
        "from bench.strategies import STRATEGIES\n"
        "from bench.harness.worker_process import WorkerProcess\n"
        "from bench.workload import Workload\n"
        "with running_delay_server() as server:\n"
        "    with WorkerProcess(STRATEGIES['gevent-joinall'], CLIENTS['requests'], Workload(server.base_url, 1, 0, 1)):\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout.readline().strip() == "ready"
            children = descendants(parent.pid)
            assert any("servers.delay" in c for c in children.values())
            assert any("bench.harness.gevent_worker" in c for c in children.values())
        finally:
            parent.kill()
    assert wait_until(lambda: not alive(children), timeout_s=10) is True


def test_a_round_past_its_deadline_is_killed_with_a_clear_error(delay_server, monkeypatch):
    workload = Workload(delay_server.base_url, 2, 0, 2, timeout_s=30, fault_query=fault_query(stall=True))
    monkeypatch.setattr(WorkerProcess, "round_deadline_s", lambda self: 1.0)
    with WorkerProcess(STRATEGIES["threads"], CLIENTS["requests"], workload) as worker:
        with pytest.raises(WorkerError, match="threads worker gave no answer before its deadline; killed it"):
            worker.run_round()
        assert wait_until(lambda: not alive([worker.pid]), timeout_s=10) is True


def test_a_worker_killed_between_commands_fails_the_next_one_and_leaves_nothing_open(delay_server):
    # The command meets a closed pipe and stays in stdin's buffer; closing stdin flushes it again.
    # Before the fix that second BrokenPipeError escaped the row, and stdout was never closed.
    workload = Workload(delay_server.base_url, 2, 0, 2)
    with WorkerProcess(STRATEGIES["threads"], CLIENTS["requests"], workload) as worker:
        worker.warm_up()
        os.kill(worker.pid, signal.SIGKILL)
        # Until every thread of it has exited (its pipes closed with the last one), left unreaped:
        # its main thread shows as a zombie while the others still exit and hold its stdin open,
        # and a command written then met an open pipe (2 runs of 4 failed "mid-conversation").
        wait_until(
            lambda: os.waitid(os.P_PID, worker.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG), timeout_s=10
        )
        with pytest.raises(WorkerError, match=r"threads worker exited \(status -9\) before 'round'"):
            worker.run_round()
    # Closed without a ResourceWarning for stdout: the suite's filterwarnings = error fails on one.


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "run.json"
    write_atomically(target, json.dumps({"v": 1}).encode())

    class Interrupted(BaseException):
        pass

    class ExplodingBytes(bytes):
        pass

    original_fsync = os.fsync

    def interrupt(fd):
        raise Interrupted

    os.fsync = interrupt
    try:
        with pytest.raises(Interrupted):
            write_atomically(target, ExplodingBytes(b'{"v": 2, "truncated'))
    finally:
        os.fsync = original_fsync
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"], "no temporary file left behind"


def test_a_numbered_run_is_never_replaced(tmp_path, monkeypatch):
    """As upstream's FileStorage.save asserts: another run that took the number first is kept."""
    storage = FileStorage(tmp_path, logger=None)
    monkeypatch.setattr(FileStorage, "_next_num", "0001")  # as if a parallel run had just taken it
    taken = storage.get("0001_abc.json")
    taken.write_text('{"the": "first run"}')
    with pytest.raises(FileExistsError):
        atomic_results._storage_save(storage, {"the": "second run"}, "abc")  # FileStorage.save in bench/
    assert json.loads(taken.read_text()) == {"the": "first run"}
    assert [p.name for p in taken.parent.iterdir()] == ["0001_abc.json"], "no temporary file left behind"
    write_atomically(tmp_path / "free.json", b"{}", overwrite=False)
    assert (tmp_path / "free.json").read_bytes() == b"{}"


def test_atomic_write_gives_a_shareable_file(tmp_path):
    target = tmp_path / "run.json"
    write_atomically(target, b"{}")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_ctrl_c_after_a_finished_row_saves_nothing(tmp_path):
    """One row done, the next interrupted: a partial run must not pass for a whole one."""
    with bench_run(
        tmp_path,
        "--bench-strategies=threadpool,sequential",
        "--bench-requests=2",
        "--bench-concurrency=2",
        "--bench-delay-ms=1000",
        "--bench-rounds=1",
    ) as run:
        # The sequential row's worker, by its module: a child forked but not yet exec'd shows the
        # parent's command line, which names "sequential" too (a git call of pytest-benchmark's
        # start-up was taken for the worker, and the Ctrl-C came before pytest could handle it).
        wait_until(
            lambda: (
                running(run)
                and any("bench.harness.worker sequential" in c for c in descendants(run.pid).values())
            )
        )
        os.killpg(run.pid, signal.SIGINT)
        output, _ = run.communicate(timeout=HANG_GUARD_S)
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output[-2000:]
    assert not list(tmp_path.rglob("*.json")), output[-2000:]


def threads_worker_in_a_round(root: int) -> int | None:
    for pid, cmd in descendants(root).items():
        if "bench.harness.worker threads" in cmd:
            try:
                if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[17]) > 1:
                    return pid
            except (OSError, IndexError, ValueError):
                return None
    return None


def test_a_worker_killed_mid_run_fails_only_its_row(tmp_path):
    with bench_run(
        tmp_path,
        "--bench-strategies=threads,gevent-pool",
        "--bench-requests=3",
        "--bench-delay-ms=1500",
        "--bench-rounds=1",
        f"--benchmark-json={tmp_path / 'run.json'}",
    ) as run:
        # Mid-round: the threads worker has started its request threads.
        worker = wait_until(lambda: running(run) and threads_worker_in_a_round(run.pid))
        os.kill(worker, signal.SIGKILL)
        output, _ = run.communicate(timeout=HANG_GUARD_S)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, output[-3000:]
    assert "threads[requests]: INVALID: " in output, output[-6000:]
    assert "threads worker exited (status -9)" in output, output[-6000:]
    # The other row is untouched: all its requests answered, and VALID unless this loaded
    # machine made the server late (then "2 failed", the instrument's verdict, not this bug's).
    survivor = next(
        bench["extra_info"]
        for bench in json.loads((tmp_path / "run.json").read_text())["benchmarks"]
        if bench["extra_info"]["strategy"] == "gevent-pool"
    )
    assert (survivor["ok"], survivor["errors"]) == (3, 0), output[-3000:]
    assert_valid_or_the_instruments_limit(survivor)
    assert ("1 failed, 1 passed" if survivor["valid"] else "2 failed") in output, output[-3000:]
    assert "gevent-pool" in output.split("memory, CPU and latency per round")[1]  # the tables still print
    # Saved all the same (issue 19, item 1): INVALID, with its reason and null timings, and the
    # round cut short never handed to pytest-benchmark as a time.
    document = json.loads(next(tmp_path.rglob("*.json")).read_text())
    [unmeasured] = document[UNMEASURED_KEY]
    assert unmeasured["extra_info"]["strategy"] == "threads" and not unmeasured["extra_info"]["valid"]
    assert "threads worker exited (status -9)" in unmeasured["extra_info"]["invalid_reason"]
    assert unmeasured["stats"]["median"] is None and unmeasured["stats"]["data"] == []
    assert "threads" not in {b["extra_info"]["strategy"] for b in document["benchmarks"]}
