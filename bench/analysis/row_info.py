"""Reduce a strategy's rounds to the ``extra_info`` of its pytest-benchmark row, and judge it.

How each per-round figure becomes one number is docs/reference/output.md's "how each is reduced":
peaks (memory, threads, in-flight, server lateness) take the worst round, because a peak is
a peak; CPU time, latency and harness overhead take the median round; ok and errors are
those of the worst round.
"""

from __future__ import annotations

import os
import statistics
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bench.workload import NEW, Workload

if TYPE_CHECKING:  # for the annotations only: the analysis sits below the registries (tests/test_layers.py)
    from bench.clients import Client
    from bench.strategies import Strategy

# The server fell behind if its responses left later than this after their due time.
SERVER_LATENESS_FLOOR_MS = 20.0
SERVER_LATENESS_SHARE_OF_DELAY = 0.10
# A late row is the model's cost when, in its latest round, the part of the server's wait for a
# CPU that the worker accounts for is at least this share of the lateness (p99). The wait is
# shared among whoever ran meanwhile in proportion to their CPU time: the worker's, and other
# programs' (the machine's busy time less the worker's and the server's). A wait that short of
# the lateness cannot have made it (docs/reference/statistics.md, "Whose lateness").
MODEL_WAIT_SHARE_OF_LATENESS = 0.5
# Past this share of the server's CPU in the rounds, what an empty window costs it (its wake-ups,
# the /stats reads) is most of the figure: its CPU per request is then noted as not its code's.
SERVER_IDLE_SHARE_NOTED = 0.5
# A keep-alive round accepts one or two connections (the /stats read's, a reconnect): its whole
# CPU over them says nothing of a connection's cost. Below this share of N, no per-connection figure.
CONNECTIONS_SHARE_FOR_PER_CONNECTION = 0.5
# Below this share of the in-flight it asked for, a strategy never really ran concurrently:
# it spent so long preparing requests that the first answers came back before the last left.
CPU_BOUND_IN_FLIGHT_SHARE = 0.75


def serialized_note(target_in_flight: int | None, allowed: int) -> str | None:
    """The target never saw more than one request at once, though the model could send many.

    Issue 18's trap rows: a patch that did not reach a C driver (psycopg2 with no wait
    callback, psycopg imported before patching under gevent) runs the greenlets' queries one
    after another. Such a row is kept and said so, never hidden as merely INVALID.
    """
    if target_in_flight is not None and allowed > 1 and target_in_flight <= 1:
        return f"serialized: {target_in_flight} in flight of {allowed}"
    return None


def lateness_limit_ms(delay_ms: int) -> float:
    return max(SERVER_LATENESS_FLOOR_MS, SERVER_LATENESS_SHARE_OF_DELAY * delay_ms)


def efficiency(ideal_seconds: float, median_seconds: float) -> float:
    """How close the median round came to the server's delay, ceil(N / C) * D: ideal / median,
    whatever bound the client's own CPU set (issue 22, item 3: that is its own figure)."""
    return ideal_seconds / median_seconds


def cpu_bound_seconds(cpu_seconds: float, cores: int) -> float:
    """The least time the client's CPU work could take: its CPU time spread over the cores it can
    use. With requests (~1.5 ms a request) this passes the delay long before the network does."""
    return cpu_seconds / cores


def efficiency_vs_bound(ideal_seconds: float, cpu_bound: float, median_seconds: float) -> tuple[float, str]:
    """The median round against the larger of the two bounds, and which one that is ("delay"|"cpu")."""
    return max(ideal_seconds, cpu_bound) / median_seconds, ("cpu" if cpu_bound > ideal_seconds else "delay")


def efficiency_cores(strategy: Strategy, in_flight: int) -> int | None:
    """The cores a row's client CPU can spread over: one process runs on one (the GIL), a pool
    of processes on as many as it has processes (C and the worker) and the machine lets it use;
    None where the usable cores are unknown (issue 19, item 6). The workers inherit the
    parent's affinity (taskset) that ``sched_getaffinity`` reads."""
    if not strategy.processes:
        return 1
    if not hasattr(os, "sched_getaffinity"):
        return None
    return min(len(os.sched_getaffinity(0)), in_flight + 1)


