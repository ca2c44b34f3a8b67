"""Drive one worker through pytest-benchmark's rounds, and record each round in full.

pytest-benchmark times only ``target``; ``setup`` and ``teardown`` run around every round
(warm-up included) outside its timer. They read what the server and the kernel saw, and
ask the worker for the round's latency and in-flight figures, so that none of it is timed.

A round that cannot finish (the worker died or passed its deadline, the server is gone) is
recorded as a failed round with the reason, and the rounds after it are not attempted: the
row then comes out INVALID, with that reason, instead of vanishing from the results.
"""

from __future__ import annotations

import urllib.error

from bench import kernel
from bench.worker_process import WorkerError, WorkerProcess
from servers.process import DelayServer


class RoundRecorder:
    def __init__(self, worker: WorkerProcess, server: DelayServer | None) -> None:
        self.worker = worker
        self.server = server
        self.rounds: list[dict] = []
        self.failure: str | None = None
        self._current: dict = {}
        self._overflows_before = 0

    def setup(self) -> None:
        if self.failure:
            return
        try:
            if self.server:
                self._check_server()
                self.server.reset_stats()
            self._overflows_before = kernel.listen_overflows()
        except (OSError, urllib.error.URLError) as exc:
            self._fail(f"could not read the delay server before the round: {exc}")

    def target(self) -> None:
        if self.failure:
            return
        try:
            self._current = self.worker.run_round()
        except WorkerError as exc:
            self._fail(str(exc))

    def teardown(self) -> None:
        if self.failure:
            return
        try:
            record = self._current | self.worker.details()
            record["listen_overflows"] = kernel.listen_overflows() - self._overflows_before
            if self.server:
                self._check_server()
                stats = self.server.stats()
                faults = stats["failed_on_purpose"] + stats["dropped_on_purpose"] + stats["stalled"]
                record["server_lateness_p99_ms"] = stats["lateness_ms"]["p99"]
                record["server_max_in_flight"] = stats["max_in_flight"]
                record["server_requests"] = stats["served"] + faults
                record["server_faults"] = faults
        except (WorkerError, OSError, urllib.error.URLError) as exc:
            self._fail(f"could not finish the round's bookkeeping: {exc}")
            return
        self.rounds.append(record)

    def _check_server(self) -> None:
        status = self.server.process.poll()
        if status is not None:
            raise OSError(f"the delay server exited (status {status}) during the run")

    def _fail(self, reason: str) -> None:
        """Record the failed round: every request of it counts as an error, with this reason."""
        self.failure = reason
        n = self.worker.workload.requests
        self.rounds.append(
            {"ok": 0, "errors": n, "error_samples": {reason: n}, "round_failed": reason} | _EMPTY_FIGURES
        )

    def run(self, benchmark, rounds: int, warmup_rounds: int) -> tuple[list[dict], list[dict]]:
        """Run the rounds; return (warm-up rounds, measured rounds)."""
        benchmark.pedantic(
            self.target,
            setup=self.setup,
            teardown=self.teardown,
            rounds=rounds,
            warmup_rounds=warmup_rounds,
            iterations=1,
        )
        if benchmark.disabled:  # then pytest-benchmark runs the target once, without setup or teardown
            self.teardown()
            return [], self.rounds
        if self.failure:  # the failed round stands for the measurement, warm-up or not
            return [], self.rounds
        return self.rounds[:warmup_rounds], self.rounds[warmup_rounds:]


# A failed round measured nothing: its figures are unknown, not zero.
_EMPTY_FIGURES = {
    "wall_seconds": None,
    "round_trip_seconds": None,
    "cpu_seconds": None,
    "peak_rss_bytes": None,
    "peak_rss_above_idle_bytes": None,
    "os_threads_peak": None,
}
