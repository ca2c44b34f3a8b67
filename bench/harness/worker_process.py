"""The parent's handle on a worker process: start it, ask for rounds, count its OS threads.

One process per strategy (design rule 1): gevent's patch is process-wide, and memory and
CPU figures are only honest when nothing else lives in the process. The parent talks over
plain pipes, never multiprocessing, whose queues can hang under a patched ``threading``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

from bench.clients import NO_CLIENT, Client
from bench.harness import memory, process_tree
from bench.strategies import Strategy
from bench.workload import Workload
from servers.lifetime import PARENT_PID_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Read by bench/harness/gevent_worker.py before it patches (a trap row's driver, imported first).
IMPORT_BEFORE_PATCH = "COROUTINE_BENCH_IMPORT_BEFORE_PATCH"
# Importing requests (and gevent) and patching takes well under a second; CI machines are slower.
STARTUP_TIMEOUT_S = 30.0
# Short-lived threads are only seen if we look often; one read of /proc costs ~20 µs.
THREAD_SAMPLE_INTERVAL_S = 0.001
# The worker's whole tree (its processes and their threads): a process pool's members live
# across rounds, so a slower look still sees every one of them.
TREE_SAMPLE_INTERVAL_S = 0.020
# On top of the worst case where every wave of requests runs into its timeout.
ROUND_DEADLINE_SLACK_S = 30.0
# Sorting and summarizing even 10,000 requests takes well under a second.
DETAILS_TIMEOUT_S = 30.0


def worker_environment() -> dict[str, str]:
    """The parent's environment, plus what a worker must know before its first import."""
    return os.environ | {
        # gevent's default resolver sends every getaddrinfo, even of the literal 127.0.0.1, to
        # a pool of up to 10 native threads (measured: 11 OS threads in a joinall round, not
        # 1). c-ares resolves on the hub, so gevent rows show gevent's own footprint. Set here,
        # not in the worker, so that its monkey.patch_all() stays its first statement.
        "GEVENT_RESOLVER": "ares",
        PARENT_PID_VARIABLE: str(os.getpid()),
    }


class WorkerError(RuntimeError):
    """The worker died, stalled past its deadline, or broke the protocol."""


