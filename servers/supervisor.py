"""The delay server's parent process: reserve the port, fork the workers, watch them, stop them.

Each worker binds its own listening socket to the same port with SO_REUSEPORT, after it has
started, so the kernel spreads new connections over the workers' accept queues (a socket
inherited from the parent would be one queue that every worker races to accept from). For
``--port 0`` the parent first binds a SO_REUSEPORT socket to port 0 and never listens on it:
the kernel picks the port, the reservation keeps it ours, and, not listening, that socket
never receives a connection.

The parent prints the one ready line once every worker has said it accepts connections. It
stops every worker on SIGTERM or SIGINT and exits 0. If a worker dies on its own, the parent
stops the others and exits 1, so whoever polls the parent sees the server is gone.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable

from servers.lifetime import PARENT_PID_VARIABLE, die_with_parent

# How long the workers may take to bind and start accepting, all together.
WORKERS_READY_TIMEOUT_S = 15.0
# After asking the workers to stop, how long to wait before killing them: their own grace
# period for in-flight responses plus a margin for a loaded machine.
WORKERS_STOP_TIMEOUT_S = 3.0
_POLL_S = 0.02


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (never listen) a SO_REUSEPORT socket, so the workers can share its port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def listening_socket(address: tuple, family: int) -> socket.socket:
    """A worker's own socket on the shared port; the event loop's create_server listens on it."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _log(message: str) -> None:
    print(f"servers.delay: {message}", file=sys.stderr, flush=True)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    """Fork ``workers`` processes running ``work(index, ready_fd) -> exit status`` and watch them."""

    def __init__(self, workers: int, work: Callable[[int, int], int]) -> None:
        self.workers = workers
        self.work = work
        self.pids: dict[int, int] = {}  # pid -> worker index, for those not reaped yet
        self.stop_requested = False

    def run(self, ready_line: str) -> int:
        wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(wakeup_r, False)
        os.set_blocking(wakeup_w, False)
        ready_r, ready_w = os.pipe()
        signal.set_wakeup_fd(wakeup_w)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD wakes the select
        # Workers' die_with_parent compares their parent with this.
        os.environ[PARENT_PID_VARIABLE] = str(os.getpid())
        try:
            for index in range(self.workers):
                if self.stop_requested:
                    break
                self._fork(index, ready_w, close_in_child=(wakeup_r, wakeup_w, ready_r))
            os.close(ready_w)
            return self._watch(ready_r, wakeup_r, ready_line)
        finally:
            self._stop_all()
            signal.set_wakeup_fd(-1)
            for fd in (wakeup_r, wakeup_w, ready_r):
                os.close(fd)

    def _request_stop(self, _signum, _frame) -> None:
        self.stop_requested = True

    def _fork(self, index: int, ready_w: int, close_in_child: tuple[int, ...]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            self.pids[pid] = index
            return
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for fd in close_in_child:
                os.close(fd)
            # The parent decides when to stop: a terminal's Ctrl-C reaches the whole process
            # group, and the parent turns it into a SIGTERM for each worker.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            die_with_parent()
            status = self.work(index, ready_w)
        except BaseException as exc:  # a worker must never return into the parent's code
            _log(f"worker {index} failed: {exc!r}")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)

    def _watch(self, ready_r: int, wakeup_r: int, ready_line: str) -> int:
        deadline = time.monotonic() + WORKERS_READY_TIMEOUT_S
        ready = 0
        with selectors.DefaultSelector() as selector:
            selector.register(ready_r, selectors.EVENT_READ)
            selector.register(wakeup_r, selectors.EVENT_READ)
            while True:
                timeout = None if ready == self.workers else max(0.0, deadline - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.fd == wakeup_r:
                        _drain(wakeup_r)
                    else:
                        got = len(os.read(ready_r, 4096))
                        if not got:
                            selector.unregister(ready_r)  # every worker closed its end
                        ready += got
                        if got and ready == self.workers:
                            print(ready_line, flush=True)
                if self.stop_requested:
                    return 0
                for pid, index in list(self.pids.items()):
                    reaped, status = os.waitpid(pid, os.WNOHANG)
                    if reaped:
                        del self.pids[pid]
                        when = "" if ready == self.workers else " before it was ready"
                        _log(f"worker {index} (pid {pid}) {_describe(status)}{when}; stopping the others")
                        return 1
                if ready < self.workers and time.monotonic() >= deadline:
                    _log(f"{ready} of {self.workers} workers ready after {WORKERS_READY_TIMEOUT_S:.0f} s")
                    return 1

    def _stop_all(self) -> None:
        """SIGTERM every worker, wait, then SIGKILL: none outlives the parent's run."""
        for pid in self.pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + WORKERS_STOP_TIMEOUT_S
        while self.pids and time.monotonic() < deadline:
            self._reap()
            time.sleep(_POLL_S)
        for pid in self.pids:
            _log(
                f"worker {self.pids[pid]} (pid {pid}) did not stop in {WORKERS_STOP_TIMEOUT_S:.0f} s; killing it"
            )
            _signal(pid, signal.SIGKILL)
        for pid in list(self.pids):
            os.waitpid(pid, 0)
        self.pids.clear()

    def _reap(self) -> None:
        for pid in list(self.pids):
            if os.waitpid(pid, os.WNOHANG)[0]:
                del self.pids[pid]


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass
