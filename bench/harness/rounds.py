"""One worker's rounds, each recorded in full: the time, and what the server and the kernel saw.

Around every round, outside its timer, the recorder resets and reads the delay server's
counters and the kernel's listen-queue overflows, and asks the worker for the round's
latency and in-flight figures. The timer covers the round alone: the command to the worker
and its answer.

A round that cannot finish (the worker died or passed its deadline, the server is gone) is
recorded as a failed round with the reason, and the recorder attempts nothing more: the row
then comes out INVALID, with that reason, instead of vanishing from the results.
"""

from __future__ import annotations

import time
import urllib.error
from http import HTTPStatus

from bench.harness import kernel
from bench.harness.worker_process import WorkerError, WorkerProcess
from bench.workload import KEEPALIVE_IDLE_S
from servers.process import DelayServer

# The empty windows before each round (issue 22, item 5): one read back to back (what a window's
# reset and read cost the server), one idle span as long as the last round, up to this (what it
# costs per second with no request, its wake-ups). A round's empty cost is the first plus the
# rate times the round's length; the cap keeps a 7 s round from costing 7 s more (0.1 s: a
# wake-up every few ms shows in it, and 60 rounds of the default run pay 6 s for it). Before the
# round, not after, so the server's counters still hold the round's own when the round is over.
EMPTY_WINDOW_MAX_S = 0.1


