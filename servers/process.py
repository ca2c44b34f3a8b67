"""Start the delay server as a subprocess and stop it, for conftest, tests and scripts.

The server must live in its own process: in-process it would share the GIL, the CPU and the
memory figures with the client being measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple

from servers.lifetime import PARENT_PID_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_PREFIX = "listening on "
# Importing the app and binding takes ~0.3 s here; 20 s covers a cold, loaded CI machine.
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


class ServerStartError(RuntimeError):
    """The server process exited or stayed silent instead of printing its ready line."""


class DelayServer(NamedTuple):
    """A running delay server: one this process started (``process``), or one elsewhere (None)."""

    base_url: str
    process: subprocess.Popen | None
    # The worker processes that serve (``process`` only supervises them), read once at start.
    worker_pids: tuple[int, ...] = ()
    # For an HTTPS server: its CA's PEM, which its clients trust, and a context trusting it,
    # for /stats and the round trip.
    ca_file: str = ""
    ssl_context: ssl.SSLContext | None = None
    # What the server wrote on stderr (a file this process reads), so tests can prove it printed no traceback.
    stderr_file: IO[str] | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def exit_status(self) -> int | None:
        """The server's exit status if it has exited; None while it runs (or runs elsewhere)."""
        return self.process.poll() if self.process is not None else None

    def round_trip_ms(self, samples: int = 5) -> float:
        """The median time of a GET that asks for no delay: the network's share of every request."""
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            with self._open(self.url_for("/delay?ms=0")) as response:
                response.read()
            times.append((time.perf_counter() - started) * 1000)
        return sorted(times)[len(times) // 2]

    def stderr_text(self) -> str:
        """Everything the server (parent and workers) has written on stderr so far."""
        if self.stderr_file is None:
            raise RuntimeError(f"the delay server at {self.base_url} was not started here")
        self.stderr_file.seek(0)
        return self.stderr_file.read()

    def url_for(self, path: str) -> str:
        return self.base_url + path

    def stats(self) -> dict:
        with self._open(self.url_for("/stats")) as response:
            return json.load(response)

    def reset_stats(self) -> dict:
        with self._open(urllib.request.Request(self.url_for("/stats/reset"), method="POST")) as response:
            return json.load(response)

    def negotiated_tls(self) -> dict | None:
        """The TLS version and cipher a client with the default context gets; None for plain HTTP."""
        if self.ssl_context is None:
            return None
        parts = urllib.parse.urlsplit(self.base_url)
        with (
            socket.create_connection((parts.hostname, parts.port), timeout=5) as raw,
            self.ssl_context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            return {"version": tls.version(), "cipher": tls.cipher()[0]}

    def _open(self, request):
        return urllib.request.urlopen(request, timeout=5, context=self.ssl_context)

    def signal_all(self, signum: int) -> None:
        """Signal the workers and the parent, e.g. SIGSTOP then SIGCONT to freeze the whole
        server: a signal to ``process`` alone reaches only the supervisor, not the workers."""
        if self.process is None:
            raise RuntimeError(f"the delay server at {self.base_url} was not started here")
        for pid in (*self.worker_pids, self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


@contextmanager
def running_delay_server(
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    extra_args: tuple[str, ...] = (),
    python: str = sys.executable,
    ca_file: str | None = None,
) -> Iterator[DelayServer]:
    """Run ``python -m servers.delay`` until the block ends; yield once it accepts connections.

    ``extra_args`` go to the server's command line, e.g. ``("--max-connections", "10")``;
    ``python`` is the interpreter that runs the server (bench.versions keeps it fixed);
    ``ca_file`` is the CA that signed its ``--tls-cert``, for an HTTPS server.
    """
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            [
                python,
                "-m",
                "servers.delay",
                "--host",
                host,
                "--port",
                str(port),
                "--die-with-parent",
                *extra_args,
            ],
            cwd=PROJECT_ROOT,
            env=os.environ | {PARENT_PID_VARIABLE: str(os.getpid())},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            base_url = _wait_for_ready_line(process, stderr, startup_timeout_s)
            server = DelayServer(
                base_url, process, ca_file=ca_file or "", ssl_context=context, stderr_file=stderr
            )
            yield server._replace(worker_pids=tuple(server.stats()["worker_pids"]))
        finally:
            stop_process(process)


def _wait_for_ready_line(process: subprocess.Popen, stderr, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if selector.select(remaining):
                line = process.stdout.readline()
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX) :].strip()
                if not line:  # EOF: the process is gone
                    process.wait(timeout=STOP_TIMEOUT_S)
                    stderr.seek(0)
                    raise ServerStartError(
                        f"delay server exited with status {process.returncode} before it was ready: "
                        f"{stderr.read().strip()[-2000:] or '(no stderr)'}"
                    )
                raise ServerStartError(f"delay server printed {line!r} instead of {READY_PREFIX!r}...")
    raise ServerStartError(f"delay server printed no ready line within {timeout_s:.0f} s")


def stop_process(process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait, then SIGKILL: a process we started never outlives its owner."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream:
            stream.close()


def remote_delay_server(url: str) -> DelayServer:
    """A delay server started elsewhere (``python -m servers.delay --host ...`` on another host).

    Its /stats must answer, with this server's keys, or the suite would judge rows blind.
    """
    server = DelayServer(url.rstrip("/"), None)
    try:
        stats = server.stats()
    except (OSError, ValueError) as exc:
        raise ServerStartError(f"no delay server answers at {url}: {exc}") from None
    if not isinstance(stats, dict) or "lateness_ms" not in stats or "listen_overflows" not in stats:
        raise ServerStartError(f"{url}/stats is not this suite's delay server (python -m servers.delay)")
    return server
