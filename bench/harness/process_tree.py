"""A worker and the processes it started, as Linux's /proc sees them: count, threads, PSS, CPU.

A strategy with a pool of processes (design rule 6) is measured over its whole tree. Each
process's children are read from ``/proc/PID/task/PID/children``: the children of its main
thread, which is the thread that starts a ProcessPoolExecutor's processes (at its first
submit, with the fork context) and every worker's own.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import NamedTuple


class TreeSample(NamedTuple):
    processes: int
    threads: int
    pss_bytes: int | None  # None when not asked for: smaps_rollup costs ~0.1 ms a process


def missing_facilities(pid: int | None = None) -> list[str]:
    """What this Linux lacks to measure a pool of processes, said once at start; empty when nothing.

    Without them the pool's processes, or their CPU time, would silently read as zero
    (issue 19, item 5): a pool row is then INVALID (bench/analysis/row_info.py).
    """
    pid = pid or os.getpid()
    needs = {
        f"/proc/{pid}/task/{pid}/children": "a pool's processes cannot be found: "
        "their count, memory and CPU are unknown (the kernel lacks CONFIG_PROC_CHILDREN)",
        f"/proc/{pid}/task/{pid}/schedstat": "a pool's processes' CPU time is unknown "
        "(the kernel lacks CONFIG_SCHED_INFO)",
    }
    return [f"{path} is missing: {why}" for path, why in needs.items() if not Path(path).exists()]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), not ``pid`` itself."""
    found, pending = [], [pid]
    while pending:
        parent = pending.pop()
        try:
            children = [
                int(child) for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
            ]
        except (OSError, ValueError):
            continue  # it exited while we looked
        found += children
        pending += children
    return found


def _threads(pid: int) -> int:
    # Field 20 of /proc/PID/stat is num_threads; the command name before it is in parentheses.
    return int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[17])


def pss_bytes(pid: int) -> int:
    """Proportional set size: each shared page divided among the processes that map it.

    Summed over a tree it counts a page shared by all the processes once, where summed
    RSS (or VmHWM) would count it once per process.
    """
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/smaps_rollup has no Pss line")


def sample(pid: int, with_pss: bool) -> TreeSample:
    processes = threads = pss = 0
    for member in [pid, *descendants(pid)]:
        try:
            member_threads = _threads(member)
            member_pss = pss_bytes(member) if with_pss else 0
        except (OSError, IndexError, ValueError):
            continue  # it exited while we looked
        processes, threads, pss = processes + 1, threads + member_threads, pss + member_pss
    return TreeSample(processes, threads, pss if with_pss else None)


def descendants_cpu_seconds(pid: int) -> float | None:
    """CPU time of the processes below ``pid`` that are alive, to the nanosecond; None if unknown.

    getrusage(RUSAGE_CHILDREN) counts children only once they are reaped, and a pool's
    processes live across rounds; /proc/PID/stat counts in 10 ms ticks. The first field of
    each thread's schedstat is its time on a CPU in ns. Without schedstat it is unknown, not 0.
    """
    if not Path(f"/proc/{pid}/task/{pid}/schedstat").exists():
        return None
    total_ns = 0
    for child in descendants(pid):
        for schedstat in Path(f"/proc/{child}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, IndexError, ValueError):  # it exited while we looked
                total_ns += int(schedstat.read_text().split()[0])
    return total_ns / 1e9


class TreeSampler:
    """The peaks of one round over a worker's tree, sampled whenever ``sample_if_due`` is called.

    Every row gets this same sampler: its processes and their threads, read at most every
    ``interval_s`` and never more than a fifth of the time. PSS is never read during a round
    (smaps_rollup costs ~0.1 ms a process, CPU the pool being timed would lose): a pool's PSS
    is read after the round, outside its timer (issue 19, item 4; ``WorkerProcess.details``).
    """

    def __init__(self, pid: int, interval_s: float) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.processes_peak = self.threads_peak = 0
        self._due = 0.0

    def sample_if_due(self) -> None:
        started = time.monotonic()
        if started < self._due:
            return
        tree = sample(self.pid, with_pss=False)
        self.processes_peak = max(self.processes_peak, tree.processes)
        self.threads_peak = max(self.threads_peak, tree.threads)
        took = time.monotonic() - started
        self._due = started + max(self.interval_s, 5 * took)
