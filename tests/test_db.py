"""PostgreSQL as a target: every driver under every model, counted by the database itself (issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.analysis.row_info import row_info, serialized_note
from bench.analysis.summary import row_label
from bench.clients import CLIENTS, clients_for
from bench.harness.rounds import RoundRecorder
from bench.harness.worker_process import WorkerError, WorkerProcess
from bench.options import BenchOptions
from bench.scenarios import SCENARIOS, database_in_flight
from bench.strategies import STRATEGIES
from bench.targets import POSTGRES, postgres
from bench.targets.postgres_cluster import (
    FOLDER_PREFIX,
    INSTALL_HINT,
    KEEPER_NOTE,
    free_port,
    is_dead_keepers,
    keeper_note,
    process_start_ticks,
    sweep_dead_keepers_folders,
)
from bench.workload import Workload
from servers.process import PROJECT_ROOT

# Under CI=true a missing PostgreSQL is a failure (conftest.py's postgres_server, running_postgres).
pytestmark = pytest.mark.skipif(not postgres.available() and not postgres.required(), reason=INSTALL_HINT)

PAIRS = [
    (strategy, client)
    for strategy in STRATEGIES.values()
    for client in clients_for(strategy, tuple(CLIENTS), target=POSTGRES)
]
# Where the patch does not reach the C driver, the greenlets' queries run one at a time.
TRAPS = {
    f"{strategy}[{client}]"
    for strategy in ("gevent-joinall", "gevent-pool")
    for client in ("psycopg2", "psycopg-imported-first")
}
# Long enough for the referee's samples (every 5 ms) to see every query sleeping at once.
N, DELAY_MS, C = 6, 150, 3


def label(pair) -> str:
    return row_label(pair[0].name, pair[1])


def one_round(server, strategy, client, workload) -> dict:
    referee = server.referee(workload.delay_ms)
    try:
        with WorkerProcess(strategy, client, workload, sample_interval_s=0.05) as worker:
            recorder = RoundRecorder(worker, referee)
            recorder.warm_up()
            recorder.record_round()
    finally:
        referee.close()
    [result] = recorder.rounds
    return result | {"warmups": recorder.warmups}


def test_the_matrix_covers_every_driver_and_leaves_out_what_cannot_run():
    labels = {label(pair) for pair in PAIRS}
    assert {client.name for _, client in PAIRS} == {c.name for c in CLIENTS.values() if c.target == POSTGRES}
    assert labels >= TRAPS
    assert {"asyncio-uvloop[asyncpg]", "trio-nursery[psycopg]", "gevent-pool[psycopg2-psycogreen]"} <= labels
    # asyncpg needs an asyncio loop; psycogreen and the late import are about gevent alone.
    assert not {"gevent-joinall[asyncpg]", "trio-nursery[asyncpg]", "threads[psycopg2-psycogreen]"} & labels
    assert not {"threads[psycopg-imported-first]", "asyncio-gather[pg8000]"} & labels


@pytest.mark.parametrize("pair", PAIRS, ids=label)
def test_every_pair_sends_exactly_n_queries_and_cooperates_unless_a_trap(postgres_server, pair):
    """The database counts the queries (pg_stat_statements) and the most sleeping at once (pg_stat_activity)."""
    strategy, client = pair
    workload = Workload(postgres_server.base_url, N, DELAY_MS, C, timeout_s=10)
    result = one_round(postgres_server, strategy, client, workload)
    assert (result["ok"], result["errors"], result.get("round_failed")) == (N, 0, None), result[
        "error_samples"
    ]
    assert result["warmups"][0]["ok"] == result["warmups"][0]["requests"]
    assert result["server_requests"] == N, "the database saw another count than the client sent"
    allowed = strategy.fanout.max_in_flight(N, C)
    expected = 1 if label(pair) in TRAPS else allowed
    assert result["server_max_in_flight"] == expected
    assert (serialized_note(result["server_max_in_flight"], allowed) is not None) == (label(pair) in TRAPS)


def test_serialized_note_names_what_the_target_saw():
    assert serialized_note(1, 40) == "serialized: 1 in flight of 40"
    assert serialized_note(1, 1) is None  # sequential is one at a time by design
    assert serialized_note(39, 40) is None
    assert serialized_note(None, 40) is None  # a failed round measured nothing


def test_an_unreachable_database_is_a_clear_error_not_a_hang():
    nobody_listens = f"postgresql://bench@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(postgres.PostgresError, match=f"no PostgreSQL answers at {nobody_listens}"):
        postgres.PostgresServer(nobody_listens).referee(100)
    workload = Workload(nobody_listens, 2, 0, 2, timeout_s=5)
    with (
        pytest.raises(WorkerError, match=r"threads could not set up its client: OperationalError: .*refused"),
        WorkerProcess(STRATEGIES["threads"], CLIENTS["psycopg"], workload),
    ):
        pass


def test_the_referee_reads_the_execute_steps_duration_from_the_log_not_parse_or_bind():
    log = (
        "LOG:  duration: 0.051 ms  parse <unnamed>: SELECT pg_sleep($1)\n"
        "LOG:  duration: 0.020 ms  bind <unnamed>: SELECT pg_sleep($1)\n"
        "LOG:  duration: 101.250 ms  execute <unnamed>: SELECT pg_sleep($1)\n"
        "LOG:  duration: 100.500 ms  statement: SELECT pg_sleep(0.1)\n"
        "LOG:  duration: 102.000 ms  execute __asyncpg_stmt_1__: SELECT pg_sleep($1)\n"
        "LOG:  duration: 0.300 ms  statement: SELECT pg_stat_statements_reset()\n"
    )
    assert [float(m.group(1)) for m in postgres.LOGGED_SLEEP.finditer(log)] == [101.25, 100.5, 102.0]


def test_quick_drives_postgres_with_bench_target():
    """Issue 25: quick's N, D and C as pg_sleep on PostgreSQL, the drivers as clients, the cluster sized to N."""
    options = BenchOptions(
        requests=300,
        delay_ms=200,
        concurrency=10,
        strategies=("threads", "gevent-joinall", "asyncio-gather"),
        rounds=3,
        scenarios=("quick",),
        clients=("psycopg", "asyncpg"),
        target=POSTGRES,
    )
    options.check()
    [shape] = SCENARIOS["quick"].shapes(options)
    assert (shape.target, shape.requests, shape.delay_ms) == (POSTGRES, 300, 200)
    assert shape.group == "quick: 300 x pg_sleep of 200 ms, C=10"
    assert {label(pair) for pair in shape.pairs(options)} == {
        "threads[psycopg]",
        "gevent-joinall[psycopg]",
        "asyncio-gather[psycopg]",
        "asyncio-gather[asyncpg]",
    }
    assert database_in_flight(options) == 300


