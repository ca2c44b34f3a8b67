"""A throwaway redis-server for the --bench-fetch example (examples/redis_blpop.py), as the
database tests start PostgreSQL: on 127.0.0.1, nothing saved, stopped after."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

INSTALL_HINT = (
    "redis-server is not installed: `apt-get install redis-server` (Debian/Ubuntu; .ci/install does it)"
)
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def available() -> bool:
    return shutil.which("redis-server") is not None


def free_port() -> int:
    """redis-server cannot take port 0 and say which it got: bind one first, and hand it over."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_redis_server() -> Iterator[str]:
    """Yield its URL once it answers PING; a server that never does fails loudly at the deadline."""
    import redis

    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited ({process.returncode}): {process.stderr.read()!r}")
            try:
                redis.Redis.from_url(url, socket_timeout=1).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not answer on {url} within {READY_TIMEOUT_S:g} s"
                    ) from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()
