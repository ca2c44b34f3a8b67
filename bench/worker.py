"""The worker process: runs one strategy, round after round, as its parent asks.

``python -m bench.worker STRATEGY WORKLOAD_JSON`` (or ``bench.gevent_worker`` for gevent
strategies). It speaks JSON lines: one ``ready`` line after start-up, then one result line
for every ``round`` line it reads on stdin; EOF on stdin ends it. Only the round itself is
inside the measured region: imports, the session and the URLs are made beforehand.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import threading
import time
from collections import Counter

from bench import memory
from bench.strategies import STRATEGIES
from bench.workload import Workload, make_fetch, make_session

# Distinct error messages kept per round: enough to act on, bounded however many failed.
ERROR_SAMPLES = 3


def monkey_patched() -> bool:
    """Whether socket and threading are gevent's: checked on the objects, not on a flag."""
    return socket.socket.__module__.startswith("gevent") and threading.get_ident.__module__.startswith(
        "gevent"
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_round(strategy_module, fetch, urls: list[str], concurrency: int) -> dict:
    memory.reset_peak_rss()
    rss_before = memory.rss_bytes()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    round_error = None
    try:
        outcomes = strategy_module.run(fetch, urls, concurrency)
    except Exception as exc:  # e.g. "can't start new thread": the round fails, the worker lives
        outcomes, round_error = [], f"{type(exc).__name__}: {exc}"
    wall_seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    peak_rss = memory.peak_rss_bytes() - rss_before

    finished = [outcome for outcome in outcomes if outcome is not None]
    ok = sum(outcome.ok for outcome in finished)
    errors = Counter(outcome.error for outcome in finished if not outcome.ok)
    if missing := len(urls) - len(finished):
        errors[round_error or "request never completed (the task died without an outcome)"] += missing
    return {
        "wall_seconds": wall_seconds,
        "cpu_seconds": cpu,
        "peak_rss_bytes": peak_rss,
        "ok": ok,
        "errors": len(urls) - ok,
        "error_samples": dict(errors.most_common(ERROR_SAMPLES)),
    }


def main(argv: list[str] | None = None) -> int:
    strategy_name, workload_json = (argv or sys.argv[1:])[:2]
    strategy = STRATEGIES[strategy_name]
    workload = Workload.from_dict(json.loads(workload_json))

    # The protocol owns the real stdout; anything else printing lands on stderr instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")

    patched = monkey_patched()
    if patched != strategy.gevent:
        # Unpatched, gevent runs every greenlet's IO one after another; patched, "threads"
        # would be greenlets. Either would time the wrong thing, so refuse to start.
        entry = "bench.gevent_worker" if strategy.gevent else "bench.worker"
        send(
            {
                "fatal": f"{strategy_name} needs monkey_patched={strategy.gevent} (run it with python -m {entry})"
            }
        )
        return 1
    memory.check_supported()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one descriptor per open connection

    max_in_flight = strategy.fanout.max_in_flight(workload.requests, workload.concurrency)
    fetch = make_fetch(workload, make_session(pool_size=max_in_flight))
    module = strategy.load()
    urls = workload.urls()
    send({"ready": True, "pid": os.getpid(), "monkey_patched": patched})

    for command in sys.stdin:
        if command.strip() != "round":
            send({"fatal": f"unknown command {command.strip()!r}"})
            return 1
        result = run_round(module, fetch, urls, workload.concurrency)
        result["monkey_patched"] = patched
        send(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
