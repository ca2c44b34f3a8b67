"""Open files cap what a row can ask for: every request in flight holds a descriptor in the worker
and one in a server worker.

Each worker raises its soft RLIMIT_NOFILE to the hard limit at start (``worker.py``), and so does
each server worker (``servers/delay.py``); the hard limit is where it stops (issue 15, item 4).
A row that asks for more in flight would fail with EMFILE ("Too many open files"), which
measures the machine's setting, not the model: it is skipped before it runs, with the limit.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

# Descriptors a process holds besides its connections: stdio and the parent's pipes, the event
# loop's epoll and wake-up pipe, the listening socket, /proc reads, a pool's pipes. A few dozen
# here; 100 leaves room.
OTHER_FILES = 100
# RLIM_INFINITY: no row comes near it.
UNLIMITED = 1 << 30


@dataclass(frozen=True)
class FileLimit:
    open_files: int  # per process, the smallest of the worker's and the server workers'
    holder: str = "this machine"  # whose limit it is, for the message

    @property
    def max_in_flight(self) -> int:
        return self.open_files - OTHER_FILES

    def describe(self) -> str:
        return (
            f"{self.holder} allows {self.open_files:,} open files per process: "
            f"at most about {self.max_in_flight:,} in flight"
        )

    def skip_reason(self, in_flight: int) -> str | None:
        """Why a row asking for this many in flight cannot run here; None if it fits."""
        if in_flight <= self.max_in_flight:
            return None
        return (
            f"{in_flight:,} in flight asked, but {self.describe()} (RLIMIT_NOFILE's hard limit, ulimit -Hn)"
        )


def open_files_of(pid: int) -> int | None:
    """A process's soft open-files limit, from /proc/PID/limits; None if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return None if soft == "unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        pass
    return None


def for_run(server) -> FileLimit:
    """The limit every row of this run meets: a worker's (this process's hard limit, which each
    worker raises to) or, for a server started here, its workers' own, whichever is lower.

    A server started elsewhere has its host's limit, which its /stats does not tell: its refusals
    show as the rows' errors instead.
    """
    worker = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = FileLimit(UNLIMITED if worker == resource.RLIM_INFINITY else worker)
    server_limits = [open_files_of(pid) for pid in server.worker_pids] if server.started_here else []
    if (server_files := min(filter(None, server_limits), default=None)) and server_files < limit.open_files:
        return FileLimit(server_files, "the delay server")
    return limit
