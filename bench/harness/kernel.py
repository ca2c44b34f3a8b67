"""Kernel counters that tell whether the network stack itself dropped work during a round."""

from __future__ import annotations

from pathlib import Path

_NETSTAT = Path("/proc/net/netstat")


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
