"""The instrument certifies itself: what burst the delay server holds here, before a workload runs.

Before each IO workload, the cheapest client (raw, on asyncio: it opens connections fastest,
so its burst is the hardest) sends the workload's largest in-flight count at its delay, once,
on connections its warm-up opened and held open together, as every keep-alive row's does
(``RoundRecorder.warm_up``: the load the rows put on the server, issue 22);
if the server answers late (``row_info.lateness_limit_ms``), overflows its listen queue or
fails a request, the burst is halved and tried again, a few times at most. The largest burst
held is the measured capacity, printed before the workload and recorded in its rows.

The capacity never skips a row: a row runs and is saved, whatever it measured (issue 22: a
row that ran is never dropped). If it comes out invalid only because the instrument fell
behind (the server's own limit, not the model's cost) while it had more requests in flight
than the capacity, ``beyond_reason`` says so, with the capacity: the row is saved INVALID
with that reason and marked an expected failure, the limit the preflight had found first
(design rule 9). A row that stays valid is kept, whatever the capacity said; a row that fails
for any other reason, the model's lateness included, is INVALID and fails as before, except
on a ladder rung, which probes a limit: there a row late by the model's cost is saved INVALID
too, named with its owner in the story, and marked an expected failure
(``bench.scenarios.Ladder.row_xfail_reason``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from bench.analysis.row_info import lateness_limit_ms, server_cpu_per_request_us
from bench.clients import CLIENTS
from bench.harness.rounds import RoundRecorder
from bench.harness.worker_process import WorkerError, WorkerProcess
from bench.strategies import STRATEGIES
from bench.workload import Workload

BURST_STRATEGY, BURST_CLIENT = "asyncio-gather", "raw"
# Each halving costs one burst (about the delay plus a second here); three keep it cheap.
ATTEMPTS = 3
CAPACITY_DOCS = "docs/reference/capacity.md, 'The instrument's capacity'"


@dataclass
class Capacity:
    delay_ms: int
    asked: int  # the workload's largest in-flight count
    held: int = 0  # the largest burst the server held (0: none of the bursts tried)
    bursts: list[dict] = field(default_factory=list)  # what each burst measured

    def describe(self) -> str:
        if self.held >= self.asked:
            verdict = f"holds {self.asked} in flight"
        else:
            verdict = (
                f"holds {self.held} in flight, not {self.asked}" if self.held else "held none of the bursts"
            )
        tried = "; ".join(
            f"{b['in_flight']}: lateness p99 {b['lateness_p99_ms']:.0f} ms, {b['overflows']} overflows, "
            f"{b['errors']} errors{_server_cpu(b)}"
            for b in self.bursts
        )
        return f"the delay server {verdict} at {self.delay_ms} ms (raw bursts: {tried})"

    def beyond_reason(self, info: dict) -> str | None:
        """Why a row that came out invalid is the instrument's limit the preflight measured, not
        the row's; None if it is not."""
        # A round that failed outright measured nothing: its row asked for this many.
        in_flight = info.get("client_max_in_flight") or info.get("max_in_flight_allowed") or 0
        if info.get("instrument_limited") and in_flight > self.held:
            return (
                f"beyond the instrument: {in_flight} in flight, more than the preflight measured "
                f"({self.describe()}). See {CAPACITY_DOCS}"
            )
        return None

    def as_dict(self) -> dict:
        return asdict(self)


def _server_cpu(burst: dict) -> str:
    """The instrument's own cost in the burst: its CPU per request (design rule 10)."""
    cpu_us = burst.get("server_cpu_per_request_us")
    return "" if cpu_us is None else f", server CPU {cpu_us:.0f} µs per request"


def measure_capacity(server, workload: Workload, in_flight: int, attempts: int = ATTEMPTS) -> Capacity:
    """Bursts of ``in_flight``, halved until one is held, ``attempts`` at most (a ladder's rung: 1)."""
    capacity = Capacity(workload.delay_ms, in_flight)
    n = in_flight
    for _ in range(attempts):
        burst = _burst(server, replace(workload, requests=n, concurrency=n, fault_query=""))
        capacity.bursts.append(burst)
        if burst["held"]:
            capacity.held = n
            break
        n //= 2
        if n < 1:
            break
    return capacity


def _burst(server, workload: Workload) -> dict:
    result = {
        "in_flight": workload.requests,
        "lateness_p99_ms": 0.0,
        "overflows": 0,
        "errors": workload.requests,
    }
    try:
        with WorkerProcess(STRATEGIES[BURST_STRATEGY], CLIENTS[BURST_CLIENT], workload) as worker:
            recorder = RoundRecorder(worker, server)
            recorder.warm_up()
            recorder.record_round()
    except WorkerError as exc:
        return result | {"held": False, "failure": str(exc)}
    [record] = recorder.rounds
    result.update(
        lateness_p99_ms=record.get("server_lateness_p99_ms") or 0.0,
        overflows=record.get("listen_overflows") or 0,
        errors=record["errors"],
        server_cpu_per_request_us=server_cpu_per_request_us([record]),
        warmup_connections_accepted=recorder.warmups[0].get("server_connections_accepted")
        if recorder.warmups
        else None,
        connections_opened_in_round=record.get("server_connections_accepted"),
    )
    # The load the rows put on the server, else it certified another: no connection opened in a
    # keep-alive burst, one per request in a new-connection burst.
    expected_opened = workload.requests if workload.new_connections else 0
    result["held"] = (
        not recorder.failure
        and result["errors"] == 0
        and result["overflows"] == 0
        and (result["connections_opened_in_round"] or 0) == expected_opened
        and result["lateness_p99_ms"] <= lateness_limit_ms(workload.delay_ms)
    )
    return result
