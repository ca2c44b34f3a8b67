"""A throwaway PostgreSQL cluster in a process of its own: initdb, postgres, and removal.

``python -m bench.targets.postgres_cluster --max-connections M`` makes a temporary folder,
runs ``initdb`` into it and starts ``postgres`` on 127.0.0.1 at a free port, with its unix
socket in that folder, then prints ``ready DSN LOGFILE POSTMASTER_PID``. When its stdin closes
(its parent is done, or died however it died: the pipe closes with the process) or on
SIGTERM/SIGINT, it stops postgres and removes the folder. Its parent starts it in a session of
its own, so a Ctrl-C meant for the benchmark reaches the parent, which then closes the pipe.

A keeper killed by SIGKILL removes nothing: postgres dies with it, the folder stays. So the
folder holds a note of its keeper (``keeper``: its pid, its start time in clock ticks since
boot, and the boot's id), written by the keeper's own user, and every keeper first sweeps the
folders whose note proves their keeper dead (no process with that pid and start time in this
boot) and whose postgres is gone too.

PostgreSQL refuses to run as root ("root" execution of the PostgreSQL server is not
permitted): as root, initdb and postgres run as ``nobody`` (setpriv), and the folder is
given to that user. postgres dies with this process (``--pdeathsig``), and its backends
with postgres (they watch the postmaster), so a killed keeper leaves no server behind.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUPERUSER = "bench"
DATABASE = "postgres"
UNPRIVILEGED_USER = "nobody"
# initdb takes ~5 s on this loaded 2-core machine, postgres starts in well under a second.
STARTUP_TIMEOUT_S = 60.0
# A fast shutdown (SIGINT) ends every session at once; a throwaway cluster needs nothing slower.
STOP_TIMEOUT_S = 10.0
# Nothing here must survive the run, so nothing is made durable: no fsync, no full-page
# writes, no autovacuum competing with the clients for the 2 cores. pg_stat_statements is
# the referee's count of queries (bench/targets/postgres.py): it must be preloaded.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "autovacuum": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "32MB",
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",
    # Every statement's duration in the log: the referee's lateness percentile (postgres.py).
    "log_min_duration_statement": "0",
    # ...in English whatever the machine's locale: the referee matches "duration: ... ms" lines,
    # which a translated server would write otherwise, matching none (issue 24).
    "lc_messages": "C",
}
FOLDER_PREFIX = "coroutine-bench-pg-"
KEEPER_NOTE = "keeper"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
INSTALL_HINT = (
    "PostgreSQL is not installed: `apt-get install postgresql` (Debian/Ubuntu; the suite needs its "
    "initdb and postgres), or point --bench-db-dsn at a server started elsewhere"
)


def find_bindir() -> Path | None:
    """Where initdb and postgres live: ``pg_config --bindir``, else Debian's versioned folders."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        bindir = Path(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, check=True, text=True
            ).stdout.strip()
        )
        if (bindir / "initdb").exists():
            return bindir
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


