"""Reduce a strategy's rounds to the ``extra_info`` of its pytest-benchmark row, and judge it.

How each per-round figure becomes one number is docs/reference/output.md's "how each is reduced":
peaks (memory, threads, in-flight, server lateness) take the worst round, because a peak is
a peak; CPU time, latency and harness overhead take the median round; ok and errors are
those of the worst round.
"""

from __future__ import annotations

import os
import statistics
from urllib.parse import urlsplit

from bench.clients import Client
from bench.strategies import Strategy
from bench.workload import Workload

# The server fell behind if its responses left later than this after their due time.
SERVER_LATENESS_FLOOR_MS = 20.0
SERVER_LATENESS_SHARE_OF_DELAY = 0.10
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


def efficiency(
    ideal_seconds: float, cpu_seconds: float, median_seconds: float, cores: int = 1
) -> tuple[float, str]:
    """How close the median round came to the best possible, and which bound binds.

    The bound is the larger of the server's delay, ceil(N / C) * D, and the client's own CPU
    time spread over the cores it can use: with requests (~1.5 ms a request) the CPU term wins
    long before the network does.
    """
    cpu_bound = cpu_seconds / cores
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


def server_cpu_per_request_us(rounds: list[dict], per: str = "server_requests") -> float | None:
    """The delay server's CPU time per request it answered (or per connection it accepted, with
    ``per="server_connections_accepted"``), over these rounds (design rule 10).

    Summed over the rounds, not a median of each, so a round that answered few requests weighs
    little. The server reads its CPU time from the scheduler's account (ns; servers/host_counters.py).
    """
    measured = [r for r in rounds if r.get("server_cpu_seconds") is not None and r.get(per)]
    if not measured:
        return None
    return sum(r["server_cpu_seconds"] for r in measured) / sum(r[per] for r in measured) * 1e6


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
    median_seconds = _median(complete, "round_trip_seconds")
    client_in_flight = _worst(complete, "client_max_in_flight")
    above_idle = _worst(complete, "peak_rss_above_idle_bytes")
    ideal = workload.ideal_seconds(allowed)
    cores = efficiency_cores(strategy, allowed)
    measured = complete and cores and cpu_seconds is not None
    score, bound = efficiency(ideal, cpu_seconds, median_seconds, cores) if measured else (None, None)
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
        "worker_nice": _first(complete, "worker_nice"),
        "monkey_patched": monkey_patched,
        "client_max_in_flight": client_in_flight,
        "latency_p50_ms": _median(complete, "latency_p50_ms"),
        "latency_p99_ms": _median(complete, "latency_p99_ms"),
        "server_lateness_p99_ms": _worst(complete, "server_lateness_p99_ms"),
        "server_max_in_flight": _worst(complete, "server_max_in_flight"),
        "server_cpu_per_request_us": server_cpu_per_request_us(complete),
        # Issue 17: None for keep-alive rows, whose rounds open no connection.
        "server_cpu_per_connection_us": server_cpu_per_request_us(
            complete, per="server_connections_accepted"
        ),
        # The total behind it, so a reader sees how much CPU the per-request figure stands on.
        "server_cpu_seconds": _total(complete, "server_cpu_seconds"),
        "listen_overflows": sum(r.get("listen_overflows", 0) for r in complete),
        "ideal_seconds": ideal,
        "efficiency": score,
        "efficiency_bound": bound,
        "serialized": serialized_note(_worst(complete, "server_max_in_flight"), allowed),
        # More than 1: the figure depends on the machine's cores, and the gate does not hold it fixed.
        "efficiency_cores": cores,
        "cpu_bound": bool(
            client_in_flight is not None and client_in_flight < CPU_BOUND_IN_FLIGHT_SHARE * allowed
        ),
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
    reasons = invalid_reasons(info, rounds, workload)
    if strategy.processes and complete:
        reasons += process_pool_reasons(info, allowed)
    held = instrument_reasons(info, workload)
    if refused_by_server_cap(rounds):
        held.append(reasons[0])  # the failed requests' reason: all of them were the server's 503
    info["valid"] = not reasons
    info["invalid_reason"] = "; ".join(reasons) or None
    # Invalid only because the server could not keep up: the instrument's limit, not the row's.
    info["instrument_limited"] = bool(held) and set(reasons) <= set(held)
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


def instrument_reasons(info: dict, workload: Workload) -> list[str]:
    """The server fell behind, or its listen queue overflowed: the instrument, not the client, failed."""
    reasons = []
    lateness = info["server_lateness_p99_ms"]
    if lateness is not None and lateness > lateness_limit_ms(workload.delay_ms):
        reasons.append(
            f"the server fell behind: its responses left {lateness:.0f} ms late (p99), "
            f"over the {lateness_limit_ms(workload.delay_ms):.0f} ms allowed"
        )
    if info["listen_overflows"]:
        reasons.append(f"the kernel dropped {info['listen_overflows']} connections on a full listen queue")
    return reasons


def invalid_reasons(info: dict, rounds: list[dict], workload: Workload) -> list[str]:
    """Why this row measured the wrong thing, if it did (design rules 4 and 5)."""
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
    return reasons