def _worst(rounds: list[dict], key: str):
    values = [r[key] for r in rounds if r.get(key) is not None]
    return max(values) if values else None


def _first(rounds: list[dict], key: str):
    return next((r[key] for r in rounds if r.get(key) is not None), None)


def _median(rounds: list[dict], key: str):
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def _total(rounds: list[dict], key: str):
    values = [r[key] for r in rounds if r.get(key) is not None]
    return sum(values) if values else None


def _ratio(value: float | None, divisor: float | None) -> float | None:
    return value / divisor if value is not None and divisor else None


def server_cpu_per_request_us(
    rounds: list[dict], per: str = "server_requests", net: bool = True
) -> float | None:
    """The delay server's CPU time per request it answered (or per connection it accepted, with
    ``per="server_connections_accepted"``), over these rounds (design rule 10); with ``net``,
    less what an empty window as long as each round cost it (issue 22, item 5; a round recorded
    without one subtracts nothing).

    Summed over the rounds, not a median of each, so a round that answered few requests weighs
    little. The server reads its CPU time from the scheduler's account (ns; servers/host_counters.py).
    """
    measured = [r for r in rounds if r.get("server_cpu_seconds") is not None and r.get(per)]
    if not measured:
        return None
    cpu = sum(r["server_cpu_seconds"] for r in measured)
    if net:
        cpu -= sum(r.get("server_empty_window_cpu_seconds") or 0.0 for r in measured)
    return max(0.0, cpu) / sum(r[per] for r in measured) * 1e6


def server_idle_note(rounds: list[dict]) -> str | None:
    """Said when the server's CPU in the rounds is mostly what an empty window costs it: at such
    a rate its CPU per request is its wake-ups' and the /stats reads', not its code's."""
    measured = [
        r
        for r in rounds
        if r.get("server_cpu_seconds") and r.get("server_empty_window_cpu_seconds") is not None
    ]
    if not measured:
        return None
    cpu = sum(r["server_cpu_seconds"] for r in measured)
    idle = sum(r["server_empty_window_cpu_seconds"] for r in measured)
    if idle < SERVER_IDLE_SHARE_NOTED * cpu:
        return None
    return (
        f"server CPU mostly idle cost: an empty window costs {idle * 1000:.1f} of its {cpu * 1000:.1f} ms, "
        "too low a rate for its CPU per request to be its code's"
    )


def _by_process(rounds: list[dict], key) -> list[list[float]]:
    """A figure of every round, grouped by worker process; ``key`` names it or computes it from a round."""
    value = key if callable(key) else (lambda r: r[key])
    groups: dict[int, list[float]] = {}
    for r in rounds:
        if (figure := value(r)) is not None:
            groups.setdefault(r.get("process", 0), []).append(figure)
    return [groups[k] for k in sorted(groups)]


def _per_inflight(r: dict) -> float | None:
    return _ratio(r.get("peak_rss_above_idle_bytes"), r.get("client_max_in_flight"))


def row_info(
    strategy: Strategy,
    client: Client | None,
    workload: Workload,
    monkey_patched: bool,
    warmup: list[dict],
    rounds: list[dict],
    scenario: str = "quick",
) -> dict:
    n = workload.requests
    allowed = strategy.fanout.max_in_flight(n, workload.concurrency)
    worst = max(rounds, key=lambda r: r["errors"])
    # Rounds that ran to the end; a round that failed (worker or server gone) measured nothing.
    complete = [r for r in rounds if not r.get("round_failed")]
    cpu_seconds = _median(complete, "cpu_seconds")
    # The median of the spans pytest-benchmark is handed (test_side_by_side.hand_over), so that
    # efficiency is ideal / the median every table prints; the worker's own span where a round
    # has no timed span (a round built by hand).
    timed = [r.get("timed_seconds") for r in complete]
    median_seconds = (
        statistics.median(timed)
        if complete and None not in timed
        else _median(complete, "round_trip_seconds")
    )
    client_in_flight = _worst(complete, "client_max_in_flight")
    # What the row held in its worst round: "held the rung" means every round reached it.
    in_flight_each = [
        r["client_max_in_flight"] for r in complete if r.get("client_max_in_flight") is not None
    ]
    reached = min(in_flight_each) if in_flight_each else None
    above_idle = _worst(complete, "peak_rss_above_idle_bytes")
    ideal = workload.ideal_seconds(allowed)
    cores = efficiency_cores(strategy, allowed)
    cpu_bound = (
        cpu_bound_seconds(cpu_seconds, cores) if complete and cores and cpu_seconds is not None else None
    )
    against_bound, bound = (
        efficiency_vs_bound(ideal, cpu_bound, median_seconds) if cpu_bound is not None else (None, None)
    )
    info = {
        "scenario": scenario,
        "strategy": strategy.name,
        "client": client.name if client else None,
        "kind": workload.kind,
        "requests": n,
        "delay_ms": workload.delay_ms,
        "concurrency": workload.concurrency,
        "max_in_flight_allowed": allowed,
        "timeout_s": workload.timeout_s,
        "rounds": len(rounds),
        "ok": worst["ok"],
        "errors": worst["errors"],
        "errors_all_rounds": sum(r["errors"] for r in rounds),
        "peak_rss_bytes": _worst(complete, "peak_rss_bytes"),
        "peak_rss_above_idle_bytes": above_idle,
        "peak_rss_first_round_bytes": warmup[0]["peak_rss_bytes"] if warmup else None,
        # The untimed warm-up of each worker process: a pool's start-up (threads, processes),
        # where the model has one, and the first connections; no timed round starts a pool.
        "warmup_seconds": _median(warmup, "warmup_seconds"),
        "peak_rss_per_request_bytes": _ratio(above_idle, n),
        "peak_rss_per_inflight_bytes": _ratio(above_idle, client_in_flight),
        "cpu_seconds": cpu_seconds,
        "cpu_per_request_ms": _ratio(cpu_seconds, n / 1000),
        "os_threads_peak": _worst(complete, "os_threads_peak"),
        "processes_peak": _worst(complete, "processes_peak"),
        # The worker's own VmHWM figure, where the row's figure is its tree's (summed PSS).
        "worker_peak_rss_above_idle_bytes": _worst(complete, "worker_peak_rss_above_idle_bytes"),
        "memory_method": _first(complete, "memory_method"),
        "event_loop": _first(complete, "event_loop"),
        # Issue 17: how this row connected, and the path (and count) of its name lookups.
        # --bench-fetch's factory: the user's own IO, which no referee counts (bench/clients/byo.py).
        "fetch": workload.fetch_spec or None,
        "connection": workload.connection,
        "tls": bool(workload.ca_file),
        "host": urlsplit(workload.base_url).hostname,
        "resolver": _first(complete, "resolver"),
        "resolver_calls": _median(complete, "resolver_calls"),
        "server_connections_accepted": _worst(complete, "server_connections_accepted"),
        # Issue 22: each round's count (0 in every keep-alive round), and what each warm-up opened.
        "server_connections_accepted_by_round": [r.get("server_connections_accepted") for r in complete],
        # What the target counted in each round (the delay server's requests, PostgreSQL's
        # statements): a row is INVALID unless each is N; saved so a page can show it.
        "server_requests_by_round": [r.get("server_requests") for r in complete],
        "warmup_connections_accepted": [w.get("server_connections_accepted") for w in warmup],
        "worker_nice": _first(complete, "worker_nice"),
        "monkey_patched": monkey_patched,
        "client_max_in_flight": client_in_flight,
        "client_reached_in_flight": reached,
        "latency_p50_ms": _median(complete, "latency_p50_ms"),
        "latency_p99_ms": _median(complete, "latency_p99_ms"),
        "server_lateness_p99_ms": _worst(complete, "server_lateness_p99_ms"),
        "server_max_in_flight": _worst(complete, "server_max_in_flight"),
        # Less an empty window's cost (issue 22, item 5); gross: all of the server's CPU in the rounds.
        "server_cpu_per_request_us": server_cpu_per_request_us(complete),
        "server_cpu_per_request_gross_us": server_cpu_per_request_us(complete, net=False),
        "server_empty_window_cpu_seconds": _total(complete, "server_empty_window_cpu_seconds"),
        "server_cpu_note": server_idle_note(complete),
        # Issue 17 and 22: null unless the rounds accepted N/2 connections or more (a keep-alive
        # round's one or two are no denominator).
        "server_cpu_per_connection_us": (
            server_cpu_per_request_us(complete, per="server_connections_accepted")
            if (_worst(complete, "server_connections_accepted") or 0)
            >= CONNECTIONS_SHARE_FOR_PER_CONNECTION * n
            else None
        ),
        # The total behind it, so a reader sees how much CPU the per-request figure stands on.
        "server_cpu_seconds": _total(complete, "server_cpu_seconds"),
        "listen_overflows": sum(r.get("listen_overflows", 0) for r in complete),
        "ideal_seconds": ideal,
        "efficiency": efficiency(ideal, median_seconds) if median_seconds else None,
        # The client's CPU time over the cores it can use, and the median against the larger of
        # that and the ideal, with which one is larger: a CPU-bound row's own limit, named apart.
        "cpu_bound_seconds": cpu_bound,
        "efficiency_vs_bound": against_bound,
        "efficiency_bound": bound,
        "serialized": serialized_note(_worst(complete, "server_max_in_flight"), allowed),
        # More than 1: the figure depends on the machine's cores, and the gate does not hold it fixed.
        "efficiency_cores": cores,
        "cpu_bound": bool(reached is not None and reached < CPU_BOUND_IN_FLIGHT_SHARE * allowed),
        "round_seconds": [r["round_trip_seconds"] for r in complete],
        "processes": len({r.get("process", 0) for r in rounds}),
        # The verdicts' bootstrap resamples these groups, then the rounds within each.
        "rounds_by_process": _by_process(complete, "round_trip_seconds"),
        # ...and so do the closing summary's comparisons of what a waiting request costs.
        "cpu_per_request_ms_by_process": _by_process(
            complete, lambda r: _ratio(r.get("cpu_seconds"), n / 1000)
        ),
        "peak_rss_per_inflight_bytes_by_process": _by_process(complete, _per_inflight),
        "worker_wall_seconds": [r["wall_seconds"] for r in complete],
        "harness_overhead_ms": (
            statistics.median(r["round_trip_seconds"] - r["wall_seconds"] for r in complete) * 1000
            if complete
            else None
        ),
    }
    info |= lateness_owner(complete, workload)
    reasons = invalid_reasons(info, rounds, workload, warmup)
    if strategy.processes and complete:
        reasons += process_pool_reasons(info, allowed)
    held = instrument_reasons(info, workload)
    model_late = []
    if info["lateness_owner"] == "model":
        held.remove(
            late := late_reason(info, workload)
        )  # the model took the server's CPU: not the instrument's
        model_late.append(late)
    if refused_by_server_cap(rounds):
        held.append(reasons[0])  # the failed requests' reason: all of them were the server's 503
    info["valid"] = not reasons
    info["invalid_reason"] = "; ".join(reasons) or None
    # Invalid only because the server could not keep up: the instrument's limit, not the row's.
    info["instrument_limited"] = bool(held) and set(reasons) <= set(held)
    # Invalid only because the server fell behind, some of it the model's doing (issue 22, item 2).
    info["model_limited"] = bool(model_late) and set(reasons) <= set(held + model_late)
    return info