def process_start_ticks(pid: int) -> int | None:
    """When a process started (clock ticks since boot, /proc/PID/stat field 22); None if none runs.

    A pid alone can be reused; a pid with its start time names one process for the boot's life."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in ("Z", "X"):  # dead, not yet reaped (a container's init may never reap it)
        return None
    return int(fields[19])


def keeper_note() -> str:
    return f"{os.getpid()} {process_start_ticks(os.getpid())} {_BOOT_ID.read_text().strip()}\n"


def is_dead_keepers(folder: Path) -> bool:
    """True if ``folder`` is a cluster folder this user's keeper made, and that keeper and its
    postgres are both gone: only then may another keeper remove it."""
    note = folder / KEEPER_NOTE
    try:
        if note.stat().st_uid != os.geteuid() or folder.is_symlink():
            return False
        pid, ticks, boot = note.read_text().split()
        boot_now = _BOOT_ID.read_text().strip()
    except (OSError, ValueError):
        return False  # no note (yet), or not ours: never guess
    if boot == boot_now and process_start_ticks(int(pid)) == int(ticks):
        return False  # its keeper lives
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int((folder / "data" / "postmaster.pid").read_text().split()[0])
        if boot == boot_now and process_start_ticks(postmaster) is not None:
            return False  # a postgres with that pid runs: perhaps still this folder's
    return True


def sweep_dead_keepers_folders(parent: Path) -> list[Path]:
    """Remove the folders of keepers that died without cleaning up (SIGKILL); return them."""
    swept = []
    for folder in parent.glob(FOLDER_PREFIX + "*"):
        if folder.is_dir() and is_dead_keepers(folder):
            shutil.rmtree(folder, ignore_errors=True)
            swept.append(folder)
    return swept


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_server_user(folder: Path, die_with_me: bool) -> list[str]:
    """The command prefix that runs a PostgreSQL program as a user it accepts."""
    prefix = ["setpriv"] + (["--pdeathsig", "KILL"] if die_with_me else [])
    if os.geteuid() != 0:
        return prefix
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    os.chown(folder, user.pw_uid, user.pw_gid)
    return [*prefix, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


def wait_until_ready(postgres: subprocess.Popen, data: Path, log: Path, deadline: float) -> None:
    """postmaster.pid's last line says "ready" once it accepts connections (what ``pg_ctl -w`` reads)."""
    pid_file = data / "postmaster.pid"
    while time.monotonic() < deadline:
        if postgres.poll() is not None:
            raise RuntimeError(
                f"postgres exited with status {postgres.returncode}: {log.read_text()[-2000:]}"
            )
        with contextlib.suppress(OSError):
            if [line.strip() for line in pid_file.read_text().splitlines()[7:8]] == ["ready"]:
                return
        time.sleep(0.05)
    raise RuntimeError(f"postgres was not ready within {STARTUP_TIMEOUT_S:.0f} s: {log.read_text()[-2000:]}")


def wait_for_parent(postgres: subprocess.Popen) -> None:
    """Until the parent closes the pipe (or dies); if postgres dies first, exit with its status,
    so the parent's ``exit_status()`` tells the rounds that their target is gone."""
    with selectors.DefaultSelector() as selector:
        selector.register(sys.stdin, selectors.EVENT_READ)
        while postgres.poll() is None:
            if selector.select(timeout=0.2) and not sys.stdin.buffer.read1(4096):
                return
    raise RuntimeError(f"postgres exited with status {postgres.returncode} while serving")


def stop(postgres: subprocess.Popen) -> None:
    if postgres.poll() is None:
        postgres.send_signal(signal.SIGINT)  # fast shutdown
        try:
            postgres.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            postgres.kill()
            postgres.wait()


def serve(max_connections: int) -> None:
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(INSTALL_HINT)
    sweep_dead_keepers_folders(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))
    postgres = None
    try:
        (folder / KEEPER_NOTE).write_text(keeper_note())
        data, log = folder / "data", folder / "postgres.log"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        subprocess.run(
            [
                *as_server_user(folder, die_with_me=True),
                bindir / "initdb",
                "-D",
                data,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=STARTUP_TIMEOUT_S,
        )
        port = free_port()
        settings = SETTINGS | {
            "port": port,
            "max_connections": max_connections,
            "unix_socket_directories": folder,
        }
        with open(log, "w") as log_file:
            os.chown(log, *os.stat(folder)[4:6])
            postgres = subprocess.Popen(
                [
                    *as_server_user(folder, die_with_me=True),
                    bindir / "postgres",
                    "-D",
                    data,
                    *(f"-c{name}={value}" for name, value in settings.items()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        wait_until_ready(postgres, data, log, deadline)
        print(f"ready postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE} {log} {postgres.pid}", flush=True)
        wait_for_parent(postgres)
    finally:
        if postgres is not None:
            stop(postgres)
        shutil.rmtree(folder, ignore_errors=True)


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--max-connections", type=int, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    try:
        serve(args.max_connections)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        stderr = getattr(exc, "stderr", None)
        print(f"error {exc}{': ' + stderr.decode()[-2000:] if stderr else ''}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
