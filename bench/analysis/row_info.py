"""Reduce a strategy's rounds to the ``extra_info`` of its pytest-benchmark row, and judge it.

How each per-round figure becomes one number is the README's "How figures are reduced":
peaks (memory, threads, in-flight, server lateness) take the worst round, because a peak is
a peak; CPU time, latency and harness overhead take the median round; ok and errors are
those of the worst round.
"""

from __future__ import annotations

import statistics

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


def efficiency(ideal_seconds: float, cpu_seconds: float, median_seconds: float) -> tuple[float, str]:
    """How close the median round came to the best possible, and which bound binds.

    The bound is the larger of the server's delay, ceil(N / C) * D, and the client's own CPU
    time on one core: with requests (~1.5 ms a request) the CPU term wins long before the
    network does.
    """
    bound = max(ideal_seconds, cpu_seconds)
    return bound / median_seconds, ("cpu" if cpu_seconds > ideal_seconds else "delay")


def _worst(rounds: list[dict], key: str):
    values = [r[key] for r in rounds if r.get(key) is not None]
    return max(values) if values else None


def _first(rounds: list[dict], key: str):
    return next((r[key] for r in rounds if r.get(key) is not None), None)


def _median(rounds: list[dict], key: str):
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def _ratio(value: float | None, divisor: float | None) -> float | None:
    return value / divisor if value is not None and divisor else None


def _by_process(rounds: list[dict], key: str) -> list[list[float]]:
    groups: dict[int, list[float]] = {}
    for r in rounds:
        groups.setdefault(r.get("process", 0), []).append(r[key])
    return [groups[k] for k in sorted(groups)]


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
    score, bound = efficiency(ideal, cpu_seconds, median_seconds) if complete else (None, None)
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
        "monkey_patched": monkey_patched,
        "client_max_in_flight": client_in_flight,
        "latency_p50_ms": _median(complete, "latency_p50_ms"),
        "latency_p99_ms": _median(complete, "latency_p99_ms"),
        "server_lateness_p99_ms": _worst(complete, "server_lateness_p99_ms"),
        "server_max_in_flight": _worst(complete, "server_max_in_flight"),
        "listen_overflows": sum(r.get("listen_overflows", 0) for r in complete),
        "ideal_seconds": ideal,
        "efficiency": score,
        "efficiency_bound": bound,
        "serialized": serialized_note(_worst(complete, "server_max_in_flight"), allowed),
        "cpu_bound": bool(
            client_in_flight is not None and client_in_flight < CPU_BOUND_IN_FLIGHT_SHARE * allowed
        ),
        "round_seconds": [r["round_trip_seconds"] for r in complete],
        "processes": len({r.get("process", 0) for r in rounds}),
        # The verdicts' bootstrap resamples these groups, then the rounds within each.
        "rounds_by_process": _by_process(complete, "round_trip_seconds"),
        "worker_wall_seconds": [r["wall_seconds"] for r in complete],
        "harness_overhead_ms": (
            statistics.median(r["round_trip_seconds"] - r["wall_seconds"] for r in complete) * 1000
            if complete
            else None
        ),
    }
    reasons = invalid_reasons(info, rounds, workload)
    held = instrument_reasons(info, workload)
    if refused_by_server_cap(rounds):
        held.append(reasons[0])  # the failed requests' reason: all of them were the server's 503
    info["valid"] = not reasons
    info["invalid_reason"] = "; ".join(reasons) or None
    # Invalid only because the server could not keep up: the instrument's limit, not the row's.
    info["instrument_limited"] = bool(held) and set(reasons) <= set(held)
    return info


def refused_by_server_cap(rounds: list[dict]) -> bool:
    """Every failed request was a 503 from the server's connection cap (--max-connections)."""
    messages = [message for r in rounds for message in r.get("error_samples", {})]
    return bool(messages) and all("503" in message for message in messages)


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
