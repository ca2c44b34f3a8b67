"""Kernel counters the server reports about itself, so a client on another host can read them.

The same logic as ``bench.harness.kernel``, repeated on purpose: the server never imports ``bench``.
"""

from __future__ import annotations

import os
from pathlib import Path

_NETSTAT = Path("/proc/net/netstat")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
NS_PER_SECOND = 1_000_000_000


def listen_overflows() -> int:
    """TcpExt ListenOverflows: connections dropped because an accept queue was full.

    Counted for the whole network namespace, so another program's overflows show too.
    """
    lines = _NETSTAT.read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        if header.startswith("TcpExt:"):
            fields = dict(zip(header.split()[1:], values.split()[1:], strict=True))
            return int(fields["ListenOverflows"])
    raise RuntimeError(f"{_NETSTAT} has no TcpExt ListenOverflows counter")


def cpu_ticks(pids: list[int]) -> int:
    """User + system CPU time of these processes (all their threads), in clock ticks.

    A pid that is 0 (a worker not started yet) or gone is skipped.
    """
    total = 0
    for pid in pids:
        if pid <= 0:
            continue
        try:
            # Fields after the parenthesised command name: utime and stime are the 12th and 13th.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def cpu_ns(pids: list[int]) -> int:
    """CPU time of these processes (all their threads), in nanoseconds.

    From the scheduler's own account (``/proc/PID/task/TID/schedstat``, its first field: time
    on a CPU, exact), not from ``utime + stime``, which the kernel keeps in clock ticks (10 ms
    here): too coarse for a round of a few hundred requests at tens of microseconds each. A
    kernel without schedstat falls back to the ticks. A pid that is 0 or gone is skipped.
    """
    total = 0
    for pid in pids:
        if pid <= 0:
            continue
        try:
            total += _schedstat_field(pid, 0)
        except FileNotFoundError:
            total += cpu_ticks([pid]) * NS_PER_SECOND // TICKS_PER_SECOND
        except OSError:
            continue
    return total


def run_queue_wait_ns(pids: list[int]) -> int | None:
    """How long these processes' threads waited, runnable, for a CPU: the scheduler's own
    account (``/proc/PID/task/TID/schedstat``, its second field), in nanoseconds.

    A server that waits here while its responses are due answers them late through no fault of
    its own code: whoever held the CPU did (issue 22, item 2). None where the kernel keeps no
    schedstat; a pid that is 0 or gone is skipped.
    """
    total = 0
    for pid in pids:
        if pid <= 0:
            continue
        try:
            total += _schedstat_field(pid, 1)
        except FileNotFoundError:
            if Path(f"/proc/{pid}").exists():
                return None  # the process is there, its schedstat is not: unknown, not zero
        except OSError:
            continue
    return total


def _schedstat_field(pid: int, index: int) -> int:
    """One field of schedstat (0: ns on a CPU, 1: ns waiting on a run queue), summed over the threads."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    return sum(int((task / "schedstat").read_text().split()[index]) for task in tasks)