def process_pool_reasons(info: dict, pool_size: int) -> list[str]:
    """A pool of processes measured as if it were the worker alone: its figures would be zeros."""
    reasons = []
    if (info["processes_peak"] or 0) < 2:
        reasons.append(
            f"{info['processes_peak']} process seen where a pool of {pool_size} runs: the pool's memory "
            "and CPU are unknown (is /proc/PID/task/PID/children missing?)"
        )
    if info["cpu_seconds"] is None:
        reasons.append("the pool's CPU time is unknown (/proc/PID/task/TID/schedstat is missing)")
    return reasons


def refused_by_server_cap(rounds: list[dict]) -> bool:
    """Every failed request was a 503 from the server's connection cap (--max-connections).

    Counted exactly (each round's ``errors_http_503``), not judged from the few error messages
    a round keeps as samples (issue 19, item 7).
    """
    errors = sum(r["errors"] for r in rounds)
    return errors > 0 and sum(r.get("errors_http_503", 0) for r in rounds) == errors


def lateness_owner(rounds: list[dict], workload: Workload) -> dict:
    """Whose a late row's lateness is (issue 22, item 2), judged on its latest round (the one
    with the largest lateness).

    The model's cost if the share of the server's wait for a CPU that the worker accounts for
    (``MODEL_WAIT_SHARE_OF_LATENESS``) could have made a sizeable part of the lateness; else the
    instrument's: its own limit at that burst if it hardly waited, the machine's other programs
    if it waited behind them. None if the row is not late, or the wait is unknown (no schedstat).
    """
    waits = [
        r["server_run_queue_wait_seconds"]
        for r in rounds
        if r.get("server_run_queue_wait_seconds") is not None
    ]
    figures = {
        "server_run_queue_wait_seconds": max(waits) if waits else None,
        "server_wait_worker_share": None,
        "lateness_owner": None,
        "lateness_attribution": None,
    }
    limit_ms = lateness_limit_ms(workload.delay_ms)
    late = [r for r in rounds if (r.get("server_lateness_p99_ms") or 0) > limit_ms]
    if not late:
        return figures
    latest = max(late, key=lambda r: r["server_lateness_p99_ms"])
    # The most one server worker waited (a request waits only on its own worker); the total over
    # the server's processes for rounds recorded before that figure.
    wait = latest.get("server_worker_wait_max_seconds", latest.get("server_run_queue_wait_seconds"))
    worker_cpu = latest.get("cpu_seconds")
    if wait is None or worker_cpu is None:
        figures["lateness_attribution"] = "whose, unknown: the server's run-queue wait was not measured"
        return figures
    # Without the machine's figure (a round recorded before issue 22), no other program is seen.
    # It counts the CPUs the server may run on (all, unless it was pinned): programs on a core the
    # server cannot use did not keep it waiting. A worker that also ran elsewhere cannot be split
    # by core, so its whole CPU time is counted as competing: if anything, the model's share is
    # overstated, never a late row put on the instrument that the model made.
    server_cpu = latest.get("server_cpu_seconds") or 0.0
    others = max(0.0, (latest.get("machine_cpu_seconds") or 0.0) - worker_cpu - server_cpu)
    # The server's own processes compete for the cores too (two workers and their parent beside
    # the client): the worker's share is of everything that ran, the server's CPU included, so the
    # instrument's contention with itself is never put on the model.
    busy = worker_cpu + others + server_cpu
    share = worker_cpu / busy if busy > 0 else 0.0
    sizeable = MODEL_WAIT_SHARE_OF_LATENESS * latest["server_lateness_p99_ms"] / 1000
    said = (
        f"the server waited {wait * 1000:.0f} ms for a CPU while the worker ran {worker_cpu:.2f} s "
        f"({share:.0%} of the CPU time it, the server and other programs used meanwhile)"
    )
    if wait * share >= sizeable:
        owner, whose = "model", "the model's cost"
    elif wait >= sizeable:
        owner, whose = "instrument", "the machine's other programs held the CPU, not the model"
    else:
        owner, whose = "instrument", "the instrument's own limit at this burst"
    return figures | {
        "server_wait_worker_share": share,
        "lateness_owner": owner,
        "lateness_attribution": f"{said}: {whose}",
    }