class WorkerProcess:
    """``with WorkerProcess(strategy, client, workload) as worker: worker.measure_round()``.

    ``client`` is None for the CPU-bound control, which sends no requests.
    """

    def __init__(
        self,
        strategy: Strategy,
        client: Client | None,
        workload: Workload,
        sample_interval_s: float = THREAD_SAMPLE_INTERVAL_S,
    ) -> None:
        self.strategy = strategy
        # How often a round looks at the worker's threads; dozens of workers driven from one
        # process (the tests' matrix) look less often, or their polling starves that process.
        self.sample_interval_s = sample_interval_s
        self.client = client
        self.workload = workload
        self.monkey_patched: bool | None = None
        self.event_loop: str | None = None  # what the worker found running its coroutines
        self.resolver: str | None = None  # the path its name lookups take (harness/resolver.py)
        self.nice: int | None = None  # the worker's own nice value, as it reported it
        # A pool of processes is measured by the PSS of its whole tree (design rule 6).
        self._pss_idle = self._pss_before = None
        self._last_round: dict = {}
        self._process: subprocess.Popen | None = None
        self._selector = selectors.DefaultSelector()
        self._buffer = b""

    def __enter__(self) -> WorkerProcess:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.strategy.worker_module,
                self.strategy.name,
                self.client.name if self.client else NO_CLIENT,
                json.dumps(self.workload.as_dict()),
            ],
            cwd=PROJECT_ROOT,
            env=worker_environment()
            | (
                {IMPORT_BEFORE_PATCH: self.client.imports_before_patch}
                if self.client and self.client.imports_before_patch
                else {}
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._selector.register(self._process.stdout, selectors.EVENT_READ)
        try:
            ready = self._read_message(time.monotonic() + STARTUP_TIMEOUT_S)
            if not ready.get("ready"):
                raise WorkerError(f"{self.strategy.name} worker sent {ready} instead of its ready line")
            self.monkey_patched = ready["monkey_patched"]
            self.event_loop = ready.get("event_loop")
            self.resolver = ready.get("resolver")
            self.nice = ready.get("nice")
            if self.strategy.processes:  # before the pool exists: the worker alone
                self._pss_idle = self._pss_before = self._tree_pss()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._selector.close()
        # EOF: the worker's loop ends and it exits 0. A broken pipe: it died with a command
        # unsent, which the WorkerError _ask raised already says.
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    @property
    def pid(self) -> int:
        return self._process.pid

    def round_deadline_s(self) -> float:
        """The worst a healthy client can take: every wave of requests runs into its timeouts.

        A request gives up after its connect timeout plus its read timeout (both T), so a wave
        lasts at most 2T + D; there are ceil(N / in-flight) waves.
        """
        in_flight = self.strategy.fanout.max_in_flight(self.workload.requests, self.workload.concurrency)
        waves = math.ceil(self.workload.requests / in_flight)
        per_wave = 2 * self.workload.timeout_s + self.workload.delay_ms / 1000
        return waves * per_wave + ROUND_DEADLINE_SLACK_S

    def run_round(self) -> dict:
        """Run one round; the result carries the worker's figures plus the OS threads we saw.

        Nothing but the round happens between the command and its answer: a pool's memory is
        read afterwards, by ``details`` (issue 19, item 4).
        """
        started = time.perf_counter()
        threads_peak = [0]
        tree = process_tree.TreeSampler(self.pid, max(TREE_SAMPLE_INTERVAL_S, self.sample_interval_s))

        def on_idle() -> None:
            self._sample_threads(threads_peak)
            tree.sample_if_due()

        result = self._ask("round", self.round_deadline_s(), on_idle=on_idle)
        result["round_trip_seconds"] = time.perf_counter() - started
        result["os_threads_peak"] = max(threads_peak[0], tree.threads_peak)
        result["processes_peak"] = tree.processes_peak
        result["event_loop"] = self.event_loop
        result["resolver"] = self.resolver
        result["worker_nice"] = self.nice
        result["memory_method"] = memory.VMHWM
        self._last_round = result
        return result

    def warm_up(self) -> dict:
        """Prime the fresh worker: ok count, peak memory and time of ``Workload.warmup_urls``.

        The warm-up is where a pooled strategy starts its pool (issue 19, item 3): its time is
        that start-up plus the first connections, reported as a figure of its own.
        """
        started = time.perf_counter()
        answer = self._ask("warmup", self.round_deadline_s())
        answer["warmup_seconds"] = time.perf_counter() - started
        if self.strategy.processes:
            # The pool was forked by this warm-up: the cold figure is the tree's, above the worker
            # alone (issue 19, item 2), and the first timed round starts from the tree as it is now.
            answer |= {"worker_peak_rss_bytes": answer["peak_rss_bytes"]} | self._tree_memory(self._pss_idle)
        return answer

    def measure_round(self) -> dict:
        """A round and its details together, for callers that do not time it themselves."""
        return self.run_round() | self.details()

    def details(self, timeline: bool = False) -> dict:
        """The last round's ok/errors, latency and in-flight; with ``timeline``, every request's span.

        For a pool of processes, also the round's memory: the summed PSS of the whole tree, read
        here, after the round's timer stopped (the pool's processes persist, so what they grew
        to is still mapped); the worker's own VmHWM figure is kept beside it.
        """
        answer = self._ask("timeline" if timeline else "details", DETAILS_TIMEOUT_S)
        if self.strategy.processes and self._last_round:
            worker_figure = self._last_round["peak_rss_above_idle_bytes"]
            answer |= {"worker_peak_rss_above_idle_bytes": worker_figure} | self._tree_memory(
                self._pss_before
            )
            self._last_round = {}
        return answer

    def _tree_memory(self, since: int) -> dict:
        """The tree's summed PSS now, above ``since`` and above the idle worker; the next round starts from it."""
        pss = self._tree_pss()
        self._pss_before = pss
        return {
            "peak_rss_bytes": pss - since,
            "peak_rss_above_idle_bytes": pss - self._pss_idle,
            "memory_method": memory.SUMMED_PSS,
        }

    def _tree_pss(self) -> int:
        return process_tree.sample(self.pid, with_pss=True).pss_bytes

    def _ask(self, command: str, timeout_s: float, on_idle=None) -> dict:
        try:
            self._process.stdin.write(command.encode() + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            status = self._process.wait()
            raise WorkerError(
                f"{self.strategy.name} worker exited (status {status}) before {command!r}"
            ) from None
        return self._read_message(time.monotonic() + timeout_s, on_idle)

    def _sample_threads(self, peak: list[int]) -> None:
        try:
            # Field 20 of /proc/PID/stat is num_threads; the command name before it is in parentheses.
            stat = Path(f"/proc/{self._process.pid}/stat").read_bytes()
            peak[0] = max(peak[0], int(stat.rsplit(b")", 1)[1].split()[17]))
        except (OSError, IndexError, ValueError):
            pass  # the worker is exiting; _read_message reports that

    def _read_message(self, deadline: float, on_idle=None) -> dict:
        timeout = self.sample_interval_s if on_idle else None
        while b"\n" not in self._buffer:
            if time.monotonic() > deadline:
                self._process.kill()
                raise WorkerError(
                    f"{self.strategy.name} worker gave no answer before its deadline; killed it"
                )
            if on_idle:
                on_idle()
            if self._selector.select(timeout if timeout else max(0.0, deadline - time.monotonic())):
                chunk = os.read(self._process.stdout.fileno(), 1 << 16)
                if not chunk:
                    status = self._process.wait()
                    raise WorkerError(
                        f"{self.strategy.name} worker exited (status {status}) mid-conversation"
                    )
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if "fatal" in message:
            raise WorkerError(message["fatal"])
        return message
