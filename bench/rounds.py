"""Drive one worker through pytest-benchmark's rounds, and record each round in full.

pytest-benchmark times only ``target``; ``setup`` and ``teardown`` run around every round
(warm-up included) outside its timer. They read what the server and the kernel saw, and
ask the worker for the round's latency and in-flight figures, so that none of it is timed.
"""

from __future__ import annotations

from bench import kernel
from bench.worker_process import WorkerProcess
from servers.process import DelayServer


class RoundRecorder:
    def __init__(self, worker: WorkerProcess, server: DelayServer | None) -> None:
        self.worker = worker
        self.server = server
        self.rounds: list[dict] = []
        self._current: dict = {}
        self._overflows_before = 0

    def setup(self) -> None:
        if self.server:
            self.server.reset_stats()
        self._overflows_before = kernel.listen_overflows()

    def target(self) -> None:
        self._current = self.worker.run_round()

    def teardown(self) -> None:
        record = self._current | self.worker.details()
        record["listen_overflows"] = kernel.listen_overflows() - self._overflows_before
        if self.server:
            stats = self.server.stats()
            record["server_lateness_p99_ms"] = stats["lateness_ms"]["p99"]
            record["server_max_in_flight"] = stats["max_in_flight"]
            record["server_requests"] = (
                stats["served"] + stats["failed_on_purpose"] + stats["dropped_on_purpose"] + stats["stalled"]
            )
            record["server_faults"] = (
                stats["failed_on_purpose"] + stats["dropped_on_purpose"] + stats["stalled"]
            )
        self.rounds.append(record)

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
        return self.rounds[:warmup_rounds], self.rounds[warmup_rounds:]