def late_reason(info: dict, workload: Workload) -> str | None:
    """The server fell behind: its lateness, and whose it was, with the figures."""
    lateness = info["server_lateness_p99_ms"]
    if lateness is None or lateness <= lateness_limit_ms(workload.delay_ms):
        return None
    reason = (
        f"the server fell behind: its responses left {lateness:.0f} ms late (p99), "
        f"over the {lateness_limit_ms(workload.delay_ms):.0f} ms allowed"
    )
    return f"{reason}; {info['lateness_attribution']}" if info.get("lateness_attribution") else reason


def instrument_reasons(info: dict, workload: Workload) -> list[str]:
    """The server fell behind, or its listen queue overflowed: the instrument, not the client, failed
    (a lateness the model caused is named so by ``late_reason``, and ``row_info`` moves it out)."""
    reasons = [late] if (late := late_reason(info, workload)) else []
    if info["listen_overflows"]:
        reasons.append(f"the kernel dropped {info['listen_overflows']} connections on a full listen queue")
    return reasons


def invalid_reasons(
    info: dict, rounds: list[dict], workload: Workload, warmups: list[dict] | None = None
) -> list[str]:
    """Why this row measured the wrong thing, if it did (design rules 4, 5 and 12)."""
    reasons = []
    n = workload.requests
    failed = [r for r in rounds if r["ok"] != n]
    if failed:
        samples: dict[str, int] = {}
        for r in failed:
            for message, count in r["error_samples"].items():
                samples[message] = samples.get(message, 0) + count
        common = sorted(samples.items(), key=lambda item: -item[1])[:3]
        why = "; ".join(f"{message} (x{count})" for message, count in common)
        reasons.append(
            f"{sum(r['errors'] for r in failed)} of {n * len(rounds)} requests failed "
            f"in {len(failed)} of {len(rounds)} rounds: {why}"
        )
    reasons += instrument_reasons(info, workload)
    sent = [r["server_requests"] for r in rounds if r.get("server_requests") is not None]
    if any(count != n for count in sent):
        reasons.append(
            f"the server received {sent} requests in the rounds, not {n} each (a client retried or lost some)"
        )
    faults = [(r["errors"], r["server_faults"]) for r in rounds if r.get("server_faults") is not None]
    if any(errors < injected for errors, injected in faults):
        reasons.append(f"the client counted fewer errors than the server injected faults: {faults}")
    reasons += connection_reasons(rounds, workload, warmups or [])
    return reasons


