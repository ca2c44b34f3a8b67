"""Kernel counters that tell whether the network stack itself dropped work during a round, and
how busy the machine's CPUs were meanwhile."""

from __future__ import annotations

import os
from pathlib import Path

_NETSTAT = Path("/proc/net/netstat")
_STAT = Path("/proc/stat")
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float:
    """CPU time every process of the machine has used since boot, all CPUs together (/proc/stat's
    ``cpu`` line: user, nice, system, irq, softirq and steal; guest time is inside user already).

    In clock ticks (10 ms here): read around a round of a second or more, its resolution is a
    percent. It tells how much of the CPU the worker and the server did not use: other programs'.
    """
    fields = [int(value) for value in _STAT.read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS_PER_SECOND


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
