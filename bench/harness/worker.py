"""The worker process: runs one strategy, round after round, as its parent asks.

``python -m bench.harness.worker STRATEGY CLIENT WORKLOAD_JSON`` (``bench.harness.gevent_worker`` for gevent
strategies; CLIENT is ``-`` for the CPU-bound control, which sends no requests). It speaks JSON lines: one ``ready`` line after start-up, then one answer per
command read on stdin:

- ``warmup``: run the strategy once on ``Workload.warmup_urls`` (as many requests as it
  keeps in flight, held at the server until all are in flight), to open the connections
  every round reuses;
- ``round``: run the strategy once and answer with the measured figures, nothing else, so
  the parent's timer stops as soon as the round does;
- ``details``: the last round's ok/error counts, latency and in-flight figures, computed
  outside the timed region;
- ``timeline``: every request of the last round, start and end.

EOF on stdin ends it. Imports, the HTTP session and the URLs are made before ``ready``.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import resource
import socket
import sys
import threading
import time
from collections import Counter

from bench.clients import BLOCKING, CLIENTS, NO_CLIENT, Client
from bench.clients.outcome import REFUSED_BY_CAP
from bench.harness import loops, memory, process_tree
from bench.harness.cpu_task import cpu_task
from bench.harness.resolver import ResolverCalls
from bench.harness.timeline import round_details
from bench.names import DELAY
from bench.strategies import STRATEGIES, Strategy
from bench.workload import Workload, describe_error
from servers.lifetime import PARENT_PID_VARIABLE, die_with_parent

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


def pool_process_fetch(client_module: str | None, workload: Workload):
    """A pool process's own client, made by the pool's initializer: one request at a time.

    Module-level, so the pool can pickle it; the process dies with the worker, as the worker
    dies with its parent (the worker set itself as the parent to check against).
    """
    die_with_parent()
    if client_module is None:
        return cpu_task(workload, asynchronous=False)
    return importlib.import_module(client_module).blocking_fetch(workload, 1)


class Runner:
    """One strategy bound to its client's fetch, its URLs and (if it has one) its event loop."""

    def __init__(self, strategy: Strategy, client: Client | None, workload: Workload) -> None:
        # Before the client exists, so every lookup it makes is counted.
        self.resolver_calls = ResolverCalls(strategy, client)
        self.resolver = "; ".join(filter(None, (self.resolver_calls.path, client and client.resolver_note)))
        self.urls = workload.urls()
        self.concurrency = workload.concurrency
        # A connection for every request that may be in flight; the warm-up opens that many, at
        # once, held by the delay server's barrier (a database's drivers open theirs up front).
        pool_size = strategy.fanout.max_in_flight(workload.requests, workload.concurrency)
        # A trap row (gevent's patch cannot reach the client's IO) sends one request at a time:
        # a barrier for K would hold each of them its whole wait, and it keeps one connection.
        self.warmup_urls = workload.warmup_urls(
            pool_size,
            gather=client is not None and client.target == DELAY and not client.runs_serialized(strategy),
        )
        self.module = strategy.load()
        asynchronous = strategy.api != BLOCKING
        self.loop = loops.new_loop(strategy.loop) if strategy.loop else None
        self.processes = strategy.processes
        self.pooled = strategy.pooled
        self.pool = None  # a pool of workers, opened by the first round (the warm-up) and kept
        if strategy.processes:
            # What each pool process calls to make its client. One client made here first
            # imports the library before the fork, as a script importing it at the top would.
            if client is not None:
                client.fetch_factory(BLOCKING)(workload, 1)
            self.fetch = functools.partial(pool_process_fetch, client and client.module, workload)
        elif client is None:
            self.fetch = cpu_task(workload, asynchronous=asynchronous)
        elif asynchronous:
            self.fetch = self.loop.run_until_complete(client.fetch_factory(strategy.api)(workload, pool_size))
        else:
            self.fetch = client.fetch_factory(BLOCKING)(workload, pool_size)
        self.event_loop = self.loop.run_until_complete(loops.running_loop()) if self.loop else None
        self.last_outcomes: list = []
        self.last_started = 0.0
        self.last_error: str | None = None
        self.rss_idle = self.rss_before = memory.rss_bytes()
        # A request ends by its timeouts (connect, then read) after at most this long.
        self.straggler_timeout_s = 2 * workload.timeout_s + workload.delay_ms / 1000

    def send_all(self, urls: list[str]) -> list:
        if self.pooled:
            if self.pool is None:
                self.pool = self.module.open_pool(self.fetch, self.concurrency)
            return self.module.run(self.pool, self.fetch, urls)
        if self.loop:
            return self.loop.run_until_complete(self.module.run(self.fetch, urls, self.concurrency))
        return self.module.run(self.fetch, urls, self.concurrency)

    def warm_up(self) -> dict:
        outcomes = [outcome for outcome in self.send_all(self.warmup_urls) if outcome is not None]
        return {
            "ok": sum(outcome.ok for outcome in outcomes),
            "requests": len(self.warmup_urls),
            "peak_rss_bytes": memory.peak_rss_bytes() - self.rss_before,
        }

    def cpu_seconds(self) -> float | None:
        """The worker's CPU time, and its pool processes' (alive across rounds, so never reaped).

        None when the pool's is unknown (no schedstat): never the worker's alone, passed off as the tree's.
        """
        if self.processes:
            pool = process_tree.descendants_cpu_seconds(os.getpid())
            return None if pool is None else cpu_seconds() + pool
        return cpu_seconds()

    def prepare_round(self) -> None:
        """Reset the memory high-water mark while idle, so the round's own timer need not wait.

        Called after every answer: between then and the next ``round`` the worker only blocks
        on its stdin, so the mark it starts the round with is the one set here.
        """
        memory.reset_peak_rss()
        self.rss_before = memory.rss_bytes()
        self.resolver_calls.take()  # the next round's count starts here, outside its timer

    def run_round(self) -> dict:
        rss_before = self.rss_before
        cpu_before = self.cpu_seconds()
        started = time.perf_counter()
        round_error = None
        try:
            outcomes = self.send_all(self.urls)
        except Exception as exc:  # e.g. "can't start new thread": the round fails, the worker lives
            outcomes, round_error = [], describe_error(exc)
            self._wait_for_stragglers()
        wall_seconds = time.perf_counter() - started
        cpu_after = self.cpu_seconds()
        cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        peak_rss = memory.peak_rss_bytes()

        self.last_outcomes, self.last_started, self.last_error = outcomes, started, round_error
        # Only what was measured: counting outcomes waits for "details", outside the timed region.
        return {
            "wall_seconds": wall_seconds,
            "cpu_seconds": cpu,
            "peak_rss_bytes": peak_rss - rss_before,
            # Warm rounds reuse what earlier rounds freed (allocator arenas, cached thread
            # stacks); measured from the idle process, the peak is the same every round.
            "peak_rss_above_idle_bytes": peak_rss - self.rss_idle,
            # After the timer, before the answer (whose prepare_round starts the next count).
            "resolver_calls": self.resolver_calls.take(),
        }

    @property
    def finished_outcomes(self) -> list:
        """The last round's outcomes, without the None of a task that died before returning one."""
        return [outcome for outcome in self.last_outcomes if outcome is not None]

    def round_counts(self) -> dict:
        """ok and errors of the last round; a task with no outcome is an error, never dropped."""
        finished = self.finished_outcomes
        ok = sum(outcome.ok for outcome in finished)
        errors = Counter(outcome.error for outcome in finished if not outcome.ok)
        if missing := len(self.urls) - len(finished):
            errors[self.last_error or "task ended without an outcome (it raised or was killed)"] += missing
        return {
            "ok": ok,
            "errors": len(self.urls) - ok,
            "error_samples": dict(errors.most_common(ERROR_SAMPLES)),
            # Counted exactly, whatever the samples kept: the row's "refused by the server's cap".
            "errors_http_503": errors[REFUSED_BY_CAP],
            **round_details(finished, self.last_started),
        }

    def _wait_for_stragglers(self) -> None:
        """Threads a failed round had started still run: let them end before the next round."""
        deadline = time.monotonic() + self.straggler_timeout_s
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()
        if self.loop:
            if closer := getattr(self.fetch, "aclose", None):
                self.loop.run_until_complete(closer())
            self.loop.close()


