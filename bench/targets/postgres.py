"""PostgreSQL as a target: a throwaway cluster's lifecycle, and the database's own count of a round.

The workload is ``SELECT pg_sleep(D)`` on autocommit connections, one per request that may
be in flight. The referee reads the database's statistics, never the client's:

- **queries seen**: the ``calls`` of the pg_sleep statement in ``pg_stat_statements``, reset
  before each round. Why this count: the extension keeps it in shared memory and adds each
  statement as it ends, so it is exact the moment the clients have their answers.
  ``pg_stat_database.xact_commit`` would count the referee's own transactions too, and it and
  ``pg_stat_user_functions`` are flushed by each backend at most once a second (PostgreSQL 15's
  ``PGSTAT_MIN_INTERVAL``); ``track_functions`` does not follow built-in functions like pg_sleep.
  The extension must be preloaded: the suite's own cluster does it; a server given with
  ``--bench-db-dsn`` must have ``shared_preload_libraries = 'pg_stat_statements'``.
- **the most sleeping at once**: backends whose ``pg_stat_activity.wait_event`` is ``PgSleep``,
  sampled every few milliseconds during the round on the referee's own connection.
- **lateness**: how long past D the statements ran, at the 99th percentile as the delay
  server reports it. pg_stat_statements keeps no percentiles, so the suite's own cluster logs
  every statement's duration (``log_min_duration_statement = 0``) and the referee reads the
  round's lines, and checks that it found one line for each query counted: a log that matches
  fewer (a translated server, a changed format) would otherwise make lateness silently 0, so
  the round fails with the reason and the row is INVALID. The cluster writes its messages in
  English (``lc_messages = C``). For a server given with ``--bench-db-dsn`` (no log to read) the p99 is
  estimated as mean + 2.33 standard deviations (a normal tail), which one scheduling hiccup
  inflates: stricter, never looser.
- **listen overflows**: none can be the database's in a round: every connection is opened
  before it. The kernel's counter is for the whole network namespace, and counts other
  programs' overflows, so it is not read for this target.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.targets.postgres_cluster import STARTUP_TIMEOUT_S, STOP_TIMEOUT_S, find_bindir
from servers.percentile import percentile
from servers.process import PROJECT_ROOT, stop_process

READY_PREFIX = "ready "
# Every sample is one query over pg_stat_activity (~0.3 ms here); a query sleeps 100s of ms.
SAMPLE_INTERVAL_S = 0.005
# Connections the suite keeps beside the clients': the referee's two, a pool's spare (the
# process pool's worker makes one before it forks), and the superuser's reserve of 3.
SPARE_CONNECTIONS = 10
# Enough for the tests' workloads when no scenario asks for more.
DEFAULT_CONNECTIONS = 100
# A healthy server answers the referee in milliseconds; a broken one must not hang the run.
CONNECT_TIMEOUT_S = 5
# ...nor a frozen one between rounds: its kernel still accepts and acks (so no TCP timeout
# fires), and statement_timeout is the frozen server's own to enforce. A referee's query that
# gets no answer within this fails the round with the reason.
QUERY_DEADLINE_S = 10
SLEEP_STATEMENT = "SELECT pg_sleep("
# The 99th percentile of a normal distribution, in standard deviations above the mean.
P99_Z = 2.33
# Every driver's form of the statement (literal or $1) is one pg_stat_statements row or more.
COUNT_QUERIES = (
    "SELECT coalesce(sum(calls), 0)::int, "
    "coalesce(sum(mean_exec_time * calls) / nullif(sum(calls), 0), 0), coalesce(max(stddev_exec_time), 0) "
    f"FROM pg_stat_statements WHERE query LIKE '{SLEEP_STATEMENT}%'"
)
# A logged duration of the statement: simple protocol ("statement: SELECT pg_sleep(0.1)") or
# the execute step of the extended one ("execute <unnamed>: SELECT pg_sleep($1)"), not its
# parse and bind steps.
LOGGED_SLEEP = re.compile(r"duration: ([0-9.]+) ms  (?:statement|execute [^:]*): SELECT pg_sleep\(")
COUNT_SLEEPING = "SELECT count(*)::int FROM pg_stat_activity WHERE wait_event = 'PgSleep'"


class PostgresError(OSError):
    """No cluster could be started, or the server cannot referee (not reachable, gone, no pg_stat_statements).

    An OSError, as the delay server's failures are: the round recorder fails the round with it.
    """


def available() -> bool:
    return find_bindir() is not None


def required() -> bool:
    """Under CI (CI=true, as GitHub Actions sets it) the database tests fail without PostgreSQL
    instead of skipping: a run that skipped them would prove nothing about the database."""
    return os.environ.get("CI") == "true"


@dataclass
class PostgresServer:
    """A running PostgreSQL: the suite's own cluster (``process``: its keeper), or one elsewhere (None)."""

    dsn: str
    process: subprocess.Popen | None = None
    log: Path | None = None  # every statement's duration, when the suite started the cluster
    postmaster_pid: int | None = None  # ...and its server process, whose priority a row records

    @property
    def base_url(self) -> str:
        return self.dsn

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def exit_status(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def connect(self):
        import psycopg

        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:
            raise PostgresError(f"no PostgreSQL answers at {self.dsn}: {str(exc).strip()}") from None

    def round_trip_ms(self, samples: int = 5) -> float:
        """The median time of ``SELECT pg_sleep(0)``: what every wave of queries pays above D."""
        with self.connect() as connection:
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                connection.execute("SELECT pg_sleep(0)")
                times.append((time.perf_counter() - started) * 1000)
        return sorted(times)[len(times) // 2]

    def referee(self, delay_ms: int) -> Referee:
        return Referee(self, delay_ms)

    def priority(self) -> dict:
        """PostgreSQL's priority as it was, for the row's record: --bench-server-priority raises
        the delay server only (bench/harness/priority.py), never the database."""
        if self.postmaster_pid is None:
            return {
                "mode": "off",
                "server_raised": False,
                "why": "PostgreSQL runs elsewhere: its host sets its priority",
            }
        return {
            "mode": "off",
            "server_raised": False,
            "why": "PostgreSQL runs at the priority it was started with",
            "server_nice": [os.getpriority(os.PRIO_PROCESS, self.postmaster_pid)],
        }


class Referee:
    """What the database saw in a round: ``reset_stats()`` before it, ``stats()`` after it.

    ``stats()`` answers in the delay server's ``/stats`` terms, so the round recorder and the
    validity rules treat both targets alike: ``served`` queries, ``max_in_flight`` sleeping.
    """

    def __init__(self, server: PostgresServer, delay_ms: int) -> None:
        self.server = server
        self.delay_ms = delay_ms
        self._counter = server.connect()
        try:
            self._counter.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self._counter.execute(COUNT_QUERIES)
        except Exception as exc:
            self._counter.close()
            raise PostgresError(
                f"the referee needs pg_stat_statements at {server.dsn} "
                f"(shared_preload_libraries = 'pg_stat_statements'): {str(exc).strip()}"
            ) from None
        self._sampler = server.connect()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_sleeping = 0
        self._log_offset = 0
        # Threads whose query never came back: each is still inside libpq, on one of the two
        # connections, and would read it after it was freed if close() finished it under them.
        self._stuck: list[threading.Thread] = []

    def exit_status(self) -> int | None:
        return self.server.exit_status()

    def reset_stats(self) -> None:
        self._finish_sampling()
        self._query("SELECT pg_stat_statements_reset()")
        self._log_offset = self.server.log.stat().st_size if self.server.log else 0
        self._peak_sleeping = 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="postgres-referee", daemon=True)
        self._thread.start()

    def stats(self) -> dict:
        self._finish_sampling()
        queries, mean_ms, stddev_ms = self._query(COUNT_QUERIES)
        p99_ms = self._logged_p99_ms(queries) if self.server.log else mean_ms + P99_Z * stddev_ms
        return {
            "served": queries,
            "max_in_flight": self._peak_sleeping,
            "lateness_ms": {"p99": max(0.0, p99_ms - self.delay_ms) if queries and p99_ms else 0.0},
            "listen_overflows": 0,
            "failed_on_purpose": 0,
            "dropped_on_purpose": 0,
            "stalled": 0,
        }

    def _logged_p99_ms(self, queries: int) -> float | None:
        """The round's statements' durations, from the log lines written since ``reset_stats``:
        one for each query pg_stat_statements counted, or the round cannot be judged."""
        with open(self.server.log, "rb") as log:
            log.seek(self._log_offset)
            lines = log.read().decode(errors="replace")
        durations = sorted(float(m.group(1)) for m in LOGGED_SLEEP.finditer(lines))
        if len(durations) != queries:
            raise PostgresError(
                f"PostgreSQL's log has {len(durations)} duration lines for pg_sleep where pg_stat_statements "
                f"counted {queries} queries, so the round's lateness is unknown "
                f"(log_min_duration_statement = 0 and lc_messages = C? {self.server.log})"
            )
        return percentile(durations, 99)

    def _query(self, sql: str) -> tuple:
        """One query on the referee's connection, asked in a thread so that it has a deadline."""
        import psycopg

        answer: dict = {}

        def ask() -> None:
            try:
                answer["row"] = self._counter.execute(sql).fetchone()
            except psycopg.Error as exc:
                answer["error"] = exc

        asking = threading.Thread(target=ask, name="postgres-referee-query", daemon=True)
        asking.start()
        asking.join(QUERY_DEADLINE_S)
        if asking.is_alive():
            self._stuck.append(asking)
            raise PostgresError(self._no_answer("the referee"))
        if "error" in answer:
            raise PostgresError(
                f"PostgreSQL at {self.server.dsn} stopped answering: {str(answer['error']).strip()}"
            )
        return answer["row"]

    def _no_answer(self, who: str) -> str:
        return f"PostgreSQL at {self.server.dsn} gave {who} no answer within {QUERY_DEADLINE_S} s (frozen?)"

    def _sample(self) -> None:
        import psycopg

        while not self._stop.wait(SAMPLE_INTERVAL_S):
            try:
                (sleeping,) = self._sampler.execute(COUNT_SLEEPING).fetchone()
            except psycopg.Error:
                return  # the server is gone: stats() says so
            self._peak_sleeping = max(self._peak_sleeping, sleeping)

    def _finish_sampling(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(QUERY_DEADLINE_S)
            thread, self._thread = self._thread, None
            if thread.is_alive():  # its query never came back: the peak it saw is not the round's
                self._stuck.append(thread)
                raise PostgresError(self._no_answer("the referee's sampler"))

    def close(self) -> None:
        with contextlib.suppress(PostgresError):  # frozen: the connections are closed all the same
            self._finish_sampling()
        if any(thread.is_alive() for thread in self._stuck):
            # Closing frees the connection at once (psycopg takes no lock to close), and a frozen
            # server that resumes would wake the thread on freed memory: a segfault, seen once.
            # A shut socket ends the thread's wait with an error whatever the server does.
            for connection in (self._counter, self._sampler):
                _hang_up(connection)
            for thread in self._stuck:
                thread.join(QUERY_DEADLINE_S)
            if any(thread.is_alive() for thread in self._stuck):
                _NEVER_FREED.extend((self._counter, self._sampler))
                raise PostgresError(
                    f"a query of the referee's did not end when its socket was shut; its connections "
                    f"to {self.server.dsn} stay open for this process's life rather than be freed under it"
                )
        self._counter.close()
        self._sampler.close()


# Connections a thread may still read: never freed (the alternative is a use after free).
_NEVER_FREED: list = []


def _hang_up(connection) -> None:
    """Shut the connection's socket (not its descriptor, which libpq still owns) both ways."""
    import psycopg

    try:
        fileno = connection.fileno()  # raises if the connection is already lost or closed
    except psycopg.Error:
        return
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fileno)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def running_postgres(max_connections: int) -> Iterator[PostgresServer]:
    """A throwaway cluster for the block's life (``bench/targets/postgres_cluster.py``).

    Its keeper runs in a session of its own, so a Ctrl-C reaches this process, which stops it
    by closing the pipe; a killed process closes the pipe too.
    """
    with tempfile.TemporaryFile(mode="w+") as stderr:
        keeper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.targets.postgres_cluster",
                "--max-connections",
                str(max_connections),
            ],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
        try:
            dsn, log, postmaster_pid = _wait_for_ready(keeper, stderr).split(" ")
            yield PostgresServer(dsn, keeper, Path(log), int(postmaster_pid))
        finally:
            with contextlib.suppress(BrokenPipeError):
                keeper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                keeper.wait(timeout=STOP_TIMEOUT_S + 5)
            stop_process(keeper, STOP_TIMEOUT_S + 5)  # closes its pipes; signals it only if still running


def _wait_for_ready(keeper: subprocess.Popen, stderr) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S + 5
    with selectors.DefaultSelector() as selector:
        selector.register(keeper.stdout, selectors.EVENT_READ)
        if selector.select(max(0.0, deadline - time.monotonic())):
            line = keeper.stdout.readline()
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
            keeper.wait(timeout=STOP_TIMEOUT_S + 5)
            stderr.seek(0)
            raise PostgresError(f"no PostgreSQL cluster: {line.strip() or stderr.read().strip()[-2000:]}")
    raise PostgresError(f"the PostgreSQL cluster was not ready within {STARTUP_TIMEOUT_S + 5:.0f} s")
