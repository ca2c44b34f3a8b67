"""Kernel counters that tell whether the network stack itself dropped work during a round, and
how busy the machine's CPUs were meanwhile."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path

_NETSTAT = Path("/proc/net/netstat")
_STAT = Path("/proc/stat")
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds(cpus: Collection[int] | None = None) -> float:
    """CPU time every process of the machine has used since boot on these CPUs (/proc/stat's
    ``cpuN`` lines), or on all of them (its ``cpu`` line): user, nice, system, irq, softirq and
    steal; guest time is inside user already.

    In clock ticks (10 ms here): read around a round of a second or more, its resolution is a
    percent. It tells how much of the CPU the worker and the server did not use: other programs'.
    """
    total, per_cpu = 0, {}
    for line in _STAT.read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu"):
            break  # the CPU lines come first
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in values[:8])
        busy = user + nice + system + irq + softirq + steal
        if name == "cpu":
            total = busy
        else:
            per_cpu[int(name[3:])] = busy
    # Every CPU asked: the total line, which the kernel sums before rounding each CPU's to ticks.
    if cpus is None or per_cpu.keys() <= set(cpus):
        return total / _TICKS_PER_SECOND
    return sum(per_cpu.get(cpu, 0) for cpu in cpus) / _TICKS_PER_SECOND


def cpus_of(pids: Iterable[int]) -> frozenset[int] | None:
    """The CPUs these processes may run on (their affinities together); None, meaning all of
    them, when there is none to ask or a process is gone."""
    cpus: set[int] = set()
    try:
        for pid in pids:
            cpus |= os.sched_getaffinity(pid)
    except OSError:
        return None
    return frozenset(cpus) or None


def listen_overflows() -> int:
    """TcpExt ListenOverflows: connections dropped because an accept queue was full.

    The count is for the whole network namespace, so another program's overflow would show
    too; in a benchmark run that errs on the side of flagging.
    """
    lines = _NETSTAT.read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        if header.startswith("TcpExt:"):
            fields = dict(zip(header.split()[1:], values.split()[1:], strict=True))
            return int(fields["ListenOverflows"])
    raise RuntimeError(f"{_NETSTAT} has no TcpExt ListenOverflows counter")