def main(argv: list[str] | None = None) -> int:
    strategy_name, client_name, workload_json = (argv or sys.argv[1:])[:3]
    strategy = STRATEGIES[strategy_name]
    client = CLIENTS[client_name] if client_name != NO_CLIENT else None
    workload = Workload.from_dict(json.loads(workload_json))
    die_with_parent()
    if workload.worker_nice:
        os.nice(workload.worker_nice)  # before any thread or pool process, which inherit it
    # From here on this process is the parent its own children (a pool's processes) die with.
    os.environ[PARENT_PID_VARIABLE] = str(os.getpid())

    # The protocol owns the real stdout; anything else printing lands on stderr instead.
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    runner: Runner | None = None

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")
        if runner:
            runner.prepare_round()

    patched = monkey_patched()
    if patched != strategy.gevent:
        # Unpatched, gevent runs every greenlet's IO one after another; patched, "threads"
        # would be greenlets. Either would time the wrong thing, so refuse to start.
        send(
            {
                "fatal": f"{strategy_name} needs monkey_patched={strategy.gevent} "
                f"(run it with python -m {strategy.worker_module})"
            }
        )
        return 1
    if client is not None and not client.serves(strategy):
        send(
            {
                "fatal": f"client {client.name} cannot serve {strategy_name} (it serves {', '.join(client.apis)}"
                + (", in a patched worker only" if client.gevent_only else "")
                + ")"
            }
        )
        return 1
    if client is not None and not client.connects(workload.connection):
        send({"fatal": f"client {client.name} cannot run with --bench-connection {workload.connection}"})
        return 1
    if workload.kind == "io" and client is None:
        send({"fatal": "an IO workload needs a client"})
        return 1
    memory.check_supported()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one descriptor per open connection

    try:
        runner = Runner(strategy, client, workload)
    except Exception as exc:  # e.g. the database refused the connections: say so, not a traceback
        send({"fatal": f"{strategy_name} could not set up its client: {describe_error(exc)}"})
        return 1
    send(
        {
            "ready": True,
            "pid": os.getpid(),
            "monkey_patched": patched,
            "event_loop": runner.event_loop,
            "resolver": runner.resolver,
            "nice": os.getpriority(os.PRIO_PROCESS, 0),
        }
    )
    for line in sys.stdin:
        command = line.strip()
        if command == "round":
            send(runner.run_round() | {"monkey_patched": patched})
        elif command == "warmup":
            send(runner.warm_up())
        elif command == "details":
            send(runner.round_counts())
        elif command == "timeline":
            send(round_details(runner.finished_outcomes, runner.last_started, with_timeline=True))
        else:
            send({"fatal": f"unknown command {command!r}"})
            return 1
    runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
