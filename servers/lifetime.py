"""Tie a child process's life to its parent's: no orphaned servers or workers, even after SIGKILL."""

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1
# Set by whoever starts the child, so the child can tell its parent died before prctl took.
PARENT_PID_VARIABLE = "COROUTINE_BENCH_PARENT_PID"


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies, however the parent died."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    expected = os.environ.get(PARENT_PID_VARIABLE)
    # Already reparented (to init or a subreaper): the parent died before we asked.
    if expected is not None and os.getppid() != int(expected):
        os._exit(1)