class RoundRecorder:
    def __init__(self, worker: WorkerProcess, server: DelayServer | None, process: int = 0) -> None:
        self.worker = worker
        self.server = server
        self.process = process  # which of the row's worker processes this is
        self.rounds: list[dict] = []
        self.warmups: list[dict] = []
        # Warm-ups again before a round, whose connections might have idled out (``keep_warm``).
        self.rewarms: list[dict] = []
        self.failure: str | None = None
        # Since when the worker's connections may have been idle: the last warm-up, or round.
        self._used_at = time.monotonic()

    def warm_up(self) -> None:
        """Open, at once, every connection the rounds will reuse, and count them at the server.

        The delay server's counters are reset before and read after (only one worker is alive
        at a time: they are this worker's), so each warm-up records the connections it opened
        (less the /stats read's own) and the most requests in flight at once; a keep-alive
        warm-up that did not open its K connections says so (``shortfall``).
        """
        if self.failure:
            return
        try:
            self.warmups.append(self._warm_up())
        except WorkerError as exc:
            self._fail(f"the warm-up failed: {exc}", seconds=None)
        except (OSError, urllib.error.URLError) as exc:
            self._fail(f"could not read the delay server around the warm-up: {exc}", seconds=None)

    def keep_warm(self) -> None:
        """Called before each round: warm again (untimed) if a connection might sit idle past
        ``KEEPALIVE_IDLE_S`` before the round uses it. A connection used at the start of the last
        round may be reused as late as the end of the next one, which lasts about as long; the
        server the suite starts closes connections idle for ``SUITE_IDLE_TIMEOUT_S``. A client finds a connection the server closed
        only by failing a request on it (none retries), so a warm-up that failed any is
        followed by one more, which opens fresh connections for those."""
        if self.failure or not self.warmups:
            return
        last_round_s = (self.rounds[-1].get("timed_seconds") or 0.0) if self.rounds else 0.0
        idle_s = time.monotonic() - self._used_at + last_round_s
        self._used_at = time.monotonic()  # the round starts now
        if idle_s > KEEPALIVE_IDLE_S:
            try:
                self.rewarms.append(self._warm_up())
                if self.rewarms[-1]["ok"] < self.rewarms[-1]["requests"]:
                    self.rewarms.append(self._warm_up())
            except WorkerError as exc:
                self._fail(f"the warm-up before a round failed: {exc}", seconds=None)
            except (OSError, urllib.error.URLError) as exc:
                self._fail(f"could not read the delay server around the warm-up: {exc}", seconds=None)

    def _warm_up(self) -> dict:
        counted = isinstance(self.server, DelayServer)  # a database's referee counts no connections
        if counted:
            self._check_server()
            self.server.reset_stats()
        warmup = self.worker.warm_up()
        self._used_at = time.monotonic()
        if not counted:
            return warmup
        stats = self.server.stats()
        workload = self.worker.workload
        expected = self.worker.strategy.fanout.max_in_flight(workload.requests, workload.concurrency)
        client = self.worker.client
        if client is not None and client.runs_serialized(self.worker.strategy):
            expected = 1  # a trap row: one request at a time, on one connection
        accepted = stats.get("connections_accepted")
        warmup |= {
            "connections_expected": expected,
            # Less the /stats read's own, accepted after the reset.
            "server_connections_accepted": None if accepted is None else accepted - 1,
            "server_max_in_flight": stats.get("max_in_flight"),
        }
        if not workload.new_connections and accepted is not None and accepted - 1 < expected:
            warmup["shortfall"] = (
                f"its warm-up opened {accepted - 1} of the {expected} connections its rounds reuse "
                f"(at most {stats.get('max_in_flight')} in flight at the server)"
            )
        return warmup

    def _reset_when_idle(self) -> dict:
        """Reset the server's counters once no request is in flight there: a worker killed
        mid-round (or a round cut short) leaves requests the server still answers when they are
        due, and they would count in the next round's window, another row's. Waits at most what
        such a request can last."""
        workload = self.worker.workload
        deadline = time.monotonic() + workload.delay_ms / 1000 + workload.timeout_s
        window = self.server.reset_stats()
        # A database's referee returns no window (it counts from its own statistics).
        while window and window.get("in_flight") and time.monotonic() < deadline:
            time.sleep(0.02)
            window = self.server.reset_stats()
        return window

    def record_round(self) -> None:
        if self.failure:
            return
        try:
            if self.server:
                self._check_server()
                empty = self._empty_windows()
                window = self._reset_when_idle()
            # Only a server has a listen queue: the CPU-bound control, which has none, would
            # count other programs' overflows (the counter covers the whole network namespace).
            overflows_before = kernel.listen_overflows() if self.server else 0
            # The CPUs the server may run on (all of them, unless it was pinned): what ran there
            # and was not the worker or the server is what the server waited behind.
            server_cpus = kernel.cpus_of(self._server_pids())
            machine_before = kernel.busy_cpu_seconds(server_cpus)
        except (OSError, urllib.error.URLError) as exc:
            # A 503 here is the server's connection cap refusing the referee's own request.
            refused = isinstance(exc, urllib.error.HTTPError) and exc.code == HTTPStatus.SERVICE_UNAVAILABLE
            self._fail(
                f"could not read the delay server before the round: {exc}", seconds=None, refused=refused
            )
            return
        started = time.perf_counter()
        try:
            measured = self.worker.run_round()
        except WorkerError as exc:
            self._fail(str(exc), seconds=time.perf_counter() - started)
            return
        # pytest-benchmark gets this span: the same as the worker's round_trip_seconds, give or take µs.
        seconds = time.perf_counter() - started
        machine_cpu = kernel.busy_cpu_seconds(server_cpus) - machine_before
        try:
            record = measured | self.worker.details() | {"timed_seconds": seconds, "process": self.process}
            # Every process's CPU time in the round on the server's CPUs (``machine_cpus``; all of
            # them unless it was pinned): what the worker and the server did not use there was other
            # programs' (issue 22, item 2: whose the server's wait for a CPU was).
            record["machine_cpu_seconds"] = machine_cpu
            record["machine_cpus"] = None if server_cpus is None else sorted(server_cpus)
            record["listen_overflows"] = kernel.listen_overflows() - overflows_before if self.server else 0
            if self.server:
                self._check_server()
                stats = self.server.stats()
                faults = stats["failed_on_purpose"] + stats["dropped_on_purpose"] + stats["stalled"]
                record["server_lateness_p99_ms"] = stats["lateness_ms"]["p99"]
                record["server_max_in_flight"] = stats["max_in_flight"]
                record["server_requests"] = stats["served"] + faults
                record["server_faults"] = faults
                # The instrument's own cost during the round (design rule 10): its CPU time
                # (user + sys of all its processes) since the reset just before the round.
                if "cpu_seconds" in stats:
                    record["server_cpu_seconds"] = stats["cpu_seconds"] - window.get("cpu_seconds", 0.0)
                # Issue 22, item 2: how long the server's threads waited for a CPU in the round,
                # beside the worker's own CPU time (``cpu_seconds``): whose lateness a late row is.
                wait = stats.get("run_queue_wait_seconds")
                record["server_run_queue_wait_seconds"] = (
                    None if wait is None else wait - (window.get("run_queue_wait_seconds") or 0.0)
                )
                # ...and the most any one server worker waited (each answers its own requests: two
                # workers' waits summed would count one late instant twice). Since the reset.
                waits = [w.get("run_queue_wait_seconds") for w in stats.get("per_worker", [])]
                record["server_worker_wait_max_seconds"] = max(
                    (w for w in waits if w is not None), default=None
                )
                # The server's own count, from its network namespace: the one that holds its
                # listen queue, wherever it runs (design rule 9).
                record["listen_overflows"] = stats.get("listen_overflows", record["listen_overflows"])
                # Issue 17: new connections the round opened, less the /stats read's own (one, accepted
                # after the reset); none from a server too old to count them.
                accepted = stats.get("connections_accepted")
                record["server_connections_accepted"] = None if accepted is None else accepted - 1
                if empty is not None:
                    reads, per_second = empty
                    record["server_empty_window_cpu_seconds"] = reads + per_second * seconds
        except (WorkerError, OSError, urllib.error.URLError) as exc:
            self._fail(f"could not finish the round's bookkeeping: {exc}", seconds=seconds)
            return
        self.rounds.append(record)

    def _server_pids(self) -> tuple[int, ...]:
        """A delay server this process started: its workers and their parent; else none known."""
        if isinstance(self.server, DelayServer) and self.server.process is not None:
            return (*self.server.worker_pids, self.server.process.pid)
        return ()

    def _empty_windows(self) -> tuple[float, float] | None:
        """What the server's CPU costs with no request, outside the timer: (a window's reset and
        read, back to back, in seconds; its idle cost per second, from a span like a round's less
        that). At a low rate this is most of the server's CPU, not its code's per request. None
        for a referee that reports no CPU time (PostgreSQL's)."""
        last = [r["timed_seconds"] for r in self.rounds if r.get("timed_seconds")]
        span = min(last[-1], EMPTY_WINDOW_MAX_S) if last else EMPTY_WINDOW_MAX_S
        costs = []
        for idle_s in (0.0, span):
            window = self.server.reset_stats()
            if not window or "cpu_seconds" not in window:
                return None
            started = time.perf_counter()
            time.sleep(idle_s)
            stats = self.server.stats()
            costs.append((stats["cpu_seconds"] - window["cpu_seconds"], time.perf_counter() - started))
        (reads, _), (spanned, seconds) = costs
        return reads, max(0.0, spanned - reads) / seconds

    def _check_server(self) -> None:
        status = self.server.exit_status()
        if status is not None:
            raise OSError(f"the delay server exited (status {status}) during the run")

    def _fail(self, reason: str, seconds: float | None, refused: bool = False) -> None:
        self.failure = reason
        self.rounds.append(
            failed_round(self.worker.workload.requests, reason, self.process, seconds, refused)
        )


def failed_round(
    requests: int, reason: str, process: int, seconds: float | None = None, refused: bool = False
) -> dict:
    """A round that could not finish: every request of it counts as an error, with this reason.

    ``refused``: the server answered 503, its connection cap's refusal, so every request of the
    round counts as refused by the cap.
    """
    return {
        "ok": 0,
        "errors": requests,
        "error_samples": {reason: requests},
        "errors_http_503": requests if refused else 0,
        "round_failed": reason,
        "process": process,
        "timed_seconds": seconds,
    } | _EMPTY_FIGURES


# A failed round measured nothing: its figures are unknown, not zero.
_EMPTY_FIGURES = {
    "wall_seconds": None,
    "round_trip_seconds": None,
    "cpu_seconds": None,
    "peak_rss_bytes": None,
    "peak_rss_above_idle_bytes": None,
    "os_threads_peak": None,
}
