"""The subject never starves the instrument: when both want a core, the delay server gets it first.

Linux's scheduler shares a busy core by weight, and the weight follows the nice value (each
step about 1.25x: nice 0 weighs 1024, nice 10 weighs 110, nice -10 weighs 9548; sched(7)). A
CPU-heavy client (trio-nursery[httpx]: 2.4 ms of CPU a request) and the server then no longer
take equal turns: the server runs as soon as a request or a timer is due, and the client gets
the rest. Niceness changes who runs when both are runnable; it makes no one's work cheaper, so
CPU time per request is unchanged, and the wall time of a CPU-bound row may grow.

Two ways, from ``--bench-server-priority``:

- ``nice-workers``: each worker under test lowers its own priority at start (``os.nice``; no
  privilege needed); its threads and pool processes inherit it;
- ``raise-server``: the suite raises the priority of the server it started (every thread of
  its supervisor and workers), which needs root or CAP_SYS_NICE (or RLIMIT_NICE); without
  them it falls back to nothing and records why.

``both`` does both; ``off`` neither. What applied is recorded in every row and in the run.
"""

from __future__ import annotations

import os
from pathlib import Path

OFF, NICE_WORKERS, RAISE_SERVER, BOTH = "off", "nice-workers", "raise-server", "both"
MODES = (OFF, NICE_WORKERS, RAISE_SERVER, BOTH)
# Ten steps either way: against a nice-0 process, about 9x the CPU share when both are runnable.
WORKER_NICE_INCREMENT = 10
SERVER_NICE = -10


def worker_nice_increment(mode: str) -> int:
    """How much each worker under test lowers its own priority at start."""
    return WORKER_NICE_INCREMENT if mode in (NICE_WORKERS, BOTH) else 0


def nice_of(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


def raise_server(mode: str, server) -> dict:
    """Give the server started here a higher priority if the mode asks and the system permits;
    what applied, for the run's record.

    On Linux a nice value belongs to a thread (setpriority on a pid sets only the thread with
    that id; sched(7)), so every thread of every server process is set.
    """
    if not server.started_here:
        return {
            "mode": mode,
            "server_raised": False,
            "why": "the server runs elsewhere: its host sets its priority",
        }
    pids = (server.process.pid, *server.worker_pids)
    applied = {"mode": mode, "server_raised": False}
    if mode in (RAISE_SERVER, BOTH):
        try:
            for pid in pids:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    os.setpriority(os.PRIO_PROCESS, int(task.name), SERVER_NICE)
            applied["server_raised"] = True
        except PermissionError as exc:
            applied["why"] = f"not permitted ({exc.strerror}): raising a priority needs root or CAP_SYS_NICE"
    return applied | {"server_nice": [nice_of(pid) for pid in pids]}
