"""Run every row of one workload, round-robin, each row's rounds spread over fresh worker processes.

Two kinds of noise would otherwise pass for differences between strategies (design rule 8):

- between processes: each worker has its own address layout, hash seed and CPU placement, so
  a row's rounds are spread over K processes (``--bench-processes``), and the verdicts'
  bootstrap resamples processes, then rounds within each;
- over time: a shared machine's speed drifts, so the rows take turns: process 1 of every row,
  then process 2 of every row, and so on, each pass starting one row later than the last, so
  drift lands on every row alike.

Each process is started, primed (``warmup``: its in-flight count of requests, held open
together by the delay server), runs its share of the rounds and is stopped before the next row's process starts,
so only one worker is ever alive. Every figure comes from a real, timed round; the per-row
tests hand those rounds to pytest-benchmark (``bench/test_side_by_side.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.clients import Client
from bench.harness.rounds import RoundRecorder, failed_round
from bench.harness.worker_process import WorkerError, WorkerProcess
from bench.names import row_label
from bench.strategies import Strategy
from bench.workload import Workload
from servers.process import DelayServer


@dataclass
class RowRecord:
    """Everything measured for one (strategy, client) of a workload."""

    strategy: Strategy
    client: Client | None
    rounds: list[dict] = field(default_factory=list)
    warmups: list[dict] = field(default_factory=list)
    # Warm-ups again before a round whose connections might have idled out (RoundRecorder.keep_warm).
    rewarms: list[dict] = field(default_factory=list)
    monkey_patched: bool | None = None
    failure: str | None = None
    timeline: dict | None = None


def rounds_per_process(rounds: int, processes: int) -> list[int]:
    """R rounds over K processes as evenly as they go: 5 over 2 is [3, 2]; never an empty process."""
    processes = max(1, min(rounds, processes))
    return [rounds // processes + (1 if k < rounds % processes else 0) for k in range(processes)]


def run_interleaved(
    rows: list[tuple[Strategy, Client | None]],
    workload: Workload,
    server: DelayServer | None,
    rounds: int,
    processes: int,
) -> dict[str, RowRecord]:
    records = {row_label(s.name, c): RowRecord(s, c) for s, c in rows}
    order = list(records.values())
    shares = rounds_per_process(rounds, processes)
    for k, share in enumerate(shares):
        for record in order[k % len(order) :] + order[: k % len(order)]:
            if record.failure is None:
                _run_process(record, workload, server, k, share, last=k == len(shares) - 1)
    return records


def _run_process(record: RowRecord, workload: Workload, server, k: int, share: int, last: bool) -> None:
    recorder, failure = None, None
    try:
        with WorkerProcess(record.strategy, record.client, workload) as worker:
            record.monkey_patched = worker.monkey_patched
            recorder = RoundRecorder(worker, server, process=k)
            recorder.warm_up()
            for _ in range(share):
                recorder.keep_warm()
                recorder.record_round()
            if last and recorder.failure is None:
                record.timeline = worker.details(timeline=True)["timeline"]
    except WorkerError as exc:  # it would not start, or died between rounds
        failure = f"worker process {k + 1} failed: {exc}"
    if recorder is not None:
        record.rounds += recorder.rounds
        record.warmups += recorder.warmups
        record.rewarms += recorder.rewarms
    if failure and not (recorder and recorder.failure):
        record.rounds.append(failed_round(workload.requests, failure, k))
    record.failure = (recorder.failure if recorder else None) or failure