def test_the_db_scenario_sizes_the_cluster_and_keeps_the_trap_rows():
    options = BenchOptions(requests=40, delay_ms=250, concurrency=10, strategies=tuple(STRATEGIES), rounds=5)
    assert database_in_flight(options) == 0  # quick alone starts no cluster's worth of connections
    db = replace(options, scenarios=("db",))
    assert database_in_flight(db) == 1000
    [drivers, thousand] = SCENARIOS["db"].shapes(db)
    labels = {label(pair) for pair in drivers.pairs(db)}
    assert labels >= TRAPS and "trio-nursery[psycopg]" in labels
    assert not any(s.startswith(("asyncio-bounded", "trio-bounded")) for s in labels)
    assert {label(pair) for pair in thousand.pairs(db)} == {
        "threads[psycopg]",
        "asyncio-gather[psycopg]",
        "asyncio-uvloop[psycopg]",
    }


def test_a_round_whose_log_lines_do_not_match_the_queries_counted_is_invalid(postgres_server, tmp_path):
    """A log with no matching line (a translated server, say) must not make lateness 0 (issue 24)."""
    if postgres_server.log is None:
        pytest.skip("a server started elsewhere has no log to read")
    silent = replace(postgres_server, log=tmp_path / "empty.log")
    silent.log.write_text("LOG:  duration: 150.2 ms  instrucción: SELECT pg_sleep(0.15)\n")
    strategy, client = STRATEGIES["threads"], CLIENTS["psycopg"]
    workload = Workload(postgres_server.base_url, N, DELAY_MS, C, timeout_s=10)
    result = one_round(silent, strategy, client, workload)
    assert (
        "0 duration lines for pg_sleep where pg_stat_statements counted 6 queries" in result["round_failed"]
    )
    info = row_info(strategy, client, workload, False, [], [result])
    assert not info["valid"] and "0 duration lines" in info["invalid_reason"]
    # The same round against the real log is judged, and valid.
    assert one_round(postgres_server, strategy, client, workload).get("round_failed") is None


def test_the_cluster_logs_in_english_and_records_its_own_priority(postgres_server):
    if postgres_server.postmaster_pid is None:
        pytest.skip("a server started elsewhere: its host sets its language and priority")
    with postgres_server.connect() as connection:
        assert connection.execute("SHOW lc_messages").fetchone() == ("C",)
    stat = Path(f"/proc/{postgres_server.postmaster_pid}/stat").read_text()
    assert f" -D {postgres_server.log.parent}/data " in " " + Path(
        f"/proc/{postgres_server.postmaster_pid}/cmdline"
    ).read_text().replace("\0", " ")
    nice = int(stat.rsplit(")", 1)[1].split()[16])  # field 19 of /proc/PID/stat
    assert postgres_server.priority() == {
        "mode": "off",
        "server_raised": False,
        "why": "PostgreSQL runs at the priority it was started with",
        "server_nice": [nice],
    }


def test_a_sigkilled_keepers_folder_is_swept_by_the_next_start():
    with postgres.running_postgres(20) as first:
        folder = first.log.parent
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while process_start_ticks(first.postmaster_pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # postgres dies with its keeper (pdeathsig), a moment later
    assert folder.is_dir(), "the keeper died before it could remove its folder"
    assert is_dead_keepers(folder)
    with postgres.running_postgres(20) as second:
        assert not folder.exists(), "the next start did not sweep the dead keeper's folder"
        assert second.log.parent.is_dir() and not is_dead_keepers(second.log.parent)
    assert not second.log.parent.exists()


def test_a_folder_is_swept_only_when_its_keeper_is_provably_dead(tmp_path):
    alive = tmp_path / (FOLDER_PREFIX + "alive")
    alive.mkdir()
    (alive / KEEPER_NOTE).write_text(keeper_note())  # this process: alive
    foreign = tmp_path / (FOLDER_PREFIX + "no-note")
    foreign.mkdir()
    dead = tmp_path / (FOLDER_PREFIX + "dead")
    dead.mkdir()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from bench.targets.postgres_cluster import keeper_note as k; print(k(), end='')",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    (dead / KEEPER_NOTE).write_text(child.communicate(timeout=30)[0])
    assert sweep_dead_keepers_folders(tmp_path) == [dead]
    assert alive.is_dir() and foreign.is_dir() and not dead.exists()