def connection_reasons(rounds: list[dict], workload: Workload, warmups: list[dict]) -> list[str]:
    """The same work on every side, by the server's count of each round's new connections (issue 22).

    A keep-alive round opens none (its warm-up opened them all); a fault the server injected may
    close one (a drop, a stall the client gave up on), and its reopening is not held against the
    row. A new-connection round opens exactly N, one per request. Rounds the server did not count
    (a database, a server too old) say nothing.
    """
    counted = [r for r in rounds if r.get("server_connections_accepted") is not None]
    if not counted:
        return []
    if workload.connection == NEW:
        opened = [r["server_connections_accepted"] for r in counted]
        if any(count != workload.requests for count in opened):
            return [
                f"opened {opened} connections in its rounds, not {workload.requests} each (one per request)"
            ]
        return []
    reasons = []
    reopened = [r for r in counted if r["server_connections_accepted"] > (r.get("server_faults") or 0)]
    if reopened:
        reasons.append(
            f"opened {max(r['server_connections_accepted'] for r in reopened)} connections in a keep-alive round"
        )
    # A warm-up that could not hold its K connections open at once: a client's pool that caps
    # (it reuses fewer, opens none in the round, and its own in-flight count, taken as each fetch
    # starts, would never show it), or a model that could not start K in the barrier's wait.
    shortfalls = sorted({w["shortfall"] for w in warmups if w.get("shortfall")})
    if shortfalls:
        reasons.append("a warm-up fell short: " + "; ".join(shortfalls))
    return reasons
